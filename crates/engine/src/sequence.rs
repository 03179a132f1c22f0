//! One sequence being generated, and the one step that turns a row of logits into its next
//! token: sample (within the constraint), apply the stop rules, produce the token's text.
//!
//! The single-request generator ([`crate::generate()`]) and the batching [`crate::Engine`] both
//! run their sequences through [`Sequence::accept_logits`]; they differ only in how they run the
//! model and where the text goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::constraint::ConstraintMatcher;
use crate::error::EngineError;
use crate::language_model::Detokenizer;
use crate::request::{check_request, FinishReason, Request, TokenLogprob, Usage};
use crate::sampler::Sampler;
use crate::stop::TextOut;

/// A generated token, as reported to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenOut {
    pub id: u32,
    /// The text this token made safe to show (may be empty: held back while it could become a
    /// stop string or a broken character).
    pub text: String,
    /// The token's log-probability, when the request asks for them.
    pub logprob: Option<TokenLogprob>,
}

/// The outcome of [`Sequence::accept_logits`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The sampled token; `None` for an end token (not part of the output) or a cancelled
    /// sequence.
    pub token: Option<TokenOut>,
    /// Text released because generation ended (bytes held back for a stop string or a broken
    /// character that can no longer complete), to show after `token`'s text. Empty unless
    /// `finish` is set.
    pub tail: String,
    /// `Some` when the sequence has ended.
    pub finish: Option<FinishReason>,
}

/// The state of one sequence: its prompt and how much of it the cache holds, the sampled token
/// still to run, the sampler, the stop rules and text, the constraint, the counts and the
/// cancellation flag.
pub struct Sequence {
    prompt: Vec<u32>,
    /// Prompt tokens whose keys and values the cache holds (reused or prefilled).
    prompt_done: usize,
    /// The sampled token to run next.
    pending: Option<u32>,
    vocab: usize,
    max_tokens: usize,
    stop_tokens: Vec<u32>,
    stop_strings: Vec<String>,
    logprobs: Option<usize>,
    sampler: Sampler,
    text: TextOut,
    constraint: Option<Box<dyn ConstraintMatcher>>,
    usage: Usage,
    cancel: Arc<AtomicBool>,
    finish: Option<FinishReason>,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequence")
            .field("prompt_tokens", &self.prompt.len())
            .field("prompt_done", &self.prompt_done)
            .field("pending", &self.pending)
            .field("usage", &self.usage)
            .field("finish", &self.finish)
            .finish_non_exhaustive()
    }
}

impl Sequence {
    /// Checks `req` against a model of `vocab` tokens and a context of `context` positions
    /// (prompt, ids, sampling values, stop strings); returns the effective `max_tokens`.
    pub fn validate(req: &Request, vocab: usize, context: usize) -> Result<usize, EngineError> {
        let max_tokens = check_request(&req.prompt, req.max_tokens, vocab, context)?;
        Sampler::new(&req.sampling, vocab)?;
        TextOut::new(&req.stop_strings)?;
        Ok(max_tokens)
    }

    /// A sequence for `req` (validated as by [`Sequence::validate`]); nothing of its prompt is
    /// cached yet. With `max_tokens == 0` it is finished at once ([`FinishReason::Length`]).
    pub fn new(req: &Request, vocab: usize, context: usize) -> Result<Self, EngineError> {
        let max_tokens = check_request(&req.prompt, req.max_tokens, vocab, context)?;
        let mut sampler = Sampler::new(&req.sampling, vocab)?;
        let text = TextOut::new(&req.stop_strings)?;
        sampler.accept_prompt(&req.prompt);
        let prompt_tokens = req.prompt.len();
        Ok(Self {
            prompt: req.prompt.clone(),
            prompt_done: 0,
            pending: None,
            vocab,
            max_tokens,
            stop_tokens: req.stop_tokens.clone(),
            stop_strings: req.stop_strings.clone(),
            logprobs: req.logprobs,
            sampler,
            text,
            constraint: req.constraint.as_ref().map(|c| c.matcher()),
            usage: Usage {
                prompt_tokens,
                completion_tokens: 0,
                total_tokens: prompt_tokens,
                cached_tokens: 0,
            },
            cancel: Arc::new(AtomicBool::new(false)),
            finish: (max_tokens == 0).then_some(FinishReason::Length),
            bytes: Vec::new(),
        })
    }

