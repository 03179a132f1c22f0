//! `llama31 perplexity`: per-token negative log-likelihood of a text file; with `--save-logits` or
//! `--kl-divergence-base`, llama.cpp's `llama-perplexity` protocol, logits file and KL report.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use llama31_engine::{
    kl_divergence, perplexity, perplexity_tokens, save_logits, EngineError, KlReport,
    PerplexityOptions,
};
use llama31_formats::{LogitsHeader, LogitsReader, LogitsWriter};
use llama31_model::Model;

use crate::source::{self, Source, SourceExt};

#[derive(Args)]
pub struct PerplexityArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
    #[arg(long)]
    model: PathBuf,
    /// The text to score; its bytes are tokenized as they are (not needed with
    /// --kl-divergence-base, whose file holds the tokens).
    #[arg(long, required_unless_present = "kl_divergence_base")]
    file: Option<PathBuf>,
    /// Chunk length in tokens; each chunk is scored on its own, positions starting at 0 [default:
    /// 512; with --kl-divergence-base, the file's].
    #[arg(long)]
    ctx: Option<usize>,
    /// Tokens per forward batch inside a chunk (bounds the memory of the logits; the llama.cpp
    /// protocol of --save-logits and --kl-divergence-base runs each half of a chunk as one batch).
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Print JSON instead of a summary: `{"tokens", "ppl", "nll": [...]}`, or with the flags
    /// below the saved run's or the KL report's figures.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
    /// Run llama.cpp's protocol (whole chunks, BOS first in each, the second half of each chunk
    /// scored) and save the log-probabilities to FILE in llama.cpp's format (what
    /// `llama-perplexity --kl-divergence-base FILE` writes).
    #[arg(long, value_name = "FILE", conflicts_with = "kl_divergence_base")]
    save_logits: Option<PathBuf>,
    /// With --save-logits: evaluate at most N chunks (llama.cpp's `--chunks`).
    #[arg(long, value_name = "N", requires = "save_logits")]
    chunks: Option<usize>,
    /// Compare the model against log-probabilities saved in FILE (by --save-logits or
    /// llama.cpp): mean KL divergence, top-1 agreement, PPL ratio and Δp, as
    /// `llama-perplexity --kl-divergence` reports them.
    #[arg(long, value_name = "FILE")]
    kl_divergence_base: Option<PathBuf>,
}

