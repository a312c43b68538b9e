//! The error of the evaluation, training and calibration drivers: each says what was wrong with
//! the input or which file failed, so the CLI can print it on one line and exit 2.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An option or input that cannot be used (the message names it).
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Ladder(#[from] crate::ladder::LadderError),
    #[error(transparent)]
    Cascade(#[from] crate::cascade::CascadeError),
    #[error(transparent)]
    Train(#[from] tierwise_train::router::TrainError),
    #[error(transparent)]
    Edit(#[from] crate::config_edit::EditError),
    #[error(transparent)]
    Load(#[from] tierwise_router::load::LoadError),
    #[error(transparent)]
    Calibrate(#[from] tierwise_train::calibrate::CalibrateError),
}

impl RunError {
    /// An unusable option or input; the message names it.
    pub fn invalid(message: impl Into<String>) -> RunError {
        RunError::Invalid(message.into())
    }

    pub fn read(path: &Path, source: std::io::Error) -> RunError {
        RunError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn write(path: &Path, source: std::io::Error) -> RunError {
        RunError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `text` to `path`, or says which file could not be written.
pub fn write_file(path: &Path, text: &str) -> Result<(), RunError> {
    std::fs::write(path, text).map_err(|e| RunError::write(path, e))
}
