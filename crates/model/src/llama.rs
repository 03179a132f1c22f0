//! The Llama 3.1 model: weights, KV cache and the forward pass (read it top to bottom, like
//! llama2.c's `forward()`).

use llama31_kernels::rope::{RopeLayout, RopeTable};
use llama31_kernels::{add_assign, attention, rmsnorm, swiglu, AttentionShape};

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::weights::{Matrix, TensorSummary};

/// Weights of one transformer block.
#[derive(Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>, // [dim]
    pub wq: Matrix,          // [n_heads·head_dim, dim]
    pub wk: Matrix,          // [n_kv_heads·head_dim, dim]
    pub wv: Matrix,          // [n_kv_heads·head_dim, dim]
    pub wo: Matrix,          // [dim, n_heads·head_dim]
    pub ffn_norm: Vec<f32>,  // [dim]
    pub w_gate: Matrix,      // [ffn_dim, dim]   (Meta w1)
    pub w_up: Matrix,        // [ffn_dim, dim]   (Meta w3)
    pub w_down: Matrix,      // [dim, ffn_dim]   (Meta w2)
}

/// All weights of the model.
#[derive(Debug)]
pub struct Weights {
    pub tok_embeddings: Matrix, // [vocab, dim]
    pub layers: Vec<LayerWeights>,
    pub norm: Vec<f32>, // [dim]
    /// `None` when tied to `tok_embeddings`.
    pub output: Option<Matrix>, // [vocab, dim]
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

/// Activation buffers of a forward step, grown on demand and reused (no allocation in the decode
/// step once warm). Every [`KvCache`] carries one for [`Model::forward`]; a batch of sequences
/// ([`Model::forward_batch`]) uses one of its own.
#[derive(Debug, Default)]
pub struct Scratch {
    x: Vec<f32>,   // [n, dim] residual stream
    xb: Vec<f32>,  // [n, dim]
    xb2: Vec<f32>, // [n, dim]
    q: Vec<f32>,   // [n, q_dim]
    att: Vec<f32>, // [n, q_dim]
    hb: Vec<f32>,  // [n, ffn_dim]
    hb2: Vec<f32>, // [n, ffn_dim]
    kb: Vec<f32>,  // [n, kv_dim] new keys
    vb: Vec<f32>,  // [n, kv_dim] new values
    /// Activation rows quantized for the quantized weights (`keep_quantized` models).
    qact: Vec<u8>,
}

fn fit(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// A preallocated key/value cache for one sequence (plus its scratch buffers).
#[derive(Debug)]
pub struct KvCache {
    max_seq: usize,
    n_layers: usize,
    kv_dim: usize,
    k: Vec<f32>, // [n_layers, max_seq, kv_dim]
    v: Vec<f32>, // [n_layers, max_seq, kv_dim]
    scratch: Scratch,
}

impl KvCache {
    /// Allocates a cache for `max_seq` positions.
    pub fn new(config: &Config, max_seq: usize) -> Result<KvCache> {
        let kv_dim = config.kv_dim();
        let n = config
            .n_layers
            .checked_mul(max_seq)
            .and_then(|v| v.checked_mul(kv_dim))
            .ok_or_else(|| ModelError::Cache(format!("{max_seq} positions overflow usize")))?;
        Ok(KvCache {
            max_seq,
            n_layers: config.n_layers,
            kv_dim,
            k: vec![0.0; n],
            v: vec![0.0; n],
            scratch: Scratch::default(),
        })
    }

    /// Positions this cache can hold.
    pub fn max_seq(&self) -> usize {
        self.max_seq
    }

    /// Bytes held by the K and V buffers.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 4
    }

    /// Copies positions `0..n` of every layer's keys and values from `other` (a cache of the
    /// same model), so several caches can share one prefilled prefix.
    pub fn copy_prefix_from(&mut self, other: &KvCache, n: usize) -> Result<()> {
        if self.n_layers != other.n_layers || self.kv_dim != other.kv_dim {
            return Err(ModelError::Cache(format!(
                "cannot copy from a cache of {} layers × {} kv width into {} × {}",
                other.n_layers, other.kv_dim, self.n_layers, self.kv_dim
            )));
        }
        if n > self.max_seq || n > other.max_seq {
            return Err(ModelError::Context {
                end: n,
                max: self.max_seq.min(other.max_seq),
            });
        }
        let span = n * self.kv_dim;
        for l in 0..self.n_layers {
            let dst = l * self.max_seq * self.kv_dim;
            let src = l * other.max_seq * other.kv_dim;
            self.k[dst..dst + span].copy_from_slice(&other.k[src..src + span]);
            self.v[dst..dst + span].copy_from_slice(&other.v[src..src + span]);
        }
        Ok(())
    }
}

/// A loaded Llama model.
pub struct Model {
    pub(crate) config: Config,
    pub(crate) layout: RopeLayout,
    pub(crate) rope: RopeTable,
    pub(crate) weights: Weights,
    pub(crate) summary: Vec<TensorSummary>,
    /// Owners of the mapped files that `weights` borrows from. Declared last so it is dropped
    /// after `weights`.
    pub(crate) _files: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Assembles a model from parts (used by the loaders and by tests with synthetic weights).
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
            config,
            layout,
            rope,
            weights,
            summary,
            _files: Vec::new(),
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The RoPE pairing used by this checkpoint's q/k layout.
    pub fn rope_layout(&self) -> RopeLayout {
        self.layout
    }

