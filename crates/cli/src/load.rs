//! Loading a model with a progress bar and a load-time report.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use llama31_formats::WeightFormat;
use llama31_model::{file_loading_for, Activations, FileLoading, LoadOptions, Model, WeightMode};

use crate::source::{Source, SourceKind};

/// How GGUF block-quantized weights are multiplied and how model files are brought into memory
/// (shared by every command that loads a model).
#[derive(clap::Args, Debug, Clone, Copy, Default)]
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
    /// Map the model file (pages shared with other processes, loaded on first touch) even where
    /// it would be read into memory. Default: GGUF files multiplied in place are read into
    /// huge-page memory when they fit in half the available memory, anything else is mapped.
    #[arg(long, conflicts_with = "no_mmap")]
    mmap: bool,
    /// Read the whole model file into memory advised for huge pages instead of mapping it (like
    /// llama.cpp's `--no-mmap`).
    #[arg(long)]
    no_mmap: bool,
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

    /// Whether quantized weights stay quantized.
    pub fn keep_quantized(&self) -> bool {
        self.weight_mode().keeps_quantized()
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

/// Loads the model at `source`, supporting contexts up to `ctx` positions, as `weights` says
/// (quantized weights kept or dequantized, see `WeightMode`; file mapped or read).
pub fn load_model(source: &Source, ctx: Option<usize>, weights: WeightArgs) -> Result<Model> {
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
        max_seq_len: ctx,
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
    let model = loaded.with_context(|| format!("loading model {}", source.path().display()))?;
    let bytes: usize = model.tensor_summary().iter().map(|t| t.bytes).sum();
    eprintln!(
        "loaded {} in {:.2} s ({} tensors, {:.1} MiB)",
        source.path().display(),
        start.elapsed().as_secs_f64(),
        model.tensor_summary().len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(model)
}

/// The size of the GGUF file `load_model` will read into memory before its first tensor, if it
/// will (the loader's own rule, [`file_loading_for`]).
fn read_up_front(source: &Source, weights: WeightArgs) -> Option<u64> {
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
