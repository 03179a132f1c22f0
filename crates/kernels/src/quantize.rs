//! Reference quantization of f32 rows into ggml blocks, bit-identical with ggml's
//! `quantize_row_*_ref` (what `ggml_quantize_chunk` / llama-quantize run without an importance
//! matrix).
//!
//! The arithmetic follows ggml's operation order in f32 with no fused multiply-add; integer
//! rounding uses the same primitives: C `roundf` (half away from zero, [`f32::round`]), truncating
//! float→int casts, and ggml's `nearest_int` (the 1.5·2²³ trick, half to even). Blocks are written
//! at the `offset_of!` positions of the structs in [`crate::quants`], little-endian.
//!
//! The quantizers are the block types' [`crate::quants::BlockFormat::from_float`].

use rayon::prelude::*;

use crate::quants::{bytes_for, dispatch, BlockFormat};
use crate::{check_len, DType, KernelError, Result};

/// A one-block quantizer: `(values, block bytes)`.
type QuantFn = fn(&[f32], &mut [u8]);

/// The one-block quantizer of `ty`.
fn block_fn(ty: DType) -> Result<QuantFn> {
    Ok(
        dispatch!(ty, T => T::from_float as fn(&[f32], &mut [u8]), other => return Err(KernelError::Unsupported(other))),
    )
}

/// Quantizes `src` (a multiple of `ty`'s block size) into `dst`, which must hold exactly
/// `bytes_for(ty, src.len())` bytes, reproducing ggml's `quantize_row_*_ref` bit for bit.
/// Blocks are independent, so rows of any count may be passed concatenated.
pub fn quantize_row(ty: DType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    let f = block_fn(ty)?;
    check_len("quantized bytes", bytes_for(ty, src.len())?, dst.len())?;
    dst.par_chunks_mut(ty.type_size())
        .zip(src.par_chunks(ty.block_size()))
        .with_min_len(16)
        .for_each(|(b, x)| f(x, b));
    Ok(())
}

/// Quantizes `src` into a new byte vector (see [`quantize_row`]).
pub fn quantize_to_vec(ty: DType, src: &[f32]) -> Result<Vec<u8>> {
    block_fn(ty)?;
    let mut dst = vec![0u8; bytes_for(ty, src.len())?];
    quantize_row(ty, src, &mut dst)?;
    Ok(dst)
}

macro_rules! per_type {
    ($($name:ident => $ty:expr),* $(,)?) => {$(
        #[doc = concat!("[`quantize_row`] for `", stringify!($ty), "`.")]
        pub fn $name(src: &[f32], dst: &mut [u8]) -> Result<()> {
            quantize_row($ty, src, dst)
        }
    )*};
}

per_type! {
    quantize_row_q4_0 => DType::Q4_0,
    quantize_row_q4_1 => DType::Q4_1,
    quantize_row_q5_0 => DType::Q5_0,
    quantize_row_q5_1 => DType::Q5_1,
    quantize_row_q8_0 => DType::Q8_0,
    quantize_row_q2_k => DType::Q2_K,
    quantize_row_q3_k => DType::Q3_K,
    quantize_row_q4_k => DType::Q4_K,
    quantize_row_q5_k => DType::Q5_K,
    quantize_row_q6_k => DType::Q6_K,
}
