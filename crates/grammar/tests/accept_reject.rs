//! Accept/reject tables: valid documents are accepted byte by byte (with the prefix
//! property), invalid ones are rejected at the expected byte.

mod common;

use std::sync::Arc;

use common::*;
use llama31_grammar::{Grammar, GrammarOptions, Matcher};
use serde_json::{json, Value};

/// Every document is accepted byte by byte and complete at the end; wherever a prefix is
/// complete it parses and validates; feeding it in one call gives the same result.
fn valid(schema: &Value, docs: &[&str]) {
    let g = grammar(schema);
    for doc in docs {
        let bytes = doc.as_bytes();
        let mut m = Matcher::new(g.clone());
        for i in 0..bytes.len() {
            assert!(
                m.accept_bytes(&bytes[i..i + 1]),
                "schema {schema}: {doc:?} rejected at byte {i} ({:?})",
                String::from_utf8_lossy(&bytes[..=i])
            );
            if m.is_complete() {
                let prefix = &bytes[..=i];
                let v: Value = serde_json::from_slice(prefix).unwrap_or_else(|e| {
                    panic!(
                        "complete prefix {:?} does not parse: {e}",
                        String::from_utf8_lossy(prefix)
                    )
                });
                validate(&v, schema, schema)
                    .unwrap_or_else(|e| panic!("complete prefix of {doc:?}: {e}"));
            }
        }
        assert!(m.is_complete(), "schema {schema}: {doc:?} not complete");
        let v: Value = serde_json::from_str(doc).expect("test document parses");
        validate(&v, schema, schema).unwrap_or_else(|e| panic!("test document {doc:?}: {e}"));
        let mut whole = Matcher::new(g.clone());
        assert!(whole.accept_bytes(bytes));
        assert!(whole.is_complete());
    }
}

/// `prefix` is accepted, then the first byte of `rest` is rejected, and the matcher is
/// unchanged by the rejected call.
fn invalid(schema: &Value, cases: &[(&[u8], &[u8])]) {
    let g = grammar(schema);
    for (prefix, rest) in cases {
        let doc = [*prefix, *rest].concat();
        let at = feed(&g, &doc).err();
        assert_eq!(
            at,
            Some(prefix.len()),
            "schema {schema}: {:?} should be rejected at byte {}",
            String::from_utf8_lossy(&doc),
            prefix.len()
        );
        let mut m = feed(&g, prefix).expect("prefix accepted");
        let complete = m.is_complete();
        assert!(!m.accept_bytes(rest));
        assert_eq!(m.is_complete(), complete);
        assert!(m.accept_bytes(b"") && feed(&g, prefix).is_ok());
    }
}

/// Accepted but not complete.
fn incomplete(schema: &Value, docs: &[&str]) {
    let g = grammar(schema);
    for doc in docs {
        let m = feed(&g, doc.as_bytes()).unwrap_or_else(|i| panic!("{doc:?} rejected at {i}"));
        assert!(!m.is_complete(), "{doc:?} should not be complete");
        assert!(m.can_continue());
    }
}

