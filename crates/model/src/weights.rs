//! Weight tensors as the forward pass sees them, the weight-name table per checkpoint source,
//! and shape/dtype checks at load.
//!
//! F32/F16/BF16 tensors stay zero-copy slices of the memory-mapped file; block-quantized GGUF
//! tensors are dequantized to owned f32 at load (the correct, if memory-hungry, default) or, with
//! `keep_quantized`, stay zero-copy slices multiplied by `kernels::matmul::matmul_quantized`;
//! Meta model-parallel shards are joined into owned buffers of their stored dtype.

use llama31_formats::{DType, SharedBytes, TensorView};
use llama31_kernels::convert::{decode_into, float_size, WeightRef};
use llama31_kernels::qdot::vec_dot_type;
use llama31_kernels::quant::dequantize;
use llama31_kernels::quants::bytes_for;
pub use llama31_kernels::Activations;

use crate::error::{ModelError, Result};

/// Bytes of a weight: a range of a checkpoint file (mapped or read into memory) that the weight
/// keeps alive on its own, or owned (converted or joined at load).
#[derive(Debug)]
pub(crate) enum Data {
    Shared(SharedBytes),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Shared(b) => b,
            Data::Owned(v) => v,
        }
    }
}

/// A 2-D weight `[rows, cols]`, row-major, in host memory as stored (or converted at load). The
/// CPU backend multiplies it in place (`backend::cpu`); other backends take it at load.
///
/// `dtype` is F32, F16 or BF16 (multiplied by `kernels::matmul`) or a block type the kernels
/// compute with (GGUF block-quantized rows, multiplied by `kernels::matmul::matmul_quantized`).
pub struct Matrix {
    pub(crate) dtype: DType,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: Data,
    /// How activations meet a block-quantized `dtype` (ignored for float weights).
    pub(crate) activations: Activations,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matrix")
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("owned", &matches!(self.data, Data::Owned(_)))
            .field("activations", &self.activations)
            .finish()
    }
}

impl Matrix {
    /// The float kernel view; `None` for a block-quantized matrix.
    pub fn view(&self) -> Option<WeightRef<'_>> {
        (!self.dtype.is_quantized()).then(|| WeightRef {
            dtype: self.dtype,
            bytes: self.data.bytes(),
            rows: self.rows,
            cols: self.cols,
        })
    }

    /// The stored bytes (rows one after the other).
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// The precision of the activations multiplied with this matrix if it is block-quantized.
    pub fn activations(&self) -> Activations {
        self.activations
    }

    /// Sets the precision of the activations multiplied with this matrix (if block-quantized).
    pub fn set_activations(&mut self, a: Activations) {
        self.activations = a;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether this matrix holds block-quantized rows (loaded with `keep_quantized`).
    pub fn is_quantized(&self) -> bool {
        self.dtype.is_quantized()
    }

    /// Whether the bytes are owned (dequantized or joined) rather than a range of the file.
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

/// Builds a matrix from a view of a checkpoint tensor whose bytes are `shared` (a range of the
/// file that keeps it alive). Checks the shape `[rows, cols]`. A block-quantized tensor is used
/// in place when `keep_quantized` (and its rows fit the activation blocks), else it is
/// dequantized to owned f32.
pub(crate) fn matrix_from_view(
    view: &TensorView<'_>,
    shared: SharedBytes,
    rows: usize,
    cols: usize,
    keep_quantized: bool,
) -> Result<Matrix> {
    check_shape(view, &[rows, cols])?;
    let dtype = view.dtype;
    if float_size(dtype).is_ok() {
        // Validates the byte length.
        WeightRef::new(dtype, view.data, rows, cols)?;
        return Ok(Matrix {
            dtype,
            rows,
            cols,
            data: Data::Shared(shared),
            activations: Activations::default(),
        });
    }
    // The block types the kernels compute with are those with a `vec_dot_type`.
    if let Ok(act) = vec_dot_type(dtype) {
        let qt = dtype;
        if keep_quantized && bytes_for(act, cols).is_ok() {
            let need = bytes_for(qt, cols)?
                .checked_mul(rows)
                .ok_or_else(|| ModelError::Config(format!("{}: size overflows", view.name)))?;
            if need != view.data.len() {
                return Err(ModelError::Config(format!(
                    "{}: {} bytes for {rows}×{cols} {qt}, expected {need}",
                    view.name,
                    view.data.len()
                )));
            }
            tracing::debug!(name = view.name, ?qt, "kept quantized");
            return Ok(Matrix {
                dtype: qt,
                rows,
                cols,
                data: Data::Shared(shared),
                activations: Activations::default(),
            });
        }
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| ModelError::Config(format!("{}: size overflows", view.name)))?;
        let mut f = vec![0.0f32; n];
        dequantize(qt, view.data, &mut f)?;
        tracing::debug!(name = view.name, ?qt, "dequantized to f32");
        return Ok(Matrix {
            dtype: DType::F32,
            rows,
            cols,
            data: Data::Owned(f32_bytes(&f)),
            activations: Activations::default(),
        });
    }
    Err(dtype_err(view))
}

/// Builds an owned matrix from bytes of a plain float dtype (F32, F16, BF16; used for joined
/// shards).
pub(crate) fn matrix_owned(
    dtype: DType,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
) -> Result<Matrix> {
    WeightRef::new(dtype, &bytes, rows, cols)?;
    Ok(Matrix {
        dtype,
        rows,
        cols,
        data: Data::Owned(bytes),
        activations: Activations::default(),
    })
}

/// Decodes a 1-D tensor (a norm weight or RoPE factors) of length `len` to f32.
pub(crate) fn vector_from_view(view: &TensorView<'_>, len: usize) -> Result<Vec<f32>> {
    check_shape(view, &[len])?;
    let dtype = view.dtype;
    if float_size(dtype).is_ok() {
        let mut out = vec![0.0f32; len];
        llama31_kernels::check_bytes(dtype, view.data, len)?;
        decode_into(dtype, view.data, &mut out)?;
        return Ok(out);
    }
    if vec_dot_type(dtype).is_ok() {
        let mut out = vec![0.0f32; len];
        dequantize(dtype, view.data, &mut out)?;
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
