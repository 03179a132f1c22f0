//! The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.

use std::path::Path;

use anyhow::{Context, Result};
use llama31_formats::GgufFile;
use llama31_tokenizer::{GgufVocab, Tokenizer};

/// Reads the `tokenizer.ggml.*` keys of an open GGUF file into plain data.
pub fn vocab(gguf: &GgufFile) -> Result<GgufVocab> {
    let model = gguf
        .get_str("tokenizer.ggml.model")
        .context("GGUF file has no tokenizer (tokenizer.ggml.model)")?
        .to_owned();
    let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?.to_vec();
    let token_types = if gguf.contains_key("tokenizer.ggml.token_type") {
        gguf.get_i32_array("tokenizer.ggml.token_type")?
            .into_owned()
    } else {
        Vec::new()
    };
    let merges = if gguf.contains_key("tokenizer.ggml.merges") {
        gguf.get_str_array("tokenizer.ggml.merges")?.to_vec()
    } else {
        Vec::new()
    };
    Ok(GgufVocab {
        model,
        pre: gguf.opt_str("tokenizer.ggml.pre")?.map(str::to_owned),
        tokens,
        token_types,
        merges,
        bos_id: gguf.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_id: gguf.opt_u32("tokenizer.ggml.eos_token_id")?,
        eot_id: gguf.opt_u32("tokenizer.ggml.eot_token_id")?,
        eom_id: gguf.opt_u32("tokenizer.ggml.eom_token_id")?,
        pad_id: gguf.opt_u32("tokenizer.ggml.padding_token_id")?,
        add_bos: gguf.opt_bool("tokenizer.ggml.add_bos_token")?,
        add_eos: gguf.opt_bool("tokenizer.ggml.add_eos_token")?,
    })
}

/// Opens a GGUF file and builds its tokenizer.
pub fn load(path: &Path) -> Result<Tokenizer> {
    let gguf = GgufFile::open(path)?;
    let tok = Tokenizer::from_gguf_vocab(vocab(&gguf)?)
        .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
    Ok(tok)
}
