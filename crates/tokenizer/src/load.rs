//! Loaders: Meta `tokenizer.model`, HF `tokenizer.json`, GGUF vocabulary.

use base64::Engine as _;
use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::bpe::{Bpe, Merges};
use crate::pretok::{PreTokenizer, GPT2_PATTERN, LLAMA3_PATTERN};
use crate::{byte_level, GgufVocab, Parts, TokenId, TokenizerError};

/// Largest vocabulary accepted (ids are dense; this bounds allocations from untrusted files).
const MAX_VOCAB: usize = 16 * 1024 * 1024;

/// Meta's special tokens, in order, from `llama_models/llama3/tokenizer.py`.
pub(crate) fn meta_special_tokens() -> Vec<String> {
    let mut v: Vec<String> = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>",
        "<|step_id|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|python_tag|>",
        "<|image|>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let named = v.len();
    for i in 0..(256 - named) {
        v.push(format!("<|reserved_special_token_{}|>", 2 + i));
    }
    v
}

/// The `token bytes → rank` map of a tiktoken `tokenizer.model` (ranks dense from 0, every single
/// byte present).
pub(crate) fn tiktoken_ranks(data: &[u8]) -> Result<FxHashMap<Box<[u8]>, u32>, TokenizerError> {
    let text = std::str::from_utf8(data).map_err(|_| TokenizerError::NotUtf8)?;
    let mut encoder: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
    let mut by_rank: FxHashMap<u32, usize> = FxHashMap::default();
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(tok), Some(rank), None) = (it.next(), it.next(), it.next()) else {
            return Err(TokenizerError::BadLine { line: line_no });
        };
        let bytes = b64
            .decode(tok)
            .map_err(|_| TokenizerError::BadBase64 { line: line_no })?;
        let rank: u32 = rank
            .parse()
            .map_err(|_| TokenizerError::BadRank { line: line_no })?;
        if by_rank.insert(rank, line_no).is_some() {
            return Err(TokenizerError::DuplicateRank { rank });
        }
        if encoder.contains_key(bytes.as_slice()) {
            return Err(TokenizerError::DuplicateToken {
                token: String::from_utf8_lossy(&bytes).into_owned(),
                line: line_no,
            });
        }
        encoder.insert(bytes.into_boxed_slice(), rank);
    }
    let n = encoder.len();
    if n == 0 {
        return Err(TokenizerError::Empty);
    }
    if n > MAX_VOCAB {
        return Err(TokenizerError::InvalidVocab(format!(
            "{n} tokens is too many"
        )));
    }
    if let Some((_, &r)) = encoder.iter().find(|(_, &r)| r as usize >= n) {
        return Err(TokenizerError::RankOutOfRange { rank: r, count: n });
    }
    for byte in 0..=255u8 {
        if !encoder.contains_key(&[byte][..]) {
            return Err(TokenizerError::MissingByteToken { byte });
        }
    }
    Ok(encoder)
}

pub(crate) fn tiktoken(data: &[u8]) -> Result<Parts, TokenizerError> {
    let encoder = tiktoken_ranks(data)?;
    let n = encoder.len();
    let mut id_bytes: Vec<Option<Vec<u8>>> = vec![None; n + 256];
    for (b, &r) in &encoder {
        if let Some(slot) = id_bytes.get_mut(r as usize) {
            *slot = Some(b.to_vec());
        }
    }
    let specials = meta_special_tokens();
    let mut sp = Vec::with_capacity(specials.len());
    for (i, s) in specials.into_iter().enumerate() {
        let id = (n + i) as TokenId;
        if let Some(slot) = id_bytes.get_mut(n + i) {
            *slot = Some(s.as_bytes().to_vec());
        }
        sp.push((s, id, false));
    }
    let base = n as TokenId;
    // begin_of_text = n, end_of_text = n+1, eom_id = n+8, eot_id = n+9
    Ok(Parts {
        bpe: Bpe::new(encoder, Merges::Ranks, true),
        pre: PreTokenizer::Llama3 { fold_long_s: true },
        meta_chunking: true,
        id_bytes,
        specials: sp,
        byte_level_names: false,
        bos: Some(base),
        eos: vec![base + 1, base + 8, base + 9],
        add_bos: true,
    })
}

fn type_of(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("<no type>")
}

