//! `llama31 run` (one prompt) and `llama31 chat` (interactive), both streaming.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use llama31_chat::{Message, PromptOptions};
use llama31_engine::{
    default_stop_tokens, generate_in_session, DraftModel, FinishReason, Generation, PromptLookup,
    Request, SamplingParams, Session, Speculation,
};
use llama31_model::Model;
use llama31_tokenizer::Tokenizer;

use crate::prompt::{render, Want};
use crate::source::{self, Source, SourceExt};

/// Sampling and context options shared by `run` and `chat`.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy decoding.
    #[arg(long = "temp", default_value_t = 0.8)]
    temperature: f32,
    /// Keep only the K most likely tokens (0: off).
    #[arg(long, default_value_t = 40)]
    top_k: i32,
    /// Keep the smallest set of tokens whose probability adds up to P.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens less likely than P times the most likely one.
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalize repeats of the last 64 tokens (1.0: off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Random seed (same seed, same output).
    #[arg(long)]
    seed: Option<u64>,
    /// Context length (prompt + reply) in tokens, or `auto`: the longest that fits the memory
    /// plan, up to the model's trained context (the default). A context that does not fit, or is
    /// past the trained one, is refused.
    #[arg(long, value_name = "N|auto")]
    ctx: Option<crate::load::CtxArg>,
    /// Stop when this text is generated (may be repeated).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Speculative decoding by prompt lookup: guess the next tokens by matching the last N
    /// tokens against the prompt and the reply so far, and check the guesses in one forward pass.
    /// The output is the same token for token; it is faster where the reply repeats its input.
    #[arg(long, value_name = "N")]
    lookup_ngram: Option<usize>,
    /// Speculative decoding with a draft model: a smaller model of the same vocabulary (any
    /// format llama31 loads, hf:// too) guesses the next tokens greedily in its own KV cache, and the model
    /// checks them in one forward pass. The output is the same token for token.
    #[arg(long, value_name = "PATH", conflicts_with = "lookup_ngram")]
    draft_model: Option<PathBuf>,
    /// Most guesses checked per forward pass (adapts: grows while guesses are taken, shrinks
    /// and pauses while they are not).
    #[arg(long, value_name = "K", default_value_t = 8)]
    draft_max: usize,
}

impl SamplingArgs {
    fn ctx(&self) -> crate::load::Ctx {
        crate::load::Ctx::or_auto(self.ctx)
    }

    /// A session for `model`, speculating if asked to.
    fn session(&self, loaded: &Loaded) -> Result<Session<Model>> {
        let model = &loaded.model;
        let ctx = self.ctx().on(model);
        let mut session = Session::new(model, ctx)?;
        if self.draft_max == 0 {
            bail!("--draft-max must be at least 1");
        }
        if let Some(n) = self.lookup_ngram {
            if n == 0 {
                bail!("--lookup-ngram must be at least 1");
            }
            session.speculate(Speculation::new(
                Box::new(PromptLookup::new(n)),
                self.draft_max,
            ));
        }
        if let Some(path) = &self.draft_model {
            let draft = load_draft(path, &loaded.tokenizer, model.config().vocab_size, ctx)?;
            session.speculate(Speculation::new(
                Box::new(DraftModel::new(draft, ctx)?),
                self.draft_max,
            ));
        }
        Ok(session)
    }

    fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
    #[arg(long)]
    model: PathBuf,
    /// The prompt (a user message for chat models; the text to continue with --raw).
    #[arg(
        long,
        required_unless_present = "messages",
        conflicts_with = "messages"
    )]
    prompt: Option<String>,
    /// A JSON file of OpenAI-style messages to reply to (chat models), instead of --prompt.
    #[arg(long)]
    messages: Option<PathBuf>,
    /// Maximum tokens to generate (default: until the model stops or the context is full).
    #[arg(short = 'n', long = "max-tokens")]
    max_tokens: Option<usize>,
    /// Plain completion: no chat format even for chat models.
    #[arg(long)]
    raw: bool,
    /// A system message (chat models only).
    #[arg(long)]
    system: Option<String>,
    /// Print one JSON object (text, prompt and generated token ids, finish reason, usage) at the
    /// end instead of streaming text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

#[derive(Args)]
pub struct ChatArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
    #[arg(long)]
    model: PathBuf,
    /// A system message for the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Maximum tokens per reply (default: until the model stops or the context is full).
    #[arg(short = 'n', long = "max-tokens")]
    max_tokens: Option<usize>,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

