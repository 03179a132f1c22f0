//! Errors from loading a tokenizer.

use std::path::PathBuf;

/// Errors from loading a tokenizer. Encoding and decoding never fail.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokenizer.model is empty (no `<base64 token> <rank>` lines)")]
    Empty,
    #[error("tokenizer.model is not UTF-8 text")]
    NotUtf8,
    #[error("tokenizer.model line {line}: expected `<base64 token> <rank>`")]
    BadLine { line: usize },
    #[error("tokenizer.model line {line}: invalid base64 token")]
    BadBase64 { line: usize },
    #[error("tokenizer.model line {line}: rank is not a non-negative integer")]
    BadRank { line: usize },
    #[error("duplicate rank {rank}")]
    DuplicateRank { rank: u32 },
    #[error("duplicate token {token:?} (second occurrence: line/index {line})")]
    DuplicateToken { token: String, line: usize },
    #[error("rank {rank} is out of range: ranks must be 0..{count} (one per token)")]
    RankOutOfRange { rank: u32, count: usize },
    #[error("the vocabulary has no token for byte 0x{byte:02x}")]
    MissingByteToken { byte: u8 },
    #[error("unsupported tokenizer model {0:?}")]
    UnsupportedModel(String),
    #[error("unsupported pre-tokenizer {0}")]
    UnsupportedPreTokenizer(String),
    #[error("unsupported normalizer {0}")]
    UnsupportedNormalizer(String),
    #[error("unsupported decoder {0}")]
    UnsupportedDecoder(String),
    #[error("unsupported post-processor {0}")]
    UnsupportedPostProcessor(String),
    #[error("unsupported BPE option {0}")]
    UnsupportedOption(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("invalid tokenizer.json: {0}")]
    InvalidHfJson(String),
    #[error(transparent)]
    Gguf(#[from] llama31_formats::FormatError),
    #[error("invalid GGUF vocabulary: {0}")]
    InvalidVocab(String),
    #[error("invalid pre-tokenizer regex {pattern:?}: {message}")]
    BadRegex { pattern: String, message: String },
}
