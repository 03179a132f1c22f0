//! Random constrained generation: repeatedly pick a random allowed token until the
//! document is finished; the result must parse with serde_json and satisfy the schema, and
//! the mask must never be empty before the document is finished.

mod common;

use std::sync::Arc;

use common::*;
use llama31_grammar::{Grammar, Matcher, TokenIndex};
use serde_json::{json, Value};

/// After this many bytes, prefer tokens that close the document.
const SOFT_BUDGET: usize = 400;
/// Give up (test failure) after this many bytes.
const HARD_BUDGET: usize = 20_000;

fn generate(
    g: &Arc<Grammar>,
    index: &TokenIndex,
    vocab: &[Option<Vec<u8>>],
    rng: &mut Rng,
) -> Vec<u8> {
    let closers: &[&[u8]] = &[b"}", b"]", b"\"", b"0", b"null", b"true", b":"];
    let mut m = Matcher::new(g.clone());
    let mut out = Vec::new();
    let mut allowed = vec![false; vocab.len()];
    loop {
        let finishing = out.len() > SOFT_BUDGET;
        if m.is_complete() && (!m.can_continue() || finishing || rng.chance(0.2)) {
            return out;
        }
        assert!(
            out.len() < HARD_BUDGET,
            "no end after {} bytes: ...{:?}",
            out.len(),
            String::from_utf8_lossy(&out[out.len() - 300..])
        );
        index.allowed(&m, &mut allowed);
        let ids: Vec<usize> = (0..vocab.len()).filter(|&i| allowed[i]).collect();
        assert!(
            !ids.is_empty(),
            "dead end after {:?}",
            String::from_utf8_lossy(&out)
        );
        let bytes = |t: usize| vocab[t].as_deref().unwrap_or_default();
        let pick = if finishing {
            let closing: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&t| closers.contains(&bytes(t)))
                .collect();
            let closer = (!closing.is_empty()).then(|| closing[rng.below(closing.len())]);
            let flat: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&t| !bytes(t).iter().any(|b| matches!(b, b'{' | b'[' | b',')))
                .collect();
            match closer {
                Some(t) => t,
                None if !flat.is_empty() => flat[rng.below(flat.len())],
                None => ids[rng.below(ids.len())],
            }
        } else {
            ids[rng.below(ids.len())]
        };
        assert!(m.accept_bytes(bytes(pick)));
        out.extend_from_slice(bytes(pick));
    }
}

fn run(schema: &Value, samples: usize, seed: u64) {
    let g = grammar(schema);
    let vocab = test_vocab(seed, 300);
    let index = TokenIndex::new(&vocab);
    let mut rng = Rng::new(seed);
    for _ in 0..samples {
        let doc = generate(&g, &index, &vocab, &mut rng);
        let text = String::from_utf8_lossy(&doc);
        let v: Value = serde_json::from_slice(&doc)
            .unwrap_or_else(|e| panic!("generated {text:?} does not parse: {e}"));
        validate(&v, schema, schema).unwrap_or_else(|e| panic!("generated {text:?}: {e}"));
        let m = feed(&g, &doc).expect("generated document is accepted");
        assert!(m.is_complete());
    }
}

#[test]
fn generates_valid_tool_parameters() {
    run(&weather_schema(), 40, 11);
}

#[test]
fn generates_valid_tool_calls() {
    run(&tool_call_schema(), 25, 12);
}

#[test]
fn generates_valid_recursive_trees() {
    run(&tree_schema(), 30, 13);
}

#[test]
fn generates_valid_unions_and_extras() {
    run(&any_of_schema(), 30, 14);
    run(&mixed_schema(), 30, 15);
    run(&strings_schema(), 30, 16);
}

#[test]
fn generates_valid_free_json() {
    run(&json!({}), 30, 17);
    run(&json!({"type": "object"}), 20, 18);
    run(
        &json!({"type": "array", "items": {"type": ["integer", "boolean"]}, "minItems": 2}),
        20,
        19,
    );
}

#[test]
fn generates_valid_nested_tool_schema() {
    let schema = json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 20},
            "filters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"enum": ["price", "rating", "date"]},
                        "op": {"enum": ["<", ">", "=="]},
                        "value": {"anyOf": [{"type": "number"}, {"type": "string"}]}
                    },
                    "required": ["field", "op", "value"],
                    "additionalProperties": false
                },
                "maxItems": 3
            },
            "limit": {"type": ["integer", "null"]},
            "sort": {"$ref": "#/$defs/sort"}
        },
        "required": ["query", "filters", "limit"],
        "additionalProperties": false,
        "$defs": {"sort": {"type": "object", "properties": {"by": {"type": "string"}, "desc": {"type": "boolean"}}, "required": ["by"]}}
    });
    run(&schema, 40, 20);
}

#[test]
fn generates_valid_edge_schemas() {
    let nested = json!({
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"$ref": "#"}}},
            "c": {"type": "array", "prefixItems": [{"enum": [1, 12, 123]}, {"const": "x"}], "items": {"type": "number"}}
        },
        "additionalProperties": {"type": "integer"}
    });
    run(&nested, 40, 21);
    let overlapping = json!({"anyOf": [
        {"type": "string", "maxLength": 2},
        {"enum": ["abc", "abd", "x\"y"]},
        {"type": "integer"}
    ]});
    run(&overlapping, 40, 22);
}
