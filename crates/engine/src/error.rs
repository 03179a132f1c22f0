//! Errors of the engine crate.

/// An invalid sampling configuration, or a sampling step that cannot proceed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// A field of [`crate::SamplingParams`] has a value outside its domain.
    #[error("invalid sampling parameter `{field}` = {value}: {reason}")]
    InvalidParam {
        /// The field name, as spelled in [`crate::SamplingParams`].
        field: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// What the field accepts.
        reason: &'static str,
    },
    /// A logit-bias entry names a token id outside the vocabulary.
    #[error("logit_bias names token id {id}, outside the vocabulary of {vocab_size} tokens")]
    LogitBiasOutOfVocab {
        /// The offending id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The logits handed to the sampler do not have one entry per vocabulary token.
    #[error("expected {expected} logits (the vocabulary size), got {got}")]
    LogitsLength {
        /// The vocabulary size.
        expected: usize,
        /// The number of logits received.
        got: usize,
    },
    /// Every token has logit NaN or -inf (after bias and penalties): nothing can be sampled.
    #[error("no token can be sampled: every logit is NaN or -inf after logit bias and penalties")]
    NoCandidates,
}

/// What [`EngineError::ContextOverflow`] says: the one reason that applies.
fn context_message(prompt_tokens: usize, max_tokens: usize, context: usize) -> String {
    if prompt_tokens == 0 {
        "the prompt is empty: at least one token is needed".into()
    } else if prompt_tokens >= context {
        format!(
            "the prompt has {prompt_tokens} tokens but the context holds {context}: no room is left \
             for a generated token (shorten the prompt or use a larger context)"
        )
    } else {
        format!(
            "request does not fit the context: {prompt_tokens} prompt tokens + {max_tokens} max \
             tokens > context of {context} tokens"
        )
    }
}

/// Errors of generation, scoring and perplexity.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad sampling parameters or an impossible sampling step.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// The request does not fit the model's context window (or the prompt is empty).
    /// Requests are never truncated silently.
    #[error("{}", context_message(*prompt_tokens, *max_tokens, *context))]
    ContextOverflow {
        /// Number of prompt tokens.
        prompt_tokens: usize,
        /// Number of tokens the request may generate.
        max_tokens: usize,
        /// The model's context length.
        context: usize,
    },
    /// A prompt token id lies outside the vocabulary.
    #[error("token id {id} at index {index} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfVocab {
        /// The offending id.
        id: u32,
        /// Its index in the input.
        index: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A stop string is empty (it would match everywhere).
    #[error("stop string #{index} is empty")]
    EmptyStopString {
        /// Index of the stop string in the request.
        index: usize,
    },
    /// The model returned a logits buffer of the wrong size.
    #[error("model returned {got} logits, expected {expected}")]
    LogitsShape {
        /// Expected number of floats.
        expected: usize,
        /// Number of floats received.
        got: usize,
    },
    /// The model produced a NaN or infinite logit where a finite one is required (perplexity).
    #[error("model produced a non-finite logit at chunk position {position}")]
    NonFiniteLogits {
        /// Position within the chunk whose logits were non-finite.
        position: usize,
    },
    /// A constraint admits none of the tokens the sampler may pick (and no end token).
    #[error("no token can continue the constrained output (is the schema satisfiable?)")]
    ConstraintDeadEnd,
    /// Invalid perplexity options or input.
    #[error("invalid perplexity input: {0}")]
    Perplexity(String),
    /// An error reported by the model implementation.
    #[error("model error: {0}")]
    Model(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}