/// What scoring chunks of `ctx` tokens runs at once: batches of `batch` rows (half a chunk under
/// llama.cpp's protocol), each with all its logits.
fn scoring_work(ctx: usize, batch: usize) -> llama31_model::Workload {
    let rows = batch.max(ctx / 2).min(ctx).max(1);
    llama31_model::Workload {
        sequences: 1,
        step_rows: rows,
        logit_rows: rows,
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not valid UTF-8", path.display()))
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    serde_json::to_writer(&mut lock, v)?;
    lock.write_all(b"\n")?;
    Ok(())
}

pub fn run(args: PerplexityArgs) -> Result<()> {
    let source = source::detect_model(&args.model)?;
    if let Some(base) = &args.kl_divergence_base {
        return run_kl(&args, &source, base);
    }
    let file = args
        .file
        .as_deref()
        .context("--file is required unless --kl-divergence-base is given")?;
    let text = read_text(file)?;
    let want = crate::load::Ctx::or_default(args.ctx, 512);
    let want = want.with_work(scoring_work(want.tokens, args.batch));
    if want.tokens < 2 {
        bail!("--ctx must be at least 2, got {}", want.tokens);
    }
    let tokenizer = source.load_tokenizer()?;
    let model = crate::load::load_model(&source, Some(want), &args.weights)?;
    let ctx = want.on(&model);
    let tokens = perplexity_tokens(&tokenizer, &text);
    if let Some(out) = &args.save_logits {
        let bos = tokenizer.add_bos().then(|| tokenizer.bos_id()).flatten();
        return run_save(&args, &model, &tokens, ctx, bos, out);
    }
    let opts = PerplexityOptions {
        chunk_len: ctx,
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
        print_json(&serde_json::json!({
            "tokens": tokens.len(),
            "ppl": report.ppl,
            "nll": report.nll,
        }))?;
    } else {
        println!(
            "{} tokens in {} chunks of {}: {} scored, mean NLL {:.6}, perplexity {:.4} ({:.1} tok/s)",
            tokens.len(),
            report.chunks,
            ctx,
            report.nll.len(),
            report.mean_nll,
            report.ppl,
            tokens.len() as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

fn run_save(
    args: &PerplexityArgs,
    model: &Model,
    tokens: &[u32],
    ctx: usize,
    bos: Option<u32>,
    out: &Path,
) -> Result<()> {
    let vocab = model.config().vocab_size;
    let n_chunk = llama31_engine::kl_divergence::chunk_count(tokens.len(), ctx, args.chunks)?;
    let header = LogitsHeader {
        n_ctx: ctx,
        n_vocab: vocab,
        n_chunk,
        tokens: tokens[..n_chunk * ctx].to_vec(),
    };
    let mut writer = LogitsWriter::create(out, header)?;
    let start = std::time::Instant::now();
    let summary = save_logits(
        model,
        &tokens[..n_chunk * ctx],
        ctx,
        bos,
        &mut |rows| {
            writer
                .write_chunk(rows)
                .map_err(|e| EngineError::Perplexity(e.to_string()))
        },
        &mut |c, n, ppl| eprint!("\rchunk {}/{n}: ppl {ppl:.4}", c + 1),
    )?;
    eprintln!();
    writer.finish()?;
    let scored = summary.count;
    if args.json {
        print_json(&serde_json::json!({
            "tokens": tokens.len(),
            "chunks": summary.chunks,
            "ctx": ctx,
            "scored": scored,
            "ppl": summary.ppl,
            "ppl_uncertainty": summary.ppl_uncertainty,
            "logits_file": out.display().to_string(),
            "seconds": start.elapsed().as_secs_f64(),
        }))?;
    } else {
        println!(
            "{} tokens, {} chunks of {ctx}, {scored} scored (second half of each chunk): \
             PPL = {:.4} +/- {:.5}; logits saved to {} ({:.1} s)",
            tokens.len(),
            summary.chunks,
            summary.ppl,
            summary.ppl_uncertainty,
            out.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn run_kl(args: &PerplexityArgs, source: &Source, base: &Path) -> Result<()> {
    let mut reader = LogitsReader::open(base)?;
    let header = reader.header().clone();
    if let Some(c) = args.ctx {
        if c != header.n_ctx {
            bail!(
                "{} was saved with --ctx {}, not {c}; leave --ctx out to use the file's",
                base.display(),
                header.n_ctx
            );
        }
    }
    if args.file.is_some() {
        eprintln!(
            "note: --file is ignored: the tokens come from {}",
            base.display()
        );
    }
    let tokenizer = source.load_tokenizer()?;
    let model = crate::load::load_model(
        source,
        Some(
            crate::load::Ctx::given(header.n_ctx).with_work(scoring_work(header.n_ctx, args.batch)),
        ),
        &args.weights,
    )?;
    let vocab = model.config().vocab_size;
    if vocab != header.n_vocab {
        bail!(
            "{} holds logits over {} tokens, the model has {vocab}",
            base.display(),
            header.n_vocab
        );
    }
    let bos = tokenizer.add_bos().then(|| tokenizer.bos_id()).flatten();
    let start = std::time::Instant::now();
    if !args.json {
        eprintln!(
            "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence        Same top p"
        );
    }
    let report = kl_divergence(
        &model,
        &header.tokens,
        header.n_ctx,
        bos,
        &mut |out| {
            reader
                .read_chunk(out)
                .map_err(|e| EngineError::Perplexity(e.to_string()))
        },
        &mut |p| {
            if !args.json {
                eprintln!(
                    "{:4}    {:9.4}          {:10.5}                  {:10.5}          {:6.3} %",
                    p.chunk + 1,
                    p.ppl,
                    p.ln_ppl_ratio,
                    p.kld,
                    100.0 * p.same_top
                );
            }
        },
    )?;
    if args.json {
        let mut v = report_json(&report);
        v["seconds"] = start.elapsed().as_secs_f64().into();
        print_json(&v)?;
    } else {
        print_report(&report);
        println!(
            "({} chunks of {}, {} tokens scored, {:.1} s)",
            report.chunks,
            report.n_ctx,
            report.count,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// llama.cpp's percentile labels: `99.9%`, ` 5.0%`.
fn pct(f: f32) -> String {
    format!("{:4.1}%", f64::from(f) * 100.0)
}

/// The report in llama.cpp's wording and layout.
fn print_report(r: &KlReport) {
    println!("====== Perplexity statistics ======");
    println!(
        "Mean PPL(Q)                   : {:10.6} ± {:10.6}",
        r.ppl.value, r.ppl.uncertainty
    );
    println!(
        "Mean PPL(base)                : {:10.6} ± {:10.6}",
        r.ppl_base.value, r.ppl_base.uncertainty
    );
    println!(
        "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
        100.0 * r.ln_ppl_correlation
    );
    println!(
        "Mean ln(PPL(Q)/PPL(base))     : {:10.6} ± {:10.6}",
        r.ln_ppl_ratio.value, r.ln_ppl_ratio.uncertainty
    );
    println!(
        "Mean PPL(Q)/PPL(base)         : {:10.6} ± {:10.6}",
        r.ppl_ratio.value, r.ppl_ratio.uncertainty
    );
    println!(
        "Mean PPL(Q)-PPL(base)         : {:10.6} ± {:10.6}",
        r.ppl_diff.value, r.ppl_diff.uncertainty
    );
    println!();
    println!("====== KL divergence statistics ======");
    println!(
        "Mean    KLD: {:10.6} ± {:10.6}",
        r.kld.value, r.kld.uncertainty
    );
    println!("Maximum KLD: {:10.6}", r.kld_max);
    let (hi, lo) = r.kld_percentiles.split_at(4);
    for (f, v) in hi {
        println!("{}   KLD: {v:10.6}", pct(*f));
    }
    println!("Median  KLD: {:10.6}", r.kld_median);
    for (f, v) in lo {
        println!("{}   KLD: {v:10.6}", pct(*f));
    }
    println!("Minimum KLD: {:10.6}", r.kld_min);
    println!();
    println!("====== Token probability statistics ======");
    println!(
        "Mean    Δp: {:6.3} ± {:5.3} %",
        100.0 * r.p_diff.value,
        100.0 * r.p_diff.uncertainty
    );
    println!("Maximum Δp: {:6.3}%", 100.0 * r.p_diff_max);
    let (hi, lo) = r.p_diff_percentiles.split_at(5);
    for (f, v) in hi {
        println!("{}   Δp: {:6.3}%", pct(*f), 100.0 * v);
    }
    println!("Median  Δp: {:6.3}%", 100.0 * r.p_diff_median);
    for (f, v) in lo {
        println!("{}   Δp: {:6.3}%", pct(*f), 100.0 * v);
    }
    println!("Minimum Δp: {:6.3}%", 100.0 * r.p_diff_min);
    println!(
        "RMS Δp    : {:6.3} ± {:5.3} %",
        100.0 * r.p_diff_rms.value,
        100.0 * r.p_diff_rms.uncertainty
    );
    println!(
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * r.same_top.value,
        100.0 * r.same_top.uncertainty
    );
}

fn est(e: &llama31_engine::Estimate) -> serde_json::Value {
    serde_json::json!([e.value, e.uncertainty])
}

fn report_json(r: &KlReport) -> serde_json::Value {
    let pcts = |v: &[(f32, f32)]| -> serde_json::Value {
        v.iter()
            .map(|(f, x)| serde_json::json!([f, x]))
            .collect::<Vec<_>>()
            .into()
    };
    serde_json::json!({
        "chunks": r.chunks,
        "ctx": r.n_ctx,
        "scored": r.count,
        "ppl": est(&r.ppl),
        "ppl_base": est(&r.ppl_base),
        "ln_ppl_correlation": r.ln_ppl_correlation,
        "ln_ppl_ratio": est(&r.ln_ppl_ratio),
        "ppl_ratio": est(&r.ppl_ratio),
        "ppl_diff": est(&r.ppl_diff),
        "kld": est(&r.kld),
        "kld_max": r.kld_max,
        "kld_median": r.kld_median,
        "kld_min": r.kld_min,
        "kld_percentiles": pcts(&r.kld_percentiles),
        "p_diff": est(&r.p_diff),
        "p_diff_max": r.p_diff_max,
        "p_diff_median": r.p_diff_median,
        "p_diff_min": r.p_diff_min,
        "p_diff_percentiles": pcts(&r.p_diff_percentiles),
        "p_diff_rms": est(&r.p_diff_rms),
        "same_top": est(&r.same_top),
    })
}
