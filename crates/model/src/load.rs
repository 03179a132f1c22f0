//! Loading a [`Model`] from a `.gguf` file, a Hugging Face directory or a Meta directory.
//!
//! q/k layout: Meta `.pth` and GGUF (whose converter permutes HF q/k back to Meta's order) use
//! interleaved RoPE pairs; HF safetensors use rotate-half pairs. No weights are permuted — the
//! RoPE kernel pairs elements the way each source stores them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use llama31_formats::{FileLoading, ModelSource, TensorData, TensorView, WeightFile, WeightFormat};
use llama31_kernels::rope::{base_inv_freqs, llama3_scale, RopeTable};

use crate::backend::KvType;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::linear::Linear;
use crate::llama::{LayerWeights, Model, Weights};
use crate::weights::{
    check_shape, layer_shape, matrix_from_view, matrix_owned, vector_from_view, Activations,
    GlobalTensor, LayerTensor, NameScheme, TensorSummary,
};

/// Progress callback: `(tensors loaded, tensors total)`.
pub type ProgressFn = Box<dyn Fn(usize, usize) + Send + Sync>;

/// What happens at load to block-quantized GGUF weights (Q4_0 … Q8_0, K-quants).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightMode {
    /// Used as stored and multiplied as ggml does (activations quantized to 8 bits, integer block
    /// dot products): a quarter to an eighth of f32's memory, and faster. The default of the
    /// library and of every command.
    #[default]
    AsStored,
    /// Dequantized to f32 at load and multiplied in f32: the exact reference path (it follows
    /// llama.cpp on the same weights dequantized to F32), at 4–8× the memory.
    Dequantized,
}

impl WeightMode {
    /// Whether quantized weights stay as stored.
    pub fn keeps_quantized(self) -> bool {
        self == WeightMode::AsStored
    }
}

/// Options for [`Model::load`].
#[derive(Default)]
pub struct LoadOptions {
    /// Block-quantized weights used as stored (the default) or dequantized at load.
    pub weights: WeightMode,
    /// The precision of the activations multiplied with weights kept quantized.
    pub activations: Activations,
    /// Longest sequence to support (size of the RoPE table). `None`: the checkpoint's
    /// `max_seq_len`. Longer than the checkpoint's is an error ([`ModelError::ContextTooLong`])
    /// unless `clamp_max_seq_len`.
    pub max_seq_len: Option<usize>,
    /// Take a `max_seq_len` past the checkpoint's as the checkpoint's (for defaults that were
    /// not asked for) instead of refusing it.
    pub clamp_max_seq_len: bool,
    /// The element type of the KV caches the model allocates (f32 unless set).
    pub kv_type: KvType,
    /// Called after each tensor is loaded.
    pub progress: Option<ProgressFn>,
    /// Map the weight files or read them into memory. Under the default
    /// [`FileLoading::Auto`], GGUF files whose quantized weights are multiplied in place
    /// (`keep_quantized`) are read into huge-page memory when they fit
    /// ([`FileLoading::reads`]); files whose tensors are converted at load are mapped.
    pub file_loading: FileLoading,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("max_seq_len", &self.max_seq_len)
            .field("clamp_max_seq_len", &self.clamp_max_seq_len)
            .field("progress", &self.progress.is_some())
            .field("file_loading", &self.file_loading)
            .field("weights", &self.weights)
            .field("activations", &self.activations)
            .field("kv_type", &self.kv_type)
            .finish()
    }
}

/// How [`Model::load_with_quant`] brings a file of `format` into memory when asked for
/// `requested` (after the environment, [`FileLoading::or_env`]): [`FileLoading::Auto`] stays
/// Auto (read or mapped by size, [`FileLoading::reads`]) only for GGUF files whose weights are
/// kept quantized, and maps anything else — only weights used in place gain from huge pages;
/// tensors converted at load would keep a second, unshared copy of the file alive for nothing.
pub fn file_loading_for(
    format: WeightFormat,
    keep_quantized: bool,
    requested: FileLoading,
) -> FileLoading {
    let in_place = keep_quantized && format == WeightFormat::Gguf;
    match requested.or_env() {
        FileLoading::Auto if !in_place => FileLoading::Map,
        mode => mode,
    }
}

