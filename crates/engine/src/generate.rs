//! The generation loop: prefill the prompt as one batch, then decode one token at a time until an
//! end token, a stop string, the token budget, or cancellation.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::TextOut;

/// What the generation loop and perplexity need from a model (implemented by toy models in
/// tests, and by the real model through an adapter).
pub trait LanguageModel {
    /// Per-sequence state (the KV cache).
    type Session;

    /// Number of logits per position.
    fn vocab_size(&self) -> usize;

    /// The longest sequence (prompt + generated tokens) the model supports.
    fn context_len(&self) -> usize;

    /// A fresh session able to hold `max_seq` positions.
    fn new_session(&self, max_seq: usize) -> Result<Self::Session, EngineError>;

    /// Runs `tokens` at positions `start_pos..start_pos + tokens.len()` (appending to the
    /// session's cache) and returns the logits of the last position (`vocab_size` floats).
    fn forward(
        &self,
        session: &mut Self::Session,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError>;

    /// Like [`LanguageModel::forward`], writing the logits into `out` (an implementation can
    /// reuse its allocation; the default just replaces it).
    fn forward_into(
        &self,
        session: &mut Self::Session,
        tokens: &[u32],
        start_pos: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        *out = self.forward(session, tokens, start_pos)?;
        Ok(())
    }

    /// Like [`LanguageModel::forward`] but returns the logits of every position, row-major
    /// (`tokens.len() * vocab_size` floats). The default runs one token at a time.
    fn forward_all(
        &self,
        session: &mut Self::Session,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let vocab = self.vocab_size();
        let mut out = Vec::with_capacity(tokens.len().saturating_mul(vocab));
        for (i, &t) in tokens.iter().enumerate() {
            let logits = self.forward(session, &[t], start_pos + i)?;
            out.extend_from_slice(&logits);
        }
        Ok(out)
    }
}

/// Turns token ids into bytes (special tokens as their text).
pub trait Detokenizer {
    /// Appends the bytes of token `id` to `out`.
    fn token_bytes(&self, id: u32, out: &mut Vec<u8>);
}

impl Detokenizer for llama31_tokenizer::Tokenizer {
    /// Unknown ids (e.g. padding rows of a larger model vocabulary) add no bytes.
    fn token_bytes(&self, id: u32, out: &mut Vec<u8>) {
        if let Some(b) = llama31_tokenizer::Tokenizer::token_bytes(self, id) {
            out.extend_from_slice(b);
        }
    }
}

/// The end-of-generation tokens: the tokenizer's EOS list, `<|eot_id|>`, `<|eom_id|>` and
/// `<|end_of_text|>` where the vocabulary has them, and `extra` (e.g. the model config's
/// `eos_token_ids` from GGUF / HF `generation_config`); sorted, without duplicates.
pub fn default_stop_tokens(tokenizer: &llama31_tokenizer::Tokenizer, extra: &[u32]) -> Vec<u32> {
    let mut ids: Vec<u32> = tokenizer.eos_ids().to_vec();
    ids.extend_from_slice(extra);
    for name in ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"] {
        if let Some(id) = tokenizer.token_id(name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The prompt, already tokenized (BOS and chat formatting included). Must not be empty.
    pub prompt: Vec<u32>,
    /// Upper bound on generated tokens (the end token counts). `None`: until the context is full.
    pub max_tokens: Option<usize>,
    /// How to pick tokens.
    pub sampling: SamplingParams,
    /// Tokens that end generation (see [`default_stop_tokens`]); they are not part of the output.
    pub stop_tokens: Vec<u32>,
    /// Text that ends generation; it is not part of the output. Empty strings are an error.
    pub stop_strings: Vec<String>,
}

impl GenerateRequest {
    /// A request with default sampling and no stop rules.
    pub fn new(prompt: Vec<u32>) -> Self {
        Self {
            prompt,
            max_tokens: None,
            sampling: SamplingParams::default(),
            stop_tokens: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end token (not included in the output).
    StopToken {
        /// The end token.
        id: u32,
    },
    /// The text reached a stop string (the text is cut before it).
    StopString {
        /// Index in [`GenerateRequest::stop_strings`].
        index: usize,
        /// The stop string.
        stop: String,
    },
    /// `max_tokens` tokens were generated (or the context is full).
    Length,
    /// The streaming callback returned `ControlFlow::Break` (or the client went away).
    Cancelled,
    /// The output is a complete document of its constraint (e.g. a JSON schema) that admits no
    /// continuation.
    Complete,
}

impl FinishReason {
    /// OpenAI's `finish_reason`: `"stop"` for end tokens, stop strings and cancellation,
    /// `"length"` for the token budget.
    pub fn as_openai_str(&self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::StopToken { .. } | Self::StopString { .. } | Self::Cancelled | Self::Complete => {
                "stop"
            }
        }
    }
}

/// Token counts of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Sampled tokens, the end token included.
    pub completion_tokens: usize,
    /// Sum of both.
    pub total_tokens: usize,
    /// Prompt tokens whose KV entries were reused from the session (not prefilled again).
    pub cached_tokens: usize,
}

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
    /// Single-token forward passes run during decode.
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
}

/// Checks that `prompt` is non-empty, within the vocabulary, and that `prompt + max_tokens` fits
/// the context; returns the effective `max_tokens` (`None`: the rest of the context, which must
/// leave room for at least one token).
pub fn check_request(
    prompt: &[u32],
    max_tokens: Option<usize>,
    vocab_size: usize,
    context: usize,
) -> Result<usize, EngineError> {
    let prompt_tokens = prompt.len();
    // Without a limit, generate until the context is full; at least one token must fit.
    let max_tokens = max_tokens.unwrap_or(context.saturating_sub(prompt_tokens).max(1));
    let fits = prompt_tokens
        .checked_add(max_tokens)
        .is_some_and(|n| n <= context);
    if prompt_tokens == 0 || !fits {
        return Err(EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens,
            context,
        });
    }
    if let Some((index, &id)) = prompt
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= vocab_size)
    {
        return Err(EngineError::TokenOutOfVocab {
            id,
            index,
            vocab_size,
        });
    }
    Ok(max_tokens)
}

