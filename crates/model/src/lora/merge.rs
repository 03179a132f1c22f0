//! Merging adapters into the weights at load: `W ← W + s · B · A` in f32.

use llama31_formats::DType;
use rayon::prelude::*;

use super::{LoraAdapter, LoraModule};
use crate::backend::Cpu;
use crate::error::{ModelError, Result};
use crate::linear::Linear;
use crate::llama::{LayerWeights, Model};
use crate::weights::matrix_owned;

impl<B: crate::Backend> LayerWeights<B> {
    /// The projection an adapter module changes.
    pub fn module(&self, m: LoraModule) -> &Linear<B> {
        match m {
            LoraModule::Q => &self.wq,
            LoraModule::K => &self.wk,
            LoraModule::V => &self.wv,
            LoraModule::O => &self.wo,
            LoraModule::Gate => &self.w_gate,
            LoraModule::Up => &self.w_up,
            LoraModule::Down => &self.w_down,
        }
    }

    /// [`LayerWeights::module`], mutable.
    pub fn module_mut(&mut self, m: LoraModule) -> &mut Linear<B> {
        match m {
            LoraModule::Q => &mut self.wq,
            LoraModule::K => &mut self.wk,
            LoraModule::V => &mut self.wv,
            LoraModule::O => &mut self.wo,
            LoraModule::Gate => &mut self.w_gate,
            LoraModule::Up => &mut self.w_up,
            LoraModule::Down => &mut self.w_down,
        }
    }
}

impl Model<Cpu> {
    /// Merges `adapters` (each with a user's scale) into the weights: every adapted projection
    /// becomes f32 `W + s · B · A` (PEFT's `merge_and_unload` arithmetic: the product `B · A` in
    /// f32, scaled, added to the base dequantized to f32). Projections no adapter touches stay as
    /// stored.
    pub fn merge_lora(&mut self, adapters: &[(&LoraAdapter, f32)]) -> Result<()> {
        let (cfg, layout) = (self.config.clone(), self.layout);
        for &(adapter, user_scale) in adapters {
            if !user_scale.is_finite() {
                return Err(ModelError::Adapter(format!(
                    "scale {user_scale} for adapter {:?} is not finite",
                    adapter.name
                )));
            }
            adapter.check(&cfg)?;
            for t in adapter.terms_for(&cfg, layout) {
                let lin = self.weights.layers[t.layer].module_mut(t.module);
                let (rows, cols) = (lin.rows(), lin.cols());
                let mut w = vec![0.0f32; rows * cols];
                w.par_chunks_mut(cols)
                    .enumerate()
                    .try_for_each(|(r, out)| lin.weight().decode_row(r, out))?;
                let scale = t.scale * user_scale;
                w.par_chunks_mut(cols)
                    .enumerate()
                    .for_each(|(o, row)| t.merge_row(o, row, scale));
                let bytes = w.iter().flat_map(|x| x.to_le_bytes()).collect();
                *lin.weight_mut() = matrix_owned(DType::F32, rows, cols, bytes)?;
            }
            tracing::info!(adapter = %adapter.name, scale = user_scale, "merged LoRA adapter");
        }
        Ok(())
    }
}
