//! `--model PATH`: detected by the library ([`ModelSource`], by content), its tokenizer, chat
//! template and chat format loaded by the library crates; here only the errors get the CLI's
//! context and hints.

use std::path::Path;

use anyhow::{Context, Result};
use llama31_chat::{ChatError, ChatFormatter};
use llama31_tokenizer::Tokenizer;

pub use llama31_formats::{ModelSource as Source, SourceKind};

/// Detects what `path` is (an `hf://` spec is fetched from the hub first); anything that is
/// not a model or a tokenizer is an error that says what it is not.
pub fn detect(path: &Path) -> Result<Source> {
    let path = crate::hub::resolve(path)?;
    Ok(Source::detect(&path)?)
}

/// Detects `path` and requires weights (a bare tokenizer is an error).
pub fn detect_model(path: &Path) -> Result<Source> {
    let source = detect(path)?;
    source.weight_format()?;
    Ok(source)
}

/// The library's per-source loading, with the CLI's error context.
pub trait SourceExt {
    /// The tokenizer that belongs to the source.
    fn load_tokenizer(&self) -> Result<Tokenizer>;
    /// The Jinja chat template the model files carry, if any.
    fn chat_template(&self) -> Result<Option<String>>;
    /// Whether the model is a chat (instruct) model.
    fn is_instruct(&self) -> Result<bool>;
    /// Llama 3's own chat format for a Llama 3 vocabulary, else the model's template.
    fn chat_format(&self, tokenizer: &Tokenizer) -> Result<ChatFormatter>;
}

impl SourceExt for Source {
    fn load_tokenizer(&self) -> Result<Tokenizer> {
        Tokenizer::for_source(self)
            .with_context(|| format!("loading the tokenizer of {}", self.path().display()))
    }

    fn chat_template(&self) -> Result<Option<String>> {
        Ok(llama31_chat::source::chat_template(self)?)
    }

    fn is_instruct(&self) -> Result<bool> {
        Ok(llama31_chat::source::is_instruct(self)?)
    }

    fn chat_format(&self, tokenizer: &Tokenizer) -> Result<ChatFormatter> {
        match llama31_chat::source::chat_format(self, tokenizer) {
            Ok(f) => Ok(f),
            Err(e @ ChatError::NoChatFormat(_)) => {
                Err(anyhow::anyhow!("{e}; use --raw for plain completion"))
            }
            Err(e @ ChatError::ModelFiles(_)) => Err(e.into()),
            Err(e) => {
                Err(anyhow::Error::new(e).context("the model's chat template does not compile"))
            }
        }
    }
}
