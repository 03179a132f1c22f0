//! Shared test helpers: a seeded PRNG, a byte-by-byte feeder, test vocabularies, sample
//! schemas and a validator for the supported JSON Schema subset.

#![allow(dead_code)]

use std::sync::Arc;

use llama31_grammar::{Grammar, Matcher};
use serde_json::{json, Value};

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

pub fn grammar(schema: &Value) -> Arc<Grammar> {
    match Grammar::from_json_schema(schema) {
        Ok(g) => Arc::new(g),
        Err(e) => panic!("schema {schema} failed to compile: {e}"),
    }
}

/// Feeds `doc` one byte at a time; `Err(i)` when byte `i` is rejected.
pub fn feed(g: &Arc<Grammar>, doc: &[u8]) -> Result<Matcher, usize> {
    let mut m = Matcher::new(g.clone());
    for (i, b) in doc.iter().enumerate() {
        if !m.accept_bytes(std::slice::from_ref(b)) {
            return Err(i);
        }
    }
    Ok(m)
}

/// A vocabulary with every single byte, JSON fragments, words used by the sample schemas,
/// multi-byte characters, partial UTF-8 sequences and random strings; token 0 is special
/// (`None`) and token 1 is empty.
pub fn test_vocab(seed: u64, random: usize) -> Vec<Option<Vec<u8>>> {
    let mut v: Vec<Option<Vec<u8>>> = vec![None, Some(Vec::new())];
    for b in 0..=255u8 {
        v.push(Some(vec![b]));
    }
    let fragments: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"\":",
        b"\":\"",
        b"\",\"",
        b"\"}",
        b"\"]",
        b"},",
        b"],",
        b", ",
        b": ",
        b"{\"",
        b"[\"",
        b"[{",
        b"}]",
        b"]}",
        b"\"},",
        b"true",
        b"false",
        b"null",
        b"tr",
        b"ue",
        b"nu",
        b"ll",
        b"0",
        b"1",
        b"12",
        b"-1",
        b"3.14",
        b"e5",
        b"E-2",
        b".5",
        b"00",
        b"10",
        b"\\n",
        b"\\\"",
        b"\\\\",
        b"\\u00e9",
        b"\\ud83d",
        b"\\ude00",
        b"\\u",
        b"\\",
        "é".as_bytes(),
        "😀".as_bytes(),
        b"\xf0\x9f",
        b"\x98\x80",
        b"\xc3",
        b"\xa9",
        b"  ",
        b"\n",
        b" \"",
        b"\n  ",
        b"location",
        b"unit",
        b"celsius",
        b"fahrenheit",
        b"Paris",
        b" Paris",
        b"get_weather",
        b"name",
        b"arguments",
        b"value",
        b"children",
        b"hourly",
        b"fields",
        b"temp",
        b"wind",
        b"rain",
        b"details",
        b"note",
        b"days",
        b"id",
        b"tags",
        b"kind",
        b"\"location\":\"",
        b"\"unit\":\"",
        b"\"value\":",
        b"\"children\":[",
        b"abc",
        b"hello world",
        b" the",
        b"ing",
        b"a\"",
        b"a\",",
        b"\"a",
        b"x\"}",
    ];
    for f in fragments {
        v.push(Some(f.to_vec()));
    }
    let alphabet: &[u8] = b"{}[]\",:0123456789-.eE+ \n\\utabcnlrsfxyz\xc3\xa9";
    let mut rng = Rng::new(seed);
    for _ in 0..random {
        let len = 1 + rng.below(6);
        let t: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        v.push(Some(t));
    }
    v
}

/// An OpenAI-style tool `parameters` schema.
pub fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1},
            "details": {
                "type": "object",
                "properties": {
                    "hourly": {"type": "boolean"},
                    "fields": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["temp", "wind", "rain"]},
                        "maxItems": 3
                    }
                },
                "required": ["hourly"],
                "additionalProperties": false
            },
            "note": {"type": ["string", "null"]}
        },
        "required": ["location", "unit"],
        "additionalProperties": false
    })
}

/// A recursive tree through `$defs`.
pub fn tree_schema() -> Value {
    json!({
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}
                },
                "required": ["value", "children"],
                "additionalProperties": false
            }
        },
        "$ref": "#/$defs/node"
    })
}

/// A forced tool call: a constant name and typed arguments.
pub fn tool_call_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"const": "get_weather"},
            "arguments": weather_schema()
        },
        "required": ["name", "arguments"],
        "additionalProperties": false
    })
}

pub fn any_of_schema() -> Value {
    json!({
        "anyOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}, "required": ["b"]},
            {"type": "null"},
            {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false, "minItems": 1}
        ]
    })
}

