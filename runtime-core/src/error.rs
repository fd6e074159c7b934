//! Errors of runtime-core, one enum per concern, aggregated in [`Error`].

use std::io;
use std::path::PathBuf;

/// A `config.json` that cannot be used, found before anything is created.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read or parsed.
    #[error("cannot load {path}: {message}")]
    Load {
        /// The config path.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A field has a value we refuse; `field` is its JSON path.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// JSON path of the field, such as `process.args`.
        field: String,
        /// Why it is refused.
        message: String,
    },
    /// A field asks for something this runtime does not do (yet); refused
    /// rather than silently ignored.
    #[error("unsupported {field}: {message}")]
    Unsupported {
        /// JSON path of the field.
        field: String,
        /// What is not supported.
        message: String,
    },
}

impl SpecError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    pub(crate) fn unsupported(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError::Unsupported {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {message}")]
pub struct CgroupError {
    /// The cgroup path relative to each hierarchy's root.
    pub path: String,
    /// What failed.
    pub message: String,
}

/// Any runtime-core failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is unusable.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Container init reported a failure while setting itself up.
    #[error("container init: {0}")]
    Init(String),
    /// The program cannot be run: `code` is the shell's code for why (126:
    /// not executable, 127: not found), as docker's `run` exits with.
    #[error("{message}")]
    Unrunnable {
        /// 126 or 127.
        code: u8,
        /// What was tried and why it failed.
        message: String,
    },
    /// An exec'd process reported a failure while setting itself up.
    #[error("exec process: {0}")]
    Exec(String),
    /// A hook failed or timed out.
    #[error("{0}")]
    Hook(String),
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation and object, such as `create state dir /run/x`.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The container's state does not allow the operation.
    #[error("container {id} is {status}: {message}")]
    State {
        /// Container id.
        id: String,
        /// Its current status.
        status: String,
        /// What was refused.
        message: String,
    },
    /// The operation failed, and undoing its partial work failed too.
    #[error("{error}; cleanup also failed: {cleanup}")]
    Cleanup {
        /// The original failure.
        error: Box<Error>,
        /// What could not be undone.
        cleanup: String,
    },
}

/// Wraps an io::Error with what was being done.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}
