//! The chat template and chat format that belong to a detected model source.

use llama31_formats::{ModelSource, SourceKind};
use llama31_tokenizer::Tokenizer;

use crate::error::{ChatError, Result};
use crate::formatter::ChatFormatter;
use crate::template::ChatTemplate;

fn files_error(e: impl std::fmt::Display) -> ChatError {
    ChatError::ModelFiles(e.to_string())
}

/// The Jinja chat template the model files carry, if any: a GGUF file's
/// `tokenizer.chat_template`, or a Hugging Face model's `chat_template.jinja` or the
/// `chat_template` of its `tokenizer_config.json` (from a list of named templates, "default").
pub fn chat_template(source: &ModelSource) -> Result<Option<String>> {
    match source.kind() {
        SourceKind::Gguf => {
            let gguf = llama31_formats::GgufFile::open(source.path()).map_err(files_error)?;
            Ok(gguf
                .opt_str("tokenizer.chat_template")
                .map_err(files_error)?
                .map(str::to_owned))
        }
        SourceKind::HfDir | SourceKind::Safetensors => {
            let dir = source.dir();
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                let text = std::fs::read_to_string(&jinja)
                    .map_err(|e| files_error(format!("reading {}: {e}", jinja.display())))?;
                return Ok(Some(text));
            }
            let cfg = dir.join("tokenizer_config.json");
            if !cfg.is_file() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(&cfg)
                .map_err(|e| files_error(format!("reading {}: {e}", cfg.display())))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| files_error(format!("{} is not valid JSON: {e}", cfg.display())))?;
            Ok(match value.get("chat_template") {
                Some(serde_json::Value::String(t)) => Some(t.clone()),
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                    .map(str::to_owned),
                _ => None,
            })
        }
        SourceKind::MetaDir | SourceKind::TiktokenModel | SourceKind::TokenizerJson => Ok(None),
    }
}

/// Whether the model is a chat (instruct) model: it carries a chat template, or it is a Meta
/// checkpoint whose directory name says "Instruct".
pub fn is_instruct(source: &ModelSource) -> Result<bool> {
    match source.kind() {
        SourceKind::MetaDir => {
            let dir = source.path();
            Ok(dir
                .canonicalize()
                .unwrap_or_else(|_| dir.to_path_buf())
                .file_name()
                .is_some_and(|n| n.to_string_lossy().to_lowercase().contains("instruct")))
        }
        _ => Ok(chat_template(source)?.is_some()),
    }
}

/// The chat format to use: Llama 3's own for a Llama 3 vocabulary, else the model's template;
/// [`ChatError::NoChatFormat`] when there is neither.
pub fn chat_format(source: &ModelSource, tokenizer: &Tokenizer) -> Result<ChatFormatter> {
    if let Some(f) = ChatFormatter::for_tokenizer(tokenizer, None) {
        return Ok(f);
    }
    match chat_template(source)? {
        Some(text) => Ok(ChatFormatter::Template(Box::new(ChatTemplate::new(&text)?))),
        None => Err(ChatError::NoChatFormat(source.path().display().to_string())),
    }
}
