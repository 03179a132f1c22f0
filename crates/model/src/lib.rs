//! llama31 model: configuration, weight loading (GGUF, Hugging Face safetensors, Meta `.pth`)
//! and the exact Llama 3.1 forward pass, written once over a [`Backend`] (the CPU's is [`Cpu`]).
//!
//! ```text
//! Model::load(path, LoadOptions { max_seq_len, weights: WeightMode::AsStored, .. })  // .gguf | HF dir | Meta dir
//! let mut cache = model.new_cache(max_seq)?;        // KvCache: append / view / truncate
//! let logits = model.forward(&tokens, start_pos, &mut cache, LogitsMode::Last)?;
//! model.forward_batch(&mut [BatchSeq { .. }, ..], &mut scratch, &mut out)?;  // many sequences, one step
//! ```
//!
//! Layout: `backend/` (the [`Backend`] trait and the CPU backend, the only code that calls the
//! kernels), `llama.rs` (weights and the forward), `linear.rs` (the projections),
//! `kv_cache.rs`, `load.rs` + `weights.rs` (checkpoints to host weights), `config.rs`.

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod kv_cache;
pub mod linear;
pub mod llama;
pub mod load;
pub mod lora;
pub mod plan;
pub mod weights;

pub use backend::{Act, Backend, Cpu, KvType};
pub use checkpoint::Checkpoint;
pub use config::{meta_ffn_dim, Config, Llama3RopeScaling};
pub use error::{ModelError, Result};
pub use kv_cache::KvCache;
pub use linear::Linear;
pub use llama::{BatchSeq, LayerWeights, LogitsMode, Model, Scratch, Weights};
pub use llama31_formats::FileLoading;
pub use llama31_kernels::rope::RopeLayout;
pub use load::{file_loading_for, LoadOptions, ProgressFn, WeightMode};
pub use lora::{LoraAdapter, LoraModule, LoraSet, MergeInto};
pub use plan::{plan_for, Budget, MemoryPlan, Workload};
pub use weights::{Activations, Matrix, NameScheme, TensorSummary};
