//! The single-request generator: prefill the prompt as one batch, then decode one token at a
//! time until an end token, a stop string, the token budget, or cancellation. Each token comes
//! from the same step as in the batching engine ([`Sequence::accept_logits`]).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::language_model::{Detokenizer, LanguageModel, LogitsMode};
use crate::request::{FinishReason, Request, Usage};
use crate::sequence::Sequence;
use crate::speculate::{SpecStats, Speculation};

/// Wall-clock timings of a request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// Time of the prompt's batched forward pass.
    pub prefill: Duration,
    /// Tokens in the prefill batch (the prompt minus the reused prefix).
    pub prefill_tokens: usize,
    /// Time from the end of prefill to the end of generation (sampling, single-token forward
    /// passes, detokenization and the streaming callback).
    pub decode: Duration,
    /// Forward passes run during decode (one token each, or a token and its speculative guesses).
    pub decode_tokens: usize,
}

impl Timings {
    /// Prompt tokens per second (0 if nothing was timed).
    pub fn prefill_tok_per_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill)
    }

    /// Decode forward passes per second (0 if nothing was timed).
    pub fn decode_tok_per_s(&self) -> f64 {
        rate(self.decode_tokens, self.decode)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if n == 0 || s <= 0.0 {
        0.0
    } else {
        n as f64 / s
    }
}

/// The result of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated text; always equal to the concatenation of the streamed pieces.
    pub text: String,
    /// The generated tokens, without the end token (with the tokens that carried a stop string).
    pub tokens: Vec<u32>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Timings.
    pub timings: Timings,
    /// The sampler's seed (the requested one, or the one drawn from entropy).
    pub seed: u64,
    /// What speculative decoding did (`None` without it).
    pub speculation: Option<SpecStats>,
}

/// A model session (KV cache) that outlives one request, remembering which tokens it holds, so
/// that a later request whose prompt extends them (the next turn of a chat) only prefills the new
/// tokens.
pub struct Session<M: LanguageModel + ?Sized> {
    cache: M::Cache,
    scratch: M::Scratch,
    logits: Vec<f32>,
    capacity: usize,
    cached: Vec<u32>,
    /// Speculative decoding, if enabled ([`Session::speculate`]).
    speculation: Option<Speculation>,
    draft: Vec<u32>,
}

impl<M: LanguageModel + ?Sized> Session<M> {
    /// A session for up to `capacity` positions (clamped to the model's context).
    pub fn new(model: &M, capacity: usize) -> Result<Self, EngineError> {
        let capacity = capacity.min(model.context_len());
        Ok(Self {
            cache: model.new_cache(capacity)?,
            scratch: M::Scratch::default(),
            logits: Vec::new(),
            capacity,
            cached: Vec::new(),
            speculation: None,
            draft: Vec::new(),
        })
    }

    /// Decodes speculatively from now on (the output does not change, see [`crate::speculate`]).
    pub fn speculate(&mut self, speculation: Speculation) {
        self.speculation = Some(speculation);
    }

    /// Positions this session can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The tokens whose keys and values the cache holds, in position order.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached
    }

    /// Forgets the cached tokens (the next request prefills its whole prompt).
    pub fn clear(&mut self) {
        self.cached.clear();
    }
}

