//! LoRA adapters: low-rank updates `W x + s · B (A x)` of the model's projections.
//!
//! - [`LoraAdapter::load`] reads a Hugging Face PEFT directory (`adapter_config.json` +
//!   `adapter_model.safetensors`, [`peft`]) or a llama.cpp GGUF adapter (`general.type = adapter`,
//!   [`gguf`]) into host f32 terms, each with its own scale (PEFT: `alpha / r`, rsLoRA
//!   `alpha / √r`, per-module `rank_pattern` / `alpha_pattern`; GGUF: `adapter.lora.alpha / r`, as
//!   llama.cpp computes it).
//! - A model runs adapters unmerged ([`LoraSet`]: the base stays as stored, quantized or not, and
//!   each adapted projection adds `s · B (A x)`, computed in f32 after the base product) or merged
//!   into f32 weights at load ([`crate::Model::merge_lora`]).
//!
//! q/k rows: PEFT adapters are trained on Hugging Face checkpoints, whose q/k rows pair RoPE
//! elements as rotate-half; GGUF adapters (llama.cpp's converter permutes `lora_B` of q/k like the
//! base weights) and Meta checkpoints pair them interleaved. An adapter records the layout of its
//! rows and `lora_B` of q and k is permuted to the model's layout when it is attached or merged.

pub mod gguf;
mod merge;
pub mod peft;
mod set;

use std::path::Path;

use crate::config::Config;
use crate::error::{ModelError, Result};
use llama31_kernels::rope::{interleaved_source_row, RopeLayout};

pub use merge::MergeInto;
pub(crate) use set::apply;
pub use set::{LoraRun, LoraSet};

/// A projection an adapter may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraModule {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl LoraModule {
    /// All seven, in the order of a layer.
    pub const ALL: [LoraModule; 7] = [
        LoraModule::Q,
        LoraModule::K,
        LoraModule::V,
        LoraModule::O,
        LoraModule::Gate,
        LoraModule::Up,
        LoraModule::Down,
    ];

    /// Position in [`LoraModule::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The Hugging Face / PEFT module name (`q_proj` …).
    pub fn hf_name(self) -> &'static str {
        match self {
            LoraModule::Q => "q_proj",
            LoraModule::K => "k_proj",
            LoraModule::V => "v_proj",
            LoraModule::O => "o_proj",
            LoraModule::Gate => "gate_proj",
            LoraModule::Up => "up_proj",
            LoraModule::Down => "down_proj",
        }
    }

    /// The Hugging Face parent module (`self_attn` or `mlp`).
    pub fn hf_parent(self) -> &'static str {
        match self {
            LoraModule::Q | LoraModule::K | LoraModule::V | LoraModule::O => "self_attn",
            _ => "mlp",
        }
    }

    /// The GGUF tensor stem (`attn_q` …).
    pub fn gguf_name(self) -> &'static str {
        match self {
            LoraModule::Q => "attn_q",
            LoraModule::K => "attn_k",
            LoraModule::V => "attn_v",
            LoraModule::O => "attn_output",
            LoraModule::Gate => "ffn_gate",
            LoraModule::Up => "ffn_up",
            LoraModule::Down => "ffn_down",
        }
    }

    /// From a PEFT module name.
    pub fn from_hf(name: &str) -> Option<LoraModule> {
        LoraModule::ALL.into_iter().find(|m| m.hf_name() == name)
    }

    /// From a GGUF tensor stem.
    pub fn from_gguf(name: &str) -> Option<LoraModule> {
        LoraModule::ALL.into_iter().find(|m| m.gguf_name() == name)
    }

    /// `[out, in]` of this projection in a model of config `cfg`.
    pub fn shape(self, cfg: &Config) -> (usize, usize) {
        match self {
            LoraModule::Q => (cfg.q_dim(), cfg.dim),
            LoraModule::K | LoraModule::V => (cfg.kv_dim(), cfg.dim),
            LoraModule::O => (cfg.dim, cfg.q_dim()),
            LoraModule::Gate | LoraModule::Up => (cfg.ffn_dim, cfg.dim),
            LoraModule::Down => (cfg.dim, cfg.ffn_dim),
        }
    }
}

/// Where an adapter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterFormat {
    /// A Hugging Face PEFT directory.
    Peft,
    /// A llama.cpp GGUF adapter.
    Gguf,
}

