//! Loading a model with a progress bar and a load-time report.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use llama31_model::{FileLoading, LoadOptions, Model};

use crate::source::Source;

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
    /// The arguments of a load that dequantizes to f32 (`--dequantize`).
    pub fn dequantizing() -> WeightArgs {
        WeightArgs {
            dequantize: true,
            ..WeightArgs::default()
        }
    }

    /// Whether quantized weights stay quantized.
    pub fn keep_quantized(&self) -> bool {
        !self.dequantize
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
/// (quantized weights kept or dequantized, see `Model::load_with_quant`; file mapped or read).
pub fn load_model(source: &Source, ctx: Option<usize>, weights: WeightArgs) -> Result<Model> {
    let start = Instant::now();
    let bar = ProgressBar::hidden();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("loading {msg} [{bar:30}] {pos}/{len} tensors")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(
        source
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let progress_bar = bar.clone();
    let opts = LoadOptions {
        max_seq_len: ctx,
        progress: Some(Box::new(move |done, total| {
            progress_bar.set_length(total as u64);
            progress_bar.set_position(done as u64);
        })),
        file_loading: weights.file_loading(),
    };
    let model = Model::load_with_quant(source.path(), opts, weights.keep_quantized())
        .with_context(|| format!("loading model {}", source.path().display()))?;
    bar.finish_and_clear();
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
