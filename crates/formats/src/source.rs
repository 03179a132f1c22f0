//! Which files make a model: [`ModelSource::detect`] decides once, by content, what a path given
//! as a model is — a GGUF file, a safetensors file, a Hugging Face directory, a Meta directory, or
//! a bare tokenizer (`tokenizer.model` / `tokenizer.json`).
//!
//! Files are recognised by their first bytes (GGUF magic, safetensors header, tiktoken lines,
//! a JSON object with a `model` object), never by their names; directories by the files they
//! hold: `consolidated.00.pth` (its zip signature checked) makes a Meta directory, `*.safetensors`
//! or `model.safetensors.index.json` a Hugging Face one; their `params.json` / `config.json` are
//! read, and their absence reported, when the model is described. At most [`PREFIX_LEN`] bytes of
//! a file are read to decide. Anything else is a [`FormatError::NotAModel`] that says what the
//! path is not and what was expected.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{FormatError, Result};
use crate::weights::WeightFormat;

/// The most bytes of a file read to decide what it is.
pub const PREFIX_LEN: usize = 1 << 20;

/// What was expected, appended to every "not a model" message.
const EXPECTED: &str =
    "expected a .gguf or .safetensors file, a tokenizer.model or tokenizer.json, \
     a Hugging Face directory (config.json + *.safetensors) or a Meta directory \
     (params.json + consolidated.00.pth)";

/// The kinds of paths that make a model (or only its tokenizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A GGUF file (weights, config and tokenizer in one).
    Gguf,
    /// One safetensors file; `config.json` and `tokenizer.json` are beside it.
    Safetensors,
    /// A Hugging Face directory: `config.json`, `*.safetensors` (+ index), `tokenizer.json`.
    HfDir,
    /// A Meta directory: `params.json`, `consolidated.NN.pth`, `tokenizer.model`.
    MetaDir,
    /// Meta's tiktoken `tokenizer.model` on its own (`<base64 token> <rank>` lines).
    TiktokenModel,
    /// A Hugging Face `tokenizer.json` on its own.
    TokenizerJson,
}

impl SourceKind {
    /// A short human name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Gguf => "GGUF",
            SourceKind::Safetensors => "safetensors file",
            SourceKind::HfDir => "Hugging Face model directory",
            SourceKind::MetaDir => "Meta checkpoint directory",
            SourceKind::TiktokenModel => "tokenizer.model (tiktoken)",
            SourceKind::TokenizerJson => "tokenizer.json (Hugging Face)",
        }
    }

    /// The format of the weights, or `None` for a bare tokenizer.
    pub fn weights(self) -> Option<WeightFormat> {
        match self {
            SourceKind::Gguf => Some(WeightFormat::Gguf),
            SourceKind::Safetensors | SourceKind::HfDir => Some(WeightFormat::Safetensors),
            SourceKind::MetaDir => Some(WeightFormat::MetaPth),
            SourceKind::TiktokenModel | SourceKind::TokenizerJson => None,
        }
    }

    /// Whether the path holds only a tokenizer, no weights.
    pub fn is_tokenizer_only(self) -> bool {
        self.weights().is_none()
    }
}

/// A path given as a model, with what it was detected to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    path: PathBuf,
    kind: SourceKind,
}

/// Where the tokenizer of a [`ModelSource`] is, and in which form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerLocation {
    /// In the GGUF file's `tokenizer.*` metadata.
    Gguf(PathBuf),
    /// A tiktoken `tokenizer.model`.
    Tiktoken(PathBuf),
    /// A Hugging Face `tokenizer.json`.
    HfJson(PathBuf),
}

