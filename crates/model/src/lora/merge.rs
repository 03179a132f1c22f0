//! Merging adapters into the weights at load: `W ← W + s · B · A` in f32.

use llama31_formats::DType;
use llama31_kernels::convert::encode_into;
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

/// What a merged projection is stored as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MergeInto {
    /// f32: `W + s · B · A` as computed (PEFT's merge in float32).
    #[default]
    F32,
    /// The projection's own stored type: the f32 sum rounded to F16 / BF16, or quantized again
    /// with ggml's reference quantizer for a block type. The base's memory and speed, at the cost
    /// of that rounding.
    Stored,
}

impl Model<Cpu> {
    /// Merges `adapters` (each with a user's scale) into the weights: every adapted projection
    /// becomes f32 `W + s · B · A` (PEFT's `merge_and_unload` arithmetic: the product `B · A` in
    /// f32, scaled, added to the base dequantized to f32). Projections no adapter touches stay as
    /// stored.
    pub fn merge_lora(&mut self, adapters: &[(&LoraAdapter, f32)]) -> Result<()> {
        self.merge_lora_into(adapters, MergeInto::F32)
    }

    /// [`Model::merge_lora`], storing each merged projection as `into` says (after all adapters
    /// are added, so stacked adapters are rounded once).
    pub fn merge_lora_into(
        &mut self,
        adapters: &[(&LoraAdapter, f32)],
        into: MergeInto,
    ) -> Result<()> {
        let stored: Vec<Vec<(DType, crate::Activations)>> = self
            .weights
            .layers
            .iter()
            .map(|l| {
                LoraModule::ALL
                    .iter()
                    .map(|&m| {
                        let w = l.module(m).weight();
                        (w.dtype, w.activations())
                    })
                    .collect()
            })
            .collect();
        self.merge_f32(adapters)?;
        if into == MergeInto::F32 {
            return Ok(());
        }
        for (l, dtypes) in stored.iter().enumerate() {
            for (m, &(dtype, activations)) in LoraModule::ALL.iter().zip(dtypes) {
                let lin = self.weights.layers[l].module_mut(*m);
                if dtype == lin.weight().dtype {
                    continue; // not merged
                }
                let (rows, cols) = (lin.rows(), lin.cols());
                let f32s = lin.weight().bytes();
                let rb = llama31_kernels::convert::row_bytes_of(dtype, cols)?;
                let mut bytes = vec![0u8; rows * rb];
                bytes
                    .par_chunks_mut(rb)
                    .zip(f32s.par_chunks(cols * 4))
                    .try_for_each(|(dst, src)| {
                        let x: Vec<f32> = src
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect();
                        encode_into(dtype, &x, dst)
                    })?;
                let mut w = matrix_owned(dtype, rows, cols, bytes)?;
                w.set_activations(activations);
                *lin.weight_mut() = w;
            }
        }
        Ok(())
    }

    fn merge_f32(&mut self, adapters: &[(&LoraAdapter, f32)]) -> Result<()> {
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