#[test]
fn tool_parameters() {
    let s = weather_schema();
    valid(
        &s,
        &[
            r#"{"location":"Paris","unit":"celsius"}"#,
            r#"{ "location": "Paris", "unit": "fahrenheit", "days": 3 }"#,
            "{\n\"location\" :\t\"Z\u{fc}rich \\u00e9 \\\"q\\\" \\\\ \\n \\/ \\b\\f\\r\\t\",\r\n\"unit\":\"celsius\"}",
            r#"{"location":"","unit":"celsius","details":{"hourly":true,"fields":["temp","rain"]},"note":null}"#,
            r#"{"location":"\ud83d\ude00 😀","unit":"celsius","details":{"hourly":false,"fields":[]},"note":"x"}"#,
            r#"{"location":"a","unit":"celsius","days":-0}"#,
            r#"{"location":"a","unit":"celsius","days":1234567890123}"#,
        ],
    );
    invalid(
        &s,
        &[
            // wrong order / missing required / extra key
            (b"{\"", b"unit\":\"celsius\",\"location\":\"Paris\"}"),
            (b"{\"location\":\"Paris\"", b"}"),
            (b"{\"location\":\"Paris\",\"unit\":\"celsius\",\"", b"extra\":1}"),
            (b"{\"location\":\"Paris\",\"unit\":\"celsius\",\"days\":1,\"d", b"ays\":2}"),
            (b"{\"location\":\"Paris\",\"unit\":\"celsius\",\"note\":null", b",\"days\":2}"),
            // enum mismatch
            (b"{\"location\":\"Paris\",\"unit\":\"", b"kelvin\"}"),
            (b"{\"location\":\"Paris\",\"unit\":\"celsius", b"x\"}"),
            // wrong types
            (b"{\"location\":", b"5}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"days\":", b"\"3\"}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"note\":", b"3}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"details\":{\"hourly\":", b"1}}"),
            (b"", b"[]"),
            (b"", b"null"),
            // strings
            (b"{\"location\":\"a", b"\nb\"}"),
            (b"{\"location\":\"a", b"\tb\"}"),
            (b"{\"location\":\"a\\", b"x\"}"),
            (b"{\"location\":\"a\\u00", b"g0\"}"),
            (b"{\"location\":\"a\\ud", b"c00\"}"),
            (b"{\"location\":\"a\\ud800", b"x\"}"),
            (b"{\"location\":\"a\\ud800\\", b"n\"}"),
            (b"{\"location\":\"a\\ud800\\u", b"0041\"}"),
            (b"{\"location\":\"a\\ud800\\ud", b"800\"}"),
            (b"{\"location\":\"", b"\xff\"}"),
            (b"{\"location\":\"", b"\x80\"}"),
            (b"{\"location\":\"", b"\xc0\xaf\"}"),
            (b"{\"location\":\"\xe0", b"\x80\x80\"}"),
            (b"{\"location\":\"\xed", b"\xa0\x80\"}"),
            (b"{\"location\":\"\xf4", b"\x90\x80\x80\"}"),
            (b"{\"location\":\"\xc3", b"\"}"),
            // integers
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"days\":1", b".5}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"days\":1", b"e5}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"days\":0", b"1}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"days\":-", b"}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\",\"days\":", b"+1}"),
            // maxItems
            (
                b"{\"location\":\"a\",\"unit\":\"celsius\",\"details\":{\"hourly\":true,\"fields\":[\"temp\",\"wind\",\"rain\"",
                b",\"temp\"]}}",
            ),
            // structure
            (b"{\"location\":\"a\",\"unit\":\"celsius\",", b"}"),
            (b"{\"location\"", b",\"unit\":\"celsius\"}"),
            (b"{\"location\":\"a\",\"unit\":\"celsius\"}", b" "),
            (b"{\"location\":\"a\",\"unit\":\"celsius\"}", b"{"),
            // whitespace cap (2)
            (b"{  ", b" \"location\":\"a\"}"),
            (b"  ", b" {"),
            (b"{\"location\":\n\t", b" \"a\"}"),
        ],
    );
    incomplete(
        &s,
        &[
            "",
            " ",
            "{",
            r#"{"location":"Paris","unit":"cel"#,
            r#"{"loc"#,
        ],
    );
}