/// Generates a continuation of `req.prompt` in a fresh session sized `prompt + max_tokens`.
///
/// The prompt runs as one batch; then each sampled token runs alone. `on_text` receives the text
/// as it becomes safe to show: never a broken UTF-8 character and never a prefix of a stop string
/// that later completes (such text is held back until it is known not to complete). Returning
/// `ControlFlow::Break(())` ends generation with [`FinishReason::Cancelled`]; text still held
/// back at that moment is dropped, so [`Generation::text`] always equals the concatenation of the
/// pieces passed to `on_text`.
pub fn generate<M, D>(
    model: &M,
    detokenizer: &D,
    req: &Request,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, EngineError>
where
    M: LanguageModel + ?Sized,
    D: Detokenizer + ?Sized,
{
    let max_tokens = Sequence::validate(req, model.vocab_size(), model.context_len())?;
    // `validate` guarantees prompt + max_tokens <= context.
    let mut session = Session::new(model, req.prompt.len() + max_tokens)?;
    generate_in_session(model, detokenizer, &mut session, req, on_text)
}

/// Like [`generate`], in an existing [`Session`]: the longest common prefix of the session's
/// cached tokens and the prompt is reused (at least the prompt's last token is always run, to get
/// its logits); the context is the smaller of the model's context and the session's capacity.
/// Afterwards the session holds the prompt and the generated tokens that were run through the
/// model (every generated token but the last).
pub fn generate_in_session<M, D>(
    model: &M,
    detokenizer: &D,
    session: &mut Session<M>,
    req: &Request,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, EngineError>
where
    M: LanguageModel + ?Sized,
    D: Detokenizer + ?Sized,
{
    let context = model.context_len().min(session.capacity);
    let mut seq = Sequence::new(req, model.vocab_size(), context)?;
    let mut out = Generation {
        text: String::new(),
        tokens: Vec::with_capacity(seq.max_tokens().min(1 << 16)),
        finish_reason: FinishReason::Length,
        usage: seq.usage(),
        timings: Timings::default(),
        seed: seq.seed(),
        speculation: None,
    };
    if let Some(sp) = session.speculation.as_mut() {
        sp.reset_stats();
    }
    if seq.is_finished() {
        return Ok(out);
    }

    // Reuse the cached prefix; at least the last prompt token runs to produce logits.
    let common = seq.reuse_prefix(&session.cached);
    session.cached.truncate(common);
    let t0 = Instant::now();
    let new_tokens = seq.input(usize::MAX).len();
    // Long prompts run in chunks, so a step's buffers stay the same size whatever the prompt's
    // length (a token's logits, keys and values are the same bits in a chunk of any size).
    let mut left = new_tokens;
    while left > PREFILL_CHUNK {
        run_mode(model, session, &mut seq, PREFILL_CHUNK, LogitsMode::None)?;
        left -= PREFILL_CHUNK;
    }
    run(model, session, &mut seq, left)?;
    out.timings.prefill = t0.elapsed();
    out.timings.prefill_tokens = new_tokens;
    tracing::debug!(
        prompt_tokens = seq.usage().prompt_tokens,
        cached = common,
        ms = out.timings.prefill.as_secs_f64() * 1e3,
        "prefill done"
    );
    let t1 = Instant::now();

    let vocab = model.vocab_size();
    let first = seq.accept_logits(&session.logits, detokenizer)?;
    let finish = match emit(&mut out, &mut seq, first, on_text) {
        Some(finish) => finish,
        None => 'gen: loop {
            // The pending token, with guesses after it when there are any. A pass's time
            // includes the drafting (a draft model's own passes).
            let pass = Instant::now();
            let drafted = draft(session, &seq, context);
            if drafted == 0 {
                run(model, session, &mut seq, 1)?;
                out.timings.decode_tokens += 1;
                let step = seq.accept_logits(&session.logits, detokenizer)?;
                let finish = emit(&mut out, &mut seq, step, on_text);
                if let Some(sp) = session.speculation.as_mut() {
                    sp.record_plain(pass.elapsed().as_secs_f64());
                }
                if let Some(finish) = finish {
                    break finish;
                }
                continue;
            }
            let mut tokens = Vec::with_capacity(drafted + 1);
            tokens.extend_from_slice(seq.input(1));
            tokens.extend_from_slice(&session.draft);
            model.forward_one(
                &mut session.cache,
                &tokens,
                session.cached.len(),
                LogitsMode::All,
                &mut session.scratch,
                &mut session.logits,
            )?;
            out.timings.decode_tokens += 1;
            session.cached.push(tokens[0]);
            seq.advance(1);
            // Row i holds the logits after tokens[..=i]: the sequence steps on it as plain
            // decoding would, and goes on while the token it takes is the guess run next.
            let mut accepted = 0;
            let mut row = 0;
            let finish = loop {
                let logits = session.logits.get(row * vocab..(row + 1) * vocab).ok_or(
                    EngineError::LogitsShape {
                        expected: (drafted + 1) * vocab,
                        got: session.logits.len(),
                    },
                )?;
                let step = seq.accept_logits(logits, detokenizer)?;
                let taken = step.token.as_ref().map(|t| t.id);
                if let Some(finish) = emit(&mut out, &mut seq, step, on_text) {
                    break Some(finish);
                }
                match (taken, session.draft.get(row)) {
                    (Some(t), Some(&guess)) if t == guess => {
                        // Already run: its keys and values are in the cache.
                        session.cached.push(guess);
                        seq.advance(1);
                        accepted += 1;
                        row += 1;
                    }
                    _ => break None,
                }
            };
            if let Some(sp) = session.speculation.as_mut() {
                sp.record(drafted, accepted, pass.elapsed().as_secs_f64());
            }
            if let Some(finish) = finish {
                break 'gen finish;
            }
            // The token just taken is pending; the positions of rejected guesses are
            // overwritten by the next pass.
        },
    };

    out.finish_reason = finish;
    out.usage = seq.usage();
    out.speculation = session.speculation.as_ref().map(Speculation::stats);
    out.timings.decode = t1.elapsed();
    tracing::debug!(
        completion_tokens = out.usage.completion_tokens,
        decode_tok_per_s = out.timings.decode_tok_per_s(),
        finish = ?out.finish_reason,
        "generation done"
    );
    Ok(out)
}

/// Reports one step's token and end to `out` and `on_text`; returns why generation ended, if it
/// did (a `Break` from `on_text` cancels it).
fn emit(
    out: &mut Generation,
    seq: &mut Sequence,
    step: crate::sequence::Step,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Option<FinishReason> {
    if let Some(token) = step.token {
        out.tokens.push(token.id);
        if !token.text.is_empty() {
            out.text.push_str(&token.text);
            let stop = on_text(&token.text).is_break();
            // A stop string ends generation anyway; then the callback's answer does not matter.
            if stop && !matches!(step.finish, Some(FinishReason::StopString { .. })) {
                seq.cancel();
                return Some(FinishReason::Cancelled);
            }
        }
    }
    if let Some(finish) = step.finish {
        if !step.tail.is_empty() {
            out.text.push_str(&step.tail);
            // Generation ends anyway; the callback's answer does not matter.
            let _ = on_text(&step.tail);
        }
        return Some(finish);
    }
    None
}

/// Guesses to run after the pending token (into `session.draft`): none without speculation, and
/// never more than the context, the token budget and the pending token leave room for.
fn draft<M: LanguageModel + ?Sized>(
    session: &mut Session<M>,
    seq: &Sequence,
    context: usize,
) -> usize {
    let Some(sp) = session.speculation.as_mut() else {
        return 0;
    };
    let budget = seq
        .max_tokens()
        .saturating_sub(seq.usage().completion_tokens);
    let room = context
        .saturating_sub(session.cached.len() + 1)
        .min(budget.saturating_sub(1));
    let pending = seq.input(1);
    session.cached.extend_from_slice(pending);
    sp.draft(&session.cached, room, &mut session.draft);
    session
        .cached
        .truncate(session.cached.len() - pending.len());
    session.draft.len()
}

/// Tokens of a prompt run in one forward pass: longer prompts run in chunks of this many.
pub const PREFILL_CHUNK: usize = 512;

/// Runs the next `n` input tokens of `seq` (appended to the session's cache) and leaves the
/// logits of the last one in the session.
fn run<M: LanguageModel + ?Sized>(
    model: &M,
    session: &mut Session<M>,
    seq: &mut Sequence,
    n: usize,
) -> Result<(), EngineError> {
    run_mode(model, session, seq, n, LogitsMode::Last)
}

/// [`run`] returning the logits `mode` asks for.
fn run_mode<M: LanguageModel + ?Sized>(
    model: &M,
    session: &mut Session<M>,
    seq: &mut Sequence,
    n: usize,
    mode: LogitsMode,
) -> Result<(), EngineError> {
    let tokens = seq.input(n);
    model.forward_one(
        &mut session.cache,
        tokens,
        session.cached.len(),
        mode,
        &mut session.scratch,
        &mut session.logits,
    )?;
    session.cached.extend_from_slice(tokens);
    let n = tokens.len();
    seq.advance(n);
    Ok(())
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
