//! Pre-tokenizers: the hand-written Llama 3 scanner, or a list of regexes applied one after the
//! other (llama.cpp's `unicode_regex_split` / Hugging Face `Split` with `Isolated` behaviour: text
//! between matches is kept as its own piece).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::llama3_split::split_llama3;
use crate::unicode::py_isspace;
use crate::TokenizerError;

/// The Llama 3 pattern, as written in Meta's `tokenizer.py` and the HF `tokenizer.json`.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's pattern (HF `ByteLevel` with `use_regex: true`).
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Meta's `TIKTOKEN_MAX_ENCODE_CHARS`.
pub const META_MAX_ENCODE_CHARS: usize = 400_000;
/// Meta's `MAX_NO_WHITESPACES_CHARS`.
pub const META_MAX_NO_WHITESPACES_CHARS: usize = 25_000;

#[derive(Debug, Clone)]
pub(crate) enum PreTokenizer {
    /// The Llama 3 pattern via the hand-written scanner.
    Llama3 { fold_long_s: bool },
    /// Regexes applied in sequence.
    Regexes(Vec<fancy_regex::Regex>),
}

impl PreTokenizer {
    pub(crate) fn from_patterns(patterns: &[&str]) -> Result<Self, TokenizerError> {
        let mut v = Vec::with_capacity(patterns.len());
        for p in patterns {
            v.push(compile(p)?);
        }
        Ok(PreTokenizer::Regexes(v))
    }

    /// Calls `f` with each piece of `text`, in order.
    pub(crate) fn split<'a>(&self, text: &'a str, f: &mut impl FnMut(&'a str)) {
        match self {
            PreTokenizer::Llama3 { fold_long_s } => split_llama3(text, *fold_long_s, f),
            PreTokenizer::Regexes(res) => split_regexes(res, text, f),
        }
    }
}

pub(crate) fn compile(pattern: &str) -> Result<fancy_regex::Regex, TokenizerError> {
    // Compiling a pre-tokenizer pattern takes milliseconds; a process that loads several
    // tokenizers (a draft model, adapters, tests, a fuzzer) compiles each pattern once. Bounded:
    // patterns come from files.
    const CACHED: usize = 32;
    static CACHE: OnceLock<Mutex<HashMap<String, fancy_regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = fancy_regex::Regex::new(pattern).map_err(|e| TokenizerError::BadRegex {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })?;
    if let Ok(mut c) = cache.lock() {
        if c.len() < CACHED {
            c.insert(pattern.to_string(), re.clone());
        }
    }
    Ok(re)
}

/// Splits `text` by one regex: every match is a piece, and so is the text between matches.
pub(crate) fn split_one<'a>(re: &fancy_regex::Regex, text: &'a str, f: &mut impl FnMut(&'a str)) {
    let mut last = 0usize;
    for m in re.find_iter(text) {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("pre-tokenizer regex failed ({e}); keeping the rest as one piece");
                break;
            }
        };
        if m.start() > last {
            if let Some(gap) = text.get(last..m.start()) {
                f(gap);
            }
        }
        if m.end() > m.start() {
            f(m.as_str());
        }
        last = m.end();
    }
    if last < text.len() {
        if let Some(rest) = text.get(last..) {
            f(rest);
        }
    }
}

fn split_regexes<'a>(res: &[fancy_regex::Regex], text: &'a str, f: &mut impl FnMut(&'a str)) {
    match res.split_first() {
        None => {
            if !text.is_empty() {
                f(text)
            }
        }
        Some((first, rest)) => {
            split_one(first, text, &mut |piece| split_regexes(rest, piece, f));
        }
    }
}

/// Meta's chunking in `Tokenizer.encode`: 400,000-character windows, each cut so that no piece holds
/// more than 25,000 consecutive whitespace or non-whitespace characters (Python `str.isspace`).
/// Calls `f` with each substring (possibly empty, exactly as Meta's generator yields them).
pub(crate) fn meta_chunks<'a>(text: &'a str, f: &mut impl FnMut(&'a str)) {
    let mut window_start = 0usize;
    while window_start < text.len() {
        // Find the end of this 400,000-character window.
        let window_end = text
            .get(window_start..)
            .and_then(|rest| rest.char_indices().nth(META_MAX_ENCODE_CHARS))
            .map_or(text.len(), |(off, _)| window_start + off);
        let window = text.get(window_start..window_end).unwrap_or_default();
        split_whitespaces_or_nonwhitespaces(window, META_MAX_NO_WHITESPACES_CHARS, f);
        window_start = window_end;
    }
}

fn split_whitespaces_or_nonwhitespaces<'a>(s: &'a str, max: usize, f: &mut impl FnMut(&'a str)) {
    let mut current_len = 0usize;
    let mut current_is_space = s.chars().next().is_some_and(py_isspace);
    let mut slice_start = 0usize;
    for (i, c) in s.char_indices() {
        let is_space = py_isspace(c);
        if current_is_space ^ is_space {
            current_len = 1;
            current_is_space = is_space;
        } else {
            current_len += 1;
            if current_len > max {
                f(s.get(slice_start..i).unwrap_or_default());
                slice_start = i;
                current_len = 1;
            }
        }
    }
    f(s.get(slice_start..).unwrap_or_default());
}