impl ModelSource {
    /// Detects what `path` is (see the module documentation).
    pub fn detect(path: impl AsRef<Path>) -> Result<ModelSource> {
        detect_source(path.as_ref())
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the path is.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// A short human name of the kind.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The format of the weights, or `None` for a bare tokenizer.
    pub fn weights(&self) -> Option<WeightFormat> {
        self.kind.weights()
    }

    /// The format of the weights; for a bare tokenizer, [`FormatError::NotAModel`] saying so.
    pub fn weight_format(&self) -> Result<WeightFormat> {
        self.weights().ok_or_else(|| FormatError::NotAModel {
            path: self.path.clone(),
            msg: format!(
                "it is a {}, which holds no weights; expected a .gguf or .safetensors file or a \
                 model directory",
                self.kind_name()
            ),
        })
    }

    /// Whether the path holds only a tokenizer, no weights.
    pub fn is_tokenizer_only(&self) -> bool {
        self.kind.is_tokenizer_only()
    }

    /// The directory that holds the model's side files (`config.json`, `tokenizer_config.json`,
    /// ...): the path itself for a directory, else the file's directory.
    pub fn dir(&self) -> PathBuf {
        match self.kind {
            SourceKind::HfDir | SourceKind::MetaDir => self.path.clone(),
            _ => match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        }
    }

    /// Where the tokenizer that belongs to this model is.
    pub fn tokenizer(&self) -> TokenizerLocation {
        match self.kind {
            SourceKind::Gguf => TokenizerLocation::Gguf(self.path.clone()),
            SourceKind::TiktokenModel => TokenizerLocation::Tiktoken(self.path.clone()),
            SourceKind::TokenizerJson => TokenizerLocation::HfJson(self.path.clone()),
            SourceKind::MetaDir => TokenizerLocation::Tiktoken(self.path.join("tokenizer.model")),
            SourceKind::HfDir | SourceKind::Safetensors => {
                TokenizerLocation::HfJson(self.dir().join("tokenizer.json"))
            }
        }
    }
}

/// Detects what `path` is: [`ModelSource::detect`].
pub fn detect_source(path: &Path) -> Result<ModelSource> {
    let meta = std::fs::metadata(path).map_err(|e| FormatError::io(path, e))?;
    let kind = if meta.is_dir() {
        detect_dir(path)?
    } else {
        detect_file(path)?
    };
    tracing::debug!(path = %path.display(), kind = kind.name(), "detected model source");
    Ok(ModelSource {
        path: path.to_path_buf(),
        kind,
    })
}

fn not_a_model(path: &Path, msg: impl std::fmt::Display) -> FormatError {
    FormatError::NotAModel {
        path: path.to_path_buf(),
        msg: format!("{msg}; {EXPECTED}"),
    }
}

/// The first `limit` bytes of `path` (fewer if the file is shorter) and the file's length.
fn read_prefix(path: &Path, limit: usize) -> Result<(Vec<u8>, u64)> {
    let file = std::fs::File::open(path).map_err(|e| FormatError::io(path, e))?;
    let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
    let want = usize::try_from(len).unwrap_or(usize::MAX).min(limit);
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64)
        .read_to_end(&mut buf)
        .map_err(|e| FormatError::io(path, e))?;
    Ok((buf, len))
}

fn detect_file(path: &Path) -> Result<SourceKind> {
    let (buf, len) = read_prefix(path, PREFIX_LEN)?;
    if buf.is_empty() {
        return Err(not_a_model(path, "the file is empty"));
    }
    if buf.starts_with(&crate::gguf::GGUF_MAGIC) {
        return Ok(SourceKind::Gguf);
    }
    if is_safetensors(&buf, len) {
        return Ok(SourceKind::Safetensors);
    }
    let complete = len <= buf.len() as u64;
    if is_tiktoken(&buf, complete) {
        return Ok(SourceKind::TiktokenModel);
    }
    let keys = json_top_level(&buf);
    if keys.model_object {
        return Ok(SourceKind::TokenizerJson);
    }
    let mut msg = String::from(
        "not GGUF (no GGUF magic), not safetensors (no valid header), \
         not a tiktoken tokenizer.model (no `<base64 token> <rank>` lines), \
         not a tokenizer.json (no JSON object with a \"model\" object)",
    );
    if let Some(hint) = keys.hint() {
        msg.push_str(" — ");
        msg.push_str(hint);
    }
    Err(not_a_model(path, msg))
}

