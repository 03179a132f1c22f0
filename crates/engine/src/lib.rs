//! llama31 engine: the sampler chain, one generation step ([`Sequence`]) used by the
//! single-request generator and the continuous-batching [`Engine`], prefix-sharing scoring, and
//! perplexity.
//!
//! The engine drives any [`LanguageModel`] (a batched forward over per-sequence caches;
//! implemented for `llama31_model::Model` in one small adapter, and by toy models in tests) and
//! turns tokens into text through a [`Detokenizer`] (implemented for
//! `llama31_tokenizer::Tokenizer`).

pub mod batch;
pub mod constraint;
pub mod draft_model;
pub mod error;
pub mod generate;
pub mod kl_divergence;
pub mod language_model;
mod model_impl;
pub mod perplexity;
pub mod prefix;
pub mod request;
pub mod rng;
pub mod sampler;
pub mod sequence;
pub mod speculate;
pub mod stop;

#[cfg(test)]
mod testing;

pub use batch::{
    AdapterLoad, Engine, EngineConfig, EngineMetrics, Event, Sink, SubmitError, Ticket,
};
pub use constraint::{Constraint, ConstraintMatcher};
pub use draft_model::DraftModel;
pub use error::{EngineError, SamplingError};
pub use generate::{generate, generate_in_session, Generation, Session, Timings, PREFILL_CHUNK};
pub use kl_divergence::{
    kl_divergence, save_logits, Estimate, KlProgress, KlReport, SavedPerplexity,
};
pub use language_model::{Detokenizer, LanguageModel, LogitsMode, SeqInput};
pub use perplexity::{
    perplexity, perplexity_tokens, ChunkProgress, PerplexityOptions, PerplexityReport,
};
pub use prefix::PrefixScorer;
pub use request::{
    check_request, default_stop_tokens, Adapter, FinishReason, Request, TokenLogprob, Usage,
};
pub use sampler::{greedy, Sampler, SamplingParams};
pub use sequence::{Sequence, Step, TokenOut};
pub use speculate::{Drafter, PromptLookup, SpecStats, Speculation};
pub use stop::{StopStrings, TextOut, Utf8Stream};
