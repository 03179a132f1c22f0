//! Adapters attached to a model without merging: [`LoraSet`] (terms on the model's backend) and
//! how a forward step adds them to the rows that use them ([`LoraRun`], [`apply`]).

use std::ops::Range;

use super::{LoraAdapter, LoraModule};
use crate::backend::{Act, Backend};
use crate::error::{ModelError, Result};
use crate::llama::Model;

/// One term on the backend: `dst += scale · (src · Aᵀ) · Bᵀ`.
#[derive(Debug)]
pub(crate) struct Attached<B: Backend> {
    pub(crate) a: B::Factor,
    pub(crate) b: B::Factor,
    pub(crate) scale: f32,
}

/// One or more adapters (each with a user's scale) ready to be applied, unmerged, to the rows of
/// the sequences that select them: the terms of each layer and projection, in the model's q/k
/// layout, on the model's backend.
#[derive(Debug)]
pub struct LoraSet<B: Backend> {
    name: String,
    /// `[layer][module]` → terms (several when adapters are stacked).
    layers: Vec<[Vec<Attached<B>>; 7]>,
    /// Largest rank of any term.
    max_rank: usize,
}

impl<B: Backend> LoraSet<B> {
    /// Checks `adapters` against `model` and moves their terms to its backend, `lora_B` of q/k
    /// permuted to the model's layout and each scale multiplied by the user's.
    pub fn new(model: &Model<B>, adapters: &[(&LoraAdapter, f32)]) -> Result<LoraSet<B>> {
        let cfg = model.config();
        let mut layers: Vec<[Vec<Attached<B>>; 7]> =
            (0..cfg.n_layers).map(|_| Default::default()).collect();
        let mut max_rank = 0;
        let mut names = Vec::new();
        for &(adapter, user_scale) in adapters {
            if !user_scale.is_finite() {
                return Err(ModelError::Adapter(format!(
                    "scale {user_scale} for adapter {:?} is not finite",
                    adapter.name
                )));
            }
            adapter.check(cfg)?;
            names.push(adapter.name.clone());
            for t in adapter.terms_for(cfg, model.rope_layout()) {
                let upload = |v: Vec<f32>, rows, cols| model.backend().upload_factor(rows, cols, v);
                max_rank = max_rank.max(t.rank);
                let attached = Attached {
                    a: upload(t.a, t.rank, t.in_features)?,
                    b: upload(t.b, t.out_features, t.rank)?,
                    scale: t.scale * user_scale,
                };
                layers[t.layer][t.module.index()].push(attached);
            }
        }
        Ok(LoraSet {
            name: names.join("+"),
            layers,
            max_rank,
        })
    }

    /// The adapters' names, joined with `+`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest rank of its terms.
    pub fn max_rank(&self) -> usize {
        self.max_rank
    }

    /// Layers this set was made for.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }
}

/// Rows of a step whose sequences use one [`LoraSet`].
#[derive(Debug)]
pub struct LoraRun<'a, B: Backend> {
    pub rows: Range<usize>,
    pub set: &'a LoraSet<B>,
}

// Derived Clone would require `B: Clone`.
impl<B: Backend> Clone for LoraRun<'_, B> {
    fn clone(&self) -> Self {
        LoraRun {
            rows: self.rows.clone(),
            set: self.set,
        }
    }
}

/// Adds the LoRA terms of layer `layer` for projections `outs` (each `(module, its output)`, all of
/// input `src`) to the rows of every run.
pub(crate) fn apply<B: Backend>(
    backend: &B,
    s: &mut B::Scratch,
    runs: &[LoraRun<'_, B>],
    layer: usize,
    src: Act,
    outs: &[(LoraModule, Act)],
) -> Result<()> {
    for run in runs {
        let Some(terms) = run.set.layers.get(layer) else {
            return Err(ModelError::Adapter(format!(
                "adapter {:?} has {} layers, the model more",
                run.set.name,
                run.set.layers.len()
            )));
        };
        for &(module, dst) in outs {
            for t in &terms[module.index()] {
                backend.lora(s, dst, src, run.rows.clone(), &t.a, &t.b, t.scale)?;
            }
        }
    }
    Ok(())
}
