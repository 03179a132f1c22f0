//! llama31 eval: the benchmarks of the Llama 3.1 model card, run reproducibly.
//!
//! - [`mmlu`]: the original MMLU protocol (letter log-probabilities), with the shared prefix of a
//!   subject prefilled once and several questions per batched forward step.
//! - [`humaneval`]: completions (or chat + code extraction) generated on the batching engine and
//!   executed in a [`sandbox`]; unbiased pass@k.
//! - [`math`]: MATH-format problems, `\boxed{}` extraction and Minerva-style normalization.
//!
//! Results of long runs go to a [`cache::ResultCache`] as they finish, so an interrupted run
//! resumes. Progress is reported through a callback; the library never prints.

pub mod cache;
pub mod data;
pub mod error;
pub mod generate;
pub mod humaneval;
pub mod math;
pub mod math_answer;
pub mod mmlu;
pub mod mmlu_data;
pub mod passk;
pub mod prompt;
pub mod sandbox;

pub use cache::{path_sha256, settings_hash, ResultCache};
pub use error::{EvalError, Result};
pub use prompt::Prompter;

/// Progress of a long evaluation step.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// What is being worked on (a subject, "generating", "executing").
    pub phase: &'a str,
    /// Units finished so far (cached ones included).
    pub done: usize,
    /// Units in all.
    pub total: usize,
}

/// The version of the harness (the workspace version), written into every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
