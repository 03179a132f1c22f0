//! [`QuantizeError`]: everything that can go wrong converting or quantizing a model.

use std::path::PathBuf;

/// Errors from [`crate::quantize`], each saying what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// `--type` names no supported file type.
    #[error("unknown quantization type {given:?}; supported: {}", known.join(", "))]
    UnknownType {
        given: String,
        known: Vec<&'static str>,
    },
    /// A tensor's stored type cannot be the input of this conversion.
    #[error(
        "tensor `{tensor}` is {dtype}: the input must be F32, F16 or BF16{hint}",
        hint = if *requantize_possible { " (pass --allow-requantize to requantize a quantized model)" } else { "" }
    )]
    InputType {
        tensor: String,
        dtype: String,
        requantize_possible: bool,
    },
    /// The output would overwrite the input.
    #[error("the output {0} is the input; write to another file")]
    SameFile(PathBuf),
    /// A tensor the model needs is missing, or has an unexpected shape.
    #[error("tensor `{tensor}`: {msg}")]
    Tensor { tensor: String, msg: String },
    /// A LoRA adapter to merge does not fit the model.
    #[error("LoRA adapter: {0}")]
    Lora(String),
    /// A tensor holds NaN or infinite values.
    #[error("tensor `{tensor}` holds a non-finite value at element {index}")]
    NonFinite { tensor: String, index: usize },
    /// No tensor type fallback exists for a shape (as llama.cpp's `tensor_type_fallback`).
    #[error("tensor `{tensor}`: no fallback type for {ty} with rows of {cols}")]
    NoFallback {
        tensor: String,
        ty: String,
        cols: usize,
    },
    /// Reading or writing a model file failed, or the file is malformed.
    #[error(transparent)]
    Format(#[from] llama31_formats::FormatError),
    /// The model's configuration is invalid or unsupported.
    #[error(transparent)]
    Model(#[from] llama31_model::ModelError),
    /// The tokenizer files cannot be converted.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] llama31_tokenizer::TokenizerError),
    /// A kernel rejected its sizes.
    #[error(transparent)]
    Kernel(#[from] llama31_kernels::KernelError),
    /// An I/O error outside the format readers (creating or renaming the output).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = QuantizeError> = std::result::Result<T, E>;
