//! Drafting with a second, smaller model of the same vocabulary: it decodes greedily from the
//! target's context in its own KV cache, and rolls back by itself — each call keeps the cached
//! positions its context still shares and runs only the rest, so rejected guesses are dropped
//! and accepted ones are not run again.

use crate::language_model::{LanguageModel, LogitsMode};
use crate::sampler::greedy;
use crate::sequence::common_prefix;
use crate::speculate::Drafter;

/// A draft model with its own cache; see the module documentation.
pub struct DraftModel<M: LanguageModel> {
    model: M,
    cache: M::Cache,
    scratch: M::Scratch,
    logits: Vec<f32>,
    /// Tokens whose keys and values the cache holds, in order.
    cached: Vec<u32>,
    /// Positions the cache holds room for.
    capacity: usize,
    /// Set after an error: the drafter then proposes nothing.
    failed: bool,
}

impl<M: LanguageModel> DraftModel<M> {
    /// A drafter running `model` over contexts of up to `capacity` positions.
    pub fn new(model: M, capacity: usize) -> Result<DraftModel<M>, crate::EngineError> {
        let capacity = capacity.min(model.context_len()).max(1);
        let cache = model.new_cache(capacity)?;
        Ok(DraftModel {
            model,
            cache,
            scratch: M::Scratch::default(),
            logits: Vec::new(),
            cached: Vec::new(),
            capacity,
            failed: false,
        })
    }

    /// The draft model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Runs `tokens` from position `start` and returns the greedy next token (`None` without
    /// `logits`, or after an error).
    fn step(&mut self, tokens: &[u32], start: usize, logits: bool) -> Option<u32> {
        let mode = if logits {
            LogitsMode::Last
        } else {
            LogitsMode::None
        };
        let run = self.model.forward_one(
            &mut self.cache,
            tokens,
            start,
            mode,
            &mut self.scratch,
            &mut self.logits,
        );
        if let Err(e) = run {
            tracing::warn!("draft model failed, drafting stops: {e}");
            self.failed = true;
            return None;
        }
        self.cached.truncate(start);
        self.cached.extend_from_slice(tokens);
        if logits {
            greedy(&self.logits)
        } else {
            None
        }
    }
}

impl<M: LanguageModel + Send> Drafter for DraftModel<M>
where
    M::Cache: Send,
    M::Scratch: Send,
{
    fn draft(&mut self, context: &[u32], max: usize, out: &mut Vec<u32>) {
        if self.failed || max == 0 || context.is_empty() {
            return;
        }
        let max = max.min(self.capacity.saturating_sub(context.len()));
        if max == 0 {
            return;
        }
        // Reuse what the cache shares with the context; the last context token always runs, for
        // its logits.
        let keep = common_prefix(&self.cached, context).min(context.len() - 1);
        let mut start = keep;
        let mut next = None;
        for chunk in context[keep..].chunks(crate::generate::PREFILL_CHUNK) {
            let last = start + chunk.len() == context.len();
            next = self.step(chunk, start, last);
            start += chunk.len();
            if self.failed {
                return;
            }
        }
        for i in 0..max {
            let Some(t) = next else { return };
            out.push(t);
            if i + 1 < max {
                next = self.step(&[t], start, true);
                start += 1;
            }
        }
    }
}
