//! Async frame I/O for tokio users (the supervisor and clients of it).

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{check_len, decode, frame};
use crate::FrameError;

/// Writes one frame.
///
/// # Errors
/// Encoding or I/O failure.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    w.write_all(&frame(msg)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame.
///
/// # Errors
/// As [`crate::read_frame`].
pub async fn read_frame<R, T>(r: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]).await? {
            0 if got == 0 => return Err(FrameError::Closed),
            0 => return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            n => got += n,
        }
    }
    let len = check_len(header)?;
    // Memory follows the bytes that arrive, not the length announced: a
    // peer that announces a megabyte and sends nothing costs next to none.
    let mut payload = Vec::with_capacity(len.min(8 * 1024));
    let n = (&mut *r).take(len as u64).read_to_end(&mut payload).await?;
    if n < len {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    decode(&payload)
}