    /// Uses `flag` as the cancellation flag (set from another thread to stop the sequence).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = flag;
        self
    }

    /// Reuses the longest common prefix of `cached` (the tokens a cache holds) and the prompt,
    /// leaving at least the last prompt token to run (for its logits). Returns the number of
    /// positions reused: the cache must be run from there.
    pub fn reuse_prefix(&mut self, cached: &[u32]) -> usize {
        let common = common_prefix(cached, &self.prompt).min(self.prompt.len().saturating_sub(1));
        self.prompt_done = common;
        self.usage.cached_tokens = common;
        common
    }

    /// The prompt.
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// Prompt tokens not yet run through the model.
    pub fn prompt_left(&self) -> usize {
        self.prompt.len() - self.prompt_done
    }

    /// Whether the prompt is done and a sampled token waits to run.
    pub fn is_decoding(&self) -> bool {
        self.pending.is_some()
    }

    /// The tokens to run next, at most `max` (at least one): the pending sampled token, else
    /// the next chunk of the prompt. Empty when the sequence has nothing to run.
    pub fn input(&self, max: usize) -> &[u32] {
        match &self.pending {
            Some(t) => std::slice::from_ref(t),
            None => {
                let end = self.prompt_done + self.prompt_left().min(max.max(1));
                &self.prompt[self.prompt_done..end]
            }
        }
    }

    /// Whether running `n` tokens of [`Sequence::input`] ends at a position whose logits are
    /// needed (the last prompt token, or a sampled token).
    pub fn wants_logits(&self, n: usize) -> bool {
        self.pending.is_some() || n >= self.prompt_left()
    }

    /// Records that the first `n` tokens of [`Sequence::input`] ran through the model.
    pub fn advance(&mut self, n: usize) {
        if self.pending.take().is_none() {
            self.prompt_done = (self.prompt_done + n).min(self.prompt.len());
        }
    }

    /// The effective token budget.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token counts so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The sampler's seed (the requested one, or the one drawn from entropy).
    pub fn seed(&self) -> u64 {
        self.sampler.seed()
    }

    /// Why the sequence ended (`None` while it goes on).
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// Whether the sequence has ended.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The cancellation flag (shared with whoever may cancel the sequence).
    pub fn cancel_flag(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    /// Whether the sequence was cancelled (its flag is set).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Cancels the sequence: it ends with [`FinishReason::Cancelled`].
    pub fn cancel(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.finish = Some(FinishReason::Cancelled);
    }

    /// The one generation step: given the logits of the position after the last token run,
    /// samples the next token (within the constraint), applies the stop rules (end tokens, stop
    /// strings, a complete constrained document, the token budget) and returns the token's text
    /// and log-probabilities. A cancelled sequence samples nothing and ends.
    pub fn accept_logits<D: Detokenizer + ?Sized>(
        &mut self,
        logits: &[f32],
        detokenizer: &D,
    ) -> Result<Step, EngineError> {
        if let Some(finish) = &self.finish {
            return Ok(Step {
                token: None,
                tail: String::new(),
                finish: Some(finish.clone()),
            });
        }
        if self.is_cancelled() {
            self.finish = Some(FinishReason::Cancelled);
            return Ok(Step {
                token: None,
                tail: String::new(),
                finish: self.finish.clone(),
            });
        }
        if logits.len() != self.vocab {
            return Err(EngineError::LogitsShape {
                expected: self.vocab,
                got: logits.len(),
            });
        }
        let token = self.sample(logits, detokenizer)?;
        self.sampler.accept(token);
        self.usage.completion_tokens += 1;
        self.usage.total_tokens += 1;
        if self.stop_tokens.contains(&token) {
            return Ok(self.end(None, FinishReason::StopToken { id: token }));
        }
        self.bytes.clear();
        detokenizer.token_bytes(token, &mut self.bytes);
        if let Some(m) = self.constraint.as_mut() {
            m.accept(&self.bytes);
        }
        let mut text = String::new();
        let hit = self.text.push(&self.bytes, &mut text);
        let out = TokenOut {
            id: token,
            text,
            logprob: self.logprobs.map(|k| logprob_of(logits, token, k)),
        };
        let finish = if let Some(index) = hit {
            self.stop_string(index)
        } else if self
            .constraint
            .as_ref()
            .is_some_and(|m| m.is_complete() && !m.can_continue())
        {
            FinishReason::Complete
        } else if self.usage.completion_tokens >= self.max_tokens {
            FinishReason::Length
        } else {
            self.pending = Some(token);
            return Ok(Step {
                token: Some(out),
                tail: String::new(),
                finish: None,
            });
        };
        Ok(self.end(Some(out), finish))
    }

    /// Samples a token; under a constraint, one that keeps the output a valid prefix (an end
    /// token only where the output is complete).
    fn sample<D: Detokenizer + ?Sized>(
        &mut self,
        logits: &[f32],
        detokenizer: &D,
    ) -> Result<u32, EngineError> {
        let token = self.sampler.sample(logits)?;
        let Some(m) = self.constraint.as_ref() else {
            return Ok(token);
        };
        let ok = if self.stop_tokens.contains(&token) {
            m.is_complete()
        } else {
            self.bytes.clear();
            detokenizer.token_bytes(token, &mut self.bytes);
            !self.bytes.is_empty() && m.accepts(&self.bytes)
        };
        if ok {
            return Ok(token);
        }
        // Resample among the allowed tokens only: with the first draw rejected, this gives
        // exactly the distribution restricted to the allowed tokens.
        let mut allowed = vec![false; logits.len()];
        m.allowed(&mut allowed);
        if m.is_complete() {
            for &t in &self.stop_tokens {
                if let Some(x) = allowed.get_mut(t as usize) {
                    *x = true;
                }
            }
        }
        let masked: Vec<f32> = logits
            .iter()
            .zip(&allowed)
            .map(|(&l, &ok)| if ok { l } else { f32::NEG_INFINITY })
            .collect();
        self.sampler
            .sample(&masked)
            .map_err(|_| EngineError::ConstraintDeadEnd)
    }

    /// Ends the sequence with `finish`; unless a stop string ended it, releases the text still
    /// held back (a trailing U+FFFD may complete a stop string after all).
    fn end(&mut self, token: Option<TokenOut>, finish: FinishReason) -> Step {
        let mut tail = String::new();
        let finish = match finish {
            FinishReason::StopString { .. } => finish,
            other => match self.text.finish(&mut tail) {
                Some(index) => self.stop_string(index),
                None => other,
            },
        };
        self.finish = Some(finish.clone());
        Step {
            token,
            tail,
            finish: Some(finish),
        }
    }

    fn stop_string(&self, index: usize) -> FinishReason {
        FinishReason::StopString {
            index,
            stop: self.stop_strings.get(index).cloned().unwrap_or_default(),
        }
    }
}

/// Log-probability of `token` and the `k` most likely tokens under `softmax(logits)`.
pub fn logprob_of(logits: &[f32], token: u32, k: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&l| (f64::from(l) - f64::from(max)).exp())
        .sum();
    let lse = f64::from(max) + sum.ln();
    let lp = |id: u32| {
        logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&l| (f64::from(l) - lse) as f32)
    };
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if top.len() < k || top.last().is_some_and(|&(_, m)| l > m) {
                let pos = top.partition_point(|&(_, m)| m >= l);
                top.insert(pos, (i as u32, l));
                top.truncate(k);
            }
        }
    }
    TokenLogprob {
        id: token,
        logprob: lp(token),
        top: top.into_iter().map(|(id, _)| (id, lp(id))).collect(),
    }
}

/// Length of the common prefix of two token lists.
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
