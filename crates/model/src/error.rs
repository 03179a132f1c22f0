//! [`ModelError`]: everything that can go wrong configuring, loading or running a model.

use llama31_formats::FormatError;
use llama31_kernels::KernelError;

/// Errors from the model crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration is inconsistent or incomplete.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A RoPE scaling type we do not implement (e.g. "yarn", "dynamic").
    #[error("unsupported rope scaling type {0:?} (supported: none, \"llama3\")")]
    UnsupportedRope(String),
    /// A configuration file could not be parsed.
    #[error("cannot parse {file}: {msg}")]
    Parse { file: String, msg: String },
    /// A required tensor is not in the checkpoint.
    #[error("tensor {0:?} is missing from the checkpoint")]
    MissingTensor(String),
    /// A tensor's shape contradicts the config.
    #[error("tensor {name:?} has shape {got:?}, but the config implies {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A tensor's dtype cannot be used.
    #[error("tensor {name:?} has unsupported dtype {dtype}")]
    DType { name: String, dtype: String },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    Token { id: u32, vocab: usize },
    /// A position beyond the KV cache or the RoPE table.
    #[error("positions up to {end} exceed the maximum sequence length {max}")]
    Context { end: usize, max: usize },
    /// A context longer than the one the model was trained for.
    #[error(
        "a context of {requested} tokens is past the {trained} tokens this model was trained for"
    )]
    ContextTooLong { requested: usize, trained: usize },
    /// The memory plan does not fit the machine (see [`crate::plan::MemoryPlan::fit`]).
    #[error("not enough memory: {0}")]
    OutOfMemory(String),
    /// A KV cache made for another model shape.
    #[error("KV cache does not match the model: {0}")]
    Cache(String),
    /// A LoRA adapter cannot be read or does not fit the model.
    #[error("LoRA adapter: {0}")]
    Adapter(String),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A checkpoint format error.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A kernel size mismatch.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Result alias for the model crate.
pub type Result<T> = std::result::Result<T, ModelError>;

pub(crate) fn cfg_err(msg: impl Into<String>) -> ModelError {
    ModelError::Config(msg.into())
}