fn bad(msg: impl Into<String>) -> TokenizerError {
    TokenizerError::InvalidHfJson(msg.into())
}

/// One step of an HF pre-tokenizer sequence, reduced to what we support.
enum PreStep {
    Regex(String),
    ByteLevel,
}

fn hf_pre_steps(v: &Value, out: &mut Vec<PreStep>) -> Result<(), TokenizerError> {
    match type_of(v) {
        "Sequence" => {
            let list = v
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("pre_tokenizer Sequence without `pretokenizers`"))?;
            for p in list {
                hf_pre_steps(p, out)?;
            }
        }
        "Split" => {
            let behavior = v.get("behavior").and_then(Value::as_str).unwrap_or("");
            if behavior != "Isolated" {
                return Err(TokenizerError::UnsupportedPreTokenizer(format!(
                    "Split with behavior {behavior:?} (only \"Isolated\")"
                )));
            }
            if v.get("invert").and_then(Value::as_bool).unwrap_or(false) {
                return Err(TokenizerError::UnsupportedPreTokenizer(
                    "Split with invert: true".into(),
                ));
            }
            let pat = v
                .get("pattern")
                .ok_or_else(|| bad("Split without pattern"))?;
            if let Some(r) = pat.get("Regex").and_then(Value::as_str) {
                out.push(PreStep::Regex(r.to_string()));
            } else if let Some(s) = pat.get("String").and_then(Value::as_str) {
                out.push(PreStep::Regex(fancy_regex::escape(s).into_owned()));
            } else {
                return Err(bad("Split pattern is neither Regex nor String"));
            }
        }
        "ByteLevel" => {
            if v.get("add_prefix_space")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                return Err(TokenizerError::UnsupportedPreTokenizer(
                    "ByteLevel with add_prefix_space: true".into(),
                ));
            }
            if v.get("use_regex").and_then(Value::as_bool).unwrap_or(true) {
                out.push(PreStep::Regex(GPT2_PATTERN.to_string()));
            }
            out.push(PreStep::ByteLevel);
        }
        "Digits" => {
            let individual = v
                .get("individual_digits")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.push(PreStep::Regex(
                if individual { r"\p{N}" } else { r"\p{N}+" }.to_string(),
            ));
        }
        other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
    }
    Ok(())
}

/// Finds a TemplateProcessing in the post-processor (directly or in a Sequence) and returns the
/// special token it puts first in `single`, if any.
fn hf_template_bos(v: &Value) -> Result<Option<String>, TokenizerError> {
    match type_of(v) {
        "Sequence" => {
            let list = v
                .get("processors")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("post_processor Sequence without `processors`"))?;
            let mut found = None;
            for p in list {
                if let Some(b) = hf_template_bos(p)? {
                    found = Some(b);
                }
            }
            Ok(found)
        }
        "TemplateProcessing" => {
            let first = v
                .get("single")
                .and_then(Value::as_array)
                .and_then(|a| a.first());
            Ok(first
                .and_then(|f| f.get("SpecialToken"))
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string))
        }
        "ByteLevel" => Ok(None),
        other => Err(TokenizerError::UnsupportedPostProcessor(other.to_string())),
    }
}

fn split_merge(s: &str) -> Option<(&str, &str)> {
    // llama.cpp: the first space at index >= 1.
    let pos = s.bytes().skip(1).position(|b| b == b' ')? + 1;
    Some((s.get(..pos)?, s.get(pos + 1..)?))
}

