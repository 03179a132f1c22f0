//! GGUF/ggml quantized blocks and their dequantization to f32, bit-exact with ggml's
//! `dequantize_row_*` (same operation order, no fused multiply-add).
//!
//! Each block type lives in its module of [`crate::quants`]: a `#[repr(C)]` struct mirroring
//! `ggml-common.h`, with a size assertion, and its [`crate::quants::BlockFormat::to_float`],
//! which reads fields at the struct's `offset_of!` positions from raw little-endian bytes, so
//! input of any alignment works.

use rayon::prelude::*;

pub use crate::quants::q2_k::BlockQ2K;
pub use crate::quants::q3_k::BlockQ3K;
pub use crate::quants::q4_0::BlockQ4_0;
pub use crate::quants::q4_1::BlockQ4_1;
pub use crate::quants::q4_k::BlockQ4K;
pub use crate::quants::q5_0::BlockQ5_0;
pub use crate::quants::q5_1::BlockQ5_1;
pub use crate::quants::q5_k::BlockQ5K;
pub use crate::quants::q6_k::BlockQ6K;
pub use crate::quants::q8_0::BlockQ8_0;
pub use crate::quants::{QK, QK_K};

use crate::quants::{bytes_for, dispatch, BlockFormat};
use crate::{check_len, DType, KernelError, Result};

/// A one-block dequantizer: `(block bytes, values)`.
type DequantFn = fn(&[u8], &mut [f32]);

/// The one-block dequantizer of `qt`.
fn block_fn(qt: DType) -> Result<DequantFn> {
    Ok(
        dispatch!(qt, T => T::to_float as fn(&[u8], &mut [f32]), other => return Err(KernelError::Unsupported(other))),
    )
}

/// Dequantizes whole blocks: `bytes.len()` must be `out.len() / block_elems · block_bytes`.
pub fn dequantize(qt: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let f = block_fn(qt)?;
    let be = qt.block_size();
    let bb = qt.type_size();
    let need = bytes_for(qt, out.len())?;
    check_len("quantized bytes", need, bytes.len())?;
    out.par_chunks_mut(be)
        .zip(bytes.par_chunks(bb))
        .with_min_len(256)
        .for_each(|(y, b)| f(b, y));
    Ok(())
}

/// [`dequantize`] on the calling thread (for callers already inside a parallel task).
pub fn dequantize_seq(qt: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let f = block_fn(qt)?;
    check_len("quantized bytes", bytes_for(qt, out.len())?, bytes.len())?;
    for (y, b) in out
        .chunks_exact_mut(qt.block_size())
        .zip(bytes.chunks_exact(qt.type_size()))
    {
        f(b, y);
    }
    Ok(())
}

/// Dequantizes to a new vector of `n_elems` values.
pub fn dequantize_to_vec(qt: DType, bytes: &[u8], n_elems: usize) -> Result<Vec<f32>> {
    block_fn(qt)?;
    check_len("quantized bytes", bytes_for(qt, n_elems)?, bytes.len())?;
    let mut out = vec![0.0f32; n_elems];
    dequantize(qt, bytes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_bits().to_le_bytes()
    }

    #[test]
    fn q4_0_hand_block() {
        // d = 0.5, qs[j] = j | (15 - j) << 4  →  y[j] = (j - 8)·0.5, y[j+16] = (7 - j)·0.5
        let mut b = f16b(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize_to_vec(DType::Q4_0, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn q4_1_hand_block() {
        let mut b = f16b(0.25).to_vec();
        b.extend(f16b(-1.0));
        b.extend((0..16u8).map(|j| j | (3 << 4)));
        let y = dequantize_to_vec(DType::Q4_1, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.25 - 1.0);
            assert_eq!(y[j + 16], 3.0 * 0.25 - 1.0);
        }
    }

    #[test]
    fn q5_0_and_q5_1_high_bits() {
        // qh bit j → element j gets +16; bit j+16 → element j+16 gets +16.
        let qh: u32 = (1 << 3) | (1 << 20);
        let mut b = f16b(1.0).to_vec();
        b.extend(qh.to_le_bytes());
        b.extend([0x21u8; 16]); // low nibble 1, high nibble 2
        let y = dequantize_to_vec(DType::Q5_0, &b, 32).unwrap();
        assert_eq!(y[0], 1.0 - 16.0);
        assert_eq!(y[3], 17.0 - 16.0);
        assert_eq!(y[16], 2.0 - 16.0);
        assert_eq!(y[20], 18.0 - 16.0);
        let mut b = f16b(2.0).to_vec();
        b.extend(f16b(0.5));
        b.extend(qh.to_le_bytes());
        b.extend([0x21u8; 16]);
        let y = dequantize_to_vec(DType::Q5_1, &b, 32).unwrap();
        assert_eq!(y[0], 2.5);
        assert_eq!(y[3], 34.5);
        assert_eq!(y[20], 36.5);
    }

    #[test]
    fn q8_0_hand_block() {
        let mut b = f16b(0.125).to_vec();
        b.extend((0..32i32).map(|j| ((j - 16) as i8) as u8));
        let y = dequantize_to_vec(DType::Q8_0, &b, 32).unwrap();
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, (j as f32 - 16.0) * 0.125);
        }
    }

    #[test]
    fn q6_k_constant_block() {
        // ql = 0x11 (low nibbles 1), qh = 0 → q = 1 - 32 = -31 everywhere; scales = 2; d = 0.5
        let mut b = vec![0x11u8; 128];
        b.extend([0u8; 64]);
        b.extend([2u8; 16]);
        b.extend(f16b(0.5));
        let y = dequantize_to_vec(DType::Q6_K, &b, 256).unwrap();
        assert!(y.iter().all(|&v| v == 0.5 * 2.0 * -31.0));
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(dequantize_to_vec(DType::Q4_0, &[0u8; 18], 31).is_err());
        assert!(dequantize_to_vec(DType::Q4_0, &[0u8; 17], 32).is_err());
        assert!(dequantize_to_vec(DType::Q6_K, &[0u8; 210], 256).is_ok());
        assert_eq!(
            dequantize_to_vec(DType::F16, &[0u8; 4], 2),
            Err(KernelError::Unsupported(DType::F16))
        );
        assert_eq!(
            dequantize_to_vec(DType::IQ4_NL, &[0u8; 18], 32),
            Err(KernelError::Unsupported(DType::IQ4_NL))
        );
    }
}
