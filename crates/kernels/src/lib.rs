//! llama31 kernels: dtype conversion, GGUF block dequantization, matmul over F32/F16/BF16 weight
//! bytes, RMSNorm, RoPE (both layouts, llama3 scaling), softmax, SiLU and GQA attention.
//!
//! Kernels know nothing about layers, files or tokens: they take slices and sizes.
//! Every function that takes sizes checks them and returns [`KernelError`] on a mismatch
//! instead of panicking.

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_tiled;
pub mod convert;
pub mod cpu;
pub mod dot_bytes;
pub mod matmul;
mod matmul_quant;
pub mod ops;
pub mod qdot;
#[cfg(target_arch = "x86_64")]
mod qgemm;
#[cfg(target_arch = "x86_64")]
mod qgemm_x8;
pub mod quant;
pub mod quantize;
pub mod quants;
pub mod rope;

pub use attention::{attention, AttentionShape};
pub use convert::{bf16_to_f32, f16_to_f32, WeightRef};
pub use llama31_formats::DType;
pub use matmul::{dot, matmul};
pub use ops::{add_assign, rmsnorm, silu, softmax, swiglu};
pub use quant::dequantize;
pub use rope::{RopeLayout, RopeTable};

/// Errors from kernels: sizes that do not agree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// A slice does not have the length the operation needs.
    #[error("{what}: expected {expected} elements/bytes, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A size computation overflowed `usize`.
    #[error("{0}: size overflows usize")]
    Overflow(&'static str),
    /// An argument is invalid (e.g. odd head dimension for RoPE).
    #[error("{0}")]
    Invalid(String),
    /// The operation has no kernel for this element type.
    #[error("no kernel for element type {0} here")]
    Unsupported(DType),
}

/// Result alias for kernels.
pub type Result<T> = std::result::Result<T, KernelError>;

pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            got,
        })
    }
}

pub(crate) fn mul(what: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(KernelError::Overflow(what))
}

/// Checks that `bytes` holds exactly `n` elements of the plain (not block-quantized) `dtype`.
pub fn check_bytes(dtype: DType, bytes: &[u8], n: usize) -> Result<()> {
    let es = dtype.elem_size().ok_or(KernelError::Unsupported(dtype))?;
    check_len("tensor bytes", mul("tensor bytes", n, es)?, bytes.len())
}
