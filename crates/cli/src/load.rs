//! Loading a model with a progress bar and a load-time report.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use llama31_formats::WeightFormat;
use llama31_model::{
    file_loading_for, plan_for, Activations, Budget, FileLoading, KvType, LoadOptions, LoraAdapter,
    MergeInto, Model, WeightMode, Workload,
};

use crate::source::{Source, SourceKind};

/// How GGUF block-quantized weights are multiplied and how model files are brought into memory
/// (shared by every command that loads a model).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WeightArgs {
    /// Multiply GGUF quantized weights as stored, against 8-bit activations as llama.cpp does
    /// (the default; accepted for compatibility).
    #[arg(long, conflicts_with = "dequantize")]
    quantized: bool,
    /// Dequantize GGUF quantized weights to f32 at load and compute in f32: the exact reference
    /// path (about 4-8x the memory of the file, slower).
    #[arg(long)]
    dequantize: bool,
    /// Precision of the activations multiplied with quantized weights: `q8` rounds them to 8-bit
    /// blocks and uses integer dot products (llama.cpp's way); `bf16` rounds them to bfloat16 and
    /// multiplies them with the weights' integer levels exactly; `f32` keeps them in f32, which
    /// gives `--dequantize`'s results (within f32 rounding) at the quantized file's memory.
    #[arg(long, value_name = "q8|bf16|f32", default_value_t = Activations::default())]
    activations: Activations,
    /// Element type of the KV cache: `f32` (exact), `f16` or `bf16` (half the memory), `q8_0`
    /// (ggml's 8-bit blocks, 0.27 of f32's memory; needs a key/value width that is a multiple of
    /// 32).
    #[arg(long, value_name = "f32|f16|bf16|q8_0", default_value_t = KvType::default())]
    kv_type: KvType,
    /// Memory the plan may use (weights + KV cache + buffers), e.g. `16GiB`, `512MiB`, `8G`
    /// [default: the memory available now: MemAvailable, or the cgroup's limit if lower].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem_limit: Option<u64>,
    /// Map the model file (pages shared with other processes, loaded on first touch) even where
    /// it would be read into memory. Default: GGUF files multiplied in place are read into
    /// huge-page memory when they fit in half the available memory, anything else is mapped.
    #[arg(long, conflicts_with = "no_mmap")]
    mmap: bool,
    /// Read the whole model file into memory advised for huge pages instead of mapping it (like
    /// llama.cpp's `--no-mmap`).
    #[arg(long)]
    no_mmap: bool,
    /// Apply a LoRA adapter: a Hugging Face PEFT directory (adapter_config.json +
    /// adapter_model.safetensors) or a llama.cpp GGUF adapter, optionally scaled (`PATH:0.5`;
    /// default 1). Repeat to stack adapters. Unmerged unless `--merge-lora`: the base weights
    /// stay as stored and each adapted projection adds `scale * B (A x)` in f32. With `serve`,
    /// `NAME=PATH` serves the adapter as model NAME beside the base instead.
    #[arg(long, value_name = "[NAME=]PATH[:SCALE]")]
    lora: Vec<LoraSpec>,
    /// Merge the `--lora` adapters into the weights at load. `f32` (the default): each adapted
    /// projection becomes the f32 matrix `W + scale * B A` (exact; f32's memory and bandwidth for
    /// those projections). `stored`: that sum rounded back to the projection's stored type (bf16,
    /// f16, or quantized again with ggml's quantizer): the base's memory and speed, at the cost of
    /// that rounding.
    #[arg(
        long,
        requires = "lora",
        value_name = "f32|stored",
        num_args = 0..=1,
        default_missing_value = "f32"
    )]
    merge_lora: Option<MergeMode>,
}

/// `--merge-lora`'s value.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    F32,
    Stored,
}

/// `[NAME=]PATH[:SCALE]` of `--lora`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// The model id it is served as (`serve` only).
    pub name: Option<String>,
    pub path: std::path::PathBuf,
    pub scale: f32,
}

impl std::str::FromStr for LoraSpec {
    type Err = String;

