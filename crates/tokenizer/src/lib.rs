//! Byte-level BPE tokenizers for Llama 3.x: Meta's tiktoken `tokenizer.model`, Hugging Face
//! `tokenizer.json`, and the vocabulary stored in a GGUF file.
//!
//! API contract:
//! - `encode(text, allow_special)` never adds BOS/EOS; with `allow_special == false` text that looks
//!   like a special (control) token is encoded as ordinary text. Non-special added tokens (HF
//!   `special: false`, GGUF user-defined) are always matched, as HF and llama.cpp do.
//! - `token_id("<|eot_id|>")` finds special (and ordinary) tokens by their text.
//! - Encoding reproduces Meta's reference exactly for `tokenizer.model` and the Llama 3 `tokenizer.json`
//!   (including Meta's 400,000/25,000-character chunking); GGUF vocabularies follow llama.cpp.
//! - [`gguf_metadata_from_hf_dir`] / [`gguf_metadata_from_tiktoken`] write a vocabulary as the GGUF
//!   `tokenizer.*` keys llama.cpp's `convert_hf_to_gguf.py` writes (`llama31 quantize` from HF and
//!   Meta directories).

mod bpe;
pub mod byte_level;
mod error;
mod export;
mod gguf;
mod llama3_split;
mod load;
mod pre_hashes;
mod pretok;
mod source;
mod specials;
mod stream;
mod unicode;

use std::ops::Range;
use std::path::Path;

pub use error::TokenizerError;
pub use export::{gguf_metadata_from_hf_dir, gguf_metadata_from_tiktoken, pre_tokenizer_name};
pub use pretok::{GPT2_PATTERN, LLAMA3_PATTERN};
pub use stream::StreamDecoder;

use bpe::Bpe;
use pretok::PreTokenizer;
use specials::SpecialMatcher;

/// A token id.
pub type TokenId = u32;

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
#[derive(Clone)]
pub struct Tokenizer {
    bpe: Bpe,
    pre: PreTokenizer,
    /// Apply Meta's 400,000 / 25,000-character chunking before pre-tokenization.
    meta_chunking: bool,
    /// Bytes of every id, concatenated; `offsets[id]..offsets[id + 1]`.
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    /// Special (control + user-defined) tokens, in id order.
    specials: Vec<(String, TokenId)>,
    special_flags: Vec<bool>,
    /// Tokens matched in text only when `allow_special` (control tokens).
    match_allowed: SpecialMatcher,
    /// Tokens always matched in text (non-special added / user-defined tokens).
    match_always: SpecialMatcher,
    /// Token ids are stored byte-level encoded (HF/GGUF): `token_id` also accepts that form.
    byte_level_names: bool,
    bos: Option<TokenId>,
    eos: Vec<TokenId>,
    add_bos: bool,
}

/// Parts a loader hands to [`Tokenizer::assemble`].
pub(crate) struct Parts {
    pub bpe: Bpe,
    pub pre: PreTokenizer,
    pub meta_chunking: bool,
    /// Bytes of each id (`None` for ids that do not exist).
    pub id_bytes: Vec<Option<Vec<u8>>>,
    /// (text, id, always matched)
    pub specials: Vec<(String, TokenId, bool)>,
    pub byte_level_names: bool,
    pub bos: Option<TokenId>,
    pub eos: Vec<TokenId>,
    pub add_bos: bool,
}

impl Tokenizer {
    /// Loads Meta's `tokenizer.model` and adds Meta's 256 special tokens.
    pub fn from_tiktoken_file(path: &Path) -> Result<Self, TokenizerError> {
        let data = read(path)?;
        Self::from_tiktoken_bytes(&data)
    }

    /// [`Tokenizer::from_tiktoken_file`] from the file's contents.
    pub fn from_tiktoken_bytes(data: &[u8]) -> Result<Self, TokenizerError> {
        load::tiktoken(data).map(Self::assemble)
    }

    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_hf_json_file(path: &Path) -> Result<Self, TokenizerError> {
        let data = read(path)?;
        Self::from_hf_json_bytes(&data)
    }

    /// [`Tokenizer::from_hf_json_file`] from the file's contents.
    pub fn from_hf_json_bytes(data: &[u8]) -> Result<Self, TokenizerError> {
        load::hf_json(data).map(Self::assemble)
    }

    /// Builds the tokenizer stored in a GGUF file.
    pub fn from_gguf_vocab(vocab: GgufVocab) -> Result<Self, TokenizerError> {
        load::gguf(&vocab).map(Self::assemble)
    }