struct Loader<'f> {
    file: &'f WeightFile,
    names: HashSet<&'f str>,
    summary: Vec<TensorSummary>,
    progress: Option<ProgressFn>,
    keep_quantized: bool,
    done: usize,
    total: usize,
}

impl<'f> Loader<'f> {
    fn tick(&mut self) {
        self.done += 1;
        if let Some(p) = &self.progress {
            p(self.done, self.total);
        }
    }

    /// Tensor `name` through the formats API: borrowed from the file, or (for tensors split
    /// across Meta model-parallel shards) joined by `formats` into an owned buffer. Also returns
    /// the file's own copy of the name.
    fn get(&self, name: &str) -> Result<(&'f str, TensorData<'f>)> {
        let Some(&stored) = self.names.get(name) else {
            return Err(ModelError::MissingTensor(name.to_string()));
        };
        Ok((stored, self.file.get(stored)?))
    }

    fn note(&mut self, row: TensorSummary) {
        self.summary.push(row);
        self.tick();
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn linear(&mut self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let (name, t) = self.get(name)?;
        let row = summary_row(&t);
        let shared = match &t.data {
            Cow::Borrowed(data) => self.file.shared(data),
            Cow::Owned(_) => None,
        };
        let m = match (t.data, shared) {
            (Cow::Borrowed(data), Some(shared)) => matrix_from_view(
                &TensorView {
                    name,
                    dtype: t.dtype,
                    shape: t.shape,
                    data,
                },
                shared,
                rows,
                cols,
                self.keep_quantized,
            )?,
            (Cow::Borrowed(data), None) => {
                return Err(ModelError::Config(format!(
                    "{name}: {} bytes outside the checkpoint's files",
                    data.len()
                )))
            }
            (Cow::Owned(bytes), _) => {
                check_shape(
                    &TensorView {
                        name: &t.name,
                        dtype: t.dtype,
                        shape: t.shape,
                        data: &bytes,
                    },
                    &[rows, cols],
                )?;
                if llama31_kernels::convert::float_size(t.dtype).is_err() {
                    return Err(ModelError::DType {
                        name: t.name.clone(),
                        dtype: t.dtype.to_string(),
                    });
                }
                matrix_owned(t.dtype, rows, cols, bytes)?
            }
        };
        self.note(row);
        Ok(Linear::new(m, rows, cols))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (_, t) = self.get(name)?;
        let v = vector_from_view(&t.view(), len)?;
        self.note(summary_row(&t));
        Ok(v)
    }
}

fn summary_row(t: &TensorData<'_>) -> TensorSummary {
    TensorSummary {
        name: t.name.clone(),
        dtype: t.dtype.to_string(),
        shape: t.shape.clone(),
        bytes: t.data.len(),
    }
}

/// Inverse frequencies for the config (llama3 scaling applied), or from GGUF `rope_freqs`.
pub(crate) fn inv_freqs(cfg: &Config, gguf_factors: Option<&[f32]>) -> Vec<f32> {
    let base = base_inv_freqs(cfg.head_dim, cfg.rope_theta);
    if let Some(f) = gguf_factors {
        // llama.cpp: theta = pos · base^(-2i/d) / freq_factors[i].
        return base.iter().zip(f).map(|(b, f)| b / f).collect();
    }
    match &cfg.rope_scaling {
        Some(s) => llama3_scale(&base, &s.to_kernel()),
        None => base,
    }
}

impl Model {
    /// Loads a `.gguf` file, a Hugging Face directory (`config.json` + safetensors) or a Meta
    /// directory (`params.json` + `consolidated.*.pth`) onto the CPU. Block-quantized GGUF weights
    /// are used as stored or dequantized as `opts.weights` says. The weights keep the ranges of
    /// the files they use in place alive; nothing else of the files is kept.
    pub fn load(path: impl AsRef<Path>, opts: LoadOptions) -> Result<Model> {
        Model::load_source(&ModelSource::detect(path.as_ref())?, opts)
    }