pub(crate) fn hf_json(data: &[u8]) -> Result<Parts, TokenizerError> {
    let root: Value =
        serde_json::from_slice(data).map_err(|e| TokenizerError::InvalidJson(e.to_string()))?;
    let model = root.get("model").ok_or_else(|| bad("no `model`"))?;
    let mtype = type_of(model);
    if mtype != "BPE" {
        return Err(TokenizerError::UnsupportedModel(mtype.to_string()));
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if let Some(v) = model.get(key) {
            if !v.is_null() && v.as_str() != Some("") {
                return Err(TokenizerError::UnsupportedOption(format!("{key} = {v}")));
            }
        }
    }
    if let Some(d) = model.get("dropout").and_then(Value::as_f64) {
        if d > 0.0 {
            return Err(TokenizerError::UnsupportedOption(format!("dropout = {d}")));
        }
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(TokenizerError::UnsupportedOption(
            "byte_fallback = true".into(),
        ));
    }
    let ignore_merges = model
        .get("ignore_merges")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(n) = root.get("normalizer") {
        if !n.is_null() {
            return Err(TokenizerError::UnsupportedNormalizer(
                type_of(n).to_string(),
            ));
        }
    }
    if let Some(d) = root.get("decoder") {
        if !d.is_null() && type_of(d) != "ByteLevel" {
            return Err(TokenizerError::UnsupportedDecoder(type_of(d).to_string()));
        }
    }
    // Pre-tokenizer.
    let mut steps = Vec::new();
    match root.get("pre_tokenizer") {
        Some(p) if !p.is_null() => hf_pre_steps(p, &mut steps)?,
        _ => {
            return Err(TokenizerError::UnsupportedPreTokenizer(
                "none (a byte-level BPE needs ByteLevel)".into(),
            ))
        }
    }
    if !steps.iter().any(|s| matches!(s, PreStep::ByteLevel)) {
        return Err(TokenizerError::UnsupportedPreTokenizer(
            "a sequence without ByteLevel (only byte-level BPE is supported)".into(),
        ));
    }
    let patterns: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            PreStep::Regex(r) => Some(r.as_str()),
            PreStep::ByteLevel => None,
        })
        .collect();
    let is_llama3 = patterns == [LLAMA3_PATTERN];
    let pre = if is_llama3 {
        PreTokenizer::Llama3 { fold_long_s: true }
    } else {
        PreTokenizer::from_patterns(&patterns)?
    };

    // Vocabulary.
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("model.vocab is not an object"))?;
    let mut names: FxHashMap<&str, u32> = FxHashMap::default();
    let mut id_bytes: Vec<Option<Vec<u8>>> = Vec::new();
    for (tok, idv) in vocab {
        let id = idv
            .as_u64()
            .filter(|&i| (i as usize) < MAX_VOCAB)
            .ok_or_else(|| bad(format!("vocab id of {tok:?} is not a valid id")))?
            as usize;
        if id >= id_bytes.len() {
            id_bytes.resize(id + 1, None);
        }
        if id_bytes[id].is_some() {
            return Err(bad(format!("vocab id {id} used twice")));
        }
        let raw = byte_level::decode(tok).unwrap_or_else(|| tok.as_bytes().to_vec());
        id_bytes[id] = Some(raw);
        names.insert(tok.as_str(), id as u32);
    }
    let mut encoder: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
    for (id, b) in id_bytes.iter().enumerate() {
        if let Some(b) = b {
            encoder.insert(b.clone().into_boxed_slice(), id as u32);
        }
    }
    // Merges.
    let merges = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("model.merges is not an array"))?;
    let mut pairs: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
    pairs.reserve(merges.len());
    let mut skipped = 0usize;
    for (rank, m) in merges.iter().enumerate() {
        let (a, b) = if let Some(s) = m.as_str() {
            split_merge(s).ok_or_else(|| bad(format!("merge {rank} {s:?} is not \"a b\"")))?
        } else if let Some([a, b]) = m.as_array().map(Vec::as_slice) {
            match (a.as_str(), b.as_str()) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(bad(format!("merge {rank} is not two strings"))),
            }
        } else {
            return Err(bad(format!("merge {rank} is neither \"a b\" nor [a, b]")));
        };
        let merged = format!("{a}{b}");
        match (names.get(a), names.get(b), names.get(merged.as_str())) {
            (Some(&ia), Some(&ib), Some(&im)) => {
                let key = (u64::from(ia) << 32) | u64::from(ib);
                pairs.entry(key).or_insert((rank as u32, im));
            }
            _ => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!("tokenizer.json: {skipped} merges refer to tokens not in the vocabulary");
    }
    // Added tokens.
    let mut specials = Vec::new();
    if let Some(added) = root.get("added_tokens").and_then(Value::as_array) {
        for t in added {
            let id =
                t.get("id")
                    .and_then(Value::as_u64)
                    .filter(|&i| (i as usize) < MAX_VOCAB)
                    .ok_or_else(|| bad("added token without a valid id"))? as usize;
            let content = t
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("added token without content"))?;
            let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
            if id >= id_bytes.len() {
                id_bytes.resize(id + 1, None);
            }
            id_bytes[id] = Some(content.as_bytes().to_vec());
            specials.push((content.to_string(), id as TokenId, !special));
        }
    }
    let find_special = |name: &str| specials.iter().find(|s| s.0 == name).map(|s| s.1);
    let (bos, add_bos) = match root.get("post_processor") {
        Some(p) if !p.is_null() => match hf_template_bos(p)? {
            Some(name) => match find_special(&name) {
                Some(id) => (Some(id), true),
                None => return Err(bad(format!("post_processor BOS {name:?} is not a token"))),
            },
            None => (find_special("<|begin_of_text|>"), false),
        },
        _ => (find_special("<|begin_of_text|>"), false),
    };
    let mut eos = Vec::new();
    for name in [
        "<|end_of_text|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|endoftext|>",
        "<|im_end|>",
        "</s>",
    ] {
        if let Some(id) = find_special(name) {
            eos.push(id);
        }
    }
    Ok(Parts {
        bpe: Bpe::new(encoder, Merges::Pairs(pairs), ignore_merges),
        pre,
        meta_chunking: is_llama3,
        id_bytes,
        specials,
        byte_level_names: true,
        bos,
        eos,
        add_bos,
    })
}

