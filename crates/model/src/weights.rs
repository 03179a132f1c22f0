//! Weight tensors as the forward pass sees them, the weight-name table per checkpoint source,
//! and shape/dtype checks at load.
//!
//! F32/F16/BF16 tensors stay zero-copy slices of the memory-mapped file; block-quantized GGUF
//! tensors are dequantized to owned f32 at load (the correct, if memory-hungry, default) or, with
//! `keep_quantized`, stay zero-copy slices multiplied by `kernels::matmul::matmul_quantized`;
//! Meta model-parallel shards are joined into owned buffers of their stored dtype.

use llama31_formats::{DType, TensorView};
use llama31_kernels::convert::{decode_into, WeightDType, WeightRef};
use llama31_kernels::matmul::{matmul, matmul_quantized, matvec_quantized_many};
use llama31_kernels::qdot::vec_dot_type;
use llama31_kernels::quant::{dequantize, QuantType};

use crate::error::{ModelError, Result};

/// Bytes of a weight: borrowed from a mapped file that the [`crate::Model`] keeps alive, or owned.
pub(crate) enum Data {
    /// A slice of a file owned by the model (see `Model::_files` for the lifetime argument).
    Mapped(&'static [u8]),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Mapped(b) => b,
            Data::Owned(v) => v,
        }
    }
}

/// The element format of a [`Matrix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixDType {
    /// A float dtype, multiplied by `kernels::matmul`.
    Plain(WeightDType),
    /// GGUF block-quantized rows, multiplied by `kernels::matmul::matmul_quantized`.
    Quant(QuantType),
}

/// A 2-D weight `[rows, cols]`, row-major, readable by `kernels::matmul`.
pub struct Matrix {
    dtype: MatrixDType,
    rows: usize,
    cols: usize,
    data: Data,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matrix")
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("owned", &matches!(self.data, Data::Owned(_)))
            .finish()
    }
}

