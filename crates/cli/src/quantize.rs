//! `llama31 quantize IN OUT --type T`: a GGUF llama.cpp loads, quantized with llama.cpp's type mix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use llama31_quantize::{quantize_merged, FileType, QuantizeOptions};

#[derive(Args)]
pub struct QuantizeArgs {
    /// The model to quantize: a .gguf file (F32/F16/BF16), an HF model dir, a Meta model dir or
    /// hf://ORG/NAME[:QUANT|/FILE].
    input: PathBuf,
    /// The GGUF file to write.
    output: PathBuf,
    /// Target: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L,
    /// Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M or Q6_K (`_M`/`_S`/`_L`: llama.cpp's per-tensor mixes).
    #[arg(long = "type", value_name = "TYPE")]
    ftype: String,
    /// Accept an already quantized GGUF (its tensors are dequantized and quantized again).
    #[arg(long)]
    allow_requantize: bool,
    /// Merge a LoRA adapter (PEFT directory or GGUF adapter, `PATH[:SCALE]`) into the weights
    /// before quantizing: the output is a plain model llama.cpp loads. Repeatable.
    #[arg(long, value_name = "PATH[:SCALE]")]
    lora: Vec<crate::load::LoraSpec>,
}

pub fn run(mut args: QuantizeArgs) -> Result<()> {
    args.input = crate::hub::resolve(&args.input)?;
    let ftype: FileType = args.ftype.parse()?;
    let opts = QuantizeOptions {
        ftype,
        allow_requantize: args.allow_requantize,
    };
    let bar = ProgressBar::hidden();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "quantizing [{bar:30}] {pos}/{len} tensors {elapsed_precise} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let start = Instant::now();
    let adapters = crate::load::load_adapters(&args.lora)?;
    let merges = crate::load::with_scales(&adapters, &args.lora);
    let report = quantize_merged(&args.input, &args.output, &opts, &merges, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} → {}", p.tensor.name, p.tensor.to));
    })
    .with_context(|| {
        format!(
            "quantizing {} to {}",
            args.input.display(),
            args.output.display()
        )
    })?;
    bar.finish_and_clear();
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for t in &report.tensors {
        *by_type.entry(t.to.to_string()).or_default() += 1;
    }
    let mix: Vec<String> = by_type.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    let weights: u64 = report
        .tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>() as u64)
        .sum();
    eprintln!(
        "wrote {} ({ftype}, {:.1} MiB, {:.2} bits per weight) in {:.1} s: {} tensors ({}){}",
        args.output.display(),
        report.file_bytes as f64 / (1024.0 * 1024.0),
        report.file_bytes as f64 * 8.0 / weights.max(1) as f64,
        start.elapsed().as_secs_f64(),
        report.tensors.len(),
        mix.join(", "),
        if report.n_fallback > 0 {
            format!(
                "; {} tensors fell back to another type (row length not a multiple of the block)",
                report.n_fallback
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
