//! A vocabulary as GGUF `tokenizer.*` metadata, written the way llama.cpp's `convert_hf_to_gguf.py`
//! writes it (`_set_vocab_gpt2` + gguf-py's `SpecialVocab`), from a Hugging Face model directory or
//! from Meta's tiktoken `tokenizer.model`.
//!
//! Keys, in the converter's order: `tokenizer.ggml.add_space_prefix` (only when
//! `tokenizer_config.json` sets `add_prefix_space`), `model` (`gpt2`), `pre` (named by hashing the
//! ids of a probe text, as the converter does), `tokens`, `token_type`, `merges`, the special-token
//! ids, the `add_*_token` flags, then `tokenizer.chat_template`.

use std::path::Path;

use llama31_formats::{GgufArray, GgufValue};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::load::{meta_special_tokens, tiktoken_ranks};
use crate::pre_hashes::{CHKTXT, PRE_HASHES};
use crate::{byte_level, Tokenizer, TokenizerError};

/// GGUF token types (`enum llama_token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// Special-token kinds gguf-py knows, in its order, with their GGUF key suffix.
const SPECIAL_TYPES: [(&str, &str); 7] = [
    ("bos", "bos_token_id"),
    ("eos", "eos_token_id"),
    ("unk", "unknown_token_id"),
    ("sep", "seperator_token_id"),
    ("pad", "padding_token_id"),
    ("cls", "cls_token_id"),
    ("mask", "mask_token_id"),
];

type Metadata = Vec<(String, GgufValue)>;

fn read_json(path: &Path) -> Result<Option<Value>, TokenizerError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TokenizerError::InvalidJson(format!("{}: {e}", path.display())))
}

fn bad(msg: impl Into<String>) -> TokenizerError {
    TokenizerError::InvalidHfJson(msg.into())
}