impl Matrix {
    /// The float kernel view; `None` for a block-quantized matrix.
    pub fn view(&self) -> Option<WeightRef<'_>> {
        match self.dtype {
            MatrixDType::Plain(dtype) => Some(WeightRef {
                dtype,
                bytes: self.data.bytes(),
                rows: self.rows,
                cols: self.cols,
            }),
            MatrixDType::Quant(_) => None,
        }
    }

    /// `out[t, o] = Σ_i x[t, i] · self[o, i]` for `t < n` (`x`: `n × cols`, `out`: `n × rows`).
    /// `act` is scratch for the quantized activations of a quantized matrix (reused across calls).
    pub fn matmul(&self, out: &mut [f32], x: &[f32], n: usize, act: &mut Vec<u8>) -> Result<()> {
        match self.dtype {
            MatrixDType::Plain(dtype) => {
                let w = WeightRef {
                    dtype,
                    bytes: self.data.bytes(),
                    rows: self.rows,
                    cols: self.cols,
                };
                matmul(out, x, n, &w)?;
            }
            MatrixDType::Quant(qt) => {
                matmul_quantized(out, x, n, qt, self.data.bytes(), self.rows, self.cols, act)?
            }
        }
        Ok(())
    }

    /// `outs[i] = mats[i] · x` for one activation row (`n = 1`): matrices kept quantized with the
    /// same type and width share one quantization of `x` and one parallel loop; anything else
    /// runs matrix by matrix. Results equal [`Matrix::matmul`]'s bit for bit.
    pub fn matvec_many(
        mats: &[&Matrix],
        outs: &mut [&mut [f32]],
        x: &[f32],
        act: &mut Vec<u8>,
    ) -> Result<()> {
        let fused = match mats.first().map(|m| (m.dtype, m.cols)) {
            Some((MatrixDType::Quant(qt), cols)) if mats.len() <= 4 => mats
                .iter()
                .all(|m| m.dtype == MatrixDType::Quant(qt) && m.cols == cols)
                .then_some((qt, cols)),
            _ => None,
        };
        if let Some((qt, cols)) = fused {
            let mut ws: [&[u8]; 4] = [&[]; 4];
            for (w, m) in ws.iter_mut().zip(mats) {
                *w = m.data.bytes();
            }
            matvec_quantized_many(outs, &ws[..mats.len()], x, qt, cols, act)?;
            return Ok(());
        }
        for (m, o) in mats.iter().zip(outs.iter_mut()) {
            m.matmul(o, x, 1, act)?;
        }
        Ok(())
    }

    /// Decodes row `row` into `out` (`cols` values): the embedding lookup.
    pub fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        match self.dtype {
            MatrixDType::Plain(dtype) => {
                let w = WeightRef {
                    dtype,
                    bytes: self.data.bytes(),
                    rows: self.rows,
                    cols: self.cols,
                };
                w.decode_rows(row, out)?;
            }
            MatrixDType::Quant(qt) => {
                let bad = || {
                    ModelError::Config(format!(
                        "row {row} of a {}×{} matrix into {} values",
                        self.rows,
                        self.cols,
                        out.len()
                    ))
                };
                if row >= self.rows || out.len() != self.cols {
                    return Err(bad());
                }
                let rb = qt.bytes_for(self.cols)?;
                let start = row.checked_mul(rb).ok_or_else(bad)?;
                let bytes = self.data.bytes().get(start..start + rb).ok_or_else(bad)?;
                dequantize(qt, bytes, out)?;
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn dtype(&self) -> MatrixDType {
        self.dtype
    }

    /// Whether this matrix holds block-quantized rows (loaded with `keep_quantized`).
    pub fn is_quantized(&self) -> bool {
        matches!(self.dtype, MatrixDType::Quant(_))
    }

    /// Whether the bytes are owned (dequantized or joined) rather than mapped.
    pub fn is_owned(&self) -> bool {
        matches!(self.data, Data::Owned(_))
    }

    /// Bytes held by this matrix.
    pub fn byte_len(&self) -> usize {
        self.data.bytes().len()
    }
}

/// One row of the tensor summary (for `llama31 info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSummary {
    pub name: String,
    /// Dtype as stored in the file (e.g. "BF16", "Q4_1").
    pub dtype: String,
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    pub bytes: usize,
}

/// The matmul dtype of a plain (unquantized) float tensor.
pub(crate) fn plain_dtype(d: DType) -> Option<WeightDType> {
    match d {
        DType::F32 => Some(WeightDType::F32),
        DType::F16 => Some(WeightDType::F16),
        DType::BF16 => Some(WeightDType::BF16),
        _ => None,
    }
}

/// The kernel quant type of a block-quantized GGUF tensor.
pub(crate) fn quant_type(d: DType) -> Option<QuantType> {
    match d {
        DType::Ggml(t) => QuantType::from_ggml_id(t.id()),
        _ => None,
    }
}

pub(crate) fn check_shape(view: &TensorView<'_>, expected: &[usize]) -> Result<()> {
    if view.shape != expected {
        return Err(ModelError::Shape {
            name: view.name.to_string(),
            expected: expected.to_vec(),
            got: view.shape.clone(),
        });
    }
    Ok(())
}

