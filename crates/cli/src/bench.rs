//! `llama31 bench`: prefill and decode throughput, timed like llama.cpp's `llama-bench`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use llama31_model::LogitsMode;

use crate::source;

#[derive(Args)]
pub struct BenchArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
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
    /// Also decode `n` tokens greedily after a prompt of `p` tokens (the text of --prompt, or
    /// arbitrary tokens) with speculative decoding by this draft model, and without: acceptance
    /// rate, mean guesses taken per pass and tok/s of both.
    #[arg(long, value_name = "PATH", conflicts_with = "lookup_ngram")]
    draft_model: Option<PathBuf>,
    /// The same with prompt lookup over the last N tokens instead of a draft model.
    #[arg(long, value_name = "N")]
    lookup_ngram: Option<usize>,
    /// Most guesses per pass for --draft-model / --lookup-ngram.
    #[arg(long, value_name = "K", default_value_t = 8)]
    draft_max: usize,
    /// The prompt text of the speculative test (plain completion; default: arbitrary tokens).
    #[arg(long)]
    prompt: Option<String>,
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
    let mut ctx = args.depth + args.n_prompt.max(args.n_gen).max(1);
    if args.draft_model.is_some() || args.lookup_ngram.is_some() {
        // Room for the speculative test's prompt (its text's tokens, at most a few per byte)
        // and reply.
        let prompt = args
            .prompt
            .as_ref()
            .map_or(args.n_prompt.max(1), |p| p.len() + 2);
        ctx = ctx.max(prompt + args.n_gen + 1);
    }
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
    let spec = if args.draft_model.is_some() || args.lookup_ngram.is_some() {
        Some(speculative(&args, &source, &model)?)
    } else {
        None
    };
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
                "lora": adapters, "merge_lora": args.weights.merge_lora(),
                "speculative": spec})
        );
    }
    Ok(())
}

/// Greedy decoding of `n_gen` tokens after `n_prompt` with and without speculation (best of
/// `reps` each; the replies must be the same tokens): tok/s, acceptance, guesses per pass.
fn speculative(
    args: &BenchArgs,
    source: &crate::source::Source,
    model: &llama31_model::Model,
) -> Result<serde_json::Value> {
    use crate::source::SourceExt;
    use llama31_engine::{
        generate_in_session, DraftModel, PromptLookup, Request, SamplingParams, Session,
        Speculation,
    };
    let tokenizer = source.load_tokenizer()?;
    let vocab = model.config().vocab_size as u32;
    let prompt: Vec<u32> = match &args.prompt {
        Some(text) => tokenizer.encode(text, true),
        None => (0..args.n_prompt.max(1))
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) % vocab)
            .collect(),
    };
    let n_gen = args.n_gen.max(1);
    let ctx = (prompt.len() + n_gen + 1).min(model.max_seq_len());
    let req = Request {
        sampling: SamplingParams::greedy(),
        max_tokens: Some(n_gen),
        ..Request::new(prompt.clone())
    };
    let rate = crate::generate::decode_rate;
    let (mut plain_best, mut spec_best) = (0.0f64, 0.0f64);
    let mut last = None;
    for _ in 0..args.reps {
        let mut session = Session::new(model, ctx)?;
        let plain = generate_in_session(model, &tokenizer, &mut session, &req, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })?;
        plain_best = plain_best.max(rate(&plain));
        let mut session = Session::new(model, ctx)?;
        // A fresh draft model each repetition (its cache starts empty, like the target's).
        let drafter: Box<dyn llama31_engine::Drafter> = match &args.draft_model {
            Some(path) => {
                let d =
                    crate::generate::load_draft(path, &tokenizer, model.config().vocab_size, ctx)?;
                Box::new(DraftModel::new(d, ctx)?)
            }
            None => Box::new(PromptLookup::new(args.lookup_ngram.unwrap_or(3).max(1))),
        };
        session.speculate(Speculation::new(drafter, args.draft_max.max(1)));
        let spec = generate_in_session(model, &tokenizer, &mut session, &req, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })?;
        if spec.tokens != plain.tokens {
            bail!("speculative decoding changed the reply: a bug, please report it");
        }
        spec_best = spec_best.max(rate(&spec));
        last = Some(spec);
    }
    let Some(spec) = last else {
        bail!("--reps must be at least 1");
    };
    let st = spec.speculation.unwrap_or_default();
    let with_guesses = st.passes.max(1);
    println!(
        "speculative tg{n_gen}: {spec_best:.2} tok/s vs {plain_best:.2} plain ({:.2}x); {} of {} \
         guesses taken ({:.0} %), {:.2} per pass with guesses; {} passes for {} tokens",
        if plain_best > 0.0 {
            spec_best / plain_best
        } else {
            0.0
        },
        st.accepted,
        st.drafted,
        100.0 * st.acceptance(),
        st.accepted as f64 / with_guesses as f64,
        spec.timings.decode_tokens,
        spec.usage.completion_tokens,
    );
    Ok(serde_json::json!({
        "tg": spec_best, "tg_plain": plain_best, "drafted": st.drafted, "accepted": st.accepted,
        "acceptance": st.acceptance(), "passes": spec.timings.decode_tokens,
    }))
}
