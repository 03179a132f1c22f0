//! The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.

use std::path::Path;

use llama31_formats::GgufFile;

use crate::{GgufVocab, Tokenizer, TokenizerError};

impl GgufVocab {
    /// Reads the `tokenizer.ggml.*` keys of an open GGUF file.
    pub fn from_gguf(g: &GgufFile) -> Result<GgufVocab, TokenizerError> {
        if !g.contains_key("tokenizer.ggml.model") {
            return Err(TokenizerError::InvalidVocab(
                "the GGUF file carries no tokenizer (no tokenizer.ggml.model key)".into(),
            ));
        }
        let str_array = |k: &str| -> Result<Vec<String>, TokenizerError> {
            Ok(if g.contains_key(k) {
                g.get_str_array(k)?.to_vec()
            } else {
                Vec::new()
            })
        };
        Ok(GgufVocab {
            model: g.get_str("tokenizer.ggml.model")?.to_owned(),
            pre: g.opt_str("tokenizer.ggml.pre")?.map(str::to_owned),
            tokens: g.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
            token_types: if g.contains_key("tokenizer.ggml.token_type") {
                g.get_i32_array("tokenizer.ggml.token_type")?.into_owned()
            } else {
                Vec::new()
            },
            merges: str_array("tokenizer.ggml.merges")?,
            bos_id: g.opt_u32("tokenizer.ggml.bos_token_id")?,
            eos_id: g.opt_u32("tokenizer.ggml.eos_token_id")?,
            eot_id: g.opt_u32("tokenizer.ggml.eot_token_id")?,
            eom_id: g.opt_u32("tokenizer.ggml.eom_token_id")?,
            pad_id: g.opt_u32("tokenizer.ggml.padding_token_id")?,
            add_bos: g.opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: g.opt_bool("tokenizer.ggml.add_eos_token")?,
        })
    }
}

impl Tokenizer {
    /// Builds the tokenizer stored in an open GGUF file.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_gguf_vocab(GgufVocab::from_gguf(g)?)
    }

    /// Opens a GGUF file and builds its tokenizer.
    pub fn from_gguf_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_gguf(&GgufFile::open(path)?)
    }
}
