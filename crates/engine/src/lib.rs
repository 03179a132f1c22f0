//! llama31 engine: the sampler chain, the generation loop with its stop rules and streaming, and
//! perplexity.
//!
//! The engine drives any [`LanguageModel`] (implemented for `llama31_model::Model`, and by toy
//! models in tests) and turns tokens into text through a [`Detokenizer`]
//! (implemented for `llama31_tokenizer::Tokenizer`).

pub mod batch;
pub mod constraint;
pub mod error;
pub mod generate;
pub mod kl_divergence;
mod model_impl;
pub mod perplexity;
pub mod rng;
pub mod sampler;
pub mod stop;

#[cfg(test)]
mod testing;

pub use batch::{
    Engine, EngineConfig, EngineMetrics, Event, Request, Sink, SubmitError, Ticket, TokenLogprob,
};
pub use constraint::{Constraint, ConstraintMatcher};
pub use error::{EngineError, SamplingError};
pub use generate::{
    check_request, default_stop_tokens, generate, generate_in_session, Detokenizer, FinishReason,
    GenerateRequest, Generation, LanguageModel, Session, Timings, Usage,
};
pub use kl_divergence::{
    kl_divergence, save_logits, Estimate, KlProgress, KlReport, SavedPerplexity,
};
pub use perplexity::{
    perplexity, perplexity_tokens, ChunkProgress, PerplexityOptions, PerplexityReport,
};
pub use sampler::{greedy, Sampler, SamplingParams};
pub use stop::{StopStrings, TextOut, Utf8Stream};
