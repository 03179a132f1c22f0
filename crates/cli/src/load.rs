//! Loading a model with a progress bar and a load-time report.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use llama31_model::{LoadOptions, Model};

use crate::source::Source;

/// How GGUF block-quantized weights are multiplied (shared by every command that loads a model).
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
}

impl WeightArgs {
    /// Whether quantized weights stay quantized.
    pub fn keep_quantized(&self) -> bool {
        !self.dequantize
    }
}

/// Loads the model at `source`, supporting contexts up to `ctx` positions. `keep_quantized`:
/// GGUF quantized weights stay quantized (see `Model::load_with_quant`).
pub fn load_model(source: &Source, ctx: Option<usize>, keep_quantized: bool) -> Result<Model> {
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
    };
    let model = Model::load_with_quant(source.path(), opts, keep_quantized)
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
