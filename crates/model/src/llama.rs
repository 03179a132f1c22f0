//! The Llama 3.1 model: weights and the forward pass, written once over a [`Backend`] (read it
//! top to bottom, like llama2.c's `forward()`).

use crate::backend::{Act, AttentionShape, Backend, Cpu, KvType, RopeLayout, RopeTable, StepShape};
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::linear::Linear;
use crate::lora::{self, LoraModule, LoraRun, LoraSet};
use crate::weights::TensorSummary;

pub use crate::backend::CpuScratch as Scratch;

/// Weights of one transformer block.
#[derive(Debug)]
pub struct LayerWeights<B: Backend = Cpu> {
    pub attn_norm: B::Vector, // [dim]
    pub wq: Linear<B>,        // [n_heads·head_dim, dim]
    pub wk: Linear<B>,        // [n_kv_heads·head_dim, dim]
    pub wv: Linear<B>,        // [n_kv_heads·head_dim, dim]
    pub wo: Linear<B>,        // [dim, n_heads·head_dim]
    pub ffn_norm: B::Vector,  // [dim]
    pub w_gate: Linear<B>,    // [ffn_dim, dim]   (Meta w1)
    pub w_up: Linear<B>,      // [ffn_dim, dim]   (Meta w3)
    pub w_down: Linear<B>,    // [dim, ffn_dim]   (Meta w2)
}

/// All weights of the model.
#[derive(Debug)]
pub struct Weights<B: Backend = Cpu> {
    pub tok_embeddings: Linear<B>, // [vocab, dim]
    pub layers: Vec<LayerWeights<B>>,
    pub norm: B::Vector, // [dim]
    /// `None` when tied to `tok_embeddings`.
    pub output: Option<Linear<B>>, // [vocab, dim]
}

impl Weights<Cpu> {
    /// These host weights, moved to `backend`.
    pub fn upload<B: Backend>(self, backend: &B) -> Result<Weights<B>> {
        let layers = self
            .layers
            .into_iter()
            .map(|l| {
                Ok(LayerWeights {
                    attn_norm: backend.upload_vector(l.attn_norm)?,
                    wq: l.wq.upload(backend)?,
                    wk: l.wk.upload(backend)?,
                    wv: l.wv.upload(backend)?,
                    wo: l.wo.upload(backend)?,
                    ffn_norm: backend.upload_vector(l.ffn_norm)?,
                    w_gate: l.w_gate.upload(backend)?,
                    w_up: l.w_up.upload(backend)?,
                    w_down: l.w_down.upload(backend)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Weights {
            tok_embeddings: self.tok_embeddings.upload(backend)?,
            layers,
            norm: backend.upload_vector(self.norm)?,
            output: self.output.map(|o| o.upload(backend)).transpose()?,
        })
    }
}

/// Which logits `forward` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// None (the step only fills the KV cache, e.g. a prompt chunk that is not the last).
    None,
    /// Only the last token's row (`vocab` values).
    Last,
    /// One row per input token (`tokens.len() × vocab` values).
    All,
}

/// A loaded Llama model on backend `B` (the CPU unless named).
pub struct Model<B: Backend = Cpu> {
    pub(crate) backend: B,
    pub(crate) config: Config,
    pub(crate) layout: RopeLayout,
    pub(crate) rope: B::Rope,
    pub(crate) weights: Weights<B>,
    pub(crate) summary: Vec<TensorSummary>,
    /// Adapters applied, unmerged, to every sequence ([`Model::attach_lora`]).
    pub(crate) lora: Option<LoraSet<B>>,
    /// The element type of the KV caches [`Model::new_cache`] allocates.
    pub(crate) kv_type: KvType,
    /// Whether [`Model::new_cache`] commits the memory of each cache up front.
    pub(crate) commit_kv: bool,
}

impl<B: Backend> std::fmt::Debug for Model<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend.name())
            .field("config", &self.config)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Model<Cpu> {
    /// Assembles a CPU model from parts (used by the loaders and by tests with synthetic weights).
    pub fn from_parts(
        config: Config,
        weights: Weights,
        layout: RopeLayout,
        rope: RopeTable,
        summary: Vec<TensorSummary>,
    ) -> Result<Model> {
        config.validate()?;
        if rope.head_dim() != config.head_dim {
            return Err(ModelError::Config(format!(
                "rope table head_dim {} != config head_dim {}",
                rope.head_dim(),
                config.head_dim
            )));
        }
        if weights.layers.len() != config.n_layers {
            return Err(ModelError::Config(format!(
                "{} layers of weights for n_layers {}",
                weights.layers.len(),
                config.n_layers
            )));
        }
        Ok(Model {
            backend: Cpu,
            config,
            layout,
            rope,
            weights,
            summary,
            lora: None,
            kv_type: KvType::default(),
            commit_kv: false,
        })
    }

    /// Sets the precision of the activations multiplied with the block-quantized weights (no
    /// effect on float weights).
    pub fn set_activations(&mut self, a: crate::weights::Activations) {
        let w = &mut self.weights;
        let layers = w.layers.iter_mut().flat_map(|l| {
            [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ]
        });
        for lin in layers
            .chain(std::iter::once(&mut w.tok_embeddings))
            .chain(w.output.as_mut())
        {
            lin.weight_mut().set_activations(a);
        }
    }

    /// The precision of the activations multiplied with the block-quantized weights (that of the
    /// output head, which every model has).
    pub fn activations(&self) -> crate::weights::Activations {
        let w = &self.weights;
        w.output
            .as_ref()
            .unwrap_or(&w.tok_embeddings)
            .weight()
            .activations()
    }

    /// This model with its weights moved to `backend`.
    pub fn to_backend<B: Backend>(self, backend: B) -> Result<Model<B>> {
        if self.lora.is_some() {
            return Err(ModelError::Adapter(
                "attach adapters after moving the model to its backend".into(),
            ));
        }
        let weights = self.weights.upload(&backend)?;
        let rope = backend.upload_rope(self.rope)?;
        Ok(Model {
            backend,
            config: self.config,
            layout: self.layout,
            rope,
            weights,
            summary: self.summary,
            lora: None,
            kv_type: self.kv_type,
            commit_kv: self.commit_kv,
        })
    }
}

impl<B: Backend> Model<B> {
    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backend the model runs on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The RoPE pairing used by this checkpoint's q/k layout.
    pub fn rope_layout(&self) -> RopeLayout {
        self.layout
    }

