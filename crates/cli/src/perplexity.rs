//! `llama31 perplexity`: per-token negative log-likelihood of a text file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use llama31_engine::{perplexity, perplexity_tokens, PerplexityOptions};

use crate::source::Source;

#[derive(Args)]
pub struct PerplexityArgs {
    /// A .gguf file, an HF model dir or a Meta model dir.
    #[arg(long)]
    model: PathBuf,
    /// The text to score; its bytes are tokenized as they are.
    #[arg(long)]
    file: PathBuf,
    /// Chunk length in tokens; each chunk is scored on its own, positions starting at 0.
    #[arg(long, default_value_t = 512)]
    ctx: usize,
    /// Tokens per forward batch inside a chunk (bounds the memory of the logits).
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Print `{"tokens": T, "ppl": P, "nll": [...]}` instead of a summary.
    #[arg(long)]
    json: bool,
    /// Keep GGUF quantized weights as they are and multiply them ggml-style (8-bit activations)
    /// instead of dequantizing them to f32 at load: less memory, faster, not bit-exact.
    #[arg(long)]
    quantized: bool,
}

pub fn run(args: PerplexityArgs) -> Result<()> {
    let source = Source::detect(&args.model)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not valid UTF-8", args.file.display()))?;
    if args.ctx < 2 {
        bail!("--ctx must be at least 2, got {}", args.ctx);
    }
    let tokenizer = source.load_tokenizer()?;
    let model = crate::load::load_model(&source, Some(args.ctx), args.quantized)?;
    let tokens = perplexity_tokens(&tokenizer, &text);
    let opts = PerplexityOptions {
        chunk_len: args.ctx,
        batch_len: args.batch.max(1),
    };
    let start = std::time::Instant::now();
    let report = perplexity(&model, &tokens, opts, &mut |p| {
        eprint!(
            "\rchunk {}/{}: {} tokens scored, ppl {:.4}",
            p.chunk, p.chunks, p.scored, p.running_ppl
        );
    })?;
    eprintln!();
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        let out = serde_json::json!({
            "tokens": tokens.len(),
            "ppl": report.ppl,
            "nll": report.nll,
        });
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        serde_json::to_writer(&mut lock, &out)?;
        lock.write_all(b"\n")?;
    } else {
        println!(
            "{} tokens in {} chunks of {}: {} scored, mean NLL {:.6}, perplexity {:.4} ({:.1} tok/s)",
            tokens.len(),
            report.chunks,
            args.ctx,
            report.nll.len(),
            report.mean_nll,
            report.ppl,
            tokens.len() as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}
