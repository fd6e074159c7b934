//! Framing and the bincode codec, kept behind our own functions so the codec
//! can be swapped without touching callers.

use std::io::{self, Read, Write};

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// The largest payload a frame may carry (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced or we tried to send a payload over [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The payload is not a valid encoding of the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The connection closed cleanly before a frame began.
    #[error("connection closed")]
    Closed,
    /// The connection failed, or closed in the middle of a frame.
    #[error("connection i/o")]
    Io(#[from] io::Error),
}

fn options() -> impl Options {
    // Fixed-width little-endian integers: the bincode 1.3 `serialize`
    // encoding, with a limit so a hostile length inside the payload cannot
    // make the decoder allocate more than a frame, and no trailing bytes.
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_FRAME as u64)
        .reject_trailing_bytes()
}

/// Encodes a message into a payload (without the length prefix).
///
/// # Errors
/// [`FrameError::TooLarge`] if the payload would exceed [`MAX_FRAME`].
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    options().serialize(msg).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => FrameError::TooLarge(MAX_FRAME + 1),
        other => FrameError::Malformed(other.to_string()),
    })
}

/// Decodes a payload (without the length prefix) into a message.
///
/// # Errors
/// [`FrameError::Malformed`] on any invalid input; never panics.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    options()
        .deserialize(payload)
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Encodes a message as a whole frame: length prefix and payload.
pub(crate) fn frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let payload = encode(msg)?;
    if payload.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks a frame's announced length against the limit.
pub(crate) fn check_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Writes one frame to a blocking writer.
///
/// # Errors
/// Encoding or I/O failure.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&frame(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame from a blocking reader.
///
/// # Errors
/// [`FrameError::Closed`] on a clean end of stream before the frame,
/// [`FrameError::TooLarge`] before reading an oversize payload,
/// [`FrameError::Malformed`] for a payload that does not decode.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = check_len(header)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    decode(&payload)
}

/// Splits complete frames off the front of a buffer, for non-blocking readers
/// (the monitor's poll loop). Returns the payload of the first complete frame
/// and consumes it, or `None` if more bytes are needed.
///
/// # Errors
/// [`FrameError::TooLarge`] as soon as the header announces an oversize frame.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = check_len([buf[0], buf[1], buf[2], buf[3]])?;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let payload = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(payload))
}

/// Encodes a message as a complete frame (length prefix included), for
/// non-blocking writers.
///
/// # Errors
/// Encoding failure or an oversize message.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    frame(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &("hello".to_string(), 7u32)).unwrap();
        let back: (String, u32) = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, ("hello".to_string(), 7));

        let mut huge = Vec::new();
        huge.extend_from_slice(&((MAX_FRAME as u32) + 1).to_le_bytes());
        let err = read_frame::<String>(&mut huge.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)), "{err}");

        let err = read_frame::<String>(&mut &[][..]).unwrap_err();
        assert!(matches!(err, FrameError::Closed));

        // A payload whose inner length claims far more than it holds.
        let mut lie = Vec::new();
        lie.extend_from_slice(&8u32.to_le_bytes());
        lie.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = read_frame::<String>(&mut lie.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[test]
    fn take_frame_splits_a_stream() {
        let mut buf = frame(&1u8).unwrap();
        buf.extend(frame(&2u8).unwrap());
        buf.extend_from_slice(&[5, 0]);
        let a: u8 = decode(&take_frame(&mut buf).unwrap().unwrap()).unwrap();
        let b: u8 = decode(&take_frame(&mut buf).unwrap().unwrap()).unwrap();
        assert_eq!((a, b), (1, 2));
        assert!(take_frame(&mut buf).unwrap().is_none());
    }
}
