//! The protobuf wire format, written by hand for the few containerd
//! messages the shim speaks (`containerd.task.v2`, its events, ttrpc's
//! envelope). A generated crate (prost, rust-protobuf) would add a
//! dependency tree and code to every monitor for a few dozen fields; the
//! format itself is varints and length-delimited bytes.
//!
//! Decoding never panics: a truncated or malformed message is an error.

/// Protobuf's wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Builds a message.
#[derive(Debug, Default)]
pub(crate) struct Enc(Vec<u8>);

impl Enc {
    pub(crate) fn new() -> Self {
        Enc(Vec::new())
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// An unsigned integer (uint32, uint64, an enum), left out when 0.
    pub(crate) fn uint(mut self, field: u32, v: u64) -> Self {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
        self
    }

    /// A signed integer (int32, int64), left out when 0.
    pub(crate) fn int(mut self, field: u32, v: i64) -> Self {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
        self
    }

    /// A bool, left out when false.
    pub(crate) fn bool(self, field: u32, v: bool) -> Self {
        self.uint(field, u64::from(v))
    }

    /// Bytes or a string, left out when empty.
    pub(crate) fn bytes(mut self, field: u32, v: &[u8]) -> Self {
        if !v.is_empty() {
            self.key(field, LEN);
            self.varint(v.len() as u64);
            self.0.extend_from_slice(v);
        }
        self
    }

    pub(crate) fn str(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    /// A nested message, always present (even empty).
    pub(crate) fn msg(mut self, field: u32, m: Enc) -> Self {
        self.key(field, LEN);
        self.varint(m.0.len() as u64);
        self.0.extend_from_slice(&m.0);
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// A field's value as the wire carries it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    pub(crate) fn uint(self) -> u64 {
        match self {
            Value::Int(v) => v,
            Value::Bytes(_) => 0,
        }
    }

    pub(crate) fn bytes(self) -> &'a [u8] {
        match self {
            Value::Bytes(b) => b,
            Value::Int(_) => &[],
        }
    }

    pub(crate) fn string(self) -> Result<String, String> {
        String::from_utf8(self.bytes().to_vec()).map_err(|_| "a string is not UTF-8".into())
    }
}

/// The fields of a message, in order.
pub(crate) fn fields(mut buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = take_varint(&mut buf)?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number too large")?;
        let value = match (key & 7) as u8 {
            VARINT => Value::Int(take_varint(&mut buf)?),
            LEN => {
                let n = usize::try_from(take_varint(&mut buf)?).map_err(|_| "length too large")?;
                if n > buf.len() {
                    return Err("truncated message".into());
                }
                let (b, rest) = buf.split_at(n);
                buf = rest;
                Value::Bytes(b)
            }
            FIXED64 => Value::Int(u64::from_le_bytes(take::<8>(&mut buf)?)),
            FIXED32 => Value::Int(u64::from(u32::from_le_bytes(take::<4>(&mut buf)?))),
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn take<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], String> {
    if buf.len() < N {
        return Err("truncated message".into());
    }
    let (a, rest) = buf.split_at(N);
    *buf = rest;
    Ok(a.try_into().unwrap_or([0; N]))
}

fn take_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// `google.protobuf.Any`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Any {
    pub type_url: String,
    pub value: Vec<u8>,
}

impl Any {
    pub(crate) fn decode(buf: &[u8]) -> Result<Any, String> {
        let mut a = Any::default();
        for (f, v) in fields(buf)? {
            match f {
                1 => a.type_url = v.string()?,
                2 => a.value = v.bytes().to_vec(),
                _ => {}
            }
        }
        Ok(a)
    }

    pub(crate) fn enc(type_url: &str, value: &[u8]) -> Enc {
        Enc::new().str(1, type_url).bytes(2, value)
    }
}

/// `google.protobuf.Timestamp` of unix nanoseconds.
pub(crate) fn timestamp(nanos: i64) -> Enc {
    Enc::new()
        .int(1, nanos.div_euclid(1_000_000_000))
        .int(2, nanos.rem_euclid(1_000_000_000))
}

/// `containerd.types.Mount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Mount {
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

impl Mount {
    fn decode(buf: &[u8]) -> Result<Mount, String> {
        let mut m = Mount::default();
        for (f, v) in fields(buf)? {
            match f {
                1 => m.kind = v.string()?,
                2 => m.source = v.string()?,
                3 => m.target = v.string()?,
                4 => m.options.push(v.string()?),
                _ => {}
            }
        }
        Ok(m)
    }

