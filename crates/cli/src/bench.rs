//! `llama31 bench`: prefill and decode throughput, timed like llama.cpp's `llama-bench`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use llama31_model::LogitsMode;

use crate::source;

#[derive(Args)]
pub struct BenchArgs {
    /// A .gguf file, an HF model dir or a Meta model dir.
    #[arg(long)]
    model: PathBuf,
    /// Prompt tokens processed as one batch (0: skip the prefill test).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Tokens generated one at a time from an empty context (0: skip the decode test).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Tokens already in the context before each test (llama-bench's `-d`): prefilled once,
    /// then each repetition starts from there, so decode attends over `depth` positions.
    #[arg(short = 'd', long, default_value_t = 0)]
    depth: usize,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Repetitions; the best one is reported.
    #[arg(short = 'r', long, default_value_t = 3)]
    reps: usize,
    /// Print `{"pp": tok/s, "tg": tok/s}` on the last line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("setting up {t} threads: {e}"))?;
    }
    let source = source::detect_model(&args.model)?;
    let ctx = args.depth + args.n_prompt.max(args.n_gen).max(1);
    let model =
        crate::load::load_model(&source, Some(crate::load::Ctx::given(ctx)), &args.weights)?;
    let vocab = model.config().vocab_size as u32;
    // Token ids as llama-bench uses them: arbitrary valid ids (the content does not change the cost).
    let token = |i: usize| (i as u32).wrapping_mul(2_654_435_761) % vocab;
    // The context before each test, prefilled once.
    let mut cache = model.new_cache(ctx)?;
    let depth: Vec<u32> = (0..args.depth).map(|i| token(i + 7)).collect();
    for (i, chunk) in depth.chunks(llama31_engine::PREFILL_CHUNK).enumerate() {
        let at = i * llama31_engine::PREFILL_CHUNK;
        model.forward(chunk, at, &mut cache, LogitsMode::None)?;
    }
    let d = args.depth;
    let mut best_pp = 0.0f64;
    let mut best_tg = 0.0f64;
    for _ in 0..args.reps {
        if args.n_prompt > 0 {
            cache.truncate(d);
            let prompt: Vec<u32> = (0..args.n_prompt).map(token).collect();
            let start = Instant::now();
            model.forward(&prompt, d, &mut cache, LogitsMode::Last)?;
            best_pp = best_pp.max(args.n_prompt as f64 / start.elapsed().as_secs_f64());
        }
        if args.n_gen > 0 {
            cache.truncate(d);
            let mut logits = Vec::new();
            let start = Instant::now();
            for pos in 0..args.n_gen {
                model.forward_into(
                    &[token(pos)],
                    d + pos,
                    &mut cache,
                    LogitsMode::Last,
                    &mut logits,
                )?;
            }
            best_tg = best_tg.max(args.n_gen as f64 / start.elapsed().as_secs_f64());
        }
    }
    let threads = rayon::current_num_threads();
    let act = args.weights.activations();
    let kv = args.weights.kv_type();
    let at = if d > 0 {
        format!(" @ d{d}")
    } else {
        String::new()
    };
    let lora = match (args.weights.lora().len(), args.weights.merge_lora()) {
        (0, _) => String::new(),
        (n, true) => format!(", {n} LoRA merged"),
        (n, false) => format!(", {n} LoRA unmerged"),
    };
    if args.n_prompt > 0 {
        println!(
            "pp{}{at}: {best_pp:.2} tok/s ({threads} threads, best of {}, {act} activations, \
             {kv} KV cache{lora})",
            args.n_prompt, args.reps
        );
    }
    if args.n_gen > 0 {
        println!(
            "tg{}{at}: {best_tg:.2} tok/s ({threads} threads, best of {}, {act} activations, \
             {kv} KV cache{lora})",
            args.n_gen, args.reps
        );
    }
    if args.json {
        let act = act.name();
        let adapters: Vec<String> = args
            .weights
            .lora()
            .iter()
            .map(|l| l.path.display().to_string())
            .collect();
        println!(
            "{}",
            serde_json::json!({"pp": best_pp, "tg": best_tg, "activations": act,
                "kv_type": kv.name(), "depth": d,
                "lora": adapters, "merge_lora": args.weights.merge_lora()})
        );
    }
    Ok(())
}
