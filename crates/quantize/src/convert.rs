//! One tensor from its input bytes to its output bytes: rows decoded to f32 (in the output's row
//! order), then encoded as ggml's `ggml_quantize_chunk` would (reference quantizers, F16 and BF16
//! rounding to nearest even); tensors whose type does not change are copied.

use llama31_formats::DType;
use llama31_kernels::convert::{decode_into, encode_into, float_size};
use llama31_kernels::qdot::vec_dot_type;
use llama31_kernels::quant::dequantize;
use llama31_kernels::rope::interleaved_source_row;
use llama31_kernels::KernelError;
use llama31_model::lora::LoraTerm;
use rayon::prelude::*;

use crate::error::{QuantizeError, Result};

/// Elements converted to f32 at a time (bounds the f32 buffer at 64 MiB).
const SLAB_ELEMS: usize = 16 * 1024 * 1024;

/// The source row that becomes output row `j`: HF q/k rows permuted to GGUF's layout
/// ([`interleaved_source_row`]) when `heads` is given, identity otherwise.
pub(crate) fn source_row(j: usize, rows: usize, heads: Option<usize>) -> usize {
    heads.map_or(j, |h| interleaved_source_row(j, rows, h))
}

/// Decodes one row's bytes into f32.
type RowDecoder = dyn Fn(&[u8], &mut [f32]) -> Result<()> + Sync;

/// A tensor's input: its bytes, dtype and row-major shape.
pub(crate) struct Src<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: &'a [u8],
    pub heads: Option<usize>,
    /// LoRA terms merged into the rows: `scale · B · A` each, with the scale given (the term's
    /// own times the user's); rows in the output's order.
    pub lora: Vec<(&'a LoraTerm, f32)>,
}

impl Src<'_> {
    fn row_bytes(&self) -> Result<usize> {
        let bad = || QuantizeError::Tensor {
            tensor: self.name.to_owned(),
            msg: format!(
                "{} bytes do not hold {}×{} {}",
                self.bytes.len(),
                self.rows,
                self.cols,
                self.dtype
            ),
        };
        let rb = self.dtype.bytes_for_shape(&[self.cols]).ok_or_else(bad)?;
        if rb.checked_mul(self.rows) != Some(self.bytes.len()) {
            return Err(bad());
        }
        Ok(rb)
    }

    /// Rows `start..start + out.len() / cols` of the output order, as f32.
    fn decode_rows(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let rb = self.row_bytes()?;
        let cols = self.cols;
        let dtype = self.dtype;
        // Block types the kernels compute with are those with a `vec_dot_type`.
        let decode: Box<RowDecoder> = if float_size(dtype).is_ok() {
            Box::new(move |b, o| Ok(decode_into(dtype, b, o)?))
        } else if vec_dot_type(dtype).is_ok() {
            Box::new(move |b, o| Ok(dequantize(dtype, b, o)?))
        } else {
            return Err(QuantizeError::InputType {
                tensor: self.name.to_owned(),
                dtype: self.dtype.to_string(),
                requantize_possible: false,
            });
        };
        out.par_chunks_mut(cols)
            .enumerate()
            .try_for_each(|(k, o)| {
                let r = source_row(start + k, self.rows, self.heads);
                let b = self.bytes.get(r * rb..(r + 1) * rb).unwrap_or_default();
                decode(b, o)?;
                for &(t, scale) in &self.lora {
                    t.merge_row(start + k, o, scale);
                }
                Ok::<(), QuantizeError>(())
            })?;
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(QuantizeError::NonFinite {
                tensor: self.name.to_owned(),
                index: start * cols + i,
            });
        }
        Ok(())
    }

    /// The bytes in output row order without conversion (same input and output type).
    fn copy(&self) -> Result<Vec<u8>> {
        let rb = self.row_bytes()?;
        if self.heads.is_none() {
            return Ok(self.bytes.to_vec());
        }
        let mut out = Vec::with_capacity(self.bytes.len());
        for j in 0..self.rows {
            let r = source_row(j, self.rows, self.heads);
            out.extend_from_slice(&self.bytes[r * rb..(r + 1) * rb]);
        }
        Ok(out)
    }
}

/// Encodes f32 values as `to` (`kernels::convert::encode_into`).
fn encode(name: &str, to: DType, x: &[f32], dst: &mut [u8]) -> Result<()> {
    encode_into(to, x, dst).map_err(|e| match e {
        KernelError::Unsupported(_) => QuantizeError::Tensor {
            tensor: name.to_owned(),
            msg: format!("no quantizer for {to}"),
        },
        e => e.into(),
    })
}

/// The output bytes of one tensor converted to `to`.
pub(crate) fn convert(src: &Src<'_>, to: DType) -> Result<Vec<u8>> {
    if src.dtype == to && src.lora.is_empty() {
        return src.copy();
    }
    let out_row = to
        .bytes_for_shape(&[src.cols])
        .ok_or_else(|| QuantizeError::Tensor {
            tensor: src.name.to_owned(),
            msg: format!("rows of {} do not fit {to} blocks", src.cols),
        })?;
    let total = out_row
        .checked_mul(src.rows)
        .ok_or_else(|| QuantizeError::Tensor {
            tensor: src.name.to_owned(),
            msg: "size overflows".into(),
        })?;
    let mut out = vec![0u8; total];
    let slab_rows = (SLAB_ELEMS / src.cols.max(1)).max(1);
    let mut buf = vec![0.0f32; slab_rows.min(src.rows) * src.cols];
    let mut start = 0;
    while start < src.rows {
        let n = slab_rows.min(src.rows - start);
        let x = &mut buf[..n * src.cols];
        src.decode_rows(start, x)?;
        encode(
            src.name,
            to,
            x,
            &mut out[start * out_row..(start + n) * out_row],
        )?;
        start += n;
    }
    Ok(out)
}

/// Encodes computed values (1-D tensors such as `rope_freqs.weight`).
pub(crate) fn encode_values(name: &str, values: &[f32], to: DType) -> Result<Vec<u8>> {
    let n = to
        .bytes_for_shape(&[values.len()])
        .ok_or_else(|| QuantizeError::Tensor {
            tensor: name.to_owned(),
            msg: format!("{} values do not fit {to} blocks", values.len()),
        })?;
    let mut out = vec![0u8; n];
    encode(name, to, values, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_the_converter() {
        // numpy: w.reshape(2, 2, 3, cols).swapaxes(1, 2).reshape(12, cols) for 2 heads of 6 rows.
        let got: Vec<usize> = (0..12).map(|j| source_row(j, 12, Some(2))).collect();
        assert_eq!(got, [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
        assert_eq!(source_row(5, 12, None), 5);
    }

    #[test]
    fn bf16_rounding_is_ggmls() {
        assert_eq!(llama31_kernels::convert::f32_to_bf16_ggml(1.0), 0x3f80);
        // Ties go to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
        assert_eq!(
            llama31_kernels::convert::f32_to_bf16_ggml(f32::from_bits(0x3f80_8000)),
            0x3f80
        );
        assert_eq!(
            llama31_kernels::convert::f32_to_bf16_ggml(f32::from_bits(0x3f81_8000)),
            0x3f82
        );
        assert_eq!(
            llama31_kernels::convert::f32_to_bf16_ggml(f32::NAN) & 0x7fc0,
            0x7fc0
        );
    }
}