    /// `PATH`, `PATH:SCALE`, `NAME=PATH`, `NAME=PATH:SCALE`; a `:` followed by something that is
    /// not a number belongs to the path, and a `=` after a `/` too.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, s) = match s.split_once('=') {
            Some((n, rest)) if !n.contains('/') => {
                if n.is_empty() {
                    return Err("empty adapter name before '='".into());
                }
                (Some(n.to_string()), rest)
            }
            _ => (None, s),
        };
        if s.is_empty() {
            return Err("empty adapter path".into());
        }
        if let Some((path, scale)) = s.rsplit_once(':') {
            if let Ok(scale) = scale.parse::<f32>() {
                if !scale.is_finite() {
                    return Err(format!("scale {scale} is not finite"));
                }
                if path.is_empty() {
                    return Err("empty adapter path".into());
                }
                return Ok(LoraSpec {
                    name,
                    path: path.into(),
                    scale,
                });
            }
        }
        Ok(LoraSpec {
            name,
            path: s.into(),
            scale: 1.0,
        })
    }
}

impl WeightArgs {
    /// What happens to quantized weights: the library's default unless `--dequantize`.
    pub fn weight_mode(&self) -> WeightMode {
        if self.dequantize {
            WeightMode::Dequantized
        } else {
            WeightMode::default()
        }
    }

    /// The precision of the activations multiplied with quantized weights.
    pub fn activations(&self) -> Activations {
        self.activations
    }

    /// The KV cache's element type.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// The memory budget: `--mem-limit`, else what the machine has available.
    pub fn budget(&self) -> Budget {
        self.mem_limit.map_or_else(Budget::available, Budget::given)
    }

    /// Whether quantized weights stay quantized.
    pub fn keep_quantized(&self) -> bool {
        self.weight_mode().keeps_quantized()
    }

    /// The `--lora` adapters.
    pub fn lora(&self) -> &[LoraSpec] {
        &self.lora
    }

    /// These arguments without the named `--lora NAME=PATH` adapters, and those adapters.
    pub fn split_named(&self) -> (WeightArgs, Vec<LoraSpec>) {
        let (named, plain): (Vec<LoraSpec>, Vec<LoraSpec>) =
            self.lora.iter().cloned().partition(|s| s.name.is_some());
        (
            WeightArgs {
                lora: plain,
                ..self.clone()
            },
            named,
        )
    }

    /// Whether `--merge-lora` was given.
    pub fn merge_lora(&self) -> bool {
        self.merge_lora.is_some()
    }

    /// How the model file is brought into memory (`--mmap`, `--no-mmap`, else the environment's
    /// `LLAMA31_MMAP` / `LLAMA31_NO_MMAP`, else decided by size).
    pub fn file_loading(&self) -> FileLoading {
        if self.mmap {
            FileLoading::Map
        } else if self.no_mmap {
            FileLoading::Read
        } else {
            FileLoading::Auto
        }
    }
}

/// `--ctx`'s value: `auto` or a number of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxArg {
    Auto,
    Tokens(usize),
}

impl std::str::FromStr for CtxArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(CtxArg::Auto);
        }
        s.parse::<usize>()
            .map(CtxArg::Tokens)
            .map_err(|_| format!("{s:?} is neither `auto` nor a number of tokens"))
    }
}

/// `SIZE` of `--mem-limit`: bytes, or a number with K/M/G/T (powers of 1024, with or without
/// `iB`/`B`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 16GiB, 512MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is not a usable size"));
    }
    Ok(bytes as u64)
}

/// A context length asked for on the command line (`explicit`), a command's default, or `auto`
/// (the longest that fits the memory plan), with the workload it is planned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    pub tokens: usize,
    pub explicit: bool,
    pub auto: bool,
    /// Sequences and step sizes the memory plan counts.
    pub work: Workload,
}

/// One sequence, prompts in chunks of [`llama31_engine::PREFILL_CHUNK`], one row of logits.
const ONE_SEQUENCE: Workload = Workload {
    sequences: 1,
    step_rows: llama31_engine::PREFILL_CHUNK,
    logit_rows: 1,
};

impl Ctx {
    /// A length the user asked for: past the model's trained context it is refused.
    pub fn given(tokens: usize) -> Ctx {
        Ctx {
            tokens,
            explicit: true,
            auto: false,
            work: ONE_SEQUENCE,
        }
    }

