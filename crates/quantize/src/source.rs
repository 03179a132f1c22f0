//! The input of a quantization, seen as the GGUF llama.cpp would quantize: a GGUF file as it is,
//! or a Hugging Face / Meta checkpoint as `convert_hf_to_gguf.py` would write it (llama.cpp tensor
//! names, HF q/k rows permuted to GGUF's interleaved RoPE layout, 1-D tensors in F32, 2-D tensors
//! in their stored float type, a `rope_freqs.weight` tensor for llama3 RoPE scaling, `llama.*`
//! hyper-parameters and `tokenizer.*` keys).

use std::path::{Path, PathBuf};

use llama31_formats::{DType, FileLoading, GgufValue, ModelSource, TensorView, WeightFile};
use llama31_model::weights::{GlobalTensor, LayerTensor};
use llama31_model::{Checkpoint, Config, Llama3RopeScaling, NameScheme};

use crate::error::{QuantizeError, Result};
use crate::plan::{llama_order, PlanModel, PlanTensor};

/// Where a tensor's values come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Origin {
    /// Tensor `name` of the input file; with `heads`, HF q/k rows are permuted into GGUF's layout
    /// (`LlamaModel.permute` of the converter with that many heads).
    File { name: String, heads: Option<usize> },
    /// Values computed here (the llama3 RoPE factors).
    Values(Vec<f32>),
}

/// One tensor of the (virtual) input GGUF.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InTensor {
    /// llama.cpp name.
    pub name: String,
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    /// The type the tensor has in the input GGUF.
    pub input_type: DType,
    pub origin: Origin,
}

impl InTensor {
    pub(crate) fn plan_tensor(&self) -> PlanTensor {
        PlanTensor {
            name: self.name.clone(),
            ne0: self.shape.last().copied().unwrap_or(0),
            n_dims: self.shape.len(),
            input_type: self.input_type,
        }
    }
}

