//! [`KvCache`]: the keys and values of one sequence, allocated by the backend.

use std::ops::Range;

use crate::backend::{Backend, Cpu, KvView};
use crate::config::Config;
use crate::error::{ModelError, Result};
use llama31_kernels::KvType;

/// A preallocated key/value cache for one sequence: `max_seq` positions of every layer, of which
/// the first [`len`](KvCache::len) hold the keys and values of the tokens run so far.
///
/// A step appends its tokens' keys and values layer by layer ([`KvCache::append`]) and attends
/// over [`KvCache::view`]; [`KvCache::truncate`] rolls the sequence back (a rejected draft, a
/// prompt that shares only part of a cached prefix). The cache also carries the activation
/// buffers of [`crate::Model::forward`] on it.
#[derive(Debug)]
pub struct KvCache<B: Backend = Cpu> {
    n_layers: usize,
    kv_dim: usize,
    max_seq: usize,
    kv_type: KvType,
    bytes: usize,
    store: B::KvStore,
    /// Positions held in each layer (all equal after every complete step).
    lens: Vec<usize>,
    pub(crate) scratch: Option<B::Scratch>,
}

impl KvCache<Cpu> {
    /// Allocates a CPU cache of `kv_type` for `max_seq` positions.
    pub fn new(config: &Config, max_seq: usize, kv_type: KvType) -> Result<KvCache> {
        KvCache::new_on(&Cpu, config, max_seq, kv_type)
    }

    /// Copies positions `0..n` of every layer's keys and values from `other` (a cache of the
    /// same model holding at least `n` positions), so several caches can share one prefilled
    /// prefix; this cache then holds `n` positions.
    pub fn copy_prefix_from(&mut self, other: &KvCache, n: usize) -> Result<()> {
        self.copy_prefix_on(&Cpu, other, n)
    }
}

impl<B: Backend> KvCache<B> {
    /// Allocates a cache of `kv_type` for `max_seq` positions of `config`'s layers on `backend`.
    pub fn new_on(
        backend: &B,
        config: &Config,
        max_seq: usize,
        kv_type: KvType,
    ) -> Result<KvCache<B>> {
        let kv_dim = config.kv_dim();
        let store = backend.alloc_kv(config.n_layers, max_seq, kv_dim, kv_type)?;
        Ok(KvCache {
            n_layers: config.n_layers,
            kv_dim,
            max_seq,
            kv_type,
            bytes: backend.kv_bytes(&store),
            store,
            lens: vec![0; config.n_layers],
            scratch: None,
        })
    }

    /// Positions this cache can hold.
    pub fn max_seq(&self) -> usize {
        self.max_seq
    }

    /// Positions held (of every layer).
    pub fn len(&self) -> usize {
        self.lens.iter().copied().min().unwrap_or(0)
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every position from `len` on (nothing if the cache holds fewer).
    pub fn truncate(&mut self, len: usize) {
        for l in &mut self.lens {
            *l = (*l).min(len);
        }
    }

    /// Makes every page of the cache resident now (the backend allocates lazily otherwise).
    pub fn commit(&mut self, backend: &B) -> Result<()> {
        backend.commit_kv(&mut self.store)
    }

    /// The element type of the keys and values.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Bytes held by the keys and values.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Layers and key/value width.
    pub fn shape(&self) -> (usize, usize) {
        (self.n_layers, self.kv_dim)
    }

    /// Appends rows `rows` of the step's new keys and values ([`crate::backend::Act::K`] /
    /// [`crate::backend::Act::V`]) to `layer`.
    pub fn append(
        &mut self,
        backend: &B,
        s: &mut B::Scratch,
        layer: usize,
        rows: Range<usize>,
    ) -> Result<()> {
        let pos = *self
            .lens
            .get(layer)
            .ok_or_else(|| ModelError::Cache(format!("no layer {layer}")))?;
        let end = pos + rows.len();
        if end > self.max_seq {
            return Err(ModelError::Context {
                end,
                max: self.max_seq,
            });
        }
        backend.kv_write(s, &mut self.store, layer, pos, rows)?;
        self.lens[layer] = end;
        Ok(())
    }

    /// The positions `layer` holds, for attention.
    pub fn view(&self, layer: usize) -> KvView<'_, B> {
        KvView {
            store: &self.store,
            layer,
            len: self.lens.get(layer).copied().unwrap_or(0),
        }
    }

    /// [`KvCache::copy_prefix_from`] on any backend.
    pub fn copy_prefix_on(&mut self, backend: &B, other: &KvCache<B>, n: usize) -> Result<()> {
        if self.shape() != other.shape() || self.kv_type != other.kv_type {
            return Err(ModelError::Cache(format!(
                "cannot copy from a cache of {} layers × {} kv width ({}) into {} × {} ({})",
                other.n_layers,
                other.kv_dim,
                other.kv_type,
                self.n_layers,
                self.kv_dim,
                self.kv_type
            )));
        }
        if n > self.max_seq || n > other.len() {
            return Err(ModelError::Context {
                end: n,
                max: self.max_seq.min(other.len()),
            });
        }
        backend.copy_kv_prefix(&mut self.store, &other.store, n)?;
        self.lens.fill(n);
        Ok(())
    }
}