    /// `--ctx` if given, else `default`, which is cut to the model's trained context.
    pub fn or_default(arg: Option<usize>, default: usize) -> Ctx {
        match arg {
            Some(tokens) => Ctx::given(tokens),
            None => Ctx {
                tokens: default,
                explicit: false,
                auto: false,
                work: ONE_SEQUENCE,
            },
        }
    }

    /// `--ctx N`, or the longest context that fits (`--ctx auto`, the default).
    pub fn or_auto(arg: Option<CtxArg>) -> Ctx {
        match arg {
            Some(CtxArg::Tokens(n)) => Ctx::given(n),
            Some(CtxArg::Auto) | None => Ctx {
                tokens: usize::MAX,
                explicit: false,
                auto: true,
                work: ONE_SEQUENCE,
            },
        }
    }

    /// This context planned for `work`.
    pub fn with_work(self, work: Workload) -> Ctx {
        Ctx { work, ..self }
    }

    /// The context to run with on `model` (the planned context, or a default cut to what the
    /// model supports).
    pub fn on(self, model: &Model) -> usize {
        self.tokens.min(model.max_seq_len())
    }
}

/// The context `ctx` resolves to for the model at `source` under the memory plan: an explicit one
/// that does not fit is refused with the numbers, `auto` takes the longest that fits. Prints the
/// plan.
fn plan_ctx(source: &Source, ctx: Ctx, weights: &WeightArgs) -> Result<usize> {
    let plan = plan_for(
        source,
        weights.keep_quantized(),
        weights.kv_type,
        ctx.work,
        weights.budget(),
    )?;
    let requested = if ctx.auto {
        None
    } else if ctx.explicit {
        Some(ctx.tokens)
    } else {
        Some(ctx.tokens.min(plan.trained))
    };
    let resolved = plan.fit(requested)?;
    eprintln!("{}", plan.report(resolved));
    if ctx.auto {
        eprintln!(
            "context: {resolved} tokens (auto: the longest that fits, up to the {} trained)",
            plan.trained
        );
        if resolved < plan.trained {
            // What the smaller cache types would fit.
            let others: Vec<String> = KvType::ALL
                .into_iter()
                .filter_map(|t| {
                    let smaller = plan.with_kv_type(t).ok();
                    let p = smaller.filter(|p| p.kv_per_token < plan.kv_per_token)?;
                    Some(format!("--kv-type {t}: {}", p.fit(None).ok()?))
                })
                .collect();
            if !others.is_empty() {
                eprintln!(
                    "  longer contexts with a smaller cache: {}",
                    others.join(", ")
                );
            }
        }
    }
    Ok(resolved)
}

/// Loads the model at `source`, supporting contexts up to `ctx` positions (an explicit `ctx` past
/// the model's trained context is refused before anything is allocated), as `weights` says
/// (quantized weights kept or dequantized, see `WeightMode`; file mapped or read).
pub fn load_model(source: &Source, ctx: Option<Ctx>, weights: &WeightArgs) -> Result<Model> {
    let max_seq_len = match ctx {
        Some(c) => Some(plan_ctx(source, c, weights)?),
        None => None,
    };
    let start = Instant::now();
    let bar = ProgressBar::hidden();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} loading {msg} [{bar:30}] {pos}/{len} tensors ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let name = source
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A file read into memory (not mapped) is read before the first tensor: say so, and keep the
    // spinner turning, so that a multi-GB read does not look like a hang.
    match read_up_front(source, weights) {
        Some(bytes) => bar.set_message(format!(
            "{name} (reading {:.0} MiB)",
            bytes as f64 / (1024.0 * 1024.0)
        )),
        None => bar.set_message(name.clone()),
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let progress_bar = bar.clone();
    let opts = LoadOptions {
        max_seq_len,
        clamp_max_seq_len: false,
        kv_type: weights.kv_type,
        progress: Some(Box::new(move |done, total| {
            if done <= 1 {
                progress_bar.set_message(name.clone());
            }
            progress_bar.set_length(total as u64);
            progress_bar.set_position(done as u64);
        })),
        file_loading: weights.file_loading(),
        weights: weights.weight_mode(),
        activations: weights.activations,
    };
    let loaded = Model::load_source(source, opts);
    // Cleared on failure too, so that the error is not printed after a stale bar.
    bar.finish_and_clear();
    let mut model = loaded.with_context(|| format!("loading model {}", source.path().display()))?;
    let bytes: usize = model.tensor_summary().iter().map(|t| t.bytes).sum();
    eprintln!(
        "loaded {} in {:.2} s ({} tensors, {:.1} MiB)",
        source.path().display(),
        start.elapsed().as_secs_f64(),
        model.tensor_summary().len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    apply_lora(&mut model, weights)?;
    Ok(model)
}

/// Reads the adapters of `--lora` specs, in order.
pub fn load_adapters(specs: &[LoraSpec]) -> Result<Vec<LoraAdapter>> {
    specs
        .iter()
        .map(|spec| {
            LoraAdapter::load(&spec.path)
                .with_context(|| format!("loading LoRA adapter {}", spec.path.display()))
        })
        .collect()
}

/// Each adapter with the scale its spec gives.
pub fn with_scales<'a>(
    adapters: &'a [LoraAdapter],
    specs: &[LoraSpec],
) -> Vec<(&'a LoraAdapter, f32)> {
    adapters
        .iter()
        .zip(specs)
        .map(|(a, spec)| (a, spec.scale))
        .collect()
}