pub fn mixed_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"enum": ["a", "b", 1, null, true, {"k": [1, 2]}]}
        },
        "additionalProperties": {"type": "string", "maxLength": 4}
    })
}

pub fn strings_schema() -> Value {
    json!({
        "type": "array",
        "items": {"type": "string", "minLength": 2, "maxLength": 3},
        "maxItems": 4
    })
}

/// Validates `doc` against `schema` with this crate's semantics (declared property order,
/// no extra keys when `properties` is given without `additionalProperties`).
pub fn validate(doc: &Value, schema: &Value, root: &Value) -> Result<(), String> {
    let m = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err("schema `false`".into()),
        Value::Object(m) => m,
        _ => return Err(format!("bad schema {schema}")),
    };
    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
        let target = root
            .pointer(r.trim_start_matches('#'))
            .ok_or_else(|| format!("bad ref {r}"))?;
        return validate(doc, target, root);
    }
    if let Some(alts) = m
        .get("anyOf")
        .or_else(|| m.get("oneOf"))
        .and_then(Value::as_array)
    {
        return if alts.iter().any(|s| validate(doc, s, root).is_ok()) {
            Ok(())
        } else {
            Err(format!("{doc} matches no branch"))
        };
    }
    if let Some(all) = m.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, root)?;
        }
        return Ok(());
    }
    if let Some(e) = m.get("enum").and_then(Value::as_array) {
        if !e.contains(doc) {
            return Err(format!("{doc} not in enum"));
        }
    }
    if let Some(c) = m.get("const") {
        if c != doc {
            return Err(format!("{doc} is not the const {c}"));
        }
    }
    let mut types: Vec<&str> = match m.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => {
            let mut t = Vec::new();
            let has = |ks: &[&str]| ks.iter().any(|k| m.contains_key(*k));
            if has(&["properties", "required", "additionalProperties"]) {
                t.push("object");
            }
            if has(&["items", "prefixItems", "minItems", "maxItems"]) {
                t.push("array");
            }
            if has(&["minLength", "maxLength"]) {
                t.push("string");
            }
            t
        }
    };
    if m.contains_key("enum") || m.contains_key("const") {
        if types.is_empty() {
            return Ok(());
        }
    } else if types.is_empty() {
        types = vec!["object", "array", "string", "number", "boolean", "null"];
    }
    let type_ok = |t: &str| match (t, doc) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_))
        | ("null", Value::Null) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    };
    if !types.iter().any(|t| type_ok(t)) {
        return Err(format!("{doc} is not of type {types:?}"));
    }
    match doc {
        Value::Object(o) => {
            let props = m.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = m
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for r in &required {
                if !o.contains_key(*r) {
                    return Err(format!("missing required `{r}` in {doc}"));
                }
            }
            let mut last_declared: Option<usize> = None;
            let mut seen_extra = false;
            for (k, v) in o {
                let declared = props.and_then(|p| p.keys().position(|x| x == k));
                match declared {
                    Some(i) => {
                        if seen_extra || last_declared.is_some_and(|l| l >= i) {
                            return Err(format!("key `{k}` out of declared order in {doc}"));
                        }
                        last_declared = Some(i);
                        let s = props.and_then(|p| p.get(k)).unwrap_or(&Value::Bool(true));
                        validate(v, s, root)?;
                    }
                    None => {
                        if required.contains(&k.as_str()) {
                            continue;
                        }
                        seen_extra = true;
                        let extra = match m.get("additionalProperties") {
                            None if props.is_some() => &Value::Bool(false),
                            None => &Value::Bool(true),
                            Some(s) => s,
                        };
                        validate(v, extra, root).map_err(|e| format!("extra key `{k}`: {e}"))?;
                    }
                }
            }
            Ok(())
        }
        Value::Array(a) => {
            let (prefix, items) = match m.get("items") {
                Some(Value::Array(tuple)) => (
                    tuple.clone(),
                    m.get("additionalItems")
                        .cloned()
                        .unwrap_or(Value::Bool(true)),
                ),
                other => (
                    m.get("prefixItems")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    other.cloned().unwrap_or(Value::Bool(true)),
                ),
            };
            for (i, v) in a.iter().enumerate() {
                validate(v, prefix.get(i).unwrap_or(&items), root)?;
            }
            let min = m.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let max = m
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            if (a.len() as u64) < min || a.len() as u64 > max {
                return Err(format!("{} items outside {min}..={max}", a.len()));
            }
            Ok(())
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            let min = m.get("minLength").and_then(Value::as_u64).unwrap_or(0);
            let max = m
                .get("maxLength")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            if n < min || n > max {
                return Err(format!("string of {n} chars outside {min}..={max}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
