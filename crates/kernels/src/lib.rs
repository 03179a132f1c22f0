//! llama31 kernels: dtype conversion, GGUF block dequantization, matmul over F32/F16/BF16 weight
//! bytes, RMSNorm, RoPE (both layouts, llama3 scaling), softmax, SiLU and GQA attention.
//!
//! Kernels know nothing about layers, files or tokens: they take slices and sizes.
//! Every function that takes sizes checks them and returns [`KernelError`] on a mismatch
//! instead of panicking.

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_tiled;
mod checked;
pub mod convert;
pub mod cpu;
pub mod dot_bytes;
pub mod kv;
pub mod low_rank;
pub mod matmul;
mod matmul_quant;
pub mod ops;
pub mod qbf16;
pub mod qdot;
#[cfg(target_arch = "x86_64")]
mod qgemm;
#[cfg(target_arch = "x86_64")]
mod qgemm_x8;
pub mod quant;
pub mod quantize;
pub mod quants;
pub mod rope;

#[cfg(test)]
mod qf32_tests;

pub use attention::{attention, AttentionShape};
pub use convert::{bf16_to_f32, f16_to_f32, WeightRef};
pub use kv::{KvRows, KvType};
pub use llama31_formats::DType;
pub use matmul::{dot, matmul};
pub use ops::{add_assign, rmsnorm, silu, softmax, swiglu};
pub use quant::dequantize;
pub use rope::{RopeLayout, RopeTable};

/// The precision of the activations multiplied with block-quantized weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Activations {
    /// Rounded to 8-bit blocks (Q8_0 / Q8_1 / Q8_K) and multiplied with integer block dot
    /// products, as ggml does.
    #[default]
    Q8,
    /// Rounded to bfloat16 (8 significant bits, f32's range) and multiplied with the weights'
    /// integer levels exactly (AVX512-BF16 `vdpbf16ps` where the CPU has it), scales applied in
    /// f32.
    Bf16,
    /// Kept in f32: the dequantized model's results at the quantized model's memory — within f32
    /// rounding with AVX512-BF16 (each activation split into three bf16 terms, see
    /// [`qbf16::matmul_f32_split`]), bit for bit elsewhere (each weight block dequantized just
    /// before its products).
    F32,
}

impl Activations {
    /// The name used on the command line: `q8`, `bf16` or `f32`.
    pub fn name(self) -> &'static str {
        match self {
            Activations::Q8 => "q8",
            Activations::Bf16 => "bf16",
            Activations::F32 => "f32",
        }
    }
}

impl std::str::FromStr for Activations {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "q8" => Ok(Activations::Q8),
            "bf16" => Ok(Activations::Bf16),
            "f32" => Ok(Activations::F32),
            other => Err(format!(
                "unknown activation precision {other:?} (q8, bf16 or f32)"
            )),
        }
    }
}

impl std::fmt::Display for Activations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
