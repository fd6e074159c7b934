//! Attach and exec sessions: a connection of their own to the container's
//! monitor, owned by the caller, with typed frames both ways.

use proto::api::Stream;
use proto::asynch::{read_frame, write_frame};
use proto::monitor::{Request as MReq, Response as MResp};
use proto::ExitRecord;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::link::{self, Unreachable};
use crate::Error;

/// What the caller sends on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput {
    /// Bytes for the container's stdin (attach with stdin).
    Input(Vec<u8>),
    /// Bytes for an exec'd process's stdin (empty: close it).
    ExecInput {
        /// The exec id.
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A new terminal size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// What a session brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutput {
    /// The attach is in place.
    Attached,
    /// Container output.
    Output {
        /// Which stream (a terminal's is stdout).
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The attach ended by the detach keys.
    Detached,
    /// The container exited (ends an attach).
    Exited(ExitRecord),
    /// The exec'd process started.
    ExecStarted {
        /// Its id.
        id: u32,
        /// Its host pid.
        pid: i32,
    },
    /// Output of the exec'd process.
    ExecOutput {
        /// Its id.
        id: u32,
        /// Which stream.
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The exec'd process ended (ends an exec).
    ExecExited {
        /// Its id.
        id: u32,
        /// Exit code, or 128 + signal.
        code: i32,
    },
}

/// A live attach or exec; split it to read and write from two tasks.
#[derive(Debug)]
pub struct Session {
    reader: SessionReader,
    writer: SessionWriter,
}

/// The reading half of a [`Session`].
#[derive(Debug)]
pub struct SessionReader {
    rd: OwnedReadHalf,
    exec: bool,
    ended: bool,
}

/// The writing half of a [`Session`].
#[derive(Debug)]
pub struct SessionWriter {
    wr: OwnedWriteHalf,
}

impl Session {
    /// Opens a session: `first` is the attach or exec request.
    pub(crate) async fn open(
        dir: &std::path::Path,
        name: &str,
        first: MReq,
    ) -> Result<Session, Error> {
        let (s, v) = link::connect(dir).await.map_err(|e| match e {
            Unreachable::Gone => Error::conflict(format!("container {name} has exited")),
            Unreachable::Failed(e) => e,
        })?;
        if v < 2 {
            return Err(Error::new(
                proto::ErrorKind::Unsupported,
                format!("the container's monitor speaks protocol {v}, attach and exec need 2"),
            ));
        }
        let exec = matches!(first, MReq::Exec(_));
        let (rd, mut wr) = s.into_split();
        write_frame(&mut wr, &first)
            .await
            .map_err(|e| Error::internal(format!("session: {e}")))?;
        Ok(Session {
            reader: SessionReader {
                rd,
                exec,
                ended: false,
            },
            writer: SessionWriter { wr },
        })
    }

    /// The two halves.
    pub fn split(self) -> (SessionReader, SessionWriter) {
        (self.reader, self.writer)
    }
}

impl SessionReader {
    /// The next output; `None` once the session ended (detach, exit, the
    /// exec's end, or the monitor closing).
    ///
    /// # Errors
    /// The monitor refused the session (no such exec, container exited…),
    /// or the connection broke.
    pub async fn next(&mut self) -> Option<Result<SessionOutput, Error>> {
        if self.ended {
            return None;
        }
        let resp = match read_frame::<_, MResp>(&mut self.rd).await {
            Ok(r) => r,
            Err(proto::FrameError::Closed) => {
                self.ended = true;
                return None;
            }
            Err(e) => {
                self.ended = true;
                return Some(Err(Error::internal(format!("session: {e}"))));
            }
        };
        let out = match resp {
            MResp::Ok => SessionOutput::Attached,
            MResp::Output { stream, data } => SessionOutput::Output { stream, data },
            MResp::Detached => SessionOutput::Detached,
            MResp::Exited(rec) => SessionOutput::Exited(rec),
            MResp::ExecStarted { id, pid } => SessionOutput::ExecStarted { id, pid },
            MResp::ExecOutput { id, stream, data } => {
                SessionOutput::ExecOutput { id, stream, data }
            }
            MResp::ExecExited { id, code } => SessionOutput::ExecExited { id, code },
            MResp::Error(e) => {
                self.ended = true;
                return Some(Err(e.into()));
            }
            other => {
                return Some(Err(Error::internal(format!(
                    "unexpected monitor answer {other:?}"
                ))))
            }
        };
        // An exec's session ends with its own exit; the container's exit
        // ends an attach.
        self.ended = match &out {
            SessionOutput::Detached => true,
            SessionOutput::Exited(_) => !self.exec,
            SessionOutput::ExecExited { .. } => true,
            _ => false,
        };
        Some(Ok(out))
    }
}

impl SessionWriter {
    /// Sends input or a resize.
    ///
    /// # Errors
    /// The session's connection is closed.
    pub async fn send(&mut self, input: SessionInput) -> Result<(), Error> {
        let req = match input {
            SessionInput::Input(data) => MReq::Input { data },
            SessionInput::ExecInput { id, data } => MReq::ExecInput { id, data },
            SessionInput::Resize { rows, cols } => MReq::Resize { rows, cols },
        };
        write_frame(&mut self.wr, &req)
            .await
            .map_err(|e| Error::internal(format!("session: {e}")))
    }
}