/// A model session (KV cache) that outlives one request, remembering which tokens it holds, so
/// that a later request whose prompt extends them (the next turn of a chat) only prefills the new
/// tokens.
pub struct Session<M: LanguageModel + ?Sized> {
    inner: M::Session,
    capacity: usize,
    cached: Vec<u32>,
}

impl<M: LanguageModel + ?Sized> Session<M> {
    /// A session for up to `capacity` positions (clamped to the model's context).
    pub fn new(model: &M, capacity: usize) -> Result<Self, EngineError> {
        let capacity = capacity.min(model.context_len());
        Ok(Self {
            inner: model.new_session(capacity)?,
            capacity,
            cached: Vec::new(),
        })
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
    req: &GenerateRequest,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, EngineError>
where
    M: LanguageModel + ?Sized,
    D: Detokenizer + ?Sized,
{
    let max_tokens = check_request(
        &req.prompt,
        req.max_tokens,
        model.vocab_size(),
        model.context_len(),
    )?;
    // `check_request` guarantees prompt + max_tokens <= context.
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
    req: &GenerateRequest,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, EngineError>
where
    M: LanguageModel + ?Sized,
    D: Detokenizer + ?Sized,
{
    let vocab = model.vocab_size();
    let context = model.context_len().min(session.capacity);
    let max_tokens = check_request(&req.prompt, req.max_tokens, vocab, context)?;
    let mut sampler = Sampler::new(&req.sampling, vocab)?;
    let mut textout = TextOut::new(&req.stop_strings)?;
    sampler.accept_prompt(&req.prompt);
    let prompt_tokens = req.prompt.len();

    let mut out = Generation {
        text: String::new(),
        tokens: Vec::with_capacity(max_tokens.min(1 << 16)),
        finish_reason: FinishReason::Length,
        usage: Usage {
            prompt_tokens,
            completion_tokens: 0,
            total_tokens: prompt_tokens,
            cached_tokens: 0,
        },
        timings: Timings::default(),
        seed: sampler.seed(),
    };
    if max_tokens == 0 {
        return Ok(out);
    }

    // Reuse the cached prefix; at least the last prompt token runs to produce logits.
    let common = session
        .cached
        .iter()
        .zip(&req.prompt)
        .take_while(|(a, b)| a == b)
        .count()
        .min(prompt_tokens - 1);
    session.cached.truncate(common);
    let new_tokens = req.prompt.get(common..).unwrap_or_default();
    let t0 = Instant::now();
    let mut logits = Vec::with_capacity(vocab);
    model.forward_into(&mut session.inner, new_tokens, common, &mut logits)?;
    session.cached.extend_from_slice(new_tokens);
    out.timings.prefill = t0.elapsed();
    out.timings.prefill_tokens = new_tokens.len();
    out.usage.cached_tokens = common;
    tracing::debug!(
        prompt_tokens,
        cached = common,
        ms = out.timings.prefill.as_secs_f64() * 1e3,
        "prefill done"
    );
    let t1 = Instant::now();

    let mut bytes = Vec::new();
    let mut emit = String::new();
    let mut pos = prompt_tokens;
    let finish = loop {
        if logits.len() != vocab {
            return Err(EngineError::LogitsShape {
                expected: vocab,
                got: logits.len(),
            });
        }
        let token = sampler.sample(&logits)?;
        sampler.accept(token);
        out.usage.completion_tokens += 1;
        if req.stop_tokens.contains(&token) {
            break FinishReason::StopToken { id: token };
        }
        out.tokens.push(token);

        bytes.clear();
        detokenizer.token_bytes(token, &mut bytes);
        emit.clear();
        if let Some(index) = textout.push(&bytes, &mut emit) {
            out.text.push_str(&emit);
            if !emit.is_empty() {
                // Generation ends anyway; the callback's answer does not matter.
                let _ = on_text(&emit);
            }
            break stop_string(&req.stop_strings, index);
        }
        if !emit.is_empty() {
            out.text.push_str(&emit);
            if on_text(&emit).is_break() {
                break FinishReason::Cancelled;
            }
        }
        if out.usage.completion_tokens >= max_tokens {
            break FinishReason::Length;
        }
        model.forward_into(&mut session.inner, &[token], pos, &mut logits)?;
        session.cached.push(token);
        pos += 1;
        out.timings.decode_tokens += 1;
    };

    let finish = match finish {
        FinishReason::Length | FinishReason::StopToken { .. } => {
            // Release held bytes and text: no stop string can complete any more, except one
            // that a trailing U+FFFD completes.
            emit.clear();
            let hit = textout.finish(&mut emit);
            if !emit.is_empty() {
                out.text.push_str(&emit);
                let _ = on_text(&emit);
            }
            match hit {
                Some(index) => stop_string(&req.stop_strings, index),
                None => finish,
            }
        }
        other => other,
    };
    out.finish_reason = finish;
    out.usage.total_tokens = prompt_tokens + out.usage.completion_tokens;
    out.timings.decode = t1.elapsed();
    tracing::debug!(
        completion_tokens = out.usage.completion_tokens,
        decode_tok_per_s = out.timings.decode_tok_per_s(),
        finish = ?out.finish_reason,
        "generation done"
    );
    Ok(out)
}

fn stop_string(stops: &[String], index: usize) -> FinishReason {
    FinishReason::StopString {
        index,
        stop: stops.get(index).cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