    /// [`Model::load`] of an already detected source (a bare tokenizer is an error).
    pub fn load_source(source: &ModelSource, opts: LoadOptions) -> Result<Model> {
        let path = source.path();
        let keep_quantized = opts.weights.keeps_quantized();
        let format = source.weight_format()?;
        let loading = file_loading_for(format, keep_quantized, opts.file_loading);
        let file = WeightFile::open_source_with(source, loading)?;
        let file = &file;
        let Checkpoint {
            config: cfg,
            scheme,
            layout,
            ..
        } = Checkpoint::describe(source, file)?;
        // A KV type the model's key/value width does not suit is refused before any tensor.
        opts.kv_type
            .row_bytes(cfg.kv_dim())
            .map_err(|e| ModelError::Config(e.to_string()))?;
        let trained = cfg.max_seq_len;
        let max_seq = match opts.max_seq_len {
            Some(req) if req > trained && !opts.clamp_max_seq_len => {
                return Err(ModelError::ContextTooLong {
                    requested: req,
                    trained,
                })
            }
            Some(req) => req.min(trained),
            None => trained,
        }
        .max(1);
        tracing::info!(
            path = %path.display(),
            ?scheme,
            shards = match file {
                WeightFile::Meta(m) => m.shards().len(),
                _ => 1,
            },
            dim = cfg.dim,
            layers = cfg.n_layers,
            "loading model"
        );
        let mut ld = Loader {
            file,
            names: file.names().into_iter().collect(),
            summary: Vec::new(),
            progress: opts.progress,
            keep_quantized,
            done: 0,
            total: 3 + 9 * cfg.n_layers,
        };

        let emb_name = scheme.global(GlobalTensor::Embedding);
        let tok_embeddings = ld.linear(emb_name, cfg.vocab_size, cfg.dim)?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let mut mat = |t: LayerTensor| -> Result<Linear> {
                let s = layer_shape(&cfg, t);
                ld.linear(&scheme.layer(l, t), s[0], s[1])
            };
            let (wq, wk, wv, wo) = (
                mat(LayerTensor::Wq)?,
                mat(LayerTensor::Wk)?,
                mat(LayerTensor::Wv)?,
                mat(LayerTensor::Wo)?,
            );
            let (w_gate, w_up, w_down) = (
                mat(LayerTensor::Gate)?,
                mat(LayerTensor::Up)?,
                mat(LayerTensor::Down)?,
            );
            layers.push(LayerWeights {
                attn_norm: ld.vector(&scheme.layer(l, LayerTensor::AttnNorm), cfg.dim)?,
                wq,
                wk,
                wv,
                wo,
                ffn_norm: ld.vector(&scheme.layer(l, LayerTensor::FfnNorm), cfg.dim)?,
                w_gate,
                w_up,
                w_down,
            });
        }
        let norm = ld.vector(scheme.global(GlobalTensor::Norm), cfg.dim)?;
        let out_name = scheme.global(GlobalTensor::Output);
        let output = if cfg.tie_embeddings {
            ld.tick();
            None
        } else {
            Some(ld.linear(out_name, cfg.vocab_size, cfg.dim)?)
        };
        let factors = if scheme == NameScheme::Gguf && ld.has("rope_freqs.weight") {
            Some(ld.vector("rope_freqs.weight", cfg.head_dim / 2)?)
        } else {
            None
        };
        let rope = RopeTable::new(&inv_freqs(&cfg, factors.as_deref()), max_seq)?;
        let weights = Weights {
            tok_embeddings,
            layers,
            norm,
            output,
        };
        let summary = std::mem::take(&mut ld.summary);
        drop(ld);
        let mut model = Model::from_parts(cfg, weights, layout, rope, summary)?;
        model.set_activations(opts.activations);
        model.set_kv_type(opts.kv_type)?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Explicit modes hold for every format; `Auto` is kept only where weights are used in place.
    #[test]
    fn only_gguf_weights_used_in_place_may_be_read_under_auto() {
        use FileLoading::{Auto, Map, Read};
        use WeightFormat::{Gguf, MetaPth, Safetensors};
        for format in [Gguf, Safetensors, MetaPth] {
            for keep in [true, false] {
                assert_eq!(file_loading_for(format, keep, Map), Map);
                assert_eq!(file_loading_for(format, keep, Read), Read);
            }
        }
        // The environment (LLAMA31_MMAP / LLAMA31_NO_MMAP) may name a mode for `Auto`.
        let env = Auto.or_env();
        assert_eq!(file_loading_for(Gguf, true, Auto), env);
        let other = if env == Auto { Map } else { env };
        assert_eq!(file_loading_for(Gguf, false, Auto), other);
        assert_eq!(file_loading_for(Safetensors, true, Auto), other);
        assert_eq!(file_loading_for(MetaPth, true, Auto), other);
    }
}
