//! # llama31-formats: reading (and writing) model files, validating every byte
//!
//! All readers memory-map the file and hand tensors out as zero-copy [`TensorView`]s
//! (`name`, [`DType`], row-major `shape` outermost first, `data: &[u8]` slice of the map).
//! Untrusted input is validated with checked arithmetic before anything is allocated; every
//! failure is a typed [`FormatError`] naming the file, what is wrong and where.
//!
//! ## Entry points
//! - [`ModelSource::detect`]`(path)` / [`detect_source`] — what a path given as a model is
//!   ([`SourceKind`]: GGUF, safetensors file, HF directory, Meta directory, bare
//!   `tokenizer.model` or `tokenizer.json`), decided once by content from a bounded prefix;
//!   anything else is [`FormatError::NotAModel`] saying what the path is not.
//! - [`WeightFile::open`]`(path)` — detects the format ([`detect`]): a `.gguf` file, a
//!   `.safetensors` file, an HF directory (`*.safetensors`, optional `model.safetensors.index.json`),
//!   a Meta directory (`consolidated.NN.pth`). Then [`WeightFile::names`],
//!   [`WeightFile::tensor`]`(name)` (zero-copy [`TensorView`]), [`WeightFile::get`]`(name)`
//!   ([`TensorData`] with `Cow` bytes: borrowed, or joined from Meta model-parallel shards),
//!   [`WeightFile::as_gguf`] (metadata), [`WeightFile::format`].
//! - GGUF v2/v3 ([`gguf`]): [`GgufFile::open`] / [`GgufFile::from_bytes`];
//!   metadata: [`GgufFile::metadata`], [`GgufFile::keys`], [`GgufFile::get`],
//!   [`GgufFile::get_str`], [`GgufFile::get_u32`] (any integer type that fits), `get_u64`,
//!   `get_i64`, [`GgufFile::get_f32`], [`GgufFile::get_bool`], [`GgufFile::get_array`],
//!   [`GgufFile::get_str_array`], [`GgufFile::get_i32_array`], `get_u32_array`, `get_f32_array`,
//!   and `opt_*` variants returning `Ok(None)` for absent keys; tensors:
//!   [`GgufFile::tensor_infos`] ([`GgufTensorInfo`]: `ne` innermost-first as stored, `shape`
//!   row-major), [`GgufFile::tensor`], [`GgufFile::tensors`].
//!   **GGUF stores dims innermost first (`ne[0]` = row length); `TensorView::shape` and
//!   `GgufTensorInfo::shape` are reversed to row-major, outermost first.**
//! - GGUF writer: [`GgufWriter`] (`add_metadata`, `add_tensor(name, DType, row-major shape,
//!   bytes)`, `to_bytes`, `write_to`, `write_file`; streaming for large outputs: `add_tensor_info`,
//!   then `write_header_to`, then `write_tensor_data(w, i, bytes)` per tensor in order); alignment
//!   from `general.alignment` (default 32). Files are GGUF v3.
//! - safetensors ([`safetensors`]): [`SafetensorsFile::open`] (one file),
//!   [`SafetensorsModel::open`] (file or directory, sharded via index `weight_map`).
//! - Meta / PyTorch ([`pth`]): [`PthFile::open`] (one `torch.save` zip; restricted unpickler in
//!   [`pth::pickle`] that never calls anything — other globals give
//!   [`FormatError::ForbiddenGlobal`]), [`MetaCheckpoint::open`]`(dir)` with `names`, `tensor`
//!   (zero-copy, single shard or replicated), `get` (joins), `join_into(name, &mut [u8])`,
//!   `joined_shape`, `shard_dim`. Split rule ([`pth::shards`]): wq/wk/wv/w1/w3/output along dim 0,
//!   wo/w2 along dim 1, norms and `rope.freqs` replicated; `tok_embeddings` along dim 0 (Llama 3
//!   `VocabParallelEmbedding`), or dim 1 when the shard shapes show the Llama 2 layout.
//! - llama.cpp's saved-logits file ([`logits`], `llama-perplexity --kl-divergence-base`):
//!   [`LogitsWriter::create`]`(path, header)` + `write_chunk`, [`LogitsReader::open`] + `read_chunk`.
//! - Types: [`DType`], the one element type of the workspace: plain (`F32`, `F16`, `BF16`, ...,
//!   `U8`, `Bool`) and ggml block-quantized (`Q4_0` ... `MXFP4`); `ggml_id`/`from_ggml_id`,
//!   `block_size`, `type_size`, `bytes_for_shape`, `is_quantized`.
//!
//! ## Alignment of tensor data
//! GGUF tensor data is aligned to `general.alignment` (the map itself is page aligned);
//! safetensors and `.pth` data carry no such guarantee (`.pth` storages are 64-byte aligned by
//! `torch.save`, safetensors only by convention), so consumers must not cast `data` to `&[f32]`
//! without checking alignment.
//!
//! ## Memory maps or reads
//! Files are mapped read-only; a mapped file must not be truncated or rewritten while open (see
//! [`mmap::Bytes::map_file`]). The `open_with` constructors take a [`FileLoading`]: map, read the
//! whole file into anonymous memory advised for huge pages, or decide by size and free memory.

pub mod dtype;
pub mod error;
pub mod gguf;
pub mod logits;
pub mod mmap;
pub mod pth;
pub mod safetensors;
pub mod source;
pub mod tensor;
pub mod weights;

pub use dtype::DType;
pub use error::{FormatError, Result};
pub use gguf::{GgufArray, GgufFile, GgufTensorInfo, GgufValue, GgufValueType, GgufWriter};
pub use logits::{LogitsHeader, LogitsReader, LogitsWriter};
pub use mmap::{Bytes, FileLoading, SharedBytes};
pub use pth::{MetaCheckpoint, PthFile};
pub use safetensors::{SafetensorsFile, SafetensorsModel};
pub use source::{detect_source, ModelSource, SourceKind, TokenizerLocation};
pub use tensor::{TensorData, TensorView};
pub use weights::{detect, WeightFile, WeightFormat};