/// `does_token_look_special` of the converter.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// The `tokenizer.ggml.pre` name llama.cpp's converter gives this tokenizer: the SHA-256 of the
/// Python list of ids of [`CHKTXT`] (BOS first when the tokenizer adds one) looked up in its table.
pub fn pre_tokenizer_name(tok: &Tokenizer) -> Result<&'static str, TokenizerError> {
    let mut ids = Vec::new();
    if tok.add_bos() {
        if let Some(b) = tok.bos_id() {
            ids.push(b);
        }
    }
    ids.extend(tok.encode(CHKTXT, true));
    let list = format!(
        "[{}]",
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hash: String = Sha256::digest(list.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    PRE_HASHES
        .iter()
        .rev()
        .find(|(h, _)| *h == hash)
        .map(|(_, name)| *name)
        .ok_or_else(|| {
            TokenizerError::UnsupportedPreTokenizer(format!(
                "with probe hash {hash}, which llama.cpp's converter does not know"
            ))
        })
}

struct Added {
    id: usize,
    content: String,
    special: bool,
}

/// GGUF tokenizer metadata for a Hugging Face model directory (`tokenizer.json`, optional
/// `tokenizer_config.json`, `config.json`, `chat_template.jinja`). `vocab_size` is the model's
/// (`config.json`); ids without a token become `[PAD{id}]` of type unused.
pub fn gguf_metadata_from_hf_dir(
    dir: &Path,
    vocab_size: usize,
) -> Result<Metadata, TokenizerError> {
    let tj_path = dir.join("tokenizer.json");
    let tj_bytes = std::fs::read(&tj_path).map_err(|source| TokenizerError::Io {
        path: tj_path.clone(),
        source,
    })?;
    let tokenizer = Tokenizer::from_hf_json_bytes(&tj_bytes)?;
    let tj: Value = serde_json::from_slice(&tj_bytes)
        .map_err(|e| TokenizerError::InvalidJson(e.to_string()))?;
    let mut tcfg = read_json(&dir.join("tokenizer_config.json"))?;
    let config = read_json(&dir.join("config.json"))?;

    let mut md: Metadata = Vec::new();
    if let Some(b) = tcfg
        .as_ref()
        .and_then(|c| c.get("add_prefix_space"))
        .and_then(Value::as_bool)
    {
        md.push(("tokenizer.ggml.add_space_prefix".into(), b.into()));
    }

    // Tokens and their types.
    let model = tj.get("model").ok_or_else(|| bad("no `model`"))?;
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("model.vocab is not an object"))?;
    let mut reverse: Vec<Option<String>> = vec![None; vocab_size];
    let slot = |reverse: &mut Vec<Option<String>>, id: u64, tok: &str| match reverse
        .get_mut(id as usize)
    {
        Some(s) => {
            *s = Some(tok.to_owned());
            Ok(())
        }
        None => Err(bad(format!(
            "token {tok:?} has id {id}, not below the vocabulary size {vocab_size}"
        ))),
    };
    for (tok, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(format!("vocab id of {tok:?} is not an integer")))?;
        slot(&mut reverse, id, tok)?;
    }
    let mut added = Vec::new();
    for t in tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = t
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("added token without an integer id"))?;
        let content = t
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("added token without content"))?;
        slot(&mut reverse, id, content)?;
        added.push(Added {
            id: id as usize,
            content: content.to_owned(),
            special: t.get("special").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for (i, tok) in reverse.into_iter().enumerate() {
        match tok {
            None => {
                tokens.push(format!("[PAD{i}]"));
                types.push(UNUSED);
            }
            Some(tok) => match added.iter().find(|a| a.id == i && a.content == tok) {
                Some(a) if a.special || looks_special(&tok) => {
                    tokens.push(tok);
                    types.push(CONTROL);
                }
                Some(_) => {
                    tokens.push(tok.replace('\u{2581}', " "));
                    types.push(USER_DEFINED);
                }
                None => {
                    tokens.push(tok);
                    types.push(NORMAL);
                }
            },
        }
    }
    md.push(("tokenizer.ggml.model".into(), "gpt2".into()));
    md.push((
        "tokenizer.ggml.pre".into(),
        pre_tokenizer_name(&tokenizer)?.into(),
    ));
    md.push((
        "tokenizer.ggml.tokens".into(),
        GgufArray::String(tokens).into(),
    ));
    md.push((
        "tokenizer.ggml.token_type".into(),
        GgufArray::I32(types).into(),
    ));

    // Merges: "a b", or [a, b] pairs with spaces inside a part written as U+0120.
    let merges = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("model.merges is not an array"))?;
    let mut merge_strings = Vec::with_capacity(merges.len());
    for (i, m) in merges.iter().enumerate() {
        if let Some(s) = m.as_str() {
            merge_strings.push(s.to_owned());
        } else if let Some([a, b]) = m.as_array().map(Vec::as_slice) {
            let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
                return Err(bad(format!("merge {i} is not two strings")));
            };
            let esc = |p: &str| p.replace(' ', "\u{120}");
            merge_strings.push(format!("{} {}", esc(a), esc(b)));
        } else {
            return Err(bad(format!("merge {i} is neither \"a b\" nor [a, b]")));
        }
    }
    if !merge_strings.is_empty() {
        md.push((
            "tokenizer.ggml.merges".into(),
            GgufArray::String(merge_strings).into(),
        ));
    }

    // Special tokens and add_*_token flags (gguf-py SpecialVocab).
    let (ids, adds) = special_vocab(&tj, tcfg.as_mut(), config.as_ref(), &added, vocab_size);
    for (typ, id) in ids {
        if let Some((_, key)) = SPECIAL_TYPES.iter().find(|(t, _)| *t == typ) {
            md.push((format!("tokenizer.ggml.{key}"), id.into()));
        }
    }
    for (typ, on) in adds {
        md.push((format!("tokenizer.ggml.add_{typ}_token"), on.into()));
    }
    if let Some(t) = chat_template(dir, tcfg.as_ref())? {
        md.push(("tokenizer.chat_template".into(), t.into()));
    }
    // The converter's rule for Granite-sized (49,152-token) Llama vocabularies.
    if vocab_size == 49152 {
        set(&mut md, "tokenizer.ggml.add_bos_token", false.into());
    }
    Ok(md)
}

fn set(md: &mut Metadata, key: &str, value: GgufValue) {
    match md.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => md.push((key.to_owned(), value)),
    }
}

