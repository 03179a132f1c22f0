//! Loading a [`Model`] from a `.gguf` file, a Hugging Face directory or a Meta directory.
//!
//! q/k layout: Meta `.pth` and GGUF (whose converter permutes HF q/k back to Meta's order) use
//! interleaved RoPE pairs; HF safetensors use rotate-half pairs. No weights are permuted — the
//! RoPE kernel pairs elements the way each source stores them.

use std::collections::HashSet;
use std::path::Path;

use llama31_formats::{detect, PthFile, TensorView, WeightFile, WeightFormat};
use llama31_kernels::rope::{base_inv_freqs, llama3_scale, RopeLayout, RopeTable};

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::llama::{LayerWeights, Model, Weights};
use crate::weights::{
    layer_shape, matrix_from_view, matrix_owned, plain_dtype, vector_from_view, GlobalTensor,
    LayerTensor, Matrix, NameScheme, TensorSummary,
};

/// Progress callback: `(tensors loaded, tensors total)`.
pub type ProgressFn = Box<dyn Fn(usize, usize) + Send + Sync>;

/// Options for [`Model::load`].
#[derive(Default)]
pub struct LoadOptions {
    /// Longest sequence to support (size of the RoPE table). `None`: the checkpoint's
    /// `max_seq_len`.
    pub max_seq_len: Option<usize>,
    /// Called after each tensor is loaded.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("max_seq_len", &self.max_seq_len)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// One shard's tensors: a whole checkpoint, or one Meta model-parallel `.pth` file.
#[derive(Clone, Copy)]
enum Shard {
    File(&'static WeightFile),
    Pth(&'static PthFile),
}

/// The opened checkpoint (one file/directory, or several model-parallel shards) whose tensors
/// live as long as the model.
struct Shards {
    shards: Vec<Shard>,
    names: Vec<HashSet<&'static str>>,
}

impl Shards {
    /// Keeps `file` alive in `owners` and returns the shards it holds, with references valid as
    /// long as the model (see SAFETY).
    fn open(
        file: WeightFile,
        owners: &mut Vec<Box<dyn std::any::Any + Send + Sync>>,
    ) -> (Shards, &'static WeightFile) {
        let boxed = Box::new(file);
        let ptr: *const WeightFile = &*boxed;
        owners.push(boxed);
        // SAFETY: the WeightFile is heap-allocated in a Box that is moved into `owners`, which
        // ends up in `Model::_files`; the Box's allocation never moves, the file is never mutated
        // (only `&` access), and `Model` drops `_files` after `weights` (field order), so every
        // slice derived from this reference (mmap pages or a heap buffer owned by the file) stays
        // valid while anything can observe it. The `'static` references never leave the crate.
        let r: &'static WeightFile = unsafe { &*ptr };
        let mut shards = Shards {
            shards: Vec::new(),
            names: Vec::new(),
        };
        match r {
            WeightFile::Meta(m) if m.shards().len() > 1 => {
                for p in m.shards() {
                    shards.names.push(p.names().collect());
                    shards.shards.push(Shard::Pth(p));
                }
            }
            _ => {
                shards.names.push(r.names().into_iter().collect());
                shards.shards.push(Shard::File(r));
            }
        }
        (shards, r)
    }

    fn len(&self) -> usize {
        self.shards.len()
    }

    fn get(&self, shard: usize, name: &str) -> Result<Option<TensorView<'static>>> {
        match (self.shards.get(shard), self.names.get(shard)) {
            (Some(Shard::File(f)), Some(n)) if n.contains(name) => Ok(Some(f.tensor(name)?)),
            (Some(Shard::Pth(p)), Some(n)) if n.contains(name) => Ok(Some(p.tensor(name)?)),
            _ => Ok(None),
        }
    }
}

struct Loader {
    shards: Shards,
    summary: Vec<TensorSummary>,
    progress: Option<ProgressFn>,
    done: usize,
    total: usize,
}

impl Loader {
    fn tick(&mut self) {
        self.done += 1;
        if let Some(p) = &self.progress {
            p(self.done, self.total);
        }
    }

    fn views(&self, name: &str) -> Result<Vec<TensorView<'static>>> {
        let mut out = Vec::with_capacity(self.shards.len());
        for s in 0..self.shards.len() {
            match self.shards.get(s, name)? {
                Some(v) => out.push(v),
                None => return Err(ModelError::MissingTensor(name.to_string())),
            }
        }
        Ok(out)
    }

