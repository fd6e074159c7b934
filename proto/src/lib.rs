//! The contd wire protocol.
//!
//! Every connection — `contctl` ↔ `contd` (the api) and `contd` ↔
//! `contd-monitor` (the monitor protocol) — carries frames: a `u32`
//! little-endian payload length, then a bincode 1.3 payload. A frame larger
//! than [`MAX_FRAME`] is refused. Every connection opens with a [`Hello`] from
//! the client, answered by the server's `Hello` carrying the version both
//! will speak.
//!
//! # Compatibility rules
//!
//! A monitor started by an older contd must stay adoptable by a newer one, so
//! the encoding of every released message is frozen (golden tests under
//! `proto/tests/`):
//!
//! - enums only gain variants at the end; variants are never reordered,
//!   removed or reused (a retired one stays, unused);
//! - a struct that must change is not edited: a new variant carries the new
//!   struct;
//! - [`PROTOCOL_VERSION`] goes up by one with each release that adds messages,
//!   and a peer never sends a message newer than the version agreed in the
//!   handshake (the smaller of the two); a receiver answers a message it
//!   does not know with an error reply, never by dropping the connection.
//! - Golden files hold the exact bytes: `tests/golden/v1` every version-1
//!   message, `tests/golden/vN` the messages version N added (the older
//!   ones are unchanged in it, which `v1` already pins).
//! - Each request enum says which version introduced a variant
//!   (`Request::since`); a sender checks it against the agreed version and
//!   reports "needs protocol N" to its user instead of sending.
//!
//! Version 2 adds, for the monitor: stop, attach (output, input, detach),
//! resize, exec (started, output, input, exited) and stats.
//! Version 3 adds the log writer's status (errors, dropped records), to the
//! monitor and to the api.
//! Version 4 adds, for the monitor: the live link (subscribe and pushed
//! events), terminate, pause, resume, update and pids; for the api: the
//! complete create request and details, pause, resume, top, update, events,
//! logs with tail/since/follow and namespaces.
//! Version 5 adds the status `unknown` (a container whose monitor is gone
//! without an exit record) and, on the monitor's sync pipe, `Ready::Started`
//! (created and started in one step).
//! Version 6 adds, for the api: create with lifecycle options (`--rm`, stop
//! signal and timeout), stop with the container's own timeout, and the
//! error kinds permission denied, not executable and command not found.
//! Version 7 adds, for the api: rename, logs with each line's time, and
//! create with contd's init.
//!
//! # Layout
//!
//! - `codec`: [`encode`], [`decode`], blocking [`read_frame`]/[`write_frame`]
//!   and, with the `tokio` feature, their async twins in [`asynch`].
//! - `common`: [`Hello`], [`ExitRecord`], [`Status`], [`ErrorReply`].
//! - [`api`]: contctl ↔ contd messages.
//! - [`monitor`]: contd ↔ contd-monitor messages.
//! - [`time`]: RFC 3339 formatting and parsing of unix nanoseconds.
//! - [`cri`]: the CRI log format: the record the monitor writes, the
//!   rotated file names, and the reader.
//! - `name`: validation of namespace and container names.
#![forbid(unsafe_code)]

mod codec;
mod common;
mod name;

pub mod api;
pub mod cri;
pub mod monitor;
pub mod time;

#[cfg(feature = "tokio")]
pub mod asynch;

pub use codec::{
    decode, encode, encode_frame, read_frame, take_frame, write_frame, FrameError, MAX_FRAME,
};
pub use common::{parse_size, ErrorKind, ErrorReply, ExitRecord, Hello, Resources, Status};
pub use name::{validate_name, NameError};

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 7;

/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The version two peers speak after a handshake, or `None` if they share none.
pub fn negotiate(theirs: u16) -> Option<u16> {
    let v = theirs.min(PROTOCOL_VERSION);
    (v >= MIN_PROTOCOL_VERSION).then_some(v)
}

/// The handshake, the one place both sides of every connection go
/// through: the client's first frame.
pub fn hello(software: &str) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        software: format!("{software} {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The server's side of the handshake: the `Hello` to answer the client's
/// with, or the error to answer instead (then close).
///
/// # Errors
/// No common version.
pub fn answer_hello(theirs: &Hello, software: &str) -> Result<Hello, ErrorReply> {
    match negotiate(theirs.protocol) {
        Some(v) => Ok(Hello {
            protocol: v,
            software: format!("{software} {}", env!("CARGO_PKG_VERSION")),
        }),
        None => Err(ErrorReply::new(
            ErrorKind::Unsupported,
            format!("no common protocol version with {}", theirs.protocol),
        )),
    }
}

/// The client's check of the server's answer: the version agreed on.
///
/// # Errors
/// The server named a version this build does not speak.
pub fn accept_hello(theirs: &Hello) -> Result<u16, ErrorReply> {
    negotiate(theirs.protocol).ok_or_else(|| {
        ErrorReply::new(
            ErrorKind::Unsupported,
            format!(
                "{:?} speaks protocol {}, this build {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}",
                theirs.software, theirs.protocol
            ),
        )
    })
}
