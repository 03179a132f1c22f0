//! Schemas that cannot be compiled give clear errors; hostile schemas neither panic nor
//! loop.

use llama31_grammar::{Grammar, GrammarError};
use serde_json::{json, Value};

fn err(schema: Value) -> GrammarError {
    match Grammar::from_json_schema(&schema) {
        Ok(_) => {
            let text = schema.to_string();
            panic!("schema {} should not compile", &text[..text.len().min(300)])
        }
        Err(e) => e,
    }
}

#[test]
fn unsupported_keywords_name_keyword_and_pointer() {
    let e =
        err(json!({"type": "object", "properties": {"x": {"type": "string", "pattern": "^a"}}}));
    assert_eq!(
        e,
        GrammarError::UnsupportedKeyword {
            keyword: "pattern".into(),
            pointer: "/properties/x".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "unsupported JSON Schema keyword `pattern` at /properties/x"
    );
    let e = err(json!({"uniqueItems": true}));
    assert_eq!(
        e.to_string(),
        "unsupported JSON Schema keyword `uniqueItems` at the schema root"
    );
    let e = err(json!({"type": "object", "properties": {"a/b": {"items": {"not": {}}}}}));
    assert!(
        matches!(&e, GrammarError::UnsupportedKeyword { keyword, pointer } if keyword == "not" && pointer == "/properties/a~1b/items"),
        "{e}"
    );
    for kw in [
        "if",
        "minProperties",
        "patternProperties",
        "contains",
        "nullable",
        "$dynamicRef",
    ] {
        let mut m = serde_json::Map::new();
        m.insert(kw.into(), json!({}));
        assert!(matches!(
            err(Value::Object(m)),
            GrammarError::UnsupportedKeyword { .. }
        ));
    }
}

#[test]
fn annotations_and_numeric_ranges_are_accepted() {
    let s = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "x", "$comment": "c", "title": "t", "description": "d", "default": 1,
        "examples": [1], "deprecated": false, "readOnly": false, "writeOnly": false,
        "strict": true,
        "type": "object",
        "properties": {
            "n": {"type": "number", "minimum": 0, "maximum": 5, "exclusiveMinimum": 0,
                  "exclusiveMaximum": 9, "multipleOf": 0.5},
            "d": {"type": "string", "format": "date-time"}
        }
    });
    assert!(Grammar::from_json_schema(&s).is_ok());
}

#[test]
fn bad_types_and_shapes() {
    assert_eq!(
        err(json!({"type": "float"})),
        GrammarError::UnknownType {
            name: "float".into(),
            pointer: String::new()
        }
    );
    assert!(matches!(
        err(json!({"type": ["string", "tuple"]})),
        GrammarError::UnknownType { .. }
    ));
    assert!(matches!(
        err(json!({"type": 3})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"type": []})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"required": "a"})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"properties": []})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"minItems": -1})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"maxLength": 1.5})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"enum": "a"})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"anyOf": []})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"additionalProperties": 1})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"properties": {"a": 1}})),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!("string")),
        GrammarError::InvalidSchema { .. }
    ));
    assert!(matches!(
        err(json!({"properties": {}, "required": ["a"], "additionalProperties": false})),
        GrammarError::InvalidSchema { .. }
    ));
}

#[test]
fn unsupported_combinations() {
    let e = err(json!({"allOf": [{"type": "string"}, {"maxLength": 3}]}));
    assert!(matches!(e, GrammarError::Unsupported { .. }), "{e}");
    let e = err(json!({"type": "object", "anyOf": [{"required": ["a"]}]}));
    assert_eq!(
        e.to_string(),
        "unsupported JSON Schema construct at the schema root: `anyOf` combined with `type`"
    );
    let e = err(json!({"$ref": "#/$defs/a", "anyOf": [{}], "$defs": {"a": {}}}));
    assert!(matches!(e, GrammarError::Unsupported { .. }), "{e}");
}

#[test]
fn bad_refs() {
    for (r, ptr) in [
        ("#/$defs/missing", ""),
        ("http://example.com/schema", ""),
        ("other.json#/a", ""),
        ("#anchor", ""),
    ] {
        let e = err(json!({"$ref": r, "$defs": {"a": {}}}));
        assert!(
            matches!(&e, GrammarError::BadRef { reference, pointer, .. } if reference == r && pointer == ptr),
            "{e}"
        );
    }
    let e = err(json!({"properties": {"x": {"$ref": "#/definitions/nope"}}}));
    assert!(
        matches!(&e, GrammarError::BadRef { pointer, .. } if pointer == "/properties/x"),
        "{e}"
    );
    assert!(matches!(
        err(json!({"$ref": 5})),
        GrammarError::InvalidSchema { .. }
    ));
    // Percent-encoded and escaped pointers resolve.
    let ok = json!({"$ref": "#/$defs/a%20b~1c", "$defs": {"a b/c": {"type": "null"}}});
    assert!(Grammar::from_json_schema(&ok).is_ok());
}

#[test]
fn unsatisfiable_schemas() {
    for s in [
        json!(false),
        json!({"enum": []}),
        json!({"$ref": "#"}),
        json!({"anyOf": [{"$ref": "#"}]}),
        json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}),
        json!({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}),
        json!({"type": "string", "minLength": 3, "maxLength": 2}),
        json!({"type": "array", "minItems": 3, "maxItems": 2}),
        json!({"type": "array", "prefixItems": [{}], "items": false, "minItems": 2}),
        json!({"type": "integer", "enum": [1.5, "a"]}),
        json!({"type": "object", "properties": {"a": false}, "required": ["a"]}),
    ] {
        assert!(
            matches!(
                err(s.clone()),
                GrammarError::Unsatisfiable { max_depth: 64 }
            ),
            "{s}"
        );
    }
}

#[test]
fn schema_too_deep() {
    let mut s = json!({"type": "integer"});
    for _ in 0..100 {
        s = json!({"type": "array", "items": s});
    }
    let e = err(s);
    assert!(matches!(e, GrammarError::TooDeep { limit: 64, .. }), "{e}");
    let mut v = json!(1);
    for _ in 0..100 {
        v = json!([v]);
    }
    let e = err(json!({"const": v}));
    assert!(matches!(e, GrammarError::TooDeep { .. }), "{e}");
}

#[test]
fn schema_too_large() {
    let props: serde_json::Map<String, Value> = (0..30_000)
        .map(|i| (format!("p{i}"), json!({"type": "integer"})))
        .collect();
    let e = err(json!({"type": "object", "properties": props}));
    assert!(matches!(e, GrammarError::TooLarge { .. }), "{e}");
    let big = "x".repeat(1 << 20);
    let e = err(json!({"enum": [big]}));
    assert!(matches!(e, GrammarError::TooLarge { .. }), "{e}");
}

#[test]
fn long_reference_chains_compile_without_deep_recursion() {
    // 5,000 definitions each referring to the next: compiled from a work list.
    let mut defs = serde_json::Map::new();
    for i in 0..5_000 {
        defs.insert(
            format!("d{i}"),
            json!({"$ref": format!("#/$defs/d{}", i + 1)}),
        );
    }
    defs.insert("d5000".into(), json!({"type": "boolean"}));
    let s = json!({"$ref": "#/$defs/d0", "$defs": defs});
    assert!(Grammar::from_json_schema(&s).is_ok());
}

#[test]
fn grammar_and_matcher_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Grammar>();
    assert_send_sync::<llama31_grammar::Matcher>();
    assert_send_sync::<llama31_grammar::TokenIndex>();
}