    pub(crate) fn enc(&self) -> Enc {
        let mut e = Enc::new()
            .str(1, &self.kind)
            .str(2, &self.source)
            .str(3, &self.target);
        for o in &self.options {
            e = e.str(4, o);
        }
        e
    }
}

/// Every task request, decoded: the union of their fields (each request
/// uses some; numbers differ between messages, so each has its decoder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TaskRequest {
    pub id: String,
    pub exec_id: String,
    pub bundle: String,
    pub rootfs: Vec<Mount>,
    pub terminal: bool,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub checkpoint: String,
    pub any: Option<Any>,
    pub signal: u32,
    pub all: bool,
    pub width: u32,
    pub height: u32,
    pub close_stdin: bool,
    pub now: bool,
}

/// The task service's methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    State,
    Create,
    Start,
    Delete,
    Pids,
    Pause,
    Resume,
    Checkpoint,
    Kill,
    Exec,
    ResizePty,
    CloseIo,
    Update,
    Wait,
    Stats,
    Connect,
    Shutdown,
}

/// The service name containerd calls.
pub(crate) const TASK_SERVICE: &str = "containerd.task.v2.Task";

impl Method {
    pub(crate) fn of(name: &str) -> Option<Method> {
        Some(match name {
            "State" => Method::State,
            "Create" => Method::Create,
            "Start" => Method::Start,
            "Delete" => Method::Delete,
            "Pids" => Method::Pids,
            "Pause" => Method::Pause,
            "Resume" => Method::Resume,
            "Checkpoint" => Method::Checkpoint,
            "Kill" => Method::Kill,
            "Exec" => Method::Exec,
            "ResizePty" => Method::ResizePty,
            "CloseIO" => Method::CloseIo,
            "Update" => Method::Update,
            "Wait" => Method::Wait,
            "Stats" => Method::Stats,
            "Connect" => Method::Connect,
            "Shutdown" => Method::Shutdown,
            _ => return None,
        })
    }
}

impl TaskRequest {
    /// Decodes the request of `method`.
    pub(crate) fn decode(method: Method, buf: &[u8]) -> Result<TaskRequest, String> {
        let mut r = TaskRequest::default();
        for (f, v) in fields(buf)? {
            match (method, f) {
                (_, 1) => r.id = v.string()?,
                (Method::Create, 2) => r.bundle = v.string()?,
                (Method::Create, 3) => r.rootfs.push(Mount::decode(v.bytes())?),
                (Method::Create, 4) | (Method::Exec, 3) => r.terminal = v.uint() != 0,
                (Method::Create, 5) | (Method::Exec, 4) => r.stdin = v.string()?,
                (Method::Create, 6) | (Method::Exec, 5) => r.stdout = v.string()?,
                (Method::Create, 7) | (Method::Exec, 6) => r.stderr = v.string()?,
                (Method::Create, 8) => r.checkpoint = v.string()?,
                (Method::Create, 10) | (Method::Exec, 7) | (Method::Update, 2) => {
                    r.any = Some(Any::decode(v.bytes())?)
                }
                (Method::Shutdown, 2) => r.now = v.uint() != 0,
                (
                    Method::State
                    | Method::Start
                    | Method::Delete
                    | Method::Wait
                    | Method::Kill
                    | Method::Exec
                    | Method::ResizePty
                    | Method::CloseIo,
                    2,
                ) => r.exec_id = v.string()?,
                (Method::Kill, 3) => r.signal = v.uint() as u32,
                (Method::Kill, 4) => r.all = v.uint() != 0,
                (Method::ResizePty, 3) => r.width = v.uint() as u32,
                (Method::ResizePty, 4) => r.height = v.uint() as u32,
                (Method::CloseIo, 3) => r.close_stdin = v.uint() != 0,
                _ => {}
            }
        }
        Ok(r)
    }
}

/// `ttrpc.Request`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RpcRequest {
    pub service: String,
    pub method: String,
    pub payload: Vec<u8>,
}

