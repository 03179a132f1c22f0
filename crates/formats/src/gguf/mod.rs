//! GGUF v2/v3: reader ([`GgufFile`]), writer ([`GgufWriter`]) and metadata types.

mod read;
mod types;
mod write;

pub use read::{
    GgufFile, GgufTensorInfo, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_ARRAY_DEPTH,
    GGUF_MAX_DIMS,
};
pub use types::{GgufArray, GgufValue, GgufValueType};
pub use write::{GgufWriter, GgufWriterTensor};