/// Largest safetensors header accepted (the `safetensors` crate's own limit).
const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// A safetensors file: a little-endian u64 header length that fits the file, then a JSON object.
fn is_safetensors(buf: &[u8], len: u64) -> bool {
    let Some(n) = buf.get(..8) else {
        return false;
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(n);
    let n = u64::from_le_bytes(le);
    if !(2..=MAX_SAFETENSORS_HEADER).contains(&n) || n > len.saturating_sub(8) {
        return false;
    }
    let header = &buf[8..buf.len().min(8 + n as usize)];
    header
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Tiktoken text: every line (those wholly inside the prefix) is `<base64> <rank>`, at least one.
fn is_tiktoken(buf: &[u8], complete: bool) -> bool {
    let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if !complete {
        lines.pop();
    }
    let mut any = false;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(space) = line.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (token, rank) = (&line[..space], &line[space + 1..]);
        if !is_padded_base64(token) || rank.is_empty() || !rank.iter().all(u8::is_ascii_digit) {
            return false;
        }
        any = true;
    }
    any
}

fn is_padded_base64(s: &[u8]) -> bool {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return false;
    }
    let body = s.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    s.len() - body <= 2
        && s[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// What the top-level keys of a JSON object (read from a prefix) say.
#[derive(Debug, Default)]
struct JsonKeys {
    /// A key `model` whose value is an object (a tokenizer.json).
    model_object: bool,
    /// Keys of a Hugging Face config.json.
    hf_config: bool,
    /// Keys of a Meta params.json.
    meta_params: bool,
    /// The text starts a JSON object at all.
    object: bool,
}

impl JsonKeys {
    fn hint(&self) -> Option<&'static str> {
        if self.hf_config {
            Some("it looks like a Hugging Face config.json: give the directory that holds it")
        } else if self.meta_params {
            Some("it looks like a Meta params.json: give the directory that holds it")
        } else if self.object {
            Some("it is a JSON object of another kind")
        } else {
            None
        }
    }
}

/// Scans the top-level keys of the JSON object that `buf` starts with, as far as `buf` goes.
/// Nothing is allocated beyond the keys' text; malformed or cut-off JSON ends the scan.
fn json_top_level(buf: &[u8]) -> JsonKeys {
    let mut keys = JsonKeys::default();
    let mut s = Scanner { buf, at: 0 };
    s.ws();
    if !s.eat(b'{') {
        return keys;
    }
    keys.object = true;
    loop {
        s.ws();
        let Some(key) = s.string() else {
            return keys;
        };
        s.ws();
        if !s.eat(b':') {
            return keys;
        }
        s.ws();
        match key {
            b"model" if s.peek() == Some(b'{') => keys.model_object = true,
            b"architectures" | b"model_type" | b"hidden_size" | b"num_hidden_layers" => {
                keys.hf_config = true
            }
            b"dim" | b"n_layers" | b"n_heads" => keys.meta_params = true,
            _ => {}
        }
        if !s.skip_value() {
            return keys;
        }
        s.ws();
        if !s.eat(b',') {
            return keys;
        }
    }
}

struct Scanner<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.at).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string's raw bytes (escapes left as they are), or `None` if there is none or it is cut.
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    let s = self.buf.get(start..self.at)?;
                    self.at += 1;
                    return Some(s);
                }
                _ => self.at += 1,
            }
        }
    }

    /// Skips one value (string, object, array or scalar); false if it is cut off or malformed.
    fn skip_value(&mut self) -> bool {
        match self.peek() {
            None => false,
            Some(b'"') => self.string().is_some(),
            Some(b'{') | Some(b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return false,
                        Some(b'"') => {
                            if self.string().is_none() {
                                return false;
                            }
                        }
                        Some(b'{') | Some(b'[') => {
                            depth += 1;
                            self.at += 1;
                        }
                        Some(b'}') | Some(b']') => {
                            depth -= 1;
                            self.at += 1;
                            if depth == 0 {
                                return true;
                            }
                        }
                        Some(_) => self.at += 1,
                    }
                }
            }
            Some(_) => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                self.at > start && self.peek().is_some()
            }
        }
    }
}

/// The zip local-file-header signature that a `torch.save` checkpoint starts with.
const ZIP_SIGNATURE: [u8; 4] = *b"PK\x03\x04";

fn detect_dir(dir: &Path) -> Result<SourceKind> {
    let mut safetensors = false;
    let mut pth = false;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| FormatError::io(dir, e))? {
        let entry = entry.map_err(|e| FormatError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        safetensors |= name.ends_with(".safetensors");
        pth |= name.starts_with("consolidated.") && name.ends_with(".pth");
        names.push(name);
    }
    let has = |n: &str| dir.join(n).is_file();
    let (params, config) = (has("params.json"), has("config.json"));
    let safetensors = safetensors || has(crate::safetensors::SAFETENSORS_INDEX);
    let shard0 = dir.join("consolidated.00.pth");
    // The weights decide the kind; `params.json` / `config.json` are read (and their absence
    // reported, naming them) when the model is described.
    if shard0.is_file() {
        let (head, _) = read_prefix(&shard0, ZIP_SIGNATURE.len())?;
        if head == ZIP_SIGNATURE {
            return Ok(SourceKind::MetaDir);
        }
        return Err(not_a_model(
            dir,
            "consolidated.00.pth is not a PyTorch checkpoint (no zip signature)",
        ));
    }
    if safetensors {
        return Ok(SourceKind::HfDir);
    }
    let msg = if pth {
        "the directory has consolidated.*.pth but no consolidated.00.pth".to_string()
    } else if params {
        "the directory has params.json but no consolidated.00.pth".to_string()
    } else if config {
        "the directory has config.json but no *.safetensors or model.safetensors.index.json"
            .to_string()
    } else {
        let tokenizer = ["tokenizer.json", "tokenizer.model"]
            .into_iter()
            .find(|n| names.iter().any(|m| m == n));
        match tokenizer {
            Some(t) => format!(
                "the directory holds a {t} but no weights (to use only the tokenizer, give {} itself)",
                dir.join(t).display()
            ),
            None if names.is_empty() => "the directory is empty".to_string(),
            None => "the directory has neither *.safetensors (with config.json) nor \
                     consolidated.00.pth (with params.json)"
                .to_string(),
        }
    };
    Err(not_a_model(dir, msg))
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
