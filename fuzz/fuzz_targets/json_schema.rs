//! JSON Schema → grammar compilation on an arbitrary schema, then the matcher on arbitrary
//! text: a document the matcher accepts completely must be valid JSON.
#![no_main]
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use llama31_grammar::{Grammar, Matcher};

#[derive(Arbitrary, Debug)]
struct Input {
    schema: String,
    text: Vec<u8>,
    any_object: bool,
}

fuzz_target!(|input: Input| {
    let grammar = if input.any_object {
        Grammar::any_json_object()
    } else {
        let Ok(schema) = serde_json::from_str(&input.schema) else {
            return;
        };
        let Ok(g) = Grammar::from_json_schema(&schema) else {
            return;
        };
        g
    };
    let mut m = Matcher::new(Arc::new(grammar));
    let mut accepted = 0;
    for chunk in input.text.chunks(3) {
        if !m.accept_bytes(chunk) {
            break;
        }
        accepted += chunk.len();
    }
    if accepted == input.text.len() && m.is_complete() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&input.text).is_ok(),
            "accepted a document that is not JSON: {:?}",
            String::from_utf8_lossy(&input.text)
        );
    }
});
