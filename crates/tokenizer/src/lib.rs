//! Byte-level BPE tokenizers for Llama 3.x: Meta's tiktoken `tokenizer.model`, Hugging Face
//! `tokenizer.json`, and the vocabulary stored in a GGUF file.
//!
//! API contract (the bodies are being filled in):
//! - `encode(text, allow_special)` never adds BOS/EOS; with `allow_special == false` text that looks
//!   like a special token is encoded as ordinary text.
//! - `token_id("<|eot_id|>")` finds special (and ordinary) tokens by their text.

use std::path::Path;

/// A token id.
pub type TokenId = u32;

/// Errors from loading a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{0}")]
    Invalid(String),
}

/// The vocabulary of a GGUF file (`tokenizer.ggml.*` keys), as plain data.
#[derive(Debug, Clone, Default)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`, e.g. "gpt2".
    pub model: String,
    /// `tokenizer.ggml.pre`, e.g. "llama-bpe", "smollm".
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, "a b" per merge.
    pub merges: Vec<String>,
    pub bos_id: Option<TokenId>,
    pub eos_id: Option<TokenId>,
    pub eot_id: Option<TokenId>,
    pub eom_id: Option<TokenId>,
    pub pad_id: Option<TokenId>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
}

/// A loaded tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    _private: (),
}

impl Tokenizer {
    /// Loads Meta's `tokenizer.model` and adds Meta's 256 special tokens.
    pub fn from_tiktoken_file(_path: &Path) -> Result<Self, TokenizerError> {
        unimplemented!()
    }
    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_hf_json_file(_path: &Path) -> Result<Self, TokenizerError> {
        unimplemented!()
    }
    /// Builds the tokenizer stored in a GGUF file.
    pub fn from_gguf_vocab(_vocab: GgufVocab) -> Result<Self, TokenizerError> {
        unimplemented!()
    }
    /// Encodes text; never adds BOS/EOS.
    pub fn encode(&self, _text: &str, _allow_special: bool) -> Vec<TokenId> {
        unimplemented!()
    }
    /// The bytes of a sequence of tokens (special tokens as their text).
    pub fn decode(&self, _ids: &[TokenId]) -> Vec<u8> {
        unimplemented!()
    }
    /// The id of a token given its text (special tokens included).
    pub fn token_id(&self, _text: &str) -> Option<TokenId> {
        unimplemented!()
    }
    /// The BOS token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<TokenId> {
        unimplemented!()
    }
    /// Tokens that end generation (EOS, EOT, EOM, ...).
    pub fn eos_ids(&self) -> &[TokenId] {
        unimplemented!()
    }
    /// Whether the model expects BOS at the start of a sequence.
    pub fn add_bos(&self) -> bool {
        unimplemented!()
    }
    /// Number of ids (ordinary + special).
    pub fn vocab_size(&self) -> usize {
        unimplemented!()
    }
}