fn dtype_err(view: &TensorView<'_>) -> ModelError {
    ModelError::DType {
        name: view.name.to_string(),
        dtype: view.dtype.to_string(),
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Builds a matrix from a view whose bytes live as long as the model (`'static` by the model's
/// ownership argument). Checks the shape `[rows, cols]`. A block-quantized tensor stays a mapped
/// slice when `keep_quantized` (and its rows fit the activation blocks), else it is dequantized.
pub(crate) fn matrix_from_view(
    view: &TensorView<'static>,
    rows: usize,
    cols: usize,
    keep_quantized: bool,
) -> Result<Matrix> {
    check_shape(view, &[rows, cols])?;
    if let Some(dtype) = plain_dtype(view.dtype) {
        let m = Matrix {
            dtype: MatrixDType::Plain(dtype),
            rows,
            cols,
            data: Data::Mapped(view.data),
        };
        // Validates the byte length.
        WeightRef::new(dtype, view.data, rows, cols)?;
        return Ok(m);
    }
    if let Some(qt) = quant_type(view.dtype) {
        if keep_quantized && vec_dot_type(qt).bytes_for(cols).is_ok() {
            let need = qt
                .bytes_for(cols)?
                .checked_mul(rows)
                .ok_or_else(|| ModelError::Config(format!("{}: size overflows", view.name)))?;
            if need != view.data.len() {
                return Err(ModelError::Config(format!(
                    "{}: {} bytes for {rows}×{cols} {qt:?}, expected {need}",
                    view.name,
                    view.data.len()
                )));
            }
            tracing::debug!(name = view.name, ?qt, "kept quantized");
            return Ok(Matrix {
                dtype: MatrixDType::Quant(qt),
                rows,
                cols,
                data: Data::Mapped(view.data),
            });
        }
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| ModelError::Config(format!("{}: size overflows", view.name)))?;
        let mut f = vec![0.0f32; n];
        dequantize(qt, view.data, &mut f)?;
        tracing::debug!(name = view.name, ?qt, "dequantized to f32");
        return Ok(Matrix {
            dtype: MatrixDType::Plain(WeightDType::F32),
            rows,
            cols,
            data: Data::Owned(f32_bytes(&f)),
        });
    }
    Err(dtype_err(view))
}

/// Builds an owned matrix from bytes of a plain dtype (used for joined shards).
pub(crate) fn matrix_owned(
    dtype: WeightDType,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
) -> Result<Matrix> {
    WeightRef::new(dtype, &bytes, rows, cols)?;
    Ok(Matrix {
        dtype: MatrixDType::Plain(dtype),
        rows,
        cols,
        data: Data::Owned(bytes),
    })
}

/// Decodes a 1-D tensor (a norm weight or RoPE factors) of length `len` to f32.
pub(crate) fn vector_from_view(view: &TensorView<'_>, len: usize) -> Result<Vec<f32>> {
    check_shape(view, &[len])?;
    if let Some(dtype) = plain_dtype(view.dtype) {
        let mut out = vec![0.0f32; len];
        llama31_kernels::check_bytes(dtype, view.data, len)?;
        decode_into(dtype, view.data, &mut out);
        return Ok(out);
    }
    if let Some(qt) = quant_type(view.dtype) {
        let mut out = vec![0.0f32; len];
        dequantize(qt, view.data, &mut out)?;
        return Ok(out);
    }
    Err(dtype_err(view))
}

/// Tensor names of one checkpoint convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameScheme {
    /// Hugging Face transformers (`model.layers.N.self_attn.q_proj.weight`).
    Hf,
    /// Meta `consolidated.*.pth` (`layers.N.attention.wq.weight`).
    Meta,
    /// GGUF from llama.cpp (`blk.N.attn_q.weight`).
    Gguf,
}

/// The role of a per-layer tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerTensor {
    AttnNorm,
    Wq,
    Wk,
    Wv,
    Wo,
    FfnNorm,
    Gate,
    Up,
    Down,
}

/// A model-level tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalTensor {
    Embedding,
    Norm,
    Output,
}