    /// Positions the RoPE table covers (the largest usable sequence length).
    pub fn max_seq_len(&self) -> usize {
        self.backend.rope_positions(&self.rope)
    }

    /// Every tensor as stored in the checkpoint: name, dtype, shape, bytes.
    pub fn tensor_summary(&self) -> &[TensorSummary] {
        &self.summary
    }

    /// The weights.
    pub fn weights(&self) -> &Weights<B> {
        &self.weights
    }

    /// Applies `adapters` (each with a user's scale), unmerged, to every sequence from now on,
    /// replacing any attached before; `&[]` detaches them.
    pub fn attach_lora(&mut self, adapters: &[(&lora::LoraAdapter, f32)]) -> Result<()> {
        self.lora = if adapters.is_empty() {
            None
        } else {
            Some(LoraSet::new(self, adapters)?)
        };
        Ok(())
    }

    /// The adapters applied to every sequence, if any.
    pub fn attached_lora(&self) -> Option<&LoraSet<B>> {
        self.lora.as_ref()
    }

    /// Allocates a KV cache for this model, of [`Model::kv_type`] (its memory committed if
    /// [`Model::set_commit_kv`] asked for it).
    pub fn new_cache(&self, max_seq: usize) -> Result<KvCache<B>> {
        let mut cache = KvCache::new_on(&self.backend, &self.config, max_seq, self.kv_type)?;
        if self.commit_kv {
            cache.commit(&self.backend)?;
        }
        Ok(cache)
    }

    /// Whether each new KV cache gets all of its memory at once ([`KvCache::commit`]) instead of
    /// page by page as positions fill: a server then holds what it planned from the start, and
    /// fails at startup rather than when a long request arrives if the memory is not there.
    pub fn set_commit_kv(&mut self, commit: bool) {
        self.commit_kv = commit;
    }

    /// The element type of the KV caches this model allocates (f32 unless set).
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Sets the element type of the KV caches allocated from now on; an error where this model's
    /// key/value width does not suit it (Q8_0 needs a multiple of 32).
    pub fn set_kv_type(&mut self, kv_type: KvType) -> Result<()> {
        kv_type
            .row_bytes(self.config.kv_dim())
            .map_err(|e| ModelError::Config(e.to_string()))?;
        self.kv_type = kv_type;
        Ok(())
    }

    /// Fresh activation buffers for [`Model::forward_batch`].
    pub fn new_scratch(&self) -> B::Scratch {
        self.backend.new_scratch()
    }

    /// Runs `tokens` at positions `start_pos..start_pos + tokens.len()` of `cache` (which must
    /// hold at least `start_pos` positions; any beyond are dropped first), appending their keys
    /// and values, and returns logits (see [`LogitsMode`]).
    pub fn forward(
        &self,
        tokens: &[u32],
        start_pos: usize,
        cache: &mut KvCache<B>,
        logits: LogitsMode,
    ) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.forward_into(tokens, start_pos, cache, logits, &mut out)?;
        Ok(out)
    }