/// A loaded model with everything generation needs.
/// The draft model at `path` for a model whose tokenizer is `tokenizer`, for contexts of `ctx`:
/// refused unless its vocabulary is the same, token for token.
pub(crate) fn load_draft(
    path: &std::path::Path,
    tokenizer: &Tokenizer,
    target_vocab: usize,
    ctx: usize,
) -> Result<Model> {
    let source = source::detect_model(path)?;
    let theirs = source
        .load_tokenizer()
        .with_context(|| format!("the draft model's tokenizer ({})", path.display()))?;
    let same = theirs.vocab_size() == tokenizer.vocab_size()
        && (0..tokenizer.vocab_size() as u32)
            .all(|id| theirs.token_bytes(id) == tokenizer.token_bytes(id));
    if !same {
        bail!(
            "the draft model {} has another vocabulary ({} tokens) than the model ({} tokens): \
             speculative decoding needs the same tokenizer",
            path.display(),
            theirs.vocab_size(),
            tokenizer.vocab_size()
        );
    }
    let model = crate::load::load_model(
        &source,
        Some(crate::load::Ctx::given(ctx)),
        &crate::load::WeightArgs::default(),
    )
    .with_context(|| format!("loading the draft model {}", path.display()))?;
    if model.config().vocab_size != target_vocab {
        bail!(
            "the draft model scores {} tokens, the model {target_vocab}: speculative decoding needs \
             the same vocabulary",
            model.config().vocab_size
        );
    }
    Ok(model)
}

struct Loaded {
    source: Source,
    tokenizer: Tokenizer,
    model: Model,
    stop_tokens: Vec<u32>,
}

fn load(
    path: &std::path::Path,
    ctx: crate::load::Ctx,
    weights: &crate::load::WeightArgs,
) -> Result<Loaded> {
    let source = source::detect_model(path)?;
    let tokenizer = source.load_tokenizer()?;
    if ctx.tokens < 2 {
        bail!("--ctx must be at least 2, got {}", ctx.tokens);
    }
    let model = crate::load::load_model(&source, Some(ctx), weights)?;
    let stop_tokens = default_stop_tokens(&tokenizer, &model.config().eos_token_ids);
    Ok(Loaded {
        source,
        tokenizer,
        model,
        stop_tokens,
    })
}

/// Streams one reply to standard output; `cancel` (set by Ctrl-C in chat) stops it early.
fn stream(
    loaded: &Loaded,
    session: &mut Session<Model>,
    prompt: Vec<u32>,
    max_tokens: Option<usize>,
    sampling: &SamplingArgs,
    cancel: Option<&AtomicBool>,
    quiet: bool,
) -> Result<Generation> {
    let req = Request {
        max_tokens,
        sampling: sampling.params(),
        stop_tokens: loaded.stop_tokens.clone(),
        stop_strings: sampling.stop.clone(),
        ..Request::new(prompt)
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let generation = generate_in_session(
        &loaded.model,
        &loaded.tokenizer,
        session,
        &req,
        &mut |piece| {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return ControlFlow::Break(());
            }
            if quiet {
                return ControlFlow::Continue(());
            }
            // A closed stdout (e.g. piped into `head`) ends generation.
            match out.write_all(piece.as_bytes()).and_then(|_| out.flush()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        },
    )?;
    if !quiet {
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(generation)
}

/// Tokens after the first (which comes from the prompt's pass) per second of decoding.
pub(crate) fn decode_rate(g: &Generation) -> f64 {
    let secs = g.timings.decode.as_secs_f64();
    if secs > 0.0 {
        g.usage.completion_tokens.saturating_sub(1) as f64 / secs
    } else {
        0.0
    }
}

fn report(g: &Generation) {
    let rate = decode_rate(g);
    let spec = g.speculation.map_or(String::new(), |s| {
        format!(
            ", {} forward passes, {} of {} guesses taken",
            g.timings.decode_tokens, s.accepted, s.drafted
        )
    });
    eprintln!(
        "[{} prompt tokens at {:.1} tok/s, {} generated at {rate:.1} tok/s, {}{spec}]",
        g.usage.prompt_tokens,
        g.timings.prefill_tok_per_s(),
        g.usage.completion_tokens,
        match g.finish_reason {
            FinishReason::Cancelled => "cancelled",
            ref other => other.as_openai_str(),
        }
    );
}

fn chat_prompt(loaded: &Loaded, messages: &[Message]) -> Result<Vec<u32>> {
    let opts = PromptOptions::default();
    Ok(render(
        &loaded.source,
        &loaded.tokenizer,
        messages,
        Some(&opts),
        Want::TextAndIds,
    )?
    .ids)
}

pub fn run(args: RunArgs) -> Result<()> {
    let loaded = load(&args.model, args.sampling.ctx(), &args.weights)?;
    let chat = !args.raw && loaded.source.is_instruct()?;
    let prompt = if let Some(file) = &args.messages {
        if args.raw {
            bail!("--messages needs the chat format (drop --raw)");
        }
        let json = std::fs::read_to_string(file)
            .with_context(|| format!("reading messages file {}", file.display()))?;
        let mut messages = llama31_chat::parse_messages(&json)
            .with_context(|| format!("in messages file {}", file.display()))?;
        if let Some(system) = &args.system {
            messages.insert(0, Message::system(system.clone()));
        }
        chat_prompt(&loaded, &messages)?
    } else if chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::system(system.clone()));
        }
        messages.push(Message::user(args.prompt.clone().unwrap_or_default()));
        chat_prompt(&loaded, &messages)?
    } else {
        if args.system.is_some() {
            bail!("--system needs a chat model (and no --raw)");
        }
        let mut ids = Vec::new();
        if loaded.tokenizer.add_bos() {
            ids.extend(loaded.tokenizer.bos_id());
        }
        ids.extend(
            loaded
                .tokenizer
                .encode(args.prompt.as_deref().unwrap_or_default(), false),
        );
        ids
    };
    let mut session = args.sampling.session(&loaded)?;
    let g = stream(
        &loaded,
        &mut session,
        prompt.clone(),
        args.max_tokens,
        &args.sampling,
        None,
        args.json,
    )?;
    report(&g);
    if args.json {
        let out = serde_json::json!({
            "text": g.text,
            "prompt_tokens": prompt,
            "tokens": g.tokens,
            "finish_reason": g.finish_reason.as_openai_str(),
            "usage": {
                "prompt_tokens": g.usage.prompt_tokens,
                "completion_tokens": g.usage.completion_tokens,
            },
            "seed": g.seed,
            "tok_per_s": {
                "prompt": g.timings.prefill_tok_per_s(),
                "decode": decode_rate(&g),
            },
            "speculation": g.speculation.map(|s| serde_json::json!({
                "passes": g.timings.decode_tokens,
                "drafted": s.drafted,
                "accepted": s.accepted,
            })),
        });
        println!("{out}");
    }
    Ok(())
}

