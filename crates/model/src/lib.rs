//! llama31 model: configuration, weight loading (GGUF, Hugging Face safetensors, Meta `.pth`)
//! and the exact Llama 3.1 forward pass over a preallocated KV cache.
//!
//! ```text
//! Model::load(path, LoadOptions { max_seq_len, progress })  // .gguf | HF dir | Meta dir
//! Model::load_with_quant(path, opts, true)  // GGUF: keep quantized weights, ggml-style matmul
//! let mut cache = model.new_cache(max_seq)?;                // or KvCache::new(config, max_seq)
//! let logits = model.forward(&tokens, start_pos, &mut cache, LogitsMode::Last)?;
//! ```

pub mod config;
pub mod error;
pub mod llama;
pub mod load;
pub mod weights;

pub use config::{meta_ffn_dim, Config, Llama3RopeScaling};
pub use error::{ModelError, Result};
pub use llama::{BatchSeq, KvCache, LayerWeights, LogitsMode, Model, Scratch, Weights};
pub use llama31_formats::FileLoading;
pub use llama31_kernels::rope::RopeLayout;
pub use load::{file_loading_for, LoadOptions, ProgressFn};
pub use weights::{Matrix, MatrixDType, NameScheme, TensorSummary};