/// One low-rank update of one projection: `ΔW = scale · B · A`.
#[derive(Clone, PartialEq)]
pub struct LoraTerm {
    pub layer: usize,
    pub module: LoraModule,
    /// `r`.
    pub rank: usize,
    /// Input features of the projection (columns of `A`).
    pub in_features: usize,
    /// Output features of the projection (rows of `B`).
    pub out_features: usize,
    /// `A`, `[rank, in_features]`, row-major.
    pub a: Vec<f32>,
    /// `B`, `[out_features, rank]`, row-major.
    pub b: Vec<f32>,
    /// The adapter's own scale (`alpha / r` …), not yet multiplied by a user's scale.
    pub scale: f32,
}

impl LoraTerm {
    /// Row `o` of a weight (f32, `in_features` values) plus row `o` of `scale · B · A`: PEFT's
    /// merge arithmetic (`B · A` accumulated in f32 over the rank, then scaled and added). The one
    /// definition of a merged weight, for the model and for files written merged.
    pub fn merge_row(&self, o: usize, row: &mut [f32], scale: f32) {
        let (rank, cols) = (self.rank, self.in_features);
        let mut delta = vec![0.0f32; cols];
        for (k, &bk) in self.b[o * rank..(o + 1) * rank].iter().enumerate() {
            for (d, &ak) in delta.iter_mut().zip(&self.a[k * cols..(k + 1) * cols]) {
                *d += bk * ak;
            }
        }
        for (x, d) in row.iter_mut().zip(delta) {
            *x += d * scale;
        }
    }
}

impl std::fmt::Debug for LoraTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoraTerm")
            .field("layer", &self.layer)
            .field("module", &self.module)
            .field("rank", &self.rank)
            .field("in", &self.in_features)
            .field("out", &self.out_features)
            .field("scale", &self.scale)
            .finish()
    }
}

/// A LoRA adapter in host memory: f32 terms, the q/k row layout they were written for.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// A short name (the directory or file stem).
    pub name: String,
    pub format: AdapterFormat,
    /// How `lora_B` rows of q and k pair RoPE elements.
    pub layout: RopeLayout,
    /// Terms sorted by (layer, module); at most one per projection.
    pub terms: Vec<LoraTerm>,
}

/// An adapter error with the file it concerns.
pub(crate) fn adapter_err(path: &Path, msg: impl std::fmt::Display) -> ModelError {
    ModelError::Adapter(format!("{}: {msg}", path.display()))
}

/// Largest rank accepted (PEFT adapters in the wild use ≤ 256; the bound keeps a file from asking
/// for absurd sizes before its tensors are checked against the model).
pub const MAX_RANK: usize = 65_536;

impl LoraAdapter {
    /// Reads an adapter: a PEFT directory (or its `adapter_config.json` /
    /// `adapter_model.safetensors`) or a GGUF adapter file.
    pub fn load(path: impl AsRef<Path>) -> Result<LoraAdapter> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let adapter = if meta.is_dir() {
            peft::load_dir(path)?
        } else {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if file_name == "adapter_config.json" || file_name == "adapter_model.safetensors" {
                let dir = path.parent().unwrap_or(Path::new("."));
                peft::load_dir(dir)?
            } else if llama31_formats::ModelSource::detect(path)
                .is_ok_and(|s| s.kind() == llama31_formats::SourceKind::Gguf)
            {
                gguf::load_file(path)?
            } else {
                return Err(adapter_err(
                    path,
                    "not a LoRA adapter: expected a PEFT directory (adapter_config.json + \
                     adapter_model.safetensors) or a GGUF adapter file",
                ));
            }
        };
        tracing::info!(
            path = %path.display(),
            terms = adapter.terms.len(),
            format = ?adapter.format,
            "loaded LoRA adapter"
        );
        Ok(adapter)
    }

    /// Checks every term against a model of config `cfg`: layers, shapes.
    pub fn check(&self, cfg: &Config) -> Result<()> {
        for t in &self.terms {
            if t.layer >= cfg.n_layers {
                return Err(ModelError::Adapter(format!(
                    "adapter {:?} changes layer {} but the model has {} layers (an adapter for \
                     another model?)",
                    self.name, t.layer, cfg.n_layers
                )));
            }
            let (out, inp) = t.module.shape(cfg);
            if (t.out_features, t.in_features) != (out, inp) {
                return Err(ModelError::Adapter(format!(
                    "adapter {:?}: layer {} {} is {}×{} (out × in) but the model's is {out}×{inp} \
                     (an adapter for another model?)",
                    self.name,
                    t.layer,
                    t.module.hf_name(),
                    t.out_features,
                    t.in_features
                )));
            }
        }
        Ok(())
    }

    /// The terms with `lora_B` of q and k permuted to `layout` (a copy; the others unchanged).
    pub fn terms_for(&self, cfg: &Config, layout: RopeLayout) -> Vec<LoraTerm> {
        let mut terms = self.terms.clone();
        if layout == self.layout {
            return terms;
        }
        for t in &mut terms {
            let heads = match t.module {
                LoraModule::Q => cfg.n_heads,
                LoraModule::K => cfg.n_kv_heads,
                _ => continue,
            };
            t.b = permute_rows(&t.b, heads, cfg.head_dim, t.rank, self.layout, layout);
        }
        terms
    }
}

