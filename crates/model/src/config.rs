//! [`Config`]: the resolved hyper-parameters of a Llama model, from Meta `params.json`, HF
//! `config.json` or GGUF `llama.*` metadata, validated once.

use llama31_formats::GgufFile;
use serde_json::Value;

use crate::error::{cfg_err, ModelError, Result};

/// Llama 3 RoPE frequency scaling (`rope_type: "llama3"`, Meta's `apply_scaling`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

impl Llama3RopeScaling {
    /// The values Meta's `apply_scaling` hard-codes for `use_scaled_rope: true`.
    pub const META: Llama3RopeScaling = Llama3RopeScaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    };

    /// The kernel-level parameters.
    pub fn to_kernel(self) -> llama31_kernels::rope::Llama3Scaling {
        llama31_kernels::rope::Llama3Scaling {
            factor: self.factor,
            low_freq_factor: self.low_freq_factor,
            high_freq_factor: self.high_freq_factor,
            original_max_position_embeddings: self.original_max_position_embeddings as f32,
        }
    }
}

/// Resolved model hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Model (residual stream) width.
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// SwiGLU hidden size.
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: Option<Llama3RopeScaling>,
    /// The longest context the checkpoint supports.
    pub max_seq_len: usize,
    /// Whether the output projection reuses the token embeddings.
    pub tie_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Meta's SwiGLU hidden size rule (`FeedForward.__init__` in `llama3/model.py`).
pub fn meta_ffn_dim(
    dim: usize,
    multiple_of: usize,
    ffn_dim_multiplier: Option<f64>,
) -> Result<usize> {
    if multiple_of == 0 {
        return Err(cfg_err("multiple_of must be positive"));
    }
    let hidden = dim.checked_mul(4).ok_or_else(|| cfg_err("dim too large"))?;
    // int(2 * hidden / 3): Python float division then truncation.
    let mut hidden = ((2 * hidden) as f64 / 3.0) as usize;
    if let Some(m) = ffn_dim_multiplier {
        if !(m.is_finite() && m > 0.0) {
            return Err(cfg_err(format!("ffn_dim_multiplier {m} must be positive")));
        }
        hidden = (m * hidden as f64) as usize;
    }
    let rounded = hidden
        .checked_add(multiple_of - 1)
        .ok_or_else(|| cfg_err("ffn size overflows"))?
        / multiple_of;
    rounded
        .checked_mul(multiple_of)
        .ok_or_else(|| cfg_err("ffn size overflows"))
}

fn parse_json(text: &str, file: &str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ModelError::Parse {
            file: file.into(),
            msg: "expected a JSON object".into(),
        }),
        Err(e) => Err(ModelError::Parse {
            file: file.into(),
            msg: e.to_string(),
        }),
    }
}

fn get_usize(m: &serde_json::Map<String, Value>, key: &str, file: &str) -> Result<Option<usize>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .map(Some)
            .ok_or_else(|| {
                cfg_err(format!(
                    "{file}: {key} must be a non-negative integer, got {v}"
                ))
            }),
    }
}

fn req_usize(m: &serde_json::Map<String, Value>, key: &str, file: &str) -> Result<usize> {
    get_usize(m, key, file)?.ok_or_else(|| cfg_err(format!("{file}: missing {key}")))
}

fn get_f64(m: &serde_json::Map<String, Value>, key: &str, file: &str) -> Result<Option<f64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| cfg_err(format!("{file}: {key} must be a number, got {v}"))),
    }
}

fn get_bool(m: &serde_json::Map<String, Value>, key: &str, file: &str) -> Result<Option<bool>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(cfg_err(format!("{file}: {key} must be a boolean, got {v}"))),
    }
}

