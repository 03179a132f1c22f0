//! Errors of the evaluation harness.

use std::path::PathBuf;

/// Everything that can go wrong while evaluating. Data errors name the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file holds something the harness cannot use.
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        /// 1-based line number (0 when the problem is the file as a whole).
        line: usize,
        message: String,
    },
    /// The data, as a whole, cannot be evaluated with the given settings.
    #[error("{0}")]
    Setup(String),
    /// The model failed.
    #[error("model: {0}")]
    Model(#[from] llama31_model::ModelError),
    /// The engine failed or refused a request.
    #[error("engine: {0}")]
    Engine(String),
    /// The chat format failed to render a prompt.
    #[error("chat format: {0}")]
    Chat(String),
    /// The sandbox could not run a program at all (not: the program failed).
    #[error("sandbox: {0}")]
    Sandbox(String),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn data(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        EvalError::Data {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

impl From<llama31_engine::EngineError> for EvalError {
    /// A model error stays one; anything else the engine reports is an engine error.
    fn from(e: llama31_engine::EngineError) -> Self {
        match e {
            llama31_engine::EngineError::Model(inner) => {
                match inner.downcast::<llama31_model::ModelError>() {
                    Ok(m) => EvalError::Model(*m),
                    Err(other) => EvalError::Engine(format!("model error: {other}")),
                }
            }
            other => EvalError::Engine(other.to_string()),
        }
    }
}

/// Result of the harness.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
