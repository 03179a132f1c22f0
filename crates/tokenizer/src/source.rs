//! The tokenizer that belongs to a detected model source.

use llama31_formats::{ModelSource, TokenizerLocation};

use crate::{Tokenizer, TokenizerError};

impl Tokenizer {
    /// Loads the tokenizer of `source`: the GGUF file's `tokenizer.*` metadata, the Meta
    /// directory's `tokenizer.model`, the Hugging Face `tokenizer.json` beside the weights, or
    /// the bare tokenizer file itself.
    pub fn for_source(source: &ModelSource) -> Result<Tokenizer, TokenizerError> {
        match source.tokenizer() {
            TokenizerLocation::Gguf(p) => Tokenizer::from_gguf_file(&p),
            TokenizerLocation::Tiktoken(p) => Tokenizer::from_tiktoken_file(&p),
            TokenizerLocation::HfJson(p) => Tokenizer::from_hf_json_file(&p),
        }
    }
}
