//! [`LanguageModel`] for the real model, `llama31_model::Model`.

use llama31_model::{KvCache, LogitsMode, Model, ModelError};

use crate::error::EngineError;
use crate::generate::LanguageModel;

impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        EngineError::Model(Box::new(e))
    }
}

impl LanguageModel for Model {
    type Session = KvCache;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    /// The smaller of the checkpoint's context and the positions the loaded RoPE table covers
    /// (`LoadOptions::max_seq_len`).
    fn context_len(&self) -> usize {
        self.config().max_seq_len.min(self.max_seq_len())
    }

    fn new_session(&self, max_seq: usize) -> Result<KvCache, EngineError> {
        Ok(self.new_cache(max_seq)?)
    }

    fn forward(
        &self,
        session: &mut KvCache,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        Ok(Model::forward(
            self,
            tokens,
            start_pos,
            session,
            LogitsMode::Last,
        )?)
    }

    fn forward_into(
        &self,
        session: &mut KvCache,
        tokens: &[u32],
        start_pos: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        Ok(Model::forward_into(
            self,
            tokens,
            start_pos,
            session,
            LogitsMode::Last,
            out,
        )?)
    }

    fn forward_all(
        &self,
        session: &mut KvCache,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        Ok(Model::forward(
            self,
            tokens,
            start_pos,
            session,
            LogitsMode::All,
        )?)
    }
}