/// The llama.cpp pre-tokenizer for a `tokenizer.ggml.pre` name: (pre-tokenizer, ignore_merges,
/// default add_bos).
fn gguf_pre(name: &str) -> Result<(PreTokenizer, bool, bool), TokenizerError> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    const ASCII_CONTRACTIONS: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
    let llama3 = PreTokenizer::Llama3 { fold_long_s: false };
    let r = |pats: &[&str]| PreTokenizer::from_patterns(pats);
    Ok(match name {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => (llama3, true, true),
        "dbrx" | "smaug-bpe" => (llama3, false, false),
        "default" => (
            r(&[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"])?,
            false,
            false,
        ),
        "gpt2" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
        | "jina-v2-de" | "a.x-4.0" | "mellum" | "mpt" | "olmo" | "jais" | "trillion"
        | "granite-docling" | "exaone4" => (r(&[GPT2])?, false, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            (r(&[r"\p{N}", GPT2])?, false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" => {
            let p = format!(
                r"{ASCII_CONTRACTIONS}|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            );
            (r(&[&p])?, false, false)
        }
        "falcon" => (
            r(&[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"])?,
            false,
            false,
        ),
        "deepseek-llm" => (
            r(&[
                "[\r\n]",
                r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\x{1f7d}ᾀ-ᾴᾶ-ᾼ\x{1fbe}ῂ-ῄῆ-ῌῐ-\x{1fd3}ῖ-\x{1fdb}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\x{2126}ℨ\x{212a}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
                r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
                r"\s+$",
                "[一-龥ࠀ-一가-퟿]+",
                r"\p{N}+",
            ])?,
            false,
            false,
        ),
        "deepseek-coder" => (
            r(&[
                "[\r\n]",
                r"\s?\p{L}+",
                r"\s?\p{P}+",
                "[一-龥ࠀ-一가-퟿]+",
                r"\p{N}",
            ])?,
            false,
            false,
        ),
        "tekken" => (
            r(&[
                r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ])?,
            true,
            true,
        ),
        "gpt-4o" | "llama4" => {
            let p = format!(
                r"[^\r\n\p{{L}}\p{{N}}]?[\p{{Lu}}\p{{Lt}}\p{{Lm}}\p{{Lo}}\p{{M}}]*[\p{{Ll}}\p{{Lm}}\p{{Lo}}\p{{M}}]+{ASCII_CONTRACTIONS}?|[^\r\n\p{{L}}\p{{N}}]?[\p{{Lu}}\p{{Lt}}\p{{Lm}}\p{{Lo}}\p{{M}}]+[\p{{Ll}}\p{{Lm}}\p{{Lo}}\p{{M}}]*{ASCII_CONTRACTIONS}?|\p{{N}}{{1,3}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            );
            (r(&[&p])?, false, false)
        }
        "poro-chat" | "bloom" | "gpt3-finnish" => {
            (r(&[r" ?[^(\s|.,!?…。，、।۔،)]+"])?, false, false)
        }
        "viking" => (r(&[r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"])?, false, false),
        other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
    })
}

pub(crate) fn gguf(v: &GgufVocab) -> Result<Parts, TokenizerError> {
    if v.model != "gpt2" {
        return Err(TokenizerError::UnsupportedModel(v.model.clone()));
    }
    let pre_name = v.pre.as_deref().unwrap_or("default");
    let (pre, ignore_merges, default_add_bos) = gguf_pre(pre_name)?;
    // Meta's Llama 3 vocabularies are encoded as Meta's reference does, including its
    // 400,000/25,000-character splitting (llama.cpp does not split; the two differ only on
    // runs of more than 25,000 whitespace or non-whitespace characters).
    let meta_chunking = matches!(pre_name, "llama3" | "llama-v3" | "llama-bpe");
    let n = v.tokens.len();
    if n == 0 {
        return Err(TokenizerError::InvalidVocab("no tokens".into()));
    }
    if n > MAX_VOCAB {
        return Err(TokenizerError::InvalidVocab(format!(
            "{n} tokens is too many"
        )));
    }
    if !v.token_types.is_empty() && v.token_types.len() != n {
        return Err(TokenizerError::InvalidVocab(format!(
            "{} token types for {n} tokens",
            v.token_types.len()
        )));
    }
    let mut names: FxHashMap<&str, u32> = FxHashMap::default();
    names.reserve(n);
    let mut id_bytes: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    let mut encoder: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
    encoder.reserve(n);
    let mut specials = Vec::new();
    for (i, tok) in v.tokens.iter().enumerate() {
        let ty = v.token_types.get(i).copied().unwrap_or(1);
        if names.insert(tok.as_str(), i as u32).is_some() {
            return Err(TokenizerError::DuplicateToken {
                token: tok.clone(),
                line: i,
            });
        }
        match ty {
            // unknown, control: matched only with allow_special; user-defined: always.
            2..=4 => {
                id_bytes.push(Some(tok.as_bytes().to_vec()));
                specials.push((tok.clone(), i as TokenId, ty == 4));
            }
            _ => {
                let raw = byte_level::decode(tok).unwrap_or_else(|| tok.as_bytes().to_vec());
                encoder
                    .entry(raw.clone().into_boxed_slice())
                    .or_insert(i as u32);
                id_bytes.push(Some(raw));
            }
        }
    }
    let mut pairs: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
    pairs.reserve(v.merges.len());
    let mut skipped = 0usize;
    for (rank, m) in v.merges.iter().enumerate() {
        let Some((a, b)) = split_merge(m) else {
            skipped += 1;
            continue;
        };
        let merged = format!("{a}{b}");
        match (names.get(a), names.get(b), names.get(merged.as_str())) {
            (Some(&ia), Some(&ib), Some(&im)) => {
                let key = (u64::from(ia) << 32) | u64::from(ib);
                pairs.entry(key).or_insert((rank as u32, im));
            }
            _ => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(
            "GGUF vocabulary: {skipped} merges are malformed or refer to unknown tokens"
        );
    }
    let valid = |id: Option<TokenId>, what: &str| -> Option<TokenId> {
        match id {
            Some(i) if (i as usize) < n => Some(i),
            Some(i) => {
                tracing::warn!(
                    "GGUF vocabulary: {what} id {i} is out of range ({n} tokens); ignored"
                );
                None
            }
            None => None,
        }
    };
    let bos = valid(v.bos_id, "BOS");
    let mut eos = Vec::new();
    for (id, what) in [(v.eos_id, "EOS"), (v.eot_id, "EOT"), (v.eom_id, "EOM")] {
        if let Some(i) = valid(id, what) {
            if !eos.contains(&i) {
                eos.push(i);
            }
        }
    }
    // llama.cpp also ends generation on control tokens with these texts.
    for (text, id, _) in &specials {
        let eog = matches!(
            text.as_str(),
            "<|eot_id|>"
                | "<|im_end|>"
                | "<|end|>"
                | "<end_of_turn>"
                | "<|endoftext|>"
                | "<|eom_id|>"
                | "<EOT>"
                | "<|end_of_text|>"
                | "<end_of_utterance>"
        );
        if eog && !eos.contains(id) {
            eos.push(*id);
        }
    }
    let add_bos = v.add_bos.unwrap_or(default_add_bos) && bos.is_some();
    Ok(Parts {
        bpe: Bpe::new(encoder, Merges::Pairs(pairs), ignore_merges),
        pre,
        meta_chunking,
        id_bytes,
        specials,
        byte_level_names: true,
        bos,
        eos,
        add_bos,
    })
}