impl RpcRequest {
    pub(crate) fn decode(buf: &[u8]) -> Result<RpcRequest, String> {
        let mut r = RpcRequest::default();
        for (f, v) in fields(buf)? {
            match f {
                1 => r.service = v.string()?,
                2 => r.method = v.string()?,
                3 => r.payload = v.bytes().to_vec(),
                _ => {}
            }
        }
        Ok(r)
    }

    pub(crate) fn enc(service: &str, method: &str, payload: &[u8]) -> Vec<u8> {
        Enc::new()
            .str(1, service)
            .str(2, method)
            .bytes(3, payload)
            .finish()
    }
}

/// gRPC status codes the shim answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
}

/// An RPC's error: a code and a message (containerd maps the code to its
/// errdefs: NotFound, AlreadyExists, NotImplemented...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }
}

/// `ttrpc.Response`: the payload, or the error status.
pub(crate) fn rpc_response(result: &Result<Vec<u8>, Status>) -> Vec<u8> {
    match result {
        Ok(payload) => Enc::new().msg(1, Enc::new()).bytes(2, payload).finish(),
        Err(s) => Enc::new()
            .msg(1, Enc::new().int(1, s.code as i64).str(2, &s.message))
            .finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_round_trip() {
        let buf = Enc::new()
            .uint(1, 300)
            .str(2, "hello")
            .int(3, -1)
            .bool(4, true)
            .msg(5, Enc::new().uint(1, 7))
            .finish();
        let f = fields(&buf).unwrap();
        assert_eq!(f[0].0, 1);
        assert_eq!(f[0].1.uint(), 300);
        assert_eq!(f[1].1.string().unwrap(), "hello");
        assert_eq!(f[2].1.uint() as i64, -1);
        assert_eq!(f[3].1.uint(), 1);
        assert_eq!(fields(f[4].1.bytes()).unwrap()[0].1.uint(), 7);
    }

    #[test]
    fn a_create_request_decodes() {
        let buf = Enc::new()
            .str(1, "c1")
            .str(2, "/b")
            .msg(
                3,
                Mount {
                    kind: "bind".into(),
                    source: "/src".into(),
                    target: String::new(),
                    options: vec!["rbind".into(), "ro".into()],
                }
                .enc(),
            )
            .bool(4, true)
            .str(6, "/fifo/out")
            .msg(10, Any::enc("x/y", b"{}"))
            .finish();
        let r = TaskRequest::decode(Method::Create, &buf).unwrap();
        assert_eq!(r.id, "c1");
        assert_eq!(r.bundle, "/b");
        assert_eq!(r.rootfs[0].options, ["rbind", "ro"]);
        assert!(r.terminal);
        assert_eq!(r.stdout, "/fifo/out");
        assert_eq!(r.any.unwrap().type_url, "x/y");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &[0x0a, 0x05, b'a'][..],
            &[0xff; 11],
            &[0x0b],
            &[0x09, 1, 2],
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ] {
            assert!(fields(bad).is_err(), "{bad:?}");
        }
        // A wrong type for a field is read as empty, not trusted.
        let buf = Enc::new().uint(1, 5).finish();
        assert_eq!(TaskRequest::decode(Method::State, &buf).unwrap().id, "");
    }

    #[test]
    fn random_bytes_never_panic_any_decoder() {
        let methods = [
            "State",
            "Create",
            "Start",
            "Delete",
            "Pids",
            "Pause",
            "Resume",
            "Checkpoint",
            "Kill",
            "Exec",
            "ResizePty",
            "CloseIO",
            "Update",
            "Wait",
            "Stats",
            "Connect",
            "Shutdown",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the time, a well-formed start with a wild length.
            if round % 2 == 0 && !buf.is_empty() {
                buf[0] = 0x0a;
            }
            let _ = RpcRequest::decode(&buf);
            let _ = Any::decode(&buf);
            for m in methods {
                let _ = TaskRequest::decode(Method::of(m).unwrap(), &buf);
            }
        }
    }

    #[test]
    fn timestamps_split_seconds_and_nanos() {
        let t = timestamp(1_700_000_000_123_456_789).finish();
        let f = fields(&t).unwrap();
        assert_eq!(f[0].1.uint(), 1_700_000_000);
        assert_eq!(f[1].1.uint(), 123_456_789);
    }
}
