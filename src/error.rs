//! The library's errors. Each names the file, key or value at fault and what is wrong, in one
//! line; the binary adds its own context with `anyhow`.

use std::path::PathBuf;

/// What can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what hark expects: a WAV, a head, a model, a cache.
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// The base model or ONNX Runtime is missing, or the runtime failed.
    #[error("{0}")]
    Model(String),
    /// Recordings or settings that cannot train or run a head (no words, a bad value).
    #[error("{0}")]
    Data(String),
    /// An external program hark runs (espeak-ng) is missing or failed.
    #[error("{0}")]
    Tool(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// An [`Error::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Error {
        Error::Model(format!("ONNX Runtime: {e}"))
    }
}
