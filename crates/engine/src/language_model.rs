//! What the engine needs from a model and a tokenizer: a batched forward step over several
//! sequences, each with its own cache ([`LanguageModel`]), and the bytes of a token
//! ([`Detokenizer`]).

use crate::error::EngineError;

/// Which logits a sequence of a [`LanguageModel::forward_batch`] step wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// None (the step only fills the cache, e.g. a prompt chunk that is not the last).
    None,
    /// The last position's row (`vocab_size` floats).
    Last,
    /// One row per input token (`tokens.len() * vocab_size` floats).
    All,
}

/// One sequence of a [`LanguageModel::forward_batch`] step: `tokens` run at positions
/// `start_pos..start_pos + tokens.len()` of `cache`.
///
/// `start_pos` is never more than the number of positions the cache holds: a sequence runs
/// either right after its cached positions or, to replace the end of them, earlier (positions
/// `start_pos..` are then overwritten).
#[derive(Debug)]
pub struct SeqInput<'a, C> {
    pub tokens: &'a [u32],
    pub start_pos: usize,
    pub cache: &'a mut C,
    pub logits: LogitsMode,
    /// The model's handle of the adapter this sequence runs with ([`crate::Adapter::handle`]);
    /// models without adapters ignore it.
    pub adapter: Option<&'a (dyn std::any::Any + Send + Sync)>,
}

/// A model the engine can drive: the real one (`llama31_model::Model`, adapted in
/// `model_impl.rs`) or a toy model in tests.
pub trait LanguageModel {
    /// Per-sequence state (the KV cache).
    type Cache: Send;
    /// Activation buffers reused from one step to the next.
    type Scratch: Default + Send;

    /// Number of logits per position.
    fn vocab_size(&self) -> usize;

    /// The longest sequence (prompt + generated tokens) the model supports.
    fn context_len(&self) -> usize;

    /// A fresh cache able to hold `max_seq` positions.
    fn new_cache(&self, max_seq: usize) -> Result<Self::Cache, EngineError>;

    /// Makes positions `0..n` of `dst` those of `src` (a cache of the same model), so several
    /// sequences can share one prefilled prefix.
    fn copy_prefix(
        &self,
        dst: &mut Self::Cache,
        src: &Self::Cache,
        n: usize,
    ) -> Result<(), EngineError>;

    /// Runs one step over all of `seqs` and writes the logits they ask for into `out`, in order
    /// (`vocab_size` floats per row; `out` is cleared first). Every row must be what its
    /// sequence would give alone, so batching never changes an output.
    fn forward_batch(
        &self,
        seqs: &mut [SeqInput<'_, Self::Cache>],
        scratch: &mut Self::Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError>;

    /// One sequence through [`LanguageModel::forward_batch`].
    fn forward_one(
        &self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        start_pos: usize,
        logits: LogitsMode,
        scratch: &mut Self::Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        self.forward_batch(
            &mut [SeqInput {
                adapter: None,
                tokens,
                start_pos,
                cache,
                logits,
            }],
            scratch,
            out,
        )
    }

    /// Runs `tokens` at positions `start_pos..` of `cache` and returns the logits of the last
    /// position (`vocab_size` floats).
    fn forward(
        &self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        let mut scratch = Self::Scratch::default();
        self.forward_one(
            cache,
            tokens,
            start_pos,
            LogitsMode::Last,
            &mut scratch,
            &mut out,
        )?;
        Ok(out)
    }

    /// Like [`LanguageModel::forward`] but returns the logits of every position, row-major
    /// (`tokens.len() * vocab_size` floats).
    fn forward_all(
        &self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        let mut scratch = Self::Scratch::default();
        self.forward_one(
            cache,
            tokens,
            start_pos,
            LogitsMode::All,
            &mut scratch,
            &mut out,
        )?;
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
