//! [`LanguageModel`] for the real model, `llama31_model::Model`: the one place that knows the
//! model crate's forward API.

use llama31_model::{Backend, BatchSeq, KvCache, LoraSet, Model, ModelError};

use crate::error::EngineError;
use crate::language_model::{LanguageModel, LogitsMode, SeqInput};

impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        EngineError::Model(Box::new(e))
    }
}

fn mode(m: LogitsMode) -> llama31_model::LogitsMode {
    match m {
        LogitsMode::None => llama31_model::LogitsMode::None,
        LogitsMode::Last => llama31_model::LogitsMode::Last,
        LogitsMode::All => llama31_model::LogitsMode::All,
    }
}

/// Any backend's model; on the CPU (`Model` = `Model<Cpu>`) the scratch is the CPU's buffers.
impl<B: Backend> LanguageModel for Model<B>
where
    B::Scratch: Default,
{
    type Cache = KvCache<B>;
    type Scratch = B::Scratch;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    /// The smaller of the checkpoint's context and the positions the loaded RoPE table covers
    /// (`LoadOptions::max_seq_len`).
    fn context_len(&self) -> usize {
        self.config().max_seq_len.min(self.max_seq_len())
    }

    fn new_cache(&self, max_seq: usize) -> Result<KvCache<B>, EngineError> {
        Ok(Model::new_cache(self, max_seq)?)
    }

    fn copy_prefix(
        &self,
        dst: &mut KvCache<B>,
        src: &KvCache<B>,
        n: usize,
    ) -> Result<(), EngineError> {
        Ok(dst.copy_prefix_on(self.backend(), src, n)?)
    }

    fn forward_batch(
        &self,
        seqs: &mut [SeqInput<'_, KvCache<B>>],
        scratch: &mut B::Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        let mut batch: Vec<BatchSeq<'_, B>> = seqs
            .iter_mut()
            .map(|s| {
                let lora = match s.adapter {
                    None => None,
                    Some(h) => Some(h.downcast_ref::<LoraSet<B>>().ok_or_else(|| {
                        EngineError::from(ModelError::Adapter(
                            "an adapter made for another model type".into(),
                        ))
                    })?),
                };
                Ok(BatchSeq {
                    tokens: s.tokens,
                    start_pos: s.start_pos,
                    cache: &mut *s.cache,
                    logits: mode(s.logits),
                    lora,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(Model::forward_batch(self, &mut batch, scratch, out)?)
    }

    /// The cache's own scratch buffers (no allocation per call).
    fn forward(
        &self,
        cache: &mut KvCache<B>,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        Ok(Model::forward(
            self,
            tokens,
            start_pos,
            cache,
            llama31_model::LogitsMode::Last,
        )?)
    }

    /// The cache's own scratch buffers (no allocation per call).
    fn forward_all(
        &self,
        cache: &mut KvCache<B>,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        Ok(Model::forward(
            self,
            tokens,
            start_pos,
            cache,
            llama31_model::LogitsMode::All,
        )?)
    }
}