    fn assemble(p: Parts) -> Self {
        let n = p.id_bytes.len();
        let total: usize = p.id_bytes.iter().flatten().map(Vec::len).sum();
        let mut bytes = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for b in &p.id_bytes {
            if let Some(b) = b {
                bytes.extend_from_slice(b);
            }
            offsets.push(bytes.len());
        }
        let mut special_flags = vec![false; n];
        let mut specials = Vec::with_capacity(p.specials.len());
        let mut allowed = Vec::with_capacity(p.specials.len());
        let mut always = Vec::new();
        for (text, id, always_match) in p.specials {
            if let Some(f) = special_flags.get_mut(id as usize) {
                *f = true;
            }
            allowed.push((text.clone(), id));
            if always_match {
                always.push((text.clone(), id));
            }
            specials.push((text, id));
        }
        specials.sort_by_key(|s| s.1);
        Tokenizer {
            bpe: p.bpe,
            pre: p.pre,
            meta_chunking: p.meta_chunking,
            bytes,
            offsets,
            specials,
            special_flags,
            match_allowed: SpecialMatcher::new(allowed),
            match_always: SpecialMatcher::new(always),
            byte_level_names: p.byte_level_names,
            bos: p.bos,
            eos: p.eos,
            add_bos: p.add_bos,
        }
    }

    /// Turns Meta's chunking (400,000-character windows, at most 25,000 consecutive whitespace or
    /// non-whitespace characters per `tiktoken` call) on or off. On by default for `tokenizer.model`
    /// and for a `tokenizer.json` whose pre-tokenizer is the Llama 3 pattern (so both equal Meta's
    /// reference); off for GGUF vocabularies (llama.cpp does not chunk).
    pub fn with_meta_chunking(mut self, on: bool) -> Self {
        self.meta_chunking = on;
        self
    }

    /// Encodes text; never adds BOS/EOS.
    pub fn encode(&self, text: &str, allow_special: bool) -> Vec<TokenId> {
        self.encode_spans(text, allow_special, &[])
    }

    /// Encodes text matching special tokens (like `encode(text, true)`), except that a control
    /// token whose text overlaps one of the byte ranges `plain` is not matched there: those bytes
    /// are ordinary text, encoded with their neighbours as `encode(text, false)` would. `plain`
    /// must be sorted and non-overlapping (chat templates mark the text that came from messages
    /// this way, so a message cannot write control tokens). Non-special added tokens are matched
    /// everywhere, as in `encode`.
    pub fn encode_with_plain_spans(&self, text: &str, plain: &[Range<usize>]) -> Vec<TokenId> {
        self.encode_spans(text, true, plain)
    }