#[test]
fn top_level_container_and_string_end() {
    let g = grammar(&weather_schema());
    let m = feed(&g, br#"{"location":"a","unit":"celsius"}"#).unwrap();
    assert!(m.is_complete());
    assert!(!m.can_continue());
    let g = grammar(&json!({"type": "string"}));
    let m = feed(&g, br#""abc""#).unwrap();
    assert!(m.is_complete() && !m.can_continue());
    let m = feed(&g, br#""abc"#).unwrap();
    assert!(!m.is_complete() && m.can_continue());
}

#[test]
fn numbers() {
    let s = json!({"type": "number"});
    valid(
        &s,
        &[
            "0",
            "-0",
            "12",
            "1.5",
            "-1.5e10",
            "1E+2",
            "0.0e-0",
            "10.01",
            " 7",
            "123456789.987654321",
        ],
    );
    invalid(
        &s,
        &[
            (b"0", b"1"),
            (b"-0", b"1"),
            (b"1.", b"e5"),
            (b"", b".5"),
            (b"", b"+1"),
            (b"1e", b"e"),
            (b"1e+", b"+"),
            (b"1.5", b"."),
            (b"-", b"-"),
            (b"12", b" "),
            (b"1", b","),
        ],
    );
    incomplete(&s, &["-", "1.", "1e", "1e+", "-0.", "1E-"]);
    // Size caps that keep every number a finite f64.
    let digits = "9".repeat(200);
    valid(
        &s,
        &[
            "1e99",
            "1e-0099",
            "-2.5E+99",
            &digits,
            &format!("-{digits}.{digits}e99"),
        ],
    );
    invalid(
        &s,
        &[
            (b"1e10", b"0"),
            (b"1e-099", b"9"),
            (digits.as_bytes(), b"9"),
        ],
    );
    let g = grammar(&s);
    let m = feed(&g, b"12").unwrap();
    assert!(m.is_complete() && m.can_continue());

    let i = json!({"type": "integer"});
    valid(&i, &["0", "-7", "42", "-0", "9007199254740993"]);
    invalid(
        &i,
        &[(b"1", b".0"), (b"1", b"e5"), (b"0", b"0"), (b"", b".")],
    );
    let g = grammar(&i);
    let m = feed(&g, b"0").unwrap();
    assert!(m.is_complete() && !m.can_continue());
    let m = feed(&g, b"-0").unwrap();
    assert!(m.is_complete() && !m.can_continue());
}

#[test]
fn literals_and_enums() {
    let s = json!({"enum": [1, 12, "a", null, true, {"k": [1, 2]}, [], 2.5]});
    valid(
        &s,
        &[
            "1",
            "12",
            "\"a\"",
            "null",
            "true",
            "{\"k\":[1,2]}",
            "[]",
            "2.5",
        ],
    );
    invalid(
        &s,
        &[
            (b"", b"false"),
            (b"1", b"3"),
            (b"12", b"3"),
            (b"{", b" \"k\":[1,2]}"),
            (b"{\"k\":[1,", b" 2]}"),
            (b"\"a", b"a\""),
            (b"", b"3"),
            (b"2", b"}"),
        ],
    );
    let g = grammar(&s);
    let m = feed(&g, b"1").unwrap();
    assert!(m.is_complete() && m.can_continue());
    let m = feed(&g, b"12").unwrap();
    assert!(m.is_complete() && !m.can_continue());

    let c = tool_call_schema();
    valid(
        &c,
        &[r#"{"name":"get_weather","arguments":{"location":"Oslo","unit":"celsius"}}"#],
    );
    invalid(
        &c,
        &[
            (b"{\"name\":\"get_weather", b"x\""),
            (b"{\"name\":\"get_weathe", b"\""),
            (b"{\"name\":", b"1"),
            (b"{\"name\":\"get_weather\",\"", b"name\""),
        ],
    );
    // `type` and other keywords still apply to `enum` values.
    let t = json!({"type": "string", "enum": ["ab", "abcd", 3, null], "maxLength": 3});
    valid(&t, &["\"ab\""]);
    invalid(&t, &[(b"\"ab", b"c"), (b"", b"3"), (b"", b"n")]);
    let boolean = json!({"type": ["boolean", "null"]});
    valid(&boolean, &["true", "false", "null"]);
    invalid(&boolean, &[(b"", b"0"), (b"t", b"t")]);
}

#[test]
fn arrays() {
    let s = json!({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3});
    valid(&s, &["[1]", "[1,2]", "[ 1 , 2 , 3 ]", "[\n1]"]);
    invalid(
        &s,
        &[
            (b"[", b"]"),
            (b"[1,2,3", b",4]"),
            (b"[1,", b"]"),
            (b"[", b",1]"),
            (b"[1 ", b"2]"),
        ],
    );
    let p = json!({"prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": false});
    valid(&p, &["[]", "[\"a\"]", "[\"a\",true]"]);
    invalid(
        &p,
        &[
            (b"[\"a\",true", b",1]"),
            (b"[", b"true]"),
            (b"[\"a\",", b"\"b\"]"),
        ],
    );
    let rest = json!({"type": "array", "prefixItems": [{"const": "x"}], "items": {"type": "null"}, "minItems": 2});
    valid(&rest, &["[\"x\",null]", "[\"x\",null,null]"]);
    invalid(&rest, &[(b"[\"x\"", b"]"), (b"[\"x\",", b"1]")]);
    let tuple = json!({"items": [{"type": "integer"}], "additionalItems": false});
    valid(&tuple, &["[1]", "[]"]);
    invalid(&tuple, &[(b"[1", b",2]")]);
}

#[test]
fn strings_with_lengths() {
    let s = strings_schema();
    valid(
        &s,
        &[
            r#"["ab","abc"]"#,
            r#"["é\u00e9x"]"#,
            r#"["\ud83d\ude00a"]"#,
            r#"["😀😀😀"]"#,
            r#"["\n\t"]"#,
        ],
    );
    invalid(
        &s,
        &[
            (b"[\"a", b"\"]"),
            (b"[\"abc", b"d\"]"),
            (b"[\"abc", b"\\n\"]"),
            ("[\"😀😀😀".as_bytes(), "😀\"]".as_bytes()),
            (b"[\"ab\",\"ab\",\"ab\",\"ab\"", b",\"ab\"]"),
        ],
    );
}

#[test]
fn any_value_and_depth() {
    let s = json!({});
    valid(
        &s,
        &[
            "{}",
            "[]",
            r#"{"a":[1,{"b":null},"x",true,false,-1.5e3],"a":{}}"#,
            r#"[[],[[]],{"":""}]"#,
            "\"str\"",
            "null",
            "0",
        ],
    );
    let deep_ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
    valid(&s, &[&deep_ok]);
    let too_deep = "[".repeat(64);
    invalid(&s, &[(too_deep.as_bytes(), b"[]")]);
    let objects = "{\"a\":".repeat(63);
    invalid(&s, &[(format!("{objects}{{\"a\":").as_bytes(), b"{}")]);

    let g = Arc::new(Grammar::any_json_value());
    assert!(feed(&g, deep_ok.as_bytes()).unwrap().is_complete());
    let o = Arc::new(Grammar::any_json_object());
    assert!(feed(&o, b"{\"x\":[1,{\"y\":\"z\"}]}")
        .unwrap()
        .is_complete());
    assert_eq!(feed(&o, b"[]").err(), Some(0));
    assert_eq!(feed(&o, b"\"a\"").err(), Some(0));
    assert!(!feed(&o, b"{}").unwrap().can_continue());
}

#[test]
fn depth_limit_prunes_optional_branches() {
    let s = json!({"type": "object", "properties": {"a": {"$ref": "#"}}});
    let opts = GrammarOptions {
        max_depth: 3,
        max_whitespace: 2,
    };
    let g = Arc::new(Grammar::from_json_schema_with(&s, opts).unwrap());
    assert!(feed(&g, br#"{"a":{"a":{}}}"#).unwrap().is_complete());
    assert_eq!(feed(&g, br#"{"a":{"a":{"a":{}}}}"#).err(), Some(11));
    // Required recursion deeper than the limit: no document at all.
    let r = json!({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]});
    assert!(Grammar::from_json_schema(&r).is_err());
    // A chain that needs exactly 3 levels fits in 3.
    let chain = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object"}, "minItems": 1}}, "required": ["a"]});
    let g = Arc::new(Grammar::from_json_schema_with(&chain, opts).unwrap());
    assert!(feed(&g, br#"{"a":[{}]}"#).unwrap().is_complete());
    let too_small = GrammarOptions {
        max_depth: 2,
        max_whitespace: 2,
    };
    assert!(Grammar::from_json_schema_with(&chain, too_small).is_err());
}

#[test]
fn unsatisfiable_options_are_never_entered() {
    let s = json!({"type": "object", "properties": {"x": false, "y": {"type": "integer"}, "z": {"enum": []}}});
    valid(&s, &["{}", "{\"y\":1}"]);
    invalid(&s, &[(b"{\"", b"x\":1}"), (b"{\"y\":1", b",")]);
}

#[test]
fn unions() {
    let s = any_of_schema();
    valid(
        &s,
        &[
            r#"{"a":"x"}"#,
            r#"{"a":1,"b":true}"#,
            r#"{"b":false}"#,
            "null",
            r#"["s"]"#,
            r#"["s",1.5]"#,
        ],
    );
    invalid(
        &s,
        &[
            (b"{\"a\":1", b"}"),
            (b"{\"a\":\"x\"", b",\"b\":true}"),
            (b"{\"", b"c\":1}"),
            (b"[", b"]"),
            (b"[\"s\",1", b",2]"),
            (b"", b"true"),
        ],
    );
    let nullable = json!({"anyOf": [{"$ref": "#/definitions/s"}, {"type": "null"}], "definitions": {"s": {"type": "string"}}});
    valid(&nullable, &["null", "\"x\""]);
    let one = json!({"oneOf": [{"type": "integer"}, {"type": "boolean"}], "title": "t"});
    valid(&one, &["1", "true"]);
    let all = json!({"allOf": [{"type": "integer"}]});
    valid(&all, &["1"]);
    invalid(&all, &[(b"", b"\"1\"")]);
}

#[test]
fn objects_with_extra_keys() {
    let s = mixed_schema();
    valid(
        &s,
        &[
            r#"{}"#,
            r#"{"id":1,"x":"y"}"#,
            r#"{"x":"y","i":"","idx":"abcd"}"#,
            r#"{"id":2,"kind":{"k":[1,2]},"kin":"a"}"#,
            r#"{"kind":null}"#,
        ],
    );
    invalid(
        &s,
        &[
            (b"{\"id\":1,\"id", b"\":2}"),
            (b"{\"x\":\"y\",\"id", b"\":1}"),
            (b"{\"x\":", b"1}"),
            (b"{\"x\":\"abcd", b"e\"}"),
            (b"{\"kind\":", b"2}"),
        ],
    );
    let free = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    valid(&free, &[r#"{"a":1,"b":2}"#, r#"{"\u0041":3}"#]);
    invalid(&free, &[(b"{\"a\":", b"\"1\"}")]);
    let closed = json!({"type": "object", "properties": {}});
    valid(&closed, &["{}"]);
    invalid(&closed, &[(b"{", b"\"a\":1}")]);
    let open = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": true});
    valid(&open, &[r#"{"a":1,"b":[true]}"#, r#"{"b":{}}"#]);
    let undeclared_required =
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["b"]});
    valid(
        &undeclared_required,
        &[r#"{"b":"anything"}"#, r#"{"a":1,"b":[]}"#],
    );
    invalid(&undeclared_required, &[(b"{\"a\":1", b"}")]);
}

#[test]
fn recursive_tree() {
    let s = tree_schema();
    valid(
        &s,
        &[
            r#"{"value":1,"children":[]}"#,
            r#"{"value":1,"children":[{"value":2,"children":[{"value":3,"children":[]}]},{"value":4,"children":[]}]}"#,
        ],
    );
    invalid(
        &s,
        &[
            (b"{\"value\":1,\"children\":[{\"value\":2", b"}]}"),
            (
                b"{\"value\":1,\"children\":[{\"value\":1,\"children\":[]},{\"value\":1,\"children\":[]},{\"value\":1,\"children\":[]}",
                b",",
            ),
        ],
    );
    let root_ref = json!({"type": "object", "properties": {"next": {"$ref": "#"}, "v": {"type": "integer"}}, "required": ["v"]});
    valid(&root_ref, &[r#"{"next":{"next":{"v":1},"v":2},"v":3}"#]);
    let left = json!({"anyOf": [{"$ref": "#"}, {"type": "null"}]});
    // (The test validator would recurse forever on this schema; check by hand.)
    let g = grammar(&left);
    let m = feed(&g, b"null").unwrap();
    assert!(m.is_complete() && !m.can_continue());
    assert_eq!(feed(&g, b"1").err(), Some(0));
}

#[test]
fn rejected_bytes_leave_matcher_unchanged() {
    let g = grammar(&weather_schema());
    let mut m = Matcher::new(g);
    assert!(m.accept_bytes(br#"{"location":"Pa"#));
    assert!(!m.accept_bytes(b"ris\"}"));
    assert!(!m.accept_bytes(b"\x01"));
    assert!(m.accept_bytes(br#"ris","unit":"celsius"}"#));
    assert!(m.is_complete());
    let mut r = m.clone();
    r.reset();
    assert!(!r.is_complete());
    assert!(r.accept_bytes(b"{"));
}