/// Reads the `--lora` adapters and applies them to `model`, merged or not.
pub fn apply_lora(model: &mut Model, weights: &WeightArgs) -> Result<()> {
    if weights.lora.is_empty() {
        return Ok(());
    }
    let adapters = load_adapters(&weights.lora)?;
    let with_scales = with_scales(&adapters, &weights.lora);
    match weights.merge_lora {
        Some(MergeMode::F32) => model.merge_lora_into(&with_scales, MergeInto::F32)?,
        Some(MergeMode::Stored) => model.merge_lora_into(&with_scales, MergeInto::Stored)?,
        None => model.attach_lora(&with_scales)?,
    }
    for (a, spec) in adapters.iter().zip(&weights.lora) {
        let ranks: std::collections::BTreeSet<usize> = a.terms.iter().map(|t| t.rank).collect();
        eprintln!(
            "LoRA adapter {} ({} projections, rank {}, scale {}){}",
            spec.path.display(),
            a.terms.len(),
            ranks
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            spec.scale,
            match weights.merge_lora {
                Some(MergeMode::F32) => ", merged into f32 weights",
                Some(MergeMode::Stored) => ", merged into the stored types",
                None => ", unmerged",
            }
        );
    }
    Ok(())
}

/// The size of the GGUF file `load_model` will read into memory before its first tensor, if it
/// will (the loader's own rule, [`file_loading_for`]).
fn read_up_front(source: &Source, weights: &WeightArgs) -> Option<u64> {
    if source.kind() != SourceKind::Gguf {
        return None;
    }
    let len = std::fs::metadata(source.path()).ok()?.len();
    file_loading_for(
        WeightFormat::Gguf,
        weights.keep_quantized(),
        weights.file_loading(),
    )
    .reads(len)
    .then_some(len)
}

#[cfg(test)]
mod tests {
    use super::LoraSpec;

    #[test]
    fn lora_specs() {
        let p = |s: &str| s.parse::<LoraSpec>();
        let spec = |name: Option<&str>, path: &str, scale: f32| LoraSpec {
            name: name.map(str::to_string),
            path: path.into(),
            scale,
        };
        assert_eq!(p("a/b"), Ok(spec(None, "a/b", 1.0)));
        assert_eq!(p("a/b:0.5"), Ok(spec(None, "a/b", 0.5)));
        assert_eq!(p("c:/x:y"), Ok(spec(None, "c:/x:y", 1.0)));
        assert_eq!(p("sql=a/b"), Ok(spec(Some("sql"), "a/b", 1.0)));
        assert_eq!(p("sql=a/b:2"), Ok(spec(Some("sql"), "a/b", 2.0)));
        assert_eq!(p("./x=y/z"), Ok(spec(None, "./x=y/z", 1.0)));
        assert!(p("").is_err());
        assert!(p("=a").is_err());
        assert!(p("n=").is_err());
        assert!(p("a:inf").is_err());
    }
}