    fn encode_spans(
        &self,
        text: &str,
        allow_special: bool,
        plain: &[Range<usize>],
    ) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        if self.meta_chunking {
            let base = text.as_ptr() as usize;
            pretok::meta_chunks(text, &mut |chunk| {
                // Chunks are slices of `text`: their offset is the distance between the pointers.
                let offset = (chunk.as_ptr() as usize).saturating_sub(base);
                self.encode_chunk(chunk, allow_special, plain, offset, &mut out)
            });
        } else {
            self.encode_chunk(text, allow_special, plain, 0, &mut out);
        }
        out
    }

    /// The control tokens (special tokens matched only when special tokens are allowed): the
    /// texts a message must not be able to produce.
    pub fn control_tokens(&self) -> impl Iterator<Item = &str> + '_ {
        self.specials
            .iter()
            .map(|(t, _)| t.as_str())
            .filter(|t| self.match_always.get(t).is_none())
    }

    /// The first control token in `text[from..]`: `(start, end)` byte offsets.
    pub fn find_control_token(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        let mut from = from;
        loop {
            let (start, end, _) = self.match_allowed.find(text, from)?;
            if self.is_control_text(text, start, end) {
                return Some((start, end));
            }
            from = start + 1;
        }
    }

    fn is_control_text(&self, text: &str, start: usize, end: usize) -> bool {
        text.get(start..end)
            .is_some_and(|t| self.match_always.get(t).is_none())
    }

    /// Encodes text, matching special tokens (same as `encode(text, true)`).
    pub fn encode_with_special(&self, text: &str) -> Vec<TokenId> {
        self.encode(text, true)
    }

    /// Encodes text with no special-token matching at all, pieces straight to BPE.
    pub fn encode_ordinary(&self, text: &str) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        self.encode_plain(text, &mut out);
        out
    }

    /// `plain` holds byte ranges of the whole text; `offset` is where `text` starts in it.
    fn encode_chunk(
        &self,
        text: &str,
        allow_special: bool,
        plain: &[Range<usize>],
        offset: usize,
        out: &mut Vec<TokenId>,
    ) {
        let matcher = if allow_special {
            &self.match_allowed
        } else {
            &self.match_always
        };
        if matcher.is_empty() {
            self.encode_plain(text, out);
            return;
        }
        let mut pos = 0usize;
        let mut from = 0usize;
        while pos < text.len() {
            match matcher.find(text, from) {
                Some((start, end, id)) => {
                    if allow_special
                        && overlaps(plain, offset + start, offset + end)
                        && self.is_control_text(text, start, end)
                    {
                        // Message text: not a control token here; look further on.
                        from = start + 1;
                        continue;
                    }
                    if let Some(seg) = text.get(pos..start) {
                        self.encode_plain(seg, out);
                    }
                    out.push(id);
                    pos = end;
                    from = end;
                }
                None => {
                    if let Some(seg) = text.get(pos..) {
                        self.encode_plain(seg, out);
                    }
                    break;
                }
            }
        }
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<TokenId>) {
        self.pre.split(text, &mut |piece: &str| {
            self.bpe.encode_piece(piece.as_bytes(), out)
        });
    }

    /// The bytes of a sequence of tokens (special tokens as their text). Unknown ids are skipped.
    pub fn decode(&self, ids: &[TokenId]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            match self.token_bytes(id) {
                Some(b) => out.extend_from_slice(b),
                None => tracing::warn!("decode: unknown token id {id}"),
            }
        }
        out
    }

    /// Decodes to a `String`, replacing invalid UTF-8 with U+FFFD.
    pub fn decode_lossy(&self, ids: &[TokenId]) -> String {
        String::from_utf8_lossy(&self.decode(ids)).into_owned()
    }

    /// The bytes of one token (a special token's text), or `None` for an unknown id.
    pub fn token_bytes(&self, id: TokenId) -> Option<&[u8]> {
        let i = id as usize;
        let start = *self.offsets.get(i)?;
        let end = *self.offsets.get(i.checked_add(1)?)?;
        self.bytes.get(start..end)
    }

    /// Whether `id` is a special (control or user-defined / added) token.
    pub fn is_special(&self, id: TokenId) -> bool {
        self.special_flags
            .get(id as usize)
            .copied()
            .unwrap_or(false)
    }

    /// All special tokens `(text, id)`, in id order.
    pub fn special_tokens(&self) -> &[(String, TokenId)] {
        &self.specials
    }

    /// The id of a token given its text (special tokens included). Ordinary tokens are found by
    /// their raw text; for HF/GGUF vocabularies the byte-level form (`"Ġhello"`) works too.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        if let Some(id) = self.match_allowed.get(text) {
            return Some(id);
        }
        if let Some(&id) = self.bpe.encoder.get(text.as_bytes()) {
            return Some(id);
        }
        if self.byte_level_names {
            let raw = byte_level::decode(text)?;
            return self.bpe.encoder.get(raw.as_slice()).copied();
        }
        None
    }

    /// The BOS token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<TokenId> {
        self.bos
    }

    /// Tokens that end generation (EOS, EOT, EOM, ...).
    pub fn eos_ids(&self) -> &[TokenId] {
        &self.eos
    }

    /// Whether the model expects BOS at the start of a sequence.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Number of ids (ordinary + special).
    pub fn vocab_size(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("specials", &self.specials.len())
            .field("pre", &self.pre)
            .field("meta_chunking", &self.meta_chunking)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TokenizerError> {
    std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[doc(hidden)]
/// Internals exposed for tests and benchmarks; not a stable API.
pub mod internals {
    /// Pieces of the hand-written Llama 3 scanner.
    pub fn llama3_pieces(text: &str, fold_long_s: bool) -> Vec<&str> {
        let mut v = Vec::new();
        crate::llama3_split::split_llama3(text, fold_long_s, |p| v.push(p));
        v
    }
    /// Splits text with `fancy_regex` `find_iter` (gaps kept as pieces).
    pub struct RegexSplitter(fancy_regex::Regex);
    impl RegexSplitter {
        pub fn new(pattern: &str) -> Result<Self, crate::TokenizerError> {
            crate::pretok::compile(pattern).map(RegexSplitter)
        }
        pub fn pieces<'a>(&self, text: &'a str) -> Vec<&'a str> {
            let mut v = Vec::new();
            crate::pretok::split_one(&self.0, text, &mut |p| v.push(p));
            v
        }
    }
    /// BPE of one piece by the linear-scan and by the heap algorithm: `(linear, heap)`.
    pub fn bpe_both(tok: &crate::Tokenizer, piece: &[u8]) -> (Vec<u32>, Vec<u32>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        tok.bpe.merge_linear(piece, &mut a);
        tok.bpe.merge_heap(piece, &mut b);
        (a, b)
    }
    /// Meta's chunks of `text`.
    pub fn meta_chunks(text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        crate::pretok::meta_chunks(text, &mut |c| v.push(c));
        v
    }
}

/// Whether `start..end` overlaps one of the sorted, non-overlapping `ranges`.
fn overlaps(ranges: &[Range<usize>], start: usize, end: usize) -> bool {
    // The first range that ends after `start` is the only candidate.
    let i = ranges.partition_point(|r| r.end <= start);
    ranges.get(i).is_some_and(|r| r.start < end)
}
