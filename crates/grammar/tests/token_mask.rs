//! Token masks equal the brute-force answer (clone the matcher, feed the token) for every
//! token, in states reached by feeding prefixes of valid documents and by random walks.

mod common;

use std::sync::Arc;

use common::*;
use llama31_grammar::{Grammar, Matcher, TokenIndex};
use serde_json::{json, Value};

fn brute_force(vocab: &[Option<Vec<u8>>], m: &Matcher) -> Vec<bool> {
    vocab
        .iter()
        .map(|t| match t {
            Some(b) if !b.is_empty() => m.clone().accept_bytes(b),
            _ => false,
        })
        .collect()
}

fn check(index: &TokenIndex, vocab: &[Option<Vec<u8>>], m: &Matcher, context: &str) {
    let mut allowed = vec![true; vocab.len()];
    index.allowed(m, &mut allowed);
    let expected = brute_force(vocab, m);
    for (i, (a, e)) in allowed.iter().zip(expected.iter()).enumerate() {
        assert_eq!(
            a,
            e,
            "{context}: token {i} {:?}",
            vocab[i]
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        );
    }
}

fn cases() -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            weather_schema(),
            vec![
                r#"{"location":"Paris","unit":"celsius"}"#,
                r#"{ "location": "Zürich \u00e9 \"q\" \\ \n", "unit": "fahrenheit", "days": 3 }"#,
                r#"{"location":"\ud83d\ude00 😀","unit":"celsius","details":{"hourly":true,"fields":["temp","rain"]},"note":null}"#,
            ],
        ),
        (
            tree_schema(),
            vec![r#"{"value":1,"children":[{"value":-2,"children":[]}]}"#],
        ),
        (
            tool_call_schema(),
            vec![r#"{"name":"get_weather","arguments":{"location":"Oslo","unit":"celsius"}}"#],
        ),
        (
            any_of_schema(),
            vec![r#"{"a":1,"b":true}"#, r#"["s",1.5e3]"#, "null"],
        ),
        (
            mixed_schema(),
            vec![
                r#"{"id":1,"kind":{"k":[1,2]},"kin":"ab\"","x":""}"#,
                r#"{"kind":1}"#,
            ],
        ),
        (
            strings_schema(),
            vec![r#"["ab","é\u00e9x","\ud83d\ude00a","😀😀😀"]"#],
        ),
        (
            json!({}),
            vec![
                r#"{"a":[1,{"b":null},"x\n",true,false,-1.5e3],"c":{}}"#,
                "12.5",
            ],
        ),
        (
            json!({"enum": [1, 12, "a", null, true, {"k": [1, 2]}]}),
            vec!["12", "{\"k\":[1,2]}"],
        ),
        (json!({"type": "number"}), vec!["-12.5e+3"]),
        (json!({"type": "string", "maxLength": 1}), vec!["\"é\""]),
    ]
}

#[test]
fn mask_matches_brute_force_on_document_prefixes() {
    for seed in [1u64, 2] {
        let vocab = test_vocab(seed, 300);
        let index = TokenIndex::new(&vocab);
        assert_eq!(index.len(), vocab.len());
        for (schema, docs) in cases() {
            let g = grammar(&schema);
            for doc in docs {
                let bytes = doc.as_bytes();
                let mut m = Matcher::new(g.clone());
                check(&index, &vocab, &m, &format!("{schema} at start"));
                for (i, b) in bytes.iter().enumerate() {
                    assert!(m.accept_bytes(std::slice::from_ref(b)), "{doc:?} at {i}");
                    let context =
                        format!("{schema} after {:?}", String::from_utf8_lossy(&bytes[..=i]));
                    check(&index, &vocab, &m, &context);
                }
            }
        }
    }
}

#[test]
fn mask_matches_brute_force_on_random_walks() {
    let vocab = test_vocab(7, 400);
    let index = TokenIndex::new(&vocab);
    let mut rng = Rng::new(99);
    let mut allowed = vec![false; vocab.len()];
    for (schema, _) in cases() {
        let g = grammar(&schema);
        for _walk in 0..6 {
            let mut m = Matcher::new(g.clone());
            for _step in 0..60 {
                check(&index, &vocab, &m, &format!("{schema} random walk"));
                index.allowed(&m, &mut allowed);
                let ids: Vec<usize> = (0..vocab.len()).filter(|&i| allowed[i]).collect();
                if ids.is_empty() {
                    break;
                }
                let t = ids[rng.below(ids.len())];
                assert!(m.accept_bytes(vocab[t].as_deref().unwrap_or_default()));
            }
        }
    }
}

#[test]
fn special_and_empty_tokens_are_never_allowed() {
    let vocab = test_vocab(3, 10);
    let index = TokenIndex::new(&vocab);
    let g = Arc::new(Grammar::any_json_value());
    let m = Matcher::new(g);
    let mut allowed = vec![true; vocab.len()];
    index.allowed(&m, &mut allowed);
    assert!(!allowed[0] && !allowed[1]);
    // Wrong-length output slices are handled without panicking.
    let mut short = vec![true; 5];
    index.allowed(&m, &mut short);
    let mut long = vec![true; vocab.len() + 10];
    index.allowed(&m, &mut long);
    assert!(long[vocab.len()..].iter().all(|a| !a));
}

#[test]
fn finished_matcher_allows_nothing() {
    let vocab = test_vocab(4, 50);
    let index = TokenIndex::new(&vocab);
    let g = grammar(&weather_schema());
    let m = feed(&g, br#"{"location":"a","unit":"celsius"}"#).unwrap();
    let mut allowed = vec![true; vocab.len()];
    index.allowed(&m, &mut allowed);
    assert!(allowed.iter().all(|a| !a));
}
