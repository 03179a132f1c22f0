//! What a `--model PATH` points at, and loading the tokenizer and chat template from it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use llama31_chat::{ChatFormatter, ChatTemplate};
use llama31_tokenizer::Tokenizer;

/// The kinds of paths `--model` accepts.
#[derive(Debug, Clone)]
pub enum Source {
    /// Meta's tiktoken `tokenizer.model` on its own.
    TiktokenFile(PathBuf),
    /// A Hugging Face `tokenizer.json` on its own.
    HfTokenizerJson(PathBuf),
    /// A Meta checkpoint dir: `params.json`, `consolidated.*.pth`, `tokenizer.model`.
    MetaDir(PathBuf),
    /// A Hugging Face model dir: `config.json`, `*.safetensors`, `tokenizer.json`.
    HfDir(PathBuf),
    /// A GGUF file.
    Gguf(PathBuf),
}

impl Source {
    /// Works out what `path` is from its name and contents.
    pub fn detect(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot open model path {}", path.display()))?;
        if meta.is_dir() {
            if path.join("params.json").is_file() || has_consolidated(path)? {
                return Ok(Source::MetaDir(path.to_path_buf()));
            }
            if path.join("config.json").is_file() {
                return Ok(Source::HfDir(path.to_path_buf()));
            }
            if path.join("tokenizer.json").is_file() {
                return Ok(Source::HfDir(path.to_path_buf()));
            }
            if path.join("tokenizer.model").is_file() {
                return Ok(Source::MetaDir(path.to_path_buf()));
            }
            bail!(
                "{} is a directory without params.json, config.json, tokenizer.json or tokenizer.model",
                path.display()
            );
        }
        let mut magic = [0u8; 4];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            f.read(&mut magic).unwrap_or(0)
        };
        if n == 4 && &magic == b"GGUF" {
            return Ok(Source::Gguf(path.to_path_buf()));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".gguf") {
            return Ok(Source::Gguf(path.to_path_buf()));
        }
        if name.ends_with(".json") {
            return Ok(Source::HfTokenizerJson(path.to_path_buf()));
        }
        Ok(Source::TiktokenFile(path.to_path_buf()))
    }

    /// A short name of the kind of source.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Source::TiktokenFile(_) => "tokenizer.model (tiktoken)",
            Source::HfTokenizerJson(_) => "tokenizer.json (Hugging Face)",
            Source::MetaDir(_) => "Meta checkpoint directory",
            Source::HfDir(_) => "Hugging Face model directory",
            Source::Gguf(_) => "GGUF",
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        match self {
            Source::TiktokenFile(p)
            | Source::HfTokenizerJson(p)
            | Source::MetaDir(p)
            | Source::HfDir(p)
            | Source::Gguf(p) => p,
        }
    }

    /// The Jinja chat template the model files carry, if any.
    pub fn chat_template(&self) -> Result<Option<String>> {
        match self {
            Source::Gguf(p) => {
                let gguf = llama31_formats::GgufFile::open(p)?;
                Ok(gguf.opt_str("tokenizer.chat_template")?.map(str::to_owned))
            }
            Source::HfDir(dir) => {
                let jinja = dir.join("chat_template.jinja");
                if jinja.is_file() {
                    return Ok(Some(
                        std::fs::read_to_string(&jinja)
                            .with_context(|| format!("reading {}", jinja.display()))?,
                    ));
                }
                let cfg = dir.join("tokenizer_config.json");
                if !cfg.is_file() {
                    return Ok(None);
                }
                let text = std::fs::read_to_string(&cfg)
                    .with_context(|| format!("reading {}", cfg.display()))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", cfg.display()))?;
                Ok(match value.get("chat_template") {
                    Some(serde_json::Value::String(t)) => Some(t.clone()),
                    // A list of named templates: take "default".
                    Some(serde_json::Value::Array(list)) => list
                        .iter()
                        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                        .and_then(|t| t.get("template"))
                        .and_then(|t| t.as_str())
                        .map(str::to_owned),
                    _ => None,
                })
            }
            _ => Ok(None),
        }
    }

    /// Whether the model is a chat (instruct) model: it carries a chat template, or it is a Meta
    /// checkpoint whose directory name says "Instruct".
    pub fn is_instruct(&self) -> Result<bool> {
        match self {
            Source::MetaDir(dir) => Ok(dir
                .canonicalize()
                .unwrap_or_else(|_| dir.clone())
                .file_name()
                .is_some_and(|n| n.to_string_lossy().to_lowercase().contains("instruct"))),
            _ => Ok(self.chat_template()?.is_some()),
        }
    }

    /// The chat format to use: Llama 3's own for a Llama 3 vocabulary, else the model's template.
    pub fn chat_format(&self, tokenizer: &Tokenizer) -> Result<ChatFormatter> {
        let llama3 = ChatFormatter::for_tokenizer(tokenizer, None);
        if let Some(f) = llama3 {
            return Ok(f);
        }
        match self.chat_template()? {
            Some(source) => Ok(ChatFormatter::Template(Box::new(
                ChatTemplate::new(&source).context("the model's chat template does not compile")?,
            ))),
            None => bail!(
                "{} has no chat template and is not a Llama 3 model; use --raw for plain completion",
                self.path().display()
            ),
        }
    }

    /// Loads the tokenizer that belongs to this source.
    pub fn load_tokenizer(&self) -> Result<Tokenizer> {
        let tok = match self {
            Source::TiktokenFile(p) => Tokenizer::from_tiktoken_file(p)
                .with_context(|| format!("loading tokenizer {}", p.display()))?,
            Source::HfTokenizerJson(p) => Tokenizer::from_hf_json_file(p)
                .with_context(|| format!("loading tokenizer {}", p.display()))?,
            Source::MetaDir(dir) => {
                let p = dir.join("tokenizer.model");
                Tokenizer::from_tiktoken_file(&p)
                    .with_context(|| format!("loading tokenizer {}", p.display()))?
            }
            Source::HfDir(dir) => {
                let p = dir.join("tokenizer.json");
                Tokenizer::from_hf_json_file(&p)
                    .with_context(|| format!("loading tokenizer {}", p.display()))?
            }
            Source::Gguf(p) => Tokenizer::from_gguf_file(p)
                .with_context(|| format!("loading the tokenizer of {}", p.display()))?,
        };
        Ok(tok)
    }
}

fn has_consolidated(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("consolidated.") && name.ends_with(".pth") {
            return Ok(true);
        }
    }
    Ok(false)
}