    fn note(&mut self, views: &[TensorView<'static>], shape: &[usize]) {
        if let Some(v) = views.first() {
            self.summary.push(TensorSummary {
                name: v.name.to_string(),
                dtype: v.dtype.to_string(),
                shape: if views.len() == 1 {
                    v.shape.clone()
                } else {
                    shape.to_vec()
                },
                bytes: views.iter().map(|v| v.data.len()).sum(),
            });
        }
        self.tick();
    }

    fn has(&self, name: &str) -> bool {
        self.shards.names.first().is_some_and(|n| n.contains(name))
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let views = self.views(name)?;
        let m = match views.as_slice() {
            [one] => matrix_from_view(one, rows, cols)?,
            many => join_shards(name, many, rows, cols)?,
        };
        self.note(&views, &[rows, cols]);
        Ok(m)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let views = self.views(name)?;
        // Norm weights are replicated across model-parallel shards: use the first.
        let v = match views.first() {
            Some(v) => vector_from_view(v, len)?,
            None => return Err(ModelError::MissingTensor(name.to_string())),
        };
        self.note(&views[..1], &[len]);
        Ok(v)
    }
}

/// Joins Meta model-parallel shards of one matrix into an owned buffer of the stored dtype:
/// concatenated along rows (column-parallel: wq/wk/wv/w1/w3/output/tok_embeddings) or along
/// columns (row-parallel: wo/w2), decided by the expected full shape; replicated shards use the
/// first.
fn join_shards(
    name: &str,
    views: &[TensorView<'static>],
    rows: usize,
    cols: usize,
) -> Result<Matrix> {
    let shape_err = |got: &TensorView<'_>| ModelError::Shape {
        name: name.to_string(),
        expected: vec![rows, cols],
        got: got.shape.clone(),
    };
    let first = views
        .first()
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    if views.iter().all(|v| v.shape == [rows, cols]) {
        return matrix_from_view(first, rows, cols);
    }
    let dtype = plain_dtype(first.dtype).ok_or_else(|| ModelError::DType {
        name: name.to_string(),
        dtype: first.dtype.to_string(),
    })?;
    let es = dtype.size();
    let mut shapes = Vec::with_capacity(views.len());
    for v in views {
        if v.dtype != first.dtype {
            return Err(ModelError::DType {
                name: name.to_string(),
                dtype: format!("mixed {} and {} across shards", first.dtype, v.dtype),
            });
        }
        match v.shape.as_slice() {
            [r, c] => shapes.push((*r, *c)),
            _ => return Err(shape_err(v)),
        }
    }
    let total_bytes = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(es))
        .ok_or_else(|| shape_err(first))?;
    let sum_r: Option<usize> = shapes.iter().try_fold(0usize, |a, s| a.checked_add(s.0));
    let sum_c: Option<usize> = shapes.iter().try_fold(0usize, |a, s| a.checked_add(s.1));
    let mut out = Vec::with_capacity(total_bytes);
    if shapes.iter().all(|s| s.1 == cols) && sum_r == Some(rows) {
        for v in views {
            out.extend_from_slice(v.data);
        }
    } else if shapes.iter().all(|s| s.0 == rows) && sum_c == Some(cols) {
        for r in 0..rows {
            for (v, &(_, c)) in views.iter().zip(&shapes) {
                let rb = c * es;
                let row = v
                    .data
                    .get(r * rb..(r + 1) * rb)
                    .ok_or_else(|| shape_err(v))?;
                out.extend_from_slice(row);
            }
        }
    } else {
        return Err(shape_err(
            views
                .iter()
                .find(|v| v.shape != [rows, cols])
                .unwrap_or(first),
        ));
    }
    matrix_owned(dtype, rows, cols, out)
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
    /// directory (`params.json` + `consolidated.*.pth`).
    pub fn load(path: impl AsRef<Path>, opts: LoadOptions) -> Result<Model> {
        let path = path.as_ref();
        let mut owners: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();
        let format = detect(path)?;
        let (shards, file) = Shards::open(WeightFile::open(path)?, &mut owners);
        let (cfg, scheme, layout) = match format {
            WeightFormat::Gguf => {
                let g = file
                    .as_gguf()
                    .ok_or_else(|| ModelError::Config("not a GGUF file".into()))?;
                (
                    Config::from_gguf(g)?,
                    NameScheme::Gguf,
                    RopeLayout::Interleaved,
                )
            }
            WeightFormat::Safetensors => {
                let dir = if path.is_dir() {
                    path
                } else {
                    path.parent().unwrap_or(path)
                };
                let cfg = Config::from_hf_config(&read_text(&dir.join("config.json"))?)?;
                (cfg, NameScheme::Hf, RopeLayout::RotateHalf)
            }
            WeightFormat::MetaPth => {
                let cfg = Config::from_meta_params(&read_text(&path.join("params.json"))?)?;
                (cfg, NameScheme::Meta, RopeLayout::Interleaved)
            }
        };
        let max_seq = opts.max_seq_len.unwrap_or(cfg.max_seq_len).max(1);
        tracing::info!(
            path = %path.display(),
            ?scheme,
            shards = shards.len(),
            dim = cfg.dim,
            layers = cfg.n_layers,
            "loading model"
        );
        let mut ld = Loader {
            shards,
            summary: Vec::new(),
            progress: opts.progress,
            done: 0,
            total: 3 + 9 * cfg.n_layers,
        };

        let emb_name = scheme.global(GlobalTensor::Embedding);
        let tok_embeddings = ld.matrix(emb_name, cfg.vocab_size, cfg.dim)?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let mut mat = |t: LayerTensor| -> Result<Matrix> {
                let s = layer_shape(&cfg, t);
                ld.matrix(&scheme.layer(l, t), s[0], s[1])
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
            Some(ld.matrix(out_name, cfg.vocab_size, cfg.dim)?)
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
        model._files = owners;
        Ok(model)
    }
}