fn token_ids(v: Option<&Value>, key: &str) -> Result<Vec<u32>> {
    let one = |v: &Value| {
        v.as_u64()
            .and_then(|u| u32::try_from(u).ok())
            .ok_or_else(|| cfg_err(format!("config.json: {key} must be token ids, got {v}")))
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

impl Config {
    /// From Meta's `params.json` (`vocab_size` must be present and positive).
    pub fn from_meta_params(text: &str) -> Result<Config> {
        const F: &str = "params.json";
        let m = parse_json(text, F)?;
        let dim = req_usize(&m, "dim", F)?;
        let n_layers = req_usize(&m, "n_layers", F)?;
        let n_heads = req_usize(&m, "n_heads", F)?;
        let n_kv_heads = get_usize(&m, "n_kv_heads", F)?.unwrap_or(n_heads);
        let vocab_size = match m.get("vocab_size").and_then(Value::as_i64) {
            Some(v) if v > 0 => v as usize,
            _ => {
                return Err(cfg_err(
                    "params.json: vocab_size must be a positive integer",
                ))
            }
        };
        let multiple_of = get_usize(&m, "multiple_of", F)?.unwrap_or(256);
        let ffn_mult = get_f64(&m, "ffn_dim_multiplier", F)?;
        let ffn_dim = meta_ffn_dim(dim, multiple_of, ffn_mult)?;
        let norm_eps = get_f64(&m, "norm_eps", F)?.unwrap_or(1e-5) as f32;
        let rope_theta = get_f64(&m, "rope_theta", F)?.unwrap_or(500000.0) as f32;
        let scaled = get_bool(&m, "use_scaled_rope", F)?.unwrap_or(false);
        if n_heads == 0 {
            return Err(cfg_err("params.json: n_heads must be positive"));
        }
        if !dim.is_multiple_of(n_heads) {
            return Err(cfg_err(format!(
                "params.json: dim {dim} is not divisible by n_heads {n_heads}"
            )));
        }
        let cfg = Config {
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim: dim / n_heads,
            ffn_dim,
            vocab_size,
            norm_eps,
            rope_theta,
            rope_scaling: scaled.then_some(Llama3RopeScaling::META),
            max_seq_len: if scaled { 131072 } else { 8192 },
            tie_embeddings: false,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// From a Hugging Face `config.json` (`LlamaConfig`).
    pub fn from_hf_config(text: &str) -> Result<Config> {
        const F: &str = "config.json";
        let m = parse_json(text, F)?;
        if let Some(mt) = m.get("model_type").and_then(Value::as_str) {
            if mt != "llama" {
                tracing::warn!(model_type = mt, "config.json: model_type is not \"llama\"");
            }
        }
        if let Some(act) = m.get("hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                return Err(cfg_err(format!(
                    "config.json: hidden_act {act:?} is not supported (only \"silu\")"
                )));
            }
        }
        for b in ["attention_bias", "mlp_bias"] {
            if get_bool(&m, b, F)? == Some(true) {
                return Err(cfg_err(format!("config.json: {b} = true is not supported")));
            }
        }
        let dim = req_usize(&m, "hidden_size", F)?;
        let n_heads = req_usize(&m, "num_attention_heads", F)?;
        if n_heads == 0 {
            return Err(cfg_err("config.json: num_attention_heads must be positive"));
        }
        let head_dim = match get_usize(&m, "head_dim", F)? {
            Some(h) => h,
            None => {
                if !dim.is_multiple_of(n_heads) {
                    return Err(cfg_err(format!(
                        "config.json: hidden_size {dim} is not divisible by num_attention_heads {n_heads}"
                    )));
                }
                dim / n_heads
            }
        };
        let rope_scaling = match m.get("rope_scaling") {
            None | Some(Value::Null) => None,
            Some(Value::Object(rs)) => {
                let ty = rs
                    .get("rope_type")
                    .or_else(|| rs.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match ty {
                    "default" => None,
                    "llama3" => {
                        let f = |k: &str| -> Result<f64> {
                            get_f64(rs, k, "config.json rope_scaling")?.ok_or_else(|| {
                                cfg_err(format!("config.json: rope_scaling.{k} is missing"))
                            })
                        };
                        Some(Llama3RopeScaling {
                            factor: f("factor")? as f32,
                            low_freq_factor: f("low_freq_factor")? as f32,
                            high_freq_factor: f("high_freq_factor")? as f32,
                            original_max_position_embeddings: req_usize(
                                rs,
                                "original_max_position_embeddings",
                                "config.json rope_scaling",
                            )?,
                        })
                    }
                    other => return Err(ModelError::UnsupportedRope(other.to_string())),
                }
            }
            Some(v) => {
                return Err(cfg_err(format!(
                    "config.json: rope_scaling must be an object, got {v}"
                )))
            }
        };
        let cfg = Config {
            dim,
            n_layers: req_usize(&m, "num_hidden_layers", F)?,
            n_heads,
            n_kv_heads: get_usize(&m, "num_key_value_heads", F)?.unwrap_or(n_heads),
            head_dim,
            ffn_dim: req_usize(&m, "intermediate_size", F)?,
            vocab_size: req_usize(&m, "vocab_size", F)?,
            norm_eps: get_f64(&m, "rms_norm_eps", F)?.unwrap_or(1e-6) as f32,
            rope_theta: get_f64(&m, "rope_theta", F)?.unwrap_or(10000.0) as f32,
            rope_scaling,
            max_seq_len: get_usize(&m, "max_position_embeddings", F)?.unwrap_or(2048),
            tie_embeddings: get_bool(&m, "tie_word_embeddings", F)?.unwrap_or(false),
            bos_token_id: token_ids(m.get("bos_token_id"), "bos_token_id")?
                .first()
                .copied(),
            eos_token_ids: token_ids(m.get("eos_token_id"), "eos_token_id")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// From GGUF metadata (`general.architecture` must be "llama"). The embeddings are tied when
    /// there is no `output.weight` tensor. Llama 3 RoPE scaling is carried by the
    /// `rope_freqs.weight` tensor (applied at load), not by metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Config> {
        let arch = g.opt_str("general.architecture")?.unwrap_or("llama");
        if arch != "llama" {
            return Err(cfg_err(format!(
                "GGUF architecture {arch:?} is not supported (only \"llama\")"
            )));
        }
        let k = |s: &str| format!("{arch}.{s}");
        let req =
            |s: &str| -> Result<usize> { Ok(g.get_u64(&k(s)).map_err(ModelError::from)? as usize) };
        let opt = |s: &str| -> Result<Option<usize>> { Ok(g.opt_u64(&k(s))?.map(|v| v as usize)) };
        let dim = req("embedding_length")?;
        let n_heads = req("attention.head_count")?;
        if n_heads == 0 {
            return Err(cfg_err("GGUF: attention.head_count must be positive"));
        }
        let head_dim = match opt("rope.dimension_count")?.or(opt("attention.key_length")?) {
            Some(h) => h,
            None => {
                if !dim.is_multiple_of(n_heads) {
                    return Err(cfg_err(format!(
                        "GGUF: embedding_length {dim} is not divisible by head_count {n_heads}"
                    )));
                }
                dim / n_heads
            }
        };
        let vocab_size = match opt("vocab_size")? {
            Some(v) => v,
            None => match g.tensor_info("token_embd.weight") {
                Some(t) => t.shape.first().copied().unwrap_or(0),
                None => g
                    .get_str_array("tokenizer.ggml.tokens")
                    .map(|t| t.len())
                    .map_err(|_| cfg_err("GGUF: cannot determine vocab size"))?,
            },
        };
        let rope_scaling = match g.opt_str(&k("rope.scaling.type"))? {
            None | Some("none") => None,
            Some(other) => return Err(ModelError::UnsupportedRope(other.to_string())),
        };
        let has_output = g.tensor_info("output.weight").is_some();
        let bos = g.opt_u32("tokenizer.ggml.bos_token_id")?;
        let eos = g.opt_u32("tokenizer.ggml.eos_token_id")?;
        let cfg = Config {
            dim,
            n_layers: req("block_count")?,
            n_heads,
            n_kv_heads: opt("attention.head_count_kv")?.unwrap_or(n_heads),
            head_dim,
            ffn_dim: req("feed_forward_length")?,
            vocab_size,
            norm_eps: g
                .opt_f32(&k("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-5),
            rope_theta: g.opt_f32(&k("rope.freq_base"))?.unwrap_or(10000.0),
            rope_scaling,
            max_seq_len: opt("context_length")?.unwrap_or(2048),
            tie_embeddings: !has_output,
            bos_token_id: bos,
            eos_token_ids: eos.into_iter().collect(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Width of the query projection (`n_heads · head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the key/value projections (`n_kv_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Checks internal consistency.
    pub fn validate(&self) -> Result<()> {
        let nz = |v: usize, what: &str| {
            if v == 0 {
                Err(cfg_err(format!("{what} must be positive")))
            } else {
                Ok(())
            }
        };
        nz(self.dim, "dim")?;
        nz(self.n_layers, "n_layers")?;
        nz(self.n_heads, "n_heads")?;
        nz(self.n_kv_heads, "n_kv_heads")?;
        nz(self.head_dim, "head_dim")?;
        nz(self.ffn_dim, "ffn_dim")?;
        nz(self.vocab_size, "vocab_size")?;
        nz(self.max_seq_len, "max_seq_len")?;
        if self.n_kv_heads > self.n_heads || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(cfg_err(format!(
                "n_kv_heads {} must divide n_heads {}",
                self.n_kv_heads, self.n_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(cfg_err(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim
            )));
        }
        // Guard every product used for allocation.
        self.n_heads
            .checked_mul(self.head_dim)
            .and_then(|q| q.checked_mul(self.dim))
            .and_then(|_| self.vocab_size.checked_mul(self.dim))
            .and_then(|_| self.ffn_dim.checked_mul(self.dim))
            .ok_or_else(|| cfg_err("model dimensions overflow usize"))?;
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(cfg_err(format!(
                "norm_eps {} must be a non-negative number",
                self.norm_eps
            )));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(cfg_err(format!(
                "rope_theta {} must be positive",
                self.rope_theta
            )));
        }
        if let Some(s) = &self.rope_scaling {
            let ok = s.factor.is_finite()
                && s.factor > 0.0
                && s.low_freq_factor > 0.0
                && s.high_freq_factor > s.low_freq_factor
                && s.original_max_position_embeddings > 0;
            if !ok {
                return Err(cfg_err(format!("invalid llama3 rope_scaling {s:?}")));
            }
        }
        Ok(())
    }
}