fn token_content(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// gguf-py's `SpecialVocab._try_load_from_tokenizer_json` + `_try_load_from_config_json` for the
/// special-token kinds of [`SPECIAL_TYPES`]: `(kind, id)` and `(kind, add)` in insertion order.
#[allow(clippy::type_complexity)]
fn special_vocab(
    tj: &Value,
    tcfg: Option<&mut Value>,
    config: Option<&Value>,
    added: &[Added],
    n_vocab: usize,
) -> (Vec<(&'static str, u32)>, Vec<(&'static str, bool)>) {
    let mut ids: Vec<(&'static str, u32)> = Vec::new();
    let mut adds: Vec<(&'static str, bool)> = Vec::new();
    fn set_add(adds: &mut Vec<(&'static str, bool)>, typ: &'static str, v: bool, force: bool) {
        match adds.iter_mut().find(|(t, _)| *t == typ) {
            Some(slot) if force => slot.1 = v,
            Some(_) => {}
            None => adds.push((typ, v)),
        }
    }
    fn special_id(v: Option<&Value>) -> Option<String> {
        v.and_then(|v| v.get("SpecialToken"))
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
    fn seq_id(v: Option<&Value>) -> Option<&str> {
        v.and_then(|v| v.get("Sequence"))
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
    }
    // A missing or empty tokenizer_config.json counts as absent, as in Python.
    let has_cfg = tcfg
        .as_ref()
        .and_then(|c| c.as_object())
        .is_some_and(|o| !o.is_empty());
    let get = |k: &str| tcfg.as_ref().and_then(|c| token_content(c.get(k)));
    let (mut bos, mut cls, mut eos, mut sep) = (
        get("bos_token"),
        get("cls_token"),
        get("eos_token"),
        get("sep_token"),
    );
    if has_cfg && bos.is_none() && cls.is_some() {
        bos = cls.clone();
    }
    if has_cfg && eos.is_none() && sep.is_some() {
        eos = sep.clone();
    }
    let processors = match tj.get("post_processor").filter(|p| !p.is_null()) {
        None => Vec::new(),
        Some(pp) => match pp.get("processors").and_then(Value::as_array) {
            Some(l) => l.clone(),
            None => vec![pp.clone()],
        },
    };
    for p in &processors {
        match p.get("type").and_then(Value::as_str) {
            Some("ByteLevel") => {
                set_add(&mut adds, "bos", false, false);
                set_add(&mut adds, "eos", false, false);
            }
            Some("RobertaProcessing") => {
                set_add(&mut adds, "bos", true, true);
                set_add(&mut adds, "eos", true, true);
                set_add(&mut adds, "sep", true, true);
                let first_of = |k: &str| {
                    p.get(k)
                        .and_then(Value::as_array)
                        .and_then(|a| a.first())
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                if cls.is_none() && has_cfg {
                    cls = first_of("cls").or_else(|| bos.clone());
                }
                if sep.is_none() && has_cfg {
                    sep = first_of("sep").or_else(|| eos.clone());
                }
            }
            Some("TemplateProcessing") => {
                let single = p
                    .get("single")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let (mut first, mut last) = (None, None);
                if single.len() > 1 {
                    first = special_id(single.first());
                    if let Some(f) = &first {
                        if !has_cfg {
                            bos = Some(f.clone());
                        } else if Some(f) != bos.as_ref() && Some(f) != cls.as_ref() {
                            if bos.is_none() {
                                bos = Some(f.clone());
                            }
                            if cls.is_none() {
                                cls = Some(f.clone());
                            }
                        }
                        let on = Some(f) == bos.as_ref() || Some(f) == cls.as_ref();
                        set_add(&mut adds, "bos", on, true);
                    }
                    last = special_id(single.last());
                    if let Some(l) = &last {
                        eos = Some(l.clone());
                        set_add(&mut adds, "eos", true, true);
                    }
                }
                let pair = p
                    .get("pair")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if pair.is_empty() {
                    continue;
                }
                let start = usize::from(first.is_some() && special_id(pair.first()) == first);
                let stop = if last.is_some() && special_id(pair.last()) == last {
                    pair.len() - 1
                } else {
                    pair.len()
                };
                let mid = pair.get(start..stop).unwrap_or_default();
                if mid.len() > 2
                    && seq_id(mid.first()) == Some("A")
                    && seq_id(mid.last()) == Some("B")
                {
                    let inner = &mid[1..mid.len() - 1];
                    let is_sep = |v: Option<&Value>| {
                        let s = special_id(v);
                        s.is_some() && (s == sep || s == eos)
                    };
                    let mut add_sep = is_sep(inner.first()) && last.is_none();
                    if inner.len() == 2 && is_sep(inner.get(1)) {
                        add_sep = true;
                    }
                    set_add(&mut adds, "sep", add_sep, true);
                    if add_sep && sep.is_none() && has_cfg {
                        sep = eos.clone();
                    }
                }
            }
            _ => {}
        }
    }
    let mut set_id = |typ: &'static str, id: Option<u64>| {
        if let Some(id) = id.filter(|&i| (i as usize) < n_vocab) {
            if !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id as u32));
            }
        }
    };
    if has_cfg {
        if let Some(c) = tcfg {
            for (k, v) in [
                ("bos_token", &bos),
                ("cls_token", &cls),
                ("eos_token", &eos),
                ("sep_token", &sep),
            ] {
                if let (Some(obj), Some(v)) = (c.as_object_mut(), v) {
                    obj.insert(k.into(), Value::String(v.clone()));
                }
            }
            for (typ, _) in SPECIAL_TYPES {
                if let Some(b) = c.get(format!("add_{typ}_token")).and_then(Value::as_bool) {
                    set_add(&mut adds, typ, b, false);
                }
                if let Some(content) = token_content(c.get(format!("{typ}_token"))) {
                    let id = added
                        .iter()
                        .find(|a| a.content == content)
                        .map(|a| a.id as u64);
                    set_id(typ, id);
                }
            }
        }
    }
    if let Some(c) = config {
        for (typ, _) in SPECIAL_TYPES {
            set_id(
                typ,
                c.get(format!("{typ}_token_id")).and_then(Value::as_u64),
            );
        }
    }
    (ids, adds)
}

/// `chat_template` from `tokenizer_config.json` (a string, or the `default` of a named list),
/// else `chat_template.jinja`.
fn chat_template(dir: &Path, tcfg: Option<&Value>) -> Result<Option<String>, TokenizerError> {
    let Some(tcfg) = tcfg else {
        return Ok(None);
    };
    match tcfg.get("chat_template") {
        Some(Value::String(s)) => return Ok(Some(s.clone())),
        Some(Value::Array(list)) => {
            return Ok(list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_owned))
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|source| TokenizerError::Io {
                path: jinja,
                source,
            });
    }
    Ok(None)
}

/// GGUF tokenizer metadata for Meta's tiktoken `tokenizer.model` (Llama 3): the ranks as
/// byte-level tokens, Meta's 256 special tokens as control tokens, and the merges recovered from
/// the ranks as transformers' `TikTokenConverter` does (every split of a token into two tokens,
/// by the token's rank, then the parts' ranks). `instruct` picks `<|eot_id|>` as EOS (else
/// `<|end_of_text|>`), as Meta's conversion to Hugging Face does.
pub fn gguf_metadata_from_tiktoken(
    path: &Path,
    instruct: bool,
) -> Result<Metadata, TokenizerError> {
    let data = std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ranks = tiktoken_ranks(&data)?;
    let n = ranks.len();
    let mut by_rank: Vec<&[u8]> = vec![&[]; n];
    for (b, &r) in &ranks {
        if let Some(slot) = by_rank.get_mut(r as usize) {
            *slot = b;
        }
    }
    let mut merges: Vec<(u32, u32, u32)> = Vec::new();
    for (rank, tok) in by_rank.iter().enumerate() {
        let mut local: Vec<(u32, u32, u32)> = (1..tok.len())
            .filter_map(|i| {
                let (l, r) = tok.split_at(i);
                Some((*ranks.get(l)?, *ranks.get(r)?, rank as u32))
            })
            .collect();
        local.sort_by_key(|&(l, r, _)| (l, r));
        merges.extend(local);
    }
    let encoded: Vec<String> = by_rank.iter().map(|b| byte_level::encode(b)).collect();
    let merge_strings: Vec<String> = merges
        .iter()
        .map(|&(l, r, _)| format!("{} {}", encoded[l as usize], encoded[r as usize]))
        .collect();
    let specials = meta_special_tokens();
    let mut tokens = encoded;
    let mut types = vec![NORMAL; n];
    for s in &specials {
        tokens.push(s.clone());
        types.push(CONTROL);
    }
    let id_of = |name: &str| -> Result<u32, TokenizerError> {
        specials
            .iter()
            .position(|s| s == name)
            .map(|i| (n + i) as u32)
            .ok_or_else(|| TokenizerError::InvalidVocab(format!("no special token {name}")))
    };
    let bos = id_of("<|begin_of_text|>")?;
    let eos = id_of(if instruct {
        "<|eot_id|>"
    } else {
        "<|end_of_text|>"
    })?;
    Ok(vec![
        ("tokenizer.ggml.model".into(), "gpt2".into()),
        ("tokenizer.ggml.pre".into(), "llama-bpe".into()),
        (
            "tokenizer.ggml.tokens".into(),
            GgufArray::String(tokens).into(),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            GgufArray::I32(types).into(),
        ),
        (
            "tokenizer.ggml.merges".into(),
            GgufArray::String(merge_strings).into(),
        ),
        ("tokenizer.ggml.bos_token_id".into(), bos.into()),
        ("tokenizer.ggml.eos_token_id".into(), eos.into()),
        ("tokenizer.ggml.add_bos_token".into(), true.into()),
        ("tokenizer.ggml.add_eos_token".into(), false.into()),
        ("tokenizer.ggml.add_sep_token".into(), false.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_looking_tokens() {
        assert!(looks_special("<|eot_id|>"));
        assert!(looks_special("<pad>"));
        assert!(!looks_special("<s>"));
        assert!(!looks_special("hello"));
    }
}