/// What `/help` (or an unknown command) prints in `llama31 chat`.
const CHAT_COMMANDS: &str = "commands: /reset clears the conversation, /exit (or /quit, Ctrl-D) \
     quits, /help lists these; Ctrl-C stops a reply; start a line with a space to send a \
     message that begins with /";

pub fn chat(args: ChatArgs) -> Result<()> {
    let loaded = load(&args.model, args.sampling.ctx(), &args.weights)?;
    let cancel = Arc::new(AtomicBool::new(false));
    // Ctrl-C stops a reply; at the prompt it starts a new prompt line (the terminal already
    // dropped what was typed), and a second one in a row quits.
    let generating = Arc::new(AtomicBool::new(false));
    let interrupts = Arc::new(AtomicUsize::new(0));
    {
        let (cancel, generating, interrupts) =
            (cancel.clone(), generating.clone(), interrupts.clone());
        ctrlc::set_handler(move || {
            if generating.load(Ordering::Relaxed) {
                cancel.store(true, Ordering::Relaxed);
            } else if interrupts.fetch_add(1, Ordering::Relaxed) >= 1 {
                eprintln!();
                std::process::exit(130);
            } else {
                eprint!("\n(Ctrl-C again quits)\n> ");
            }
        })
        .context("installing the Ctrl-C handler")?;
    }
    // One KV cache for the whole conversation: each turn only prefills what is new.
    let mut session = args.sampling.session(&loaded)?;
    let mut history: Vec<Message> = Vec::new();
    if let Some(system) = &args.system {
        history.push(Message::system(system.clone()));
    }
    eprintln!("Chatting with {}. /reset clears the conversation, /exit or Ctrl-D quits, Ctrl-C stops a reply, /help lists the commands.", loaded.source.path().display());
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        interrupts.store(0, Ordering::Relaxed);
        let text = line.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            continue;
        }
        // A line that is one word starting with "/" is a command (a leading space sends it as
        // text); an unknown one is not sent to the model.
        if text.starts_with('/') && !text.contains(char::is_whitespace) {
            match text {
                "/exit" | "/quit" => break,
                "/reset" => {
                    history.truncate(usize::from(args.system.is_some()));
                    eprintln!("(conversation cleared)");
                }
                "/help" => eprintln!("{CHAT_COMMANDS}"),
                other => eprintln!("unknown command {other}\n{CHAT_COMMANDS}"),
            }
            continue;
        }
        history.push(Message::user(text.to_string()));
        let prompt = chat_prompt(&loaded, &history)?;
        cancel.store(false, Ordering::Relaxed);
        generating.store(true, Ordering::Relaxed);
        let reply = stream(
            &loaded,
            &mut session,
            prompt,
            args.max_tokens,
            &args.sampling,
            Some(&cancel),
            false,
        );
        generating.store(false, Ordering::Relaxed);
        match reply {
            Ok(g) => {
                report(&g);
                history.push(Message::assistant(g.text.clone()));
            }
            Err(e) => {
                // A reply that cannot be produced (e.g. the conversation outgrew the context)
                // is reported; the conversation stays usable (/reset).
                eprintln!("error: {}", crate::report::error_line(&e));
                history.pop();
            }
        }
    }
    Ok(())
}