    /// Like [`Model::forward`], writing the logits into `out` (resized; reuse it to avoid
    /// allocating per step).
    pub fn forward_into(
        &self,
        tokens: &[u32],
        start_pos: usize,
        cache: &mut KvCache<B>,
        logits: LogitsMode,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let mut scratch = cache
            .scratch
            .take()
            .unwrap_or_else(|| self.backend.new_scratch());
        let result = self.forward_batch(
            &mut [BatchSeq {
                tokens,
                start_pos,
                cache: &mut *cache,
                logits,
                lora: None,
            }],
            &mut scratch,
            out,
        );
        cache.scratch = Some(scratch);
        result
    }

    /// Runs several sequences in one step: every weight matrix multiplies the rows of all of
    /// them at once (read once per step, which is what makes serving several clients cheaper than
    /// serving them one after another), while RoPE, the KV cache and attention stay per sequence.
    ///
    /// `out` receives the requested logits of every sequence in order (`vocab` floats per
    /// requested row). Each output row is computed exactly as if its sequence ran alone: the
    /// matrix kernels give bit-identical results whatever the number of rows.
    ///
    /// The whole step runs on a thread of rayon's pool: the kernels' parallel loops then fork and
    /// join within the pool instead of handing work over from an outside thread (and sleeping on
    /// it) a few hundred times per token.
    pub fn forward_batch(
        &self,
        seqs: &mut [BatchSeq<'_, B>],
        s: &mut B::Scratch,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        if rayon::current_thread_index().is_some() {
            return self.forward_step(seqs, s, out);
        }
        rayon::scope(|_| self.forward_step(seqs, s, out))
    }

    fn forward_step(
        &self,
        seqs: &mut [BatchSeq<'_, B>],
        s: &mut B::Scratch,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let (b, c, w) = (&self.backend, &self.config, &self.weights);
        let mut n = 0usize;
        for seq in seqs.iter() {
            self.check_seq(seq)?;
            n += seq.tokens.len();
        }
        for seq in seqs.iter_mut() {
            seq.cache.truncate(seq.start_pos);
        }
        out.clear();
        if n == 0 {
            return Ok(());
        }
        let shape = AttentionShape {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
        };
        b.begin(
            s,
            StepShape {
                n,
                dim: c.dim,
                q_dim: c.q_dim(),
                kv_dim: c.kv_dim(),
                ffn_dim: c.ffn_dim,
            },
        )?;

        // Token embeddings.
        let mut row = 0usize;
        for seq in seqs.iter() {
            b.embed(s, Act::X, row, w.tok_embeddings.weight(), seq.tokens)?;
            row += seq.tokens.len();
        }
        // Unmerged LoRA adapters and the rows they apply to.
        let runs = self.lora_runs(seqs, n);

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention: norm → q, k, v → RoPE → cache → causal GQA, per sequence.
            b.rmsnorm(s, Act::Xb, Act::X, n, &lw.attn_norm, c.norm_eps)?;
            let qkv = [(&lw.wq, Act::Q), (&lw.wk, Act::K), (&lw.wv, Act::V)];
            Linear::forward_many(b, s, Act::Xb, n, &qkv)?;
            let qkv_lora = [
                (LoraModule::Q, Act::Q),
                (LoraModule::K, Act::K),
                (LoraModule::V, Act::V),
            ];
            lora::apply(b, s, &runs, l, Act::Xb, &qkv_lora)?;
            let mut o = 0usize;
            for seq in seqs.iter_mut() {
                let rows = o..o + seq.tokens.len();
                let start = seq.start_pos;
                b.rope(
                    s,
                    Act::Q,
                    rows.clone(),
                    c.n_heads,
                    start,
                    &self.rope,
                    self.layout,
                )?;
                b.rope(
                    s,
                    Act::K,
                    rows.clone(),
                    c.n_kv_heads,
                    start,
                    &self.rope,
                    self.layout,
                )?;
                seq.cache.append(b, s, l, rows.clone())?;
                b.attention(s, Act::Att, Act::Q, rows.clone(), seq.cache.view(l), shape)?;
                o = rows.end;
            }
            lw.wo.forward(b, s, Act::Xb2, Act::Att, n)?;
            lora::apply(b, s, &runs, l, Act::Att, &[(LoraModule::O, Act::Xb2)])?;
            b.add(s, Act::X, Act::Xb2, n)?;

            // SwiGLU feed-forward and residual.
            b.rmsnorm(s, Act::Xb, Act::X, n, &lw.ffn_norm, c.norm_eps)?;
            Linear::forward_many(
                b,
                s,
                Act::Xb,
                n,
                &[(&lw.w_gate, Act::Hb), (&lw.w_up, Act::Hb2)],
            )?;
            let gate_up_lora = [(LoraModule::Gate, Act::Hb), (LoraModule::Up, Act::Hb2)];
            lora::apply(b, s, &runs, l, Act::Xb, &gate_up_lora)?;
            b.swiglu(s, Act::Hb, Act::Hb2, n)?;
            lw.w_down.forward(b, s, Act::Xb2, Act::Hb, n)?;
            lora::apply(b, s, &runs, l, Act::Hb, &[(LoraModule::Down, Act::Xb2)])?;
            b.add(s, Act::X, Act::Xb2, n)?;
        }

        // Final norm and logits (untied `output` or the tied embeddings) of the requested rows,
        // gathered into `Xb2`.
        let mut rows = 0usize;
        let mut o = 0usize;
        for seq in seqs.iter() {
            let m = seq.tokens.len();
            let (first, count) = match seq.logits {
                LogitsMode::None => (o, 0),
                LogitsMode::Last => (o + m - 1, 1),
                LogitsMode::All => (o, m),
            };
            b.copy_rows(s, Act::Xb2, rows, Act::X, first, count)?;
            rows += count;
            o += m;
        }
        if rows == 0 {
            return Ok(());
        }
        b.rmsnorm(s, Act::Xb, Act::Xb2, rows, &w.norm, c.norm_eps)?;
        let head = w.output.as_ref().unwrap_or(&w.tok_embeddings);
        b.logits(s, Act::Xb, rows, head.weight(), out)
    }

    /// The rows of a step each attached adapter set applies to: the model's own over all `n`
    /// rows, then each sequence's over its rows (consecutive sequences with the same set share a
    /// run). Allocates only when some adapter is in use.
    fn lora_runs<'s>(&'s self, seqs: &[BatchSeq<'s, B>], n: usize) -> Vec<LoraRun<'s, B>> {
        let mut runs: Vec<LoraRun<'s, B>> = Vec::new();
        if let Some(set) = &self.lora {
            runs.push(LoraRun { rows: 0..n, set });
        }
        let mut row = 0usize;
        for seq in seqs {
            let rows = row..row + seq.tokens.len();
            row = rows.end;
            let Some(set) = seq.lora else { continue };
            match runs.last_mut() {
                Some(last) if std::ptr::eq(last.set, set) && last.rows.end == rows.start => {
                    last.rows.end = rows.end;
                }
                _ => runs.push(LoraRun { rows, set }),
            }
        }
        runs
    }

    /// Validates one sequence of a step: cache shape, context, token ids.
    fn check_seq(&self, seq: &BatchSeq<'_, B>) -> Result<()> {
        let c = &self.config;
        let cache = &*seq.cache;
        if cache.shape() != (c.n_layers, c.kv_dim()) {
            let (layers, width) = cache.shape();
            return Err(ModelError::Cache(format!(
                "cache has {layers} layers × {width} kv width, model {} × {}",
                c.n_layers,
                c.kv_dim()
            )));
        }
        if seq.start_pos > cache.len() {
            return Err(ModelError::Cache(format!(
                "a step at position {} of a cache holding {} positions",
                seq.start_pos,
                cache.len()
            )));
        }
        let end = seq
            .start_pos
            .checked_add(seq.tokens.len())
            .ok_or(ModelError::Context {
                end: usize::MAX,
                max: cache.max_seq(),
            })?;
        let max = cache.max_seq().min(self.max_seq_len());
        if end > max {
            return Err(ModelError::Context { end, max });
        }
        if let Some(set) = seq.lora {
            if set.n_layers() != c.n_layers {
                return Err(ModelError::Adapter(format!(
                    "adapter {:?} was made for {} layers, the model has {}",
                    set.name(),
                    set.n_layers(),
                    c.n_layers
                )));
            }
        }
        if let Some(&bad) = seq.tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(ModelError::Token {
                id: bad,
                vocab: c.vocab_size,
            });
        }
        Ok(())
    }
}

/// One sequence of a [`Model::forward_batch`] step: `tokens` run at positions
/// `start_pos..start_pos + tokens.len()` of `cache`.
#[derive(Debug)]
pub struct BatchSeq<'a, B: Backend = Cpu> {
    pub tokens: &'a [u32],
    pub start_pos: usize,
    pub cache: &'a mut KvCache<B>,
    /// Which of this sequence's logits to return.
    pub logits: LogitsMode,
    /// Adapters applied, unmerged, to this sequence only (on top of the model's own).
    pub lora: Option<&'a LoraSet<B>>,
}
