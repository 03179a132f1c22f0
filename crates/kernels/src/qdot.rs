//! Dot products of quantized weight rows against 8-bit quantized activations, as ggml computes
//! them on the CPU (`ggml_vec_dot_<w>_<a>`).
//!
//! ggml never multiplies quantized weights by f32 activations: it first quantizes the activation
//! row to the weight type's `vec_dot_type` and then sums integer products block by block:
//!
//! | weights                    | activations |
//! |----------------------------|-------------|
//! | Q4_0, Q5_0, Q8_0           | Q8_0        |
//! | Q4_1, Q5_1                 | Q8_1        |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K | Q8_K      |
//!
//! The scalar kernels here follow ggml's generic (`*_generic`) code: the same integer sums per
//! block and the same f32 scaling (for the k-quants one integer sum per super-block where ggml
//! spreads it over 8 f32 lanes). AVX2 kernels (in the types' modules of [`crate::quants`], chosen at run time) exist for Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and Q6_K and compute identical integer sums per block; for the
//! legacy quants the f32 accumulation over blocks is reordered, the k-quants are bit-identical.
//! Q2_K, Q3_K and Q5_K run the scalar kernel everywhere.
//!
//! Each function here maps a runtime [`DType`] to its [`crate::quants::BlockType`] /
//! [`crate::quants::ActFormat`] implementation; types without one give
//! [`crate::KernelError::Unsupported`].

pub use crate::quants::q8_1::BlockQ8_1;
pub use crate::quants::q8_k::BlockQ8K;
pub use crate::quants::vec_dot_type;

use crate::cpu::cpu;
use crate::quants::{bytes_for, dispatch, dispatch_act, ActFormat, BlockFormat, BlockType};
use crate::{check_len, DType, KernelError, Result};

fn quantize_act(act: DType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    let f = dispatch_act!(act, A => A::quantize_row as fn(&[f32], &mut [u8]) -> Result<()>,
        other => return Err(KernelError::Unsupported(other)));
    check_len("activation bytes", bytes_for(act, src.len())?, dst.len())?;
    f(src, dst)
}

/// ggml's `quantize_row_q8_1_ref`: `dst` must hold `src.len() / 32 · 36` bytes.
pub fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) -> Result<()> {
    quantize_act(DType::Q8_1, src, dst)
}

/// ggml's `quantize_row_q8_K_ref`: `dst` must hold `src.len() / 256 · 292` bytes.
/// (An all-zero block gets zero `bsums`, where ggml leaves them unwritten.)
pub fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) -> Result<()> {
    quantize_act(DType::Q8_K, src, dst)
}

/// Quantizes an activation row to `act` into a new vector.
pub fn quantize_activations(act: DType, src: &[f32]) -> Result<Vec<u8>> {
    let mut dst = vec![0u8; bytes_for(act, src.len())?];
    quantize_act(act, src, &mut dst)?;
    Ok(dst)
}

/// Quantizes an activation row to `act` into `dst` (exactly `bytes_for(act, src.len())` bytes).
pub fn quantize_activations_into(act: DType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    quantize_act(act, src, dst)
}

/// Dequantizes `n` activations of format `act` (`d · q`).
pub fn dequantize_activations(act: DType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let f = dispatch_act!(act, A => A::to_float as fn(&[u8], &mut [f32]), other => return Err(KernelError::Unsupported(other)));
    check_len("activation bytes", bytes_for(act, n)?, bytes.len())?;
    let mut out = vec![0.0f32; n];
    for (b, y) in bytes
        .chunks_exact(act.type_size())
        .zip(out.chunks_exact_mut(act.block_size()))
    {
        f(b, y);
    }
    Ok(out)
}

/// Checks sizes for a dot of `n` elements of weight type `ty` against its activation type.
fn check_dot(ty: DType, w: &[u8], a: &[u8], n: usize) -> Result<()> {
    let act = vec_dot_type(ty)?;
    check_len("quantized weight bytes", bytes_for(ty, n)?, w.len())?;
    check_len("quantized activation bytes", bytes_for(act, n)?, a.len())
}

/// Dot product of `n` quantized weights (`ty`) with `n` activations quantized to
/// [`vec_dot_type`]`(ty)`, using AVX2 where the CPU has it and a kernel exists.
pub fn vec_dot(ty: DType, w: &[u8], a: &[u8], n: usize) -> Result<f32> {
    check_dot(ty, w, a, n)?;
    Ok(dispatch!(ty, T => T::vec_dot(w, a), other => return Err(KernelError::Unsupported(other))))
}

/// A row dot product: `(weight blocks, activation blocks)`.
pub(crate) type VecDotFn = fn(&[u8], &[u8]) -> f32;

/// [`vec_dot`] for `ty` without the size checks, chosen once: for callers that checked that
/// every `w` holds `bytes_for(ty, n)` and every `a` `bytes_for(vec_dot_type(ty)?, n)` bytes for
/// the same `n` (whole blocks). The kernels only read through bounds-checked sub-slices, so wrong
/// sizes give a wrong sum or a panic, never undefined behaviour.
pub(crate) fn vec_dot_fn(ty: DType) -> Result<VecDotFn> {
    Ok(
        dispatch!(ty, T => T::vec_dot as fn(&[u8], &[u8]) -> f32, other => return Err(KernelError::Unsupported(other))),
    )
}

/// The scalar reference kernel (ggml's generic code), whatever the CPU.
pub fn vec_dot_scalar(ty: DType, w: &[u8], a: &[u8], n: usize) -> Result<f32> {
    check_dot(ty, w, a, n)?;
    Ok(
        dispatch!(ty, T => T::vec_dot_unopt(w, a), other => return Err(KernelError::Unsupported(other))),
    )
}

/// The AVX2 kernel alone: `Ok(None)` when the CPU lacks AVX2/FMA/F16C or `ty` has no AVX2 kernel.
pub fn vec_dot_avx2(ty: DType, w: &[u8], a: &[u8], n: usize) -> Result<Option<f32>> {
    check_dot(ty, w, a, n)?;
    Ok(
        dispatch!(ty, T => T::vec_dot_avx2(w, a), other => return Err(KernelError::Unsupported(other))),
    )
}

/// Whether [`vec_dot`] runs an AVX2 kernel for `ty` on this CPU (`false` for types it cannot
/// compute).
pub fn has_avx2_kernel(ty: DType) -> bool {
    dispatch!(ty, T => T::HAS_AVX2_DOT, _ => false) && cpu().avx2_fma_f16c()
}
