//! The library's errors. Each names the file, key or value at fault and what is wrong; the
//! underlying error (an I/O error, a decoder's complaint), when there is one, is its
//! [`source`](std::error::Error::source), not part of its own message. Printed with its sources
//! (as the binary does, with `anyhow`'s `{:#}`), an error reads as one line:
//! `models/x.head: not a valid hark head file: EOF while parsing a value at line 1 column 100`.

use std::path::PathBuf;

/// The underlying error of an [`Error`], whatever its type.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written: `path: action` ("cannot read").
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: Cause,
    },
    /// A file's content is not what hark expects (a WAV, a head): `path: reason`.
    #[error("{}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<Cause>,
    },
    /// The base model or ONNX Runtime is missing, is not the expected file, or failed.
    #[error("{message}")]
    Model {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// An error of ONNX Runtime itself, as it reports it.
    #[error(transparent)]
    Runtime(#[from] ort::Error),
    /// Values hark cannot work with: a head that does not add up, a sample rate.
    #[error("{0}")]
    Data(String),
    /// An external program hark runs (espeak-ng) is missing or failed.
    #[error("{message}")]
    Tool {
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`, for `map_err`: `Error::io(path, "cannot read")`.
    pub fn io<E: Into<Cause>>(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(E) -> Error {
        let path = path.into();
        move |source| Error::Io {
            path,
            action,
            source: source.into(),
        }
    }

    /// An [`Error::Invalid`] for `path`, with no underlying error.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Model`] with no underlying error.
    pub fn model(message: impl Into<String>) -> Error {
        Error::Model {
            message: message.into(),
            source: None,
        }
    }
}