/// Rows of a `[heads · head_dim, width]` matrix moved from one RoPE pairing to the other, as
/// llama.cpp's converter moves Hugging Face q/k rows ([`interleaved_source_row`]) or back.
pub(crate) fn permute_rows(
    m: &[f32],
    heads: usize,
    head_dim: usize,
    width: usize,
    from: RopeLayout,
    to: RopeLayout,
) -> Vec<f32> {
    let rows = heads * head_dim;
    let mut out = m.to_vec();
    if from == to {
        return out;
    }
    for j in 0..rows {
        let h = interleaved_source_row(j, rows, heads);
        let (src, dst) = match from {
            RopeLayout::RotateHalf => (h, j),
            RopeLayout::Interleaved => (j, h),
        };
        out[dst * width..(dst + 1) * width].copy_from_slice(&m[src * width..(src + 1) * width]);
    }
    out
}

/// Checks a term's values and sizes (shared by both readers).
pub(crate) fn check_term(path: &Path, t: &LoraTerm) -> Result<()> {
    let what = format!("layer {} {}", t.layer, t.module.hf_name());
    if t.rank == 0 {
        return Err(adapter_err(path, format!("{what}: rank 0")));
    }
    if t.rank > MAX_RANK {
        return Err(adapter_err(
            path,
            format!("{what}: rank {} (at most {MAX_RANK})", t.rank),
        ));
    }
    if t.a.len() != t.rank * t.in_features || t.b.len() != t.out_features * t.rank {
        return Err(adapter_err(path, format!("{what}: A/B sizes disagree")));
    }
    if !t.scale.is_finite() {
        return Err(adapter_err(
            path,
            format!("{what}: scale {} is not finite", t.scale),
        ));
    }
    for (name, v) in [("lora_A", &t.a), ("lora_B", &t.b)] {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(adapter_err(
                path,
                format!("{what}: {name} element {i} is {} (NaN or Inf)", v[i]),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rotate-half → interleaved → rotate-half is the identity, and the first step matches
    /// llama.cpp's `permute` (`reshape(heads, 2, half, …).swapaxes(1, 2)`).
    #[test]
    fn permutation_round_trips_and_matches_llama_cpp() {
        let (heads, hd, w) = (3, 8, 2);
        let m: Vec<f32> = (0..heads * hd * w).map(|i| i as f32).collect();
        let inter = permute_rows(
            &m,
            heads,
            hd,
            w,
            RopeLayout::RotateHalf,
            RopeLayout::Interleaved,
        );
        // llama.cpp: out[h][i][t] = in[h][t][i] over (heads, half, 2) vs (heads, 2, half).
        let half = hd / 2;
        for h in 0..heads {
            for i in 0..half {
                for t in 0..2 {
                    let dst = h * hd + i * 2 + t;
                    let src = h * hd + t * half + i;
                    assert_eq!(inter[dst * w..dst * w + w], m[src * w..src * w + w]);
                }
            }
        }
        let back = permute_rows(
            &inter,
            heads,
            hd,
            w,
            RopeLayout::Interleaved,
            RopeLayout::RotateHalf,
        );
        assert_eq!(back, m);
        assert_ne!(inter, m);
    }
}