impl NameScheme {
    /// Name of a per-layer tensor.
    pub fn layer(self, layer: usize, t: LayerTensor) -> String {
        use LayerTensor::*;
        let suffix = match (self, t) {
            (NameScheme::Hf, AttnNorm) => "input_layernorm.weight",
            (NameScheme::Hf, Wq) => "self_attn.q_proj.weight",
            (NameScheme::Hf, Wk) => "self_attn.k_proj.weight",
            (NameScheme::Hf, Wv) => "self_attn.v_proj.weight",
            (NameScheme::Hf, Wo) => "self_attn.o_proj.weight",
            (NameScheme::Hf, FfnNorm) => "post_attention_layernorm.weight",
            (NameScheme::Hf, Gate) => "mlp.gate_proj.weight",
            (NameScheme::Hf, Up) => "mlp.up_proj.weight",
            (NameScheme::Hf, Down) => "mlp.down_proj.weight",
            (NameScheme::Meta, AttnNorm) => "attention_norm.weight",
            (NameScheme::Meta, Wq) => "attention.wq.weight",
            (NameScheme::Meta, Wk) => "attention.wk.weight",
            (NameScheme::Meta, Wv) => "attention.wv.weight",
            (NameScheme::Meta, Wo) => "attention.wo.weight",
            (NameScheme::Meta, FfnNorm) => "ffn_norm.weight",
            (NameScheme::Meta, Gate) => "feed_forward.w1.weight",
            (NameScheme::Meta, Up) => "feed_forward.w3.weight",
            (NameScheme::Meta, Down) => "feed_forward.w2.weight",
            (NameScheme::Gguf, AttnNorm) => "attn_norm.weight",
            (NameScheme::Gguf, Wq) => "attn_q.weight",
            (NameScheme::Gguf, Wk) => "attn_k.weight",
            (NameScheme::Gguf, Wv) => "attn_v.weight",
            (NameScheme::Gguf, Wo) => "attn_output.weight",
            (NameScheme::Gguf, FfnNorm) => "ffn_norm.weight",
            (NameScheme::Gguf, Gate) => "ffn_gate.weight",
            (NameScheme::Gguf, Up) => "ffn_up.weight",
            (NameScheme::Gguf, Down) => "ffn_down.weight",
        };
        match self {
            NameScheme::Hf => format!("model.layers.{layer}.{suffix}"),
            NameScheme::Meta => format!("layers.{layer}.{suffix}"),
            NameScheme::Gguf => format!("blk.{layer}.{suffix}"),
        }
    }

    /// Name of a model-level tensor.
    pub fn global(self, t: GlobalTensor) -> &'static str {
        match (self, t) {
            (NameScheme::Hf, GlobalTensor::Embedding) => "model.embed_tokens.weight",
            (NameScheme::Hf, GlobalTensor::Norm) => "model.norm.weight",
            (NameScheme::Hf, GlobalTensor::Output) => "lm_head.weight",
            (NameScheme::Meta, GlobalTensor::Embedding) => "tok_embeddings.weight",
            (NameScheme::Meta, GlobalTensor::Norm) => "norm.weight",
            (NameScheme::Meta, GlobalTensor::Output) => "output.weight",
            (NameScheme::Gguf, GlobalTensor::Embedding) => "token_embd.weight",
            (NameScheme::Gguf, GlobalTensor::Norm) => "output_norm.weight",
            (NameScheme::Gguf, GlobalTensor::Output) => "output.weight",
        }
    }
}

/// Expected `[rows, cols]` of a per-layer matrix, from the config.
pub(crate) fn layer_shape(cfg: &crate::Config, t: LayerTensor) -> Vec<usize> {
    use LayerTensor::*;
    match t {
        AttnNorm | FfnNorm => vec![cfg.dim],
        Wq => vec![cfg.q_dim(), cfg.dim],
        Wk | Wv => vec![cfg.kv_dim(), cfg.dim],
        Wo => vec![cfg.dim, cfg.q_dim()],
        Gate | Up => vec![cfg.ffn_dim, cfg.dim],
        Down => vec![cfg.dim, cfg.ffn_dim],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_tables() {
        assert_eq!(
            NameScheme::Hf.layer(3, LayerTensor::Wq),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(
            NameScheme::Meta.layer(0, LayerTensor::Gate),
            "layers.0.feed_forward.w1.weight"
        );
        assert_eq!(
            NameScheme::Meta.layer(0, LayerTensor::Down),
            "layers.0.feed_forward.w2.weight"
        );
        assert_eq!(
            NameScheme::Gguf.layer(7, LayerTensor::Wo),
            "blk.7.attn_output.weight"
        );
        assert_eq!(
            NameScheme::Gguf.global(GlobalTensor::Norm),
            "output_norm.weight"
        );
    }
}
