//! A generation request and what is reported about it: the one request type of the
//! single-request generator ([`crate::generate()`]) and the batching [`crate::Engine`].

use std::sync::Arc;

use crate::constraint::Constraint;
use crate::error::EngineError;
use crate::sampler::SamplingParams;

/// An adapter a request runs with (a LoRA adapter loaded for the model, kept type-erased so the
/// engine does not depend on a model type): a name for metrics, an id unique for the process (the
/// prefix cache never shares keys and values across ids), and the model's own handle, which the
/// model downcasts (`llama31_model::LoraSet` for the real model).
#[derive(Clone)]
pub struct Adapter {
    id: u64,
    name: Arc<str>,
    handle: Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Adapter {
    /// Wraps a model's adapter handle under `name`, with a fresh id.
    pub fn new(name: &str, handle: Arc<dyn std::any::Any + Send + Sync>) -> Adapter {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Adapter {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: name.into(),
            handle,
        }
    }

    /// Unique for the life of the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's handle.
    pub fn handle(&self) -> &(dyn std::any::Any + Send + Sync) {
        &*self.handle
    }

    /// References to the handle alive now (this one included): requests still holding it.
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.handle)
    }
}

/// One completion request, tokenized.
#[derive(Debug, Clone)]
pub struct Request {
    /// The prompt (BOS and chat formatting included); not empty.
    pub prompt: Vec<u32>,
    /// Most tokens to generate (the end token counts); `None`: until the context (or the
    /// engine's slot) is full.
    pub max_tokens: Option<usize>,
    /// How to pick tokens.
    pub sampling: SamplingParams,
    /// Tokens that end generation (not part of the output).
    pub stop_tokens: Vec<u32>,
    /// Strings that end generation (not part of the output).
    pub stop_strings: Vec<String>,
    /// Report the chosen token's log-probability and this many alternatives per token.
    pub logprobs: Option<usize>,
    /// Only tokens that keep the output a valid prefix of this language are sampled.
    pub constraint: Option<Arc<dyn Constraint>>,
    /// The adapter to run with (`None`: the model as loaded).
    pub adapter: Option<Adapter>,
}

impl Request {
    /// A request with default sampling and no stop rules.
    pub fn new(prompt: Vec<u32>) -> Self {
        Self {
            prompt,
            max_tokens: None,
            sampling: SamplingParams::default(),
            stop_tokens: Vec::new(),
            stop_strings: Vec::new(),
            logprobs: None,
            constraint: None,
            adapter: None,
        }
    }
}

/// Log-probabilities of one sampled token (of the model's distribution, before sampling
/// adjustments), with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
    /// `(id, logprob)`, most likely first.
    pub top: Vec<(u32, f32)>,
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
        /// Index in [`Request::stop_strings`].
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
