//! Conversion of 16-bit floats to f32, and the weight-bytes view used by matmul.

use crate::quants::f16::f16_to_f32_fast;
pub use crate::quants::f16::{bf16_to_f32, f16_to_f32};
use crate::{check_len, mul, DType, KernelError, Result};

/// Bytes per element of a float type that matmul reads directly (F32, F16, BF16);
/// [`KernelError::Unsupported`] for any other.
pub fn float_size(dtype: DType) -> Result<usize> {
    match dtype {
        DType::F32 => Ok(4),
        DType::F16 | DType::BF16 => Ok(2),
        other => Err(KernelError::Unsupported(other)),
    }
}

/// A little-endian weight matrix `[rows, cols]`, row-major, as raw bytes (any alignment): F32,
/// F16, BF16, or one of the block-quantized [`crate::quants::WEIGHT_TYPES`] (whole blocks per
/// row), multiplied with f32 activations by [`crate::matmul()`].
#[derive(Debug, Clone, Copy)]
pub struct WeightRef<'a> {
    pub dtype: DType,
    pub bytes: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> WeightRef<'a> {
    /// Creates a view, checking that `dtype` is F32, F16, BF16 or a quantized weight type and
    /// that `bytes` holds exactly `rows * cols` elements.
    pub fn new(dtype: DType, bytes: &'a [u8], rows: usize, cols: usize) -> Result<Self> {
        let nb = mul("weight bytes", rows, row_bytes_of(dtype, cols)?)?;
        check_len("weight bytes", nb, bytes.len())?;
        Ok(Self {
            dtype,
            bytes,
            rows,
            cols,
        })
    }

    /// Bytes of one row (whole blocks for a quantized type).
    #[inline]
    pub fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// Decodes rows `[row, row + out.len() / cols)` into `out` as f32 (quantized rows bit-exact
    /// with ggml's dequantization). `out.len()` must be a multiple of `cols` and the rows must
    /// exist.
    pub fn decode_rows(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if self.cols == 0 || !out.len().is_multiple_of(self.cols) {
            return Err(KernelError::Invalid(format!(
                "{} values are not whole rows of {}",
                out.len(),
                self.cols
            )));
        }
        let start = mul("row offset", row, self.row_bytes())?;
        let nbytes = mul("rows bytes", out.len() / self.cols, self.row_bytes())?;
        let end = start
            .checked_add(nbytes)
            .ok_or(crate::KernelError::Overflow("rows end"))?;
        let src = self
            .bytes
            .get(start..end)
            .ok_or(crate::KernelError::Length {
                what: "decode rows",
                expected: end,
                got: self.bytes.len(),
            })?;
        if self.dtype.is_quantized() {
            return crate::quant::dequantize_seq(self.dtype, src, out);
        }
        decode_into(self.dtype, src, out)
    }
}

/// Bytes of one row of `cols` values of `dtype`: F32/F16/BF16 or a quantized weight type
/// (`cols` a multiple of its block size); [`KernelError::Unsupported`] for any other type.
pub fn row_bytes_of(dtype: DType, cols: usize) -> Result<usize> {
    if dtype.is_quantized() {
        if !crate::quants::WEIGHT_TYPES.contains(&dtype) {
            return Err(KernelError::Unsupported(dtype));
        }
        return crate::quants::bytes_for(dtype, cols);
    }
    mul("row bytes", cols, float_size(dtype)?)
}

/// Decodes little-endian bytes of `dtype` into `out` (`src.len() == out.len() * size`).
/// Extra bytes/elements beyond the shorter side are ignored. `dtype` must be F32, F16 or BF16,
/// else [`KernelError::Unsupported`].
pub fn decode_into(dtype: DType, src: &[u8], out: &mut [f32]) -> Result<()> {
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::BF16 => {
            for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_to_f32_fast(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        other => return Err(KernelError::Unsupported(other)),
    }
    Ok(())
}

/// ggml's `GGML_FP32_TO_BF16`: round to nearest even, NaN made quiet.
pub fn f32_to_bf16_ggml(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Encodes f32 values as `dtype`, as ggml's `ggml_quantize_chunk` does: F32 as is, F16 and BF16
/// rounded to nearest even, block types with ggml's reference quantizers
/// ([`crate::quantize::quantize_row`]). `dst` holds exactly the encoded bytes.
pub fn encode_into(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => {
            let es = float_size(dtype)?;
            crate::check_len(
                "encoded bytes",
                src.len()
                    .checked_mul(es)
                    .ok_or(KernelError::Overflow("encode"))?,
                dst.len(),
            )?;
            for (d, &v) in dst.chunks_exact_mut(es).zip(src) {
                match dtype {
                    DType::F32 => d.copy_from_slice(&v.to_le_bytes()),
                    DType::F16 => {
                        d.copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes())
                    }
                    _ => d.copy_from_slice(&f32_to_bf16_ggml(v).to_le_bytes()),
                }
            }
            Ok(())
        }
        q => crate::quantize::quantize_row(q, src, dst),
    }
}

/// Decodes a whole byte slice of `dtype` to a new f32 vector.
pub fn to_f32_vec(dtype: DType, src: &[u8]) -> Result<Vec<f32>> {
    let es = float_size(dtype)?;
    if !src.len().is_multiple_of(es) {
        return Err(crate::KernelError::Invalid(format!(
            "{} bytes is not a multiple of the element size {es}",
            src.len()
        )));
    }
    let mut out = vec![0.0f32; src.len() / es];
    decode_into(dtype, src, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_ref_rejects_wrong_length() {
        let b = [0u8; 10];
        assert!(WeightRef::new(DType::F16, &b, 2, 3).is_err());
        assert!(WeightRef::new(DType::F16, &b, 1, 5).is_ok());
        assert!(WeightRef::new(DType::F32, &b, usize::MAX, 2).is_err());
        assert_eq!(
            WeightRef::new(DType::Q8_K, &b, 1, 256).unwrap_err(),
            KernelError::Unsupported(DType::Q8_K)
        );
        assert!(WeightRef::new(DType::Q8_0, &[0u8; 34], 1, 32).is_ok());
        assert!(WeightRef::new(DType::Q8_0, &[0u8; 34], 1, 31).is_err());
    }

    #[test]
    fn decode_rows_bf16_unaligned() {
        // One byte of padding so the data is at an odd address.
        let mut buf = vec![0u8];
        for v in [1.0f32, -3.5, 0.5, 2.0] {
            buf.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
        }
        let w = WeightRef::new(DType::BF16, &buf[1..], 2, 2).unwrap();
        let mut out = [0.0f32; 2];
        w.decode_rows(1, &mut out).unwrap();
        assert_eq!(out, [0.5, 2.0]);
        let mut out3 = [0.0f32; 4];
        assert!(w.decode_rows(1, &mut out3).is_err());
    }
}
