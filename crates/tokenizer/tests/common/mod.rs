//! Shared test helpers: locate the repo, the fixture cache and the goldens.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use llama31_tokenizer::Tokenizer;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("LLAMA31_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
    PathBuf::from(home).join(".cache/llama31")
}

fn must_exist(p: PathBuf, hint: &str) -> PathBuf {
    assert!(p.exists(), "missing {} ({hint})", p.display());
    p
}

pub fn tiktoken_path() -> PathBuf {
    must_exist(
        cache_dir().join("tokenizer.model"),
        "run scripts/fetch-fixtures.sh",
    )
}

pub fn hf_json_path() -> PathBuf {
    must_exist(
        cache_dir().join("tokenizer.json"),
        "run scripts/fetch-fixtures.sh",
    )
}

pub fn meta() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_tiktoken_file(&tiktoken_path()).expect("load tokenizer.model"))
}

pub fn hf() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_hf_json_file(&hf_json_path()).expect("load tokenizer.json"))
}

pub fn golden(name: &str) -> PathBuf {
    must_exist(
        repo_root().join("goldens/tokenizer").join(name),
        "goldens are made by scripts/goldens/tokenizer_goldens.py",
    )
}

/// Lines of a JSONL golden file, parsed.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let p = golden(name);
    let text = std::fs::read_to_string(&p).expect("read golden");
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: line {i}: {e}", p.display()))
        })
        .collect()
}

pub fn shorten(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 160 {
        return format!("{s:?}");
    }
    let head: String = chars[..80].iter().collect();
    let tail: String = chars[chars.len() - 40..].iter().collect();
    format!("{head:?} … ({} chars) … {tail:?}", chars.len())
}

/// Compares `encode(line, false)` with the golden ids on every corpus line; panics on the first
/// difference with its line index and the (shortened) string.
pub fn check_corpus(tok: &Tokenizer, what: &str) {
    let corpus: Vec<String> = read_jsonl("corpus.jsonl");
    let ids: Vec<Vec<u32>> = read_jsonl("llama3_ids.jsonl");
    assert_eq!(
        corpus.len(),
        ids.len(),
        "corpus and llama3_ids line counts differ"
    );
    assert!(corpus.len() >= 1000, "corpus is unexpectedly small");
    for (i, (s, want)) in corpus.iter().zip(&ids).enumerate() {
        let got = tok.encode(s, false);
        if &got != want {
            let first = got
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "{what}: corpus line {i} differs from Meta at token {first} (got {} ids, want {}): {}\n got[..]: {:?}\nwant[..]: {:?}",
                got.len(),
                want.len(),
                shorten(s),
                &got[first.saturating_sub(2)..(first + 6).min(got.len())],
                &want[first.saturating_sub(2)..(first + 6).min(want.len())],
            );
        }
    }
}
