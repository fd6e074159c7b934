//! ttrpc's framing: a 10-byte header (data length and stream id, both
//! big-endian u32, a message type and flags), then the data, at most 4 MiB.
//! Requests come on odd stream ids; a unary request gets one response on
//! its stream. The envelopes are protobuf (see [`crate::pb`]).

/// A request frame.
pub(crate) const REQUEST: u8 = 1;
/// A response frame.
pub(crate) const RESPONSE: u8 = 2;
/// The largest data ttrpc allows.
pub(crate) const MAX_DATA: usize = 4 << 20;
const HEADER: usize = 10;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub stream: u32,
    pub kind: u8,
    pub data: Vec<u8>,
}

/// Takes the first whole frame off `buf`; `Ok(None)` until one is there.
///
/// # Errors
/// A frame longer than [`MAX_DATA`]: the connection is beyond repair.
pub(crate) fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, String> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_DATA {
        return Err(format!("ttrpc frame of {len} bytes, over the 4 MiB limit"));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let stream = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let kind = buf[8];
    let data = buf[HEADER..HEADER + len].to_vec();
    buf.drain(..HEADER + len);
    Ok(Some(Frame { stream, kind, data }))
}

/// A frame's bytes.
pub(crate) fn frame(stream: u32, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&stream.to_be_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut wire = frame(3, REQUEST, b"abc");
        wire.extend(frame(5, RESPONSE, b""));
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for b in wire {
            buf.push(b);
            while let Some(f) = take_frame(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [
                Frame {
                    stream: 3,
                    kind: REQUEST,
                    data: b"abc".to_vec()
                },
                Frame {
                    stream: 5,
                    kind: RESPONSE,
                    data: Vec::new()
                }
            ]
        );
    }

    #[test]
    fn an_oversized_frame_is_refused() {
        let mut buf = vec![0x01, 0, 0, 0, 0, 0, 0, 1, 1, 0];
        assert!(take_frame(&mut buf).is_err());
    }
}