    /// Positions the RoPE table covers (the largest usable sequence length).
    pub fn max_seq_len(&self) -> usize {
        self.rope.max_pos()
    }

    /// Every tensor as stored in the checkpoint: name, dtype, shape, bytes.
    pub fn tensor_summary(&self) -> &[TensorSummary] {
        &self.summary
    }

    /// The weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Allocates a KV cache for this model.
    pub fn new_cache(&self, max_seq: usize) -> Result<KvCache> {
        KvCache::new(&self.config, max_seq)
    }

    /// Runs `tokens` at positions `start_pos..start_pos + tokens.len()`, appending their keys and
    /// values to `cache`, and returns logits (see [`LogitsMode`]).
    pub fn forward(
        &self,
        tokens: &[u32],
        start_pos: usize,
        cache: &mut KvCache,
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
        cache: &mut KvCache,
        logits: LogitsMode,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let mut scratch = std::mem::take(&mut cache.scratch);
        let result = self.forward_batch(
            &mut [BatchSeq {
                tokens,
                start_pos,
                cache: &mut *cache,
                logits,
            }],
            &mut scratch,
            out,
        );
        cache.scratch = scratch;
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
        seqs: &mut [BatchSeq<'_>],
        s: &mut Scratch,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        if rayon::current_thread_index().is_some() {
            return self.forward_step(seqs, s, out);
        }
        rayon::scope(|_| self.forward_step(seqs, s, out))
    }

    fn forward_step(
        &self,
        seqs: &mut [BatchSeq<'_>],
        s: &mut Scratch,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let c = &self.config;
        let w = &self.weights;
        let (dim, q_dim, kv_dim, ffn) = (c.dim, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let mut n = 0usize;
        for seq in seqs.iter() {
            self.check_seq(seq)?;
            n += seq.tokens.len();
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
        let x = fit(&mut s.x, n * dim);
        let xb = fit(&mut s.xb, n * dim);
        let xb2 = fit(&mut s.xb2, n * dim);
        let q = fit(&mut s.q, n * q_dim);
        let att = fit(&mut s.att, n * q_dim);
        let hb = fit(&mut s.hb, n * ffn);
        let hb2 = fit(&mut s.hb2, n * ffn);
        let kb = fit(&mut s.kb, n * kv_dim);
        let vb = fit(&mut s.vb, n * kv_dim);
        let qa = &mut s.qact;

        // Token embeddings.
        let all_tokens = seqs.iter().flat_map(|seq| seq.tokens.iter());
        for (t, &tok) in all_tokens.enumerate() {
            w.tok_embeddings
                .decode_row(tok as usize, &mut x[t * dim..(t + 1) * dim])?;
        }

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention: norm → q, k, v → RoPE → cache → causal GQA, per sequence.
            rmsnorm(xb, x, &lw.attn_norm, c.norm_eps)?;
            if n == 1 {
                Matrix::matvec_many(&[&lw.wq, &lw.wk, &lw.wv], &mut [q, kb, vb], xb, qa)?;
            } else {
                lw.wq.matmul(q, xb, n, qa)?;
                lw.wk.matmul(kb, xb, n, qa)?;
                lw.wv.matmul(vb, xb, n, qa)?;
            }
            let mut o = 0usize;
            for seq in seqs.iter_mut() {
                let m = seq.tokens.len();
                let (start, end) = (seq.start_pos, seq.start_pos + m);
                let qs = &mut q[o * q_dim..(o + m) * q_dim];
                let ks = &mut kb[o * kv_dim..(o + m) * kv_dim];
                self.rope.apply(qs, c.n_heads, start, self.layout)?;
                self.rope.apply(ks, c.n_kv_heads, start, self.layout)?;
                let cache = &mut *seq.cache;
                let layer_len = cache.max_seq * kv_dim;
                let k_cache = &mut cache.k[l * layer_len..(l + 1) * layer_len];
                let v_cache = &mut cache.v[l * layer_len..(l + 1) * layer_len];
                k_cache[start * kv_dim..end * kv_dim].copy_from_slice(ks);
                v_cache[start * kv_dim..end * kv_dim]
                    .copy_from_slice(&vb[o * kv_dim..(o + m) * kv_dim]);
                attention(
                    &mut att[o * q_dim..(o + m) * q_dim],
                    qs,
                    &k_cache[..end * kv_dim],
                    &v_cache[..end * kv_dim],
                    m,
                    start,
                    shape,
                )?;
                o += m;
            }
            lw.wo.matmul(xb2, att, n, qa)?;
            add_assign(x, xb2)?;

            // SwiGLU feed-forward and residual.
            rmsnorm(xb, x, &lw.ffn_norm, c.norm_eps)?;
            if n == 1 {
                Matrix::matvec_many(&[&lw.w_gate, &lw.w_up], &mut [hb, hb2], xb, qa)?;
            } else {
                lw.w_gate.matmul(hb, xb, n, qa)?;
                lw.w_up.matmul(hb2, xb, n, qa)?;
            }
            swiglu(hb, hb2)?;
            lw.w_down.matmul(xb2, hb, n, qa)?;
            add_assign(x, xb2)?;
        }

        // Final norm and logits (untied `output` or the tied embeddings) of the requested rows,
        // gathered into `xb2`.
        let mut rows = 0usize;
        let mut o = 0usize;
        for seq in seqs.iter() {
            let m = seq.tokens.len();
            let (first, count) = match seq.logits {
                LogitsMode::None => (o, 0),
                LogitsMode::Last => (o + m - 1, 1),
                LogitsMode::All => (o, m),
            };
            let src = &x[first * dim..(first + count) * dim];
            xb2[rows * dim..(rows + count) * dim].copy_from_slice(src);
            rows += count;
            o += m;
        }
        if rows == 0 {
            return Ok(());
        }
        let hn = &mut xb[..rows * dim];
        rmsnorm(hn, &xb2[..rows * dim], &w.norm, c.norm_eps)?;
        let head = w.output.as_ref().unwrap_or(&w.tok_embeddings);
        out.resize(rows * c.vocab_size, 0.0);
        head.matmul(out, hn, rows, qa)?;
        Ok(())
    }

    /// Validates one sequence of a step: cache shape, context, token ids.
    fn check_seq(&self, seq: &BatchSeq<'_>) -> Result<()> {
        let c = &self.config;
        let cache = &*seq.cache;
        if cache.n_layers != c.n_layers || cache.kv_dim != c.kv_dim() {
            return Err(ModelError::Cache(format!(
                "cache has {} layers × {} kv width, model {} × {}",
                cache.n_layers,
                cache.kv_dim,
                c.n_layers,
                c.kv_dim()
            )));
        }
        let end = seq
            .start_pos
            .checked_add(seq.tokens.len())
            .ok_or(ModelError::Context {
                end: usize::MAX,
                max: cache.max_seq,
            })?;
        let max = cache.max_seq.min(self.rope.max_pos());
        if end > max {
            return Err(ModelError::Context { end, max });
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
pub struct BatchSeq<'a> {
    pub tokens: &'a [u32],
    pub start_pos: usize,
    pub cache: &'a mut KvCache,
    /// Which of this sequence's logits to return.
    pub logits: LogitsMode,
}
