//! Times `TokenIndex::allowed` in typical matcher states.
//!
//! ```text
//! cargo run -p llama31-grammar --release --example mask_bench [TIKTOKEN_FILE]
//! ```
//!
//! Without an argument the vocabulary is synthetic: the 256 single bytes plus random
//! printable ASCII strings of 1 to 8 bytes, 128,256 tokens in all (the size of the Llama 3
//! vocabulary). With a tiktoken file (`base64-token rank` per line, e.g. Llama 3's
//! `tokenizer.model`) the real byte-level tokens are used, padded with special tokens to
//! 128,256.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama31_grammar::{Grammar, Matcher, TokenIndex};
use serde_json::json;

const VOCAB: usize = 128_256;

fn synthetic() -> Vec<Option<Vec<u8>>> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut v: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    while v.len() < VOCAB {
        let len = 1 + (next() % 8) as usize;
        let t = (0..len).map(|_| 0x20 + (next() % 95) as u8).collect();
        v.push(Some(t));
    }
    v
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn tiktoken(path: &str) -> Vec<Option<Vec<u8>>> {
    let text = std::fs::read_to_string(path).expect("readable tiktoken file");
    let mut v: Vec<Option<Vec<u8>>> = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(tok), Some(rank)) = (parts.next(), parts.next()) else {
            continue;
        };
        let rank: usize = rank.parse().expect("rank");
        if v.len() <= rank {
            v.resize(rank + 1, None);
        }
        v[rank] = base64_decode(tok);
    }
    v.resize(VOCAB.max(v.len()), None);
    v
}

fn time(index: &TokenIndex, m: &Matcher, allowed: &mut [bool]) -> (Duration, Duration, usize) {
    for _ in 0..3 {
        index.allowed(m, allowed);
    }
    let runs = 50;
    let mut total = Duration::ZERO;
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        index.allowed(m, allowed);
        let e = t.elapsed();
        total += e;
        best = best.min(e);
    }
    (total / runs, best, allowed.iter().filter(|a| **a).count())
}

fn main() {
    let vocab = match std::env::args().nth(1) {
        Some(path) => tiktoken(&path),
        None => synthetic(),
    };
    let t = Instant::now();
    let index = TokenIndex::new(&vocab);
    println!(
        "vocabulary: {} tokens, index built in {:?}",
        vocab.len(),
        t.elapsed()
    );

    let weather = json!({
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "note": {"type": ["string", "null"], "maxLength": 40}
        },
        "required": ["location", "unit"],
        "additionalProperties": false
    });
    let weather = Arc::new(Grammar::from_json_schema(&weather).expect("schema compiles"));
    let object = Arc::new(Grammar::any_json_object());
    let any = Arc::new(Grammar::any_json_value());
    let number = Arc::new(Grammar::from_json_schema(&json!({"type": "number"})).expect("compiles"));

    let cases: Vec<(&str, &Arc<Grammar>, &str)> = vec![
        (
            "inside a free string (schema)",
            &weather,
            r#"{"location":"Pa"#,
        ),
        (
            "inside a string with maxLength",
            &weather,
            r#"{"location":"a","unit":"celsius","note":"ab"#,
        ),
        (
            "inside a free string (json_object)",
            &object,
            r#"{"text":"Hello"#,
        ),
        ("inside a free key (json_object)", &object, r#"{"ab"#),
        ("object key position: after `{`", &weather, "{"),
        (
            "object key position: after `,` (optional keys)",
            &weather,
            r#"{"location":"a","unit":"celsius","#,
        ),
        ("object key position: json_object after `{`", &object, "{"),
        (
            "inside an enum value",
            &weather,
            r#"{"location":"a","unit":"c"#,
        ),
        (
            "number position: value start (integer)",
            &weather,
            r#"{"location":"a","unit":"celsius","days":"#,
        ),
        (
            "number position: inside integer",
            &weather,
            r#"{"location":"a","unit":"celsius","days":12"#,
        ),
        ("number position: top-level number", &number, "-12.5"),
        ("any value position (json_object)", &object, r#"{"a":"#),
        ("document start (any value)", &any, ""),
    ];
    let mut allowed = vec![false; vocab.len()];
    println!(
        "{:<48} {:>10} {:>10} {:>9}",
        "state", "mean", "best", "allowed"
    );
    for (name, g, prefix) in cases {
        let mut m = Matcher::new(g.clone());
        assert!(m.accept_bytes(prefix.as_bytes()), "{name}: prefix rejected");
        let (mean, best, n) = time(&index, &m, &mut allowed);
        println!("{name:<48} {mean:>10.2?} {best:>10.2?} {n:>9}");
    }
}