/// An opened input.
#[derive(Debug)]
pub(crate) struct Input {
    pub file: WeightFile,
    /// Metadata to write (without `general.quantization_version` and `general.file_type`).
    pub metadata: Vec<(String, GgufValue)>,
    /// In llama.cpp's order.
    pub tensors: Vec<InTensor>,
    pub model: PlanModel,
    /// The model's configuration.
    pub config: Config,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| QuantizeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens a `.gguf` file, a Hugging Face directory or a Meta directory.
pub(crate) fn open(path: &Path) -> Result<Input> {
    let source = ModelSource::detect(path)?;
    let file = WeightFile::open_source_with(&source, FileLoading::Map)?;
    let checkpoint = Checkpoint::describe(&source, &file)?;
    let mut input = match checkpoint.scheme {
        NameScheme::Gguf => from_gguf(file, &checkpoint.config)?,
        scheme => from_checkpoint(file, checkpoint.config, scheme, &checkpoint.dir)?,
    };
    input.tensors.sort_by(|a, b| llama_order(&a.name, &b.name));
    Ok(input)
}

const SPLIT_KEYS: [&str; 3] = ["split.no", "split.count", "split.tensors.count"];

fn from_gguf(file: WeightFile, cfg: &Config) -> Result<Input> {
    let g = file.as_gguf().ok_or_else(|| QuantizeError::Tensor {
        tensor: String::new(),
        msg: "not a GGUF file".into(),
    })?;
    let metadata = g
        .metadata()
        .iter()
        .filter(|(k, _)| !SPLIT_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    let tensors = g
        .tensor_infos()
        .iter()
        .map(|t| InTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            input_type: t.ggml_type,
            origin: Origin::File {
                name: t.name.clone(),
                heads: None,
            },
        })
        .collect();
    Ok(Input {
        metadata,
        tensors,
        model: plan_model(cfg),
        config: cfg.clone(),
        file,
    })
}

fn plan_model(cfg: &Config) -> PlanModel {
    PlanModel {
        n_layer: cfg.n_layers,
        n_head: cfg.n_heads,
        n_head_kv: cfg.n_kv_heads,
    }
}

/// Stored dtype and (joined) shape of tensor `name`.
fn describe(file: &WeightFile, name: &str) -> Result<(DType, Vec<usize>)> {
    match file {
        WeightFile::Meta(m) => {
            let first = m.shards().first().ok_or_else(|| QuantizeError::Tensor {
                tensor: name.to_owned(),
                msg: "the Meta checkpoint has no shards".into(),
            })?;
            let dtype = first.tensor(name)?.dtype;
            Ok((dtype, m.joined_shape(name)?))
        }
        other => {
            let TensorView { dtype, shape, .. } = other.tensor(name)?;
            Ok((dtype, shape))
        }
    }
}

/// The GGUF type of a checkpoint tensor: 1-D tensors become F32, 2-D tensors keep their float
/// type; anything else cannot be converted.
fn checkpoint_type(name: &str, dtype: DType, n_dims: usize) -> Result<DType> {
    let float = matches!(dtype, DType::F32 | DType::F16 | DType::BF16);
    match (float, n_dims) {
        (true, 1) => Ok(DType::F32),
        (true, _) => Ok(dtype),
        (false, _) => Err(QuantizeError::InputType {
            tensor: name.to_owned(),
            dtype: dtype.to_string(),
            requantize_possible: false,
        }),
    }
}

fn expected_shape(cfg: &Config, t: LayerTensor) -> Vec<usize> {
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

fn gguf_layer_name(l: usize, t: LayerTensor) -> String {
    NameScheme::Gguf.layer(l, t)
}

fn from_checkpoint(file: WeightFile, cfg: Config, scheme: NameScheme, dir: &Path) -> Result<Input> {
    let names: std::collections::HashSet<String> =
        file.names().into_iter().map(str::to_owned).collect();
    let mut tensors = Vec::new();
    let mut add =
        |src: &str, gguf: String, shape: Vec<usize>, heads: Option<usize>| -> Result<()> {
            if !names.contains(src) {
                return Err(QuantizeError::Tensor {
                    tensor: src.to_owned(),
                    msg: "missing from the checkpoint".into(),
                });
            }
            let (dtype, got) = describe(&file, src)?;
            if got != shape {
                return Err(QuantizeError::Tensor {
                    tensor: src.to_owned(),
                    msg: format!("shape {got:?}, the config needs {shape:?}"),
                });
            }
            tensors.push(InTensor {
                input_type: checkpoint_type(src, dtype, shape.len())?,
                name: gguf,
                shape,
                origin: Origin::File {
                    name: src.to_owned(),
                    heads,
                },
            });
            Ok(())
        };
    let emb = [cfg.vocab_size, cfg.dim];
    add(
        scheme.global(GlobalTensor::Embedding),
        "token_embd.weight".into(),
        emb.to_vec(),
        None,
    )?;
    add(
        scheme.global(GlobalTensor::Norm),
        "output_norm.weight".into(),
        vec![cfg.dim],
        None,
    )?;
    if !cfg.tie_embeddings {
        add(
            scheme.global(GlobalTensor::Output),
            "output.weight".into(),
            emb.to_vec(),
            None,
        )?;
    }
    let permute = scheme == NameScheme::Hf;
    for l in 0..cfg.n_layers {
        for t in [
            LayerTensor::AttnNorm,
            LayerTensor::Wq,
            LayerTensor::Wk,
            LayerTensor::Wv,
            LayerTensor::Wo,
            LayerTensor::FfnNorm,
            LayerTensor::Gate,
            LayerTensor::Up,
            LayerTensor::Down,
        ] {
            let heads = match t {
                LayerTensor::Wq if permute => Some(cfg.n_heads),
                LayerTensor::Wk if permute => Some(cfg.n_kv_heads),
                _ => None,
            };
            add(
                &scheme.layer(l, t),
                gguf_layer_name(l, t),
                expected_shape(&cfg, t),
                heads,
            )?;
        }
    }
    if let Some(s) = &cfg.rope_scaling {
        tensors.push(InTensor {
            name: "rope_freqs.weight".into(),
            shape: vec![cfg.head_dim / 2],
            input_type: DType::F32,
            origin: Origin::Values(llama3_rope_factors(cfg.head_dim, cfg.rope_theta, s)),
        });
    }
    let used: std::collections::HashSet<&str> = tensors
        .iter()
        .filter_map(|t| match &t.origin {
            Origin::File { name, .. } => Some(name.as_str()),
            Origin::Values(_) => None,
        })
        .collect();
    for n in &names {
        if !used.contains(n.as_str()) {
            tracing::info!(tensor = n.as_str(), "not part of a Llama model: skipped");
        }
    }
    let mut metadata = hparams_metadata(&cfg, dir);
    if scheme == NameScheme::Hf {
        let at = metadata
            .iter()
            .position(|(k, _)| k == "general.name")
            .unwrap_or(metadata.len());
        let sampling = sampling_metadata(&dir.join("generation_config.json"))?;
        metadata.splice(at..at, sampling);
    }
    metadata.extend(match scheme {
        NameScheme::Meta => {
            let instruct = dir_name(dir).to_lowercase().contains("instruct");
            llama31_tokenizer::gguf_metadata_from_tiktoken(&dir.join("tokenizer.model"), instruct)?
        }
        _ => llama31_tokenizer::gguf_metadata_from_hf_dir(dir, cfg.vocab_size)?,
    });
    Ok(Input {
        metadata,
        tensors,
        model: plan_model(&cfg),
        config: cfg,
        file,
    })
}

fn dir_name(dir: &Path) -> String {
    let canon: PathBuf = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `general.sampling.*` from `generation_config.json`, as gguf-py's `Metadata` writes them.
fn sampling_metadata(path: &Path) -> Result<Vec<(String, GgufValue)>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = read_text(path)?;
    // Like the converter, a file that is not a JSON object is ignored.
    let Ok(serde_json::Value::Object(cfg)) = serde_json::from_str::<serde_json::Value>(&text)
    else {
        tracing::warn!(path = %path.display(), "generation_config.json is not a JSON object: ignored");
        return Ok(Vec::new());
    };
    let f = |k: &str| {
        cfg.get(k)
            .and_then(serde_json::Value::as_f64)
            .map(|v| GgufValue::F32(v as f32))
    };
    let i = |k: &str| {
        cfg.get(k)
            .and_then(serde_json::Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .map(GgufValue::I32)
    };
    let entries = [
        (
            "sequence",
            cfg.get("sequence")
                .and_then(serde_json::Value::as_str)
                .map(GgufValue::from),
        ),
        ("top_k", i("top_k")),
        ("top_p", f("top_p")),
        ("min_p", f("min_p")),
        ("xtc_probability", f("xtc_probability")),
        ("xtc_threshold", f("xtc_threshold")),
        ("temp", f("temperature")),
        ("penalty_last_n", i("penalty_last_n")),
        (
            "penalty_repeat",
            f("penalty_repeat").or_else(|| f("repetition_penalty")),
        ),
        ("mirostat", i("mirostat")),
        ("mirostat_tau", f("mirostat_tau")),
        ("mirostat_eta", f("mirostat_eta")),
    ];
    Ok(entries
        .into_iter()
        .filter_map(|(k, v)| Some((format!("general.sampling.{k}"), v?)))
        .collect())
}

/// `general.*` and `llama.*` keys, as the converter writes them for a Llama model.
fn hparams_metadata(cfg: &Config, dir: &Path) -> Vec<(String, GgufValue)> {
    let u = |v: usize| GgufValue::U32(u32::try_from(v).unwrap_or(u32::MAX));
    vec![
        ("general.architecture".into(), "llama".into()),
        ("general.type".into(), "model".into()),
        ("general.name".into(), dir_name(dir).into()),
        ("llama.block_count".into(), u(cfg.n_layers)),
        ("llama.context_length".into(), u(cfg.max_seq_len)),
        ("llama.embedding_length".into(), u(cfg.dim)),
        ("llama.feed_forward_length".into(), u(cfg.ffn_dim)),
        ("llama.attention.head_count".into(), u(cfg.n_heads)),
        ("llama.attention.head_count_kv".into(), u(cfg.n_kv_heads)),
        ("llama.rope.freq_base".into(), cfg.rope_theta.into()),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            cfg.norm_eps.into(),
        ),
        ("llama.attention.key_length".into(), u(cfg.head_dim)),
        ("llama.attention.value_length".into(), u(cfg.head_dim)),
        ("llama.vocab_size".into(), u(cfg.vocab_size)),
        ("llama.rope.dimension_count".into(), u(cfg.head_dim)),
    ]
}

/// The converter's `rope_freqs.weight` for llama3 RoPE scaling (`LlamaModel.generate_extra_tensors`),
/// computed in f32 with PyTorch's operation order (`a / t` on a tensor is `reciprocal(t) * a`).
pub(crate) fn llama3_rope_factors(head_dim: usize, base: f32, s: &Llama3RopeScaling) -> Vec<f32> {
    let dim = head_dim as f32;
    let old_ctx = s.original_max_position_embeddings as f32;
    let low_wavelen = f64::from(old_ctx) / f64::from(s.low_freq_factor);
    let high_wavelen = f64::from(old_ctx) / f64::from(s.high_freq_factor);
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    (0..head_dim / 2)
        .map(|i| {
            let e = (2 * i) as f32 / dim;
            let p = f64::from(base).powf(f64::from(e)) as f32;
            let freq = 1.0f32 / p;
            let wavelen = (1.0f32 / freq) * two_pi;
            if f64::from(wavelen) < high_wavelen {
                1.0
            } else if f64::from(wavelen) > low_wavelen {
                s.factor
            } else {
                let smooth = ((1.0f32 / wavelen) * old_ctx - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                1.0f32 / ((1.0 - smooth) / s.factor + smooth)
            }
        })
        .collect()
}
