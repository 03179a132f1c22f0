//! Port of Meta's `llama3/tests/api/test_tool_utils.py` (every case, same expectations), plus
//! the reply parser on every supported shape.

use llama31_chat::pythonic::{is_valid_python_list, parse_python_list};
use llama31_chat::tool_calls::{encode_tool_call, parse_assistant_reply, ToolPromptFormat};
use llama31_chat::ToolCall;
use serde_json::{json, Value};

fn calls(input: &str) -> Vec<(String, Value)> {
    parse_python_list(input)
        .unwrap_or_else(|e| panic!("{input}: {e:?}"))
        .into_iter()
        .map(|(n, a)| (n, Value::Object(a)))
        .collect()
}

fn names_args(reply: &str) -> Vec<(String, Value)> {
    parse_assistant_reply(reply)
        .tool_calls
        .into_iter()
        .map(|c| (c.name, c.arguments))
        .collect()
}

// --- TestToolUtils ---

#[test]
fn test_maybe_extract_custom_tool_call() {
    let single = r#"<function=getWeather>{"location":"New York","date":"2023-08-05"}"#;
    assert_eq!(
        names_args(single),
        vec![(
            "getWeather".to_string(),
            json!({"location": "New York", "date": "2023-08-05"})
        )]
    );
}

// --- TestPythonListCheck ---

#[test]
fn test_valid_list_with_single_function_call() {
    assert!(is_valid_python_list(
        r#"[get_boiling_point(liquid_name="water", celcius=True)]"#
    ));
}

#[test]
fn test_valid_list_with_multiple_function_calls() {
    assert!(is_valid_python_list(
        r#"[get_boiling_point(liquid_name="water", celcius=True), get_melting_point(substance="ice", kelvin=False)]"#
    ));
}

#[test]
fn test_invalid_empty_list() {
    assert!(!is_valid_python_list("[]"));
}

#[test]
fn test_invalid_list_with_non_function_call() {
    assert!(!is_valid_python_list(
        r#"[get_boiling_point(liquid_name="water"), 42]"#
    ));
}

#[test]
fn test_invalid_list_with_positional_args() {
    assert!(!is_valid_python_list(
        r#"[get_boiling_point("water", True)]"#
    ));
}

#[test]
fn test_invalid_nested_list() {
    assert!(!is_valid_python_list(
        r#"[[get_boiling_point(liquid_name="water")]]"#
    ));
}

#[test]
fn test_invalid_dict() {
    assert!(!is_valid_python_list(
        r#"{"func": get_boiling_point(liquid_name="water")}"#
    ));
}

#[test]
fn test_invalid_syntax() {
    assert!(!is_valid_python_list(
        r#"[get_boiling_point(liquid_name="water", celcius=True"#
    ));
}

#[test]
fn test_valid_list_with_boolean_args() {
    assert!(is_valid_python_list(
        r#"[get_boiling_point(liquid_name="water", celcius=True, precise=False)]"#
    ));
}

#[test]
fn test_valid_list_with_numeric_args() {
    assert!(is_valid_python_list(
        "[calculate_volume(radius=5.2, height=10)]"
    ));
}

#[test]
fn test_invalid_bare_function_call() {
    assert!(!is_valid_python_list(
        r#"get_boiling_point(liquid_name="water")"#
    ));
}

#[test]
fn test_invalid_extra_char_function_call() {
    assert!(!is_valid_python_list(
        r#"[(get_boiling_point(liquid_name="water"),)]"#
    ));
}

// --- TestParsePythonList ---

#[test]
fn test_single_function_call() {
    assert_eq!(
        calls(r#"[get_boiling_point(liquid_name="water", celcius=True)]"#),
        vec![(
            "get_boiling_point".into(),
            json!({"liquid_name": "water", "celcius": true})
        )]
    );
}

#[test]
fn test_multiple_function_calls() {
    assert_eq!(
        calls(
            r#"[get_boiling_point(liquid_name="water", celcius=True), get_melting_point(substance="ice", kelvin=False)]"#
        ),
        vec![
            (
                "get_boiling_point".into(),
                json!({"liquid_name": "water", "celcius": true})
            ),
            (
                "get_melting_point".into(),
                json!({"substance": "ice", "kelvin": false})
            ),
        ]
    );
}

#[test]
fn test_function_call_with_numeric_args() {
    assert_eq!(
        calls("[calculate_volume(radius=5.2, height=10)]"),
        vec![(
            "calculate_volume".into(),
            json!({"radius": 5.2, "height": 10})
        )]
    );
}

#[test]
#[allow(clippy::approx_constant)] // 3.14 is Meta's test value, not π
fn test_function_call_with_mixed_type_args() {
    assert_eq!(
        calls(r#"[process_data(name="sample", value=42, active=True, ratio=3.14)]"#),
        vec![(
            "process_data".into(),
            json!({"name": "sample", "value": 42, "active": true, "ratio": 3.14})
        )]
    );
}

#[test]
fn test_function_call_with_empty_args() {
    assert_eq!(
        calls("[initialize()]"),
        vec![("initialize".into(), json!({}))]
    );
}

#[test]
fn test_function_call_with_string_containing_spaces() {
    assert_eq!(
        calls(r#"[analyze_text(content="Hello, world!", language="en")]"#),
        vec![(
            "analyze_text".into(),
            json!({"content": "Hello, world!", "language": "en"})
        )]
    );
}

#[test]
fn test_function_names_with_underscores_lists_and_dicts() {
    assert_eq!(
        calls(
            r#"[get_boiling_point(liquid={"name":"water", "color":"translucent"}), convert_temperature(value=[100, 101], from_unit="C", to_unit="F")]"#
        ),
        vec![
            (
                "get_boiling_point".into(),
                json!({"liquid": {"name": "water", "color": "translucent"}})
            ),
            (
                "convert_temperature".into(),
                json!({"value": [100, 101], "from_unit": "C", "to_unit": "F"})
            ),
        ]
    );
}

// --- Python literals beyond Meta's tests ---

#[test]
fn python_literals() {
    assert_eq!(
        calls(
            r#"[f(a='it\'s', b="tab\there\n", c=-3, d=1e3, e=None, f=(1, 2), g=[], h={}, i="\u00e9\x41", j="a" 'b', k=r"\d")]"#
        ),
        vec![(
            "f".into(),
            json!({"a": "it's", "b": "tab\there\n", "c": -3, "d": 1000.0, "e": null,
                   "f": [1, 2], "g": [], "h": {}, "i": "éA", "j": "ab", "k": "\\d"})
        )]
    );
    assert!(!is_valid_python_list("[f(a=x)]"), "names are not literals");
    assert!(!is_valid_python_list("[f(a=1, a=2)]"), "repeated keyword");
    assert!(!is_valid_python_list("[f(a=1)] trailing"));
    assert!(!is_valid_python_list("[f(a=\"unterminated)]"));
    let deep = format!("[f(a={}1{})]", "[".repeat(500), "]".repeat(500));
    assert!(
        !is_valid_python_list(&deep),
        "deep nesting is refused, not a stack overflow"
    );
}

// --- the reply parser ---

#[test]
fn reply_builtin_brave_search() {
    let r = parse_assistant_reply(
        r#"<|python_tag|>brave_search.call(query="latest price of 1oz gold")<|eom_id|>"#,
    );
    assert!(r.python_tag);
    assert_eq!(r.eom, Some(true));
    assert_eq!(r.content, "");
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "brave_search");
    assert_eq!(
        r.tool_calls[0].arguments,
        json!({"query": "latest price of 1oz gold"})
    );
    assert!(r.tool_calls[0].id.starts_with("call_"));
}

#[test]
fn reply_builtin_without_tag_and_several() {
    assert_eq!(
        names_args(
            r#"wolfram_alpha.call(query="100th decimal of pi") brave_search.call(query="pi")"#
        ),
        vec![
            (
                "wolfram_alpha".into(),
                json!({"query": "100th decimal of pi"})
            ),
            ("brave_search".into(), json!({"query": "pi"})),
        ]
    );
}

#[test]
fn reply_code_interpreter() {
    let code = "def is_prime(n):\n    return n > 1\n\nprint(is_prime(7))";
    let r = parse_assistant_reply(&format!("<|python_tag|>{code}<|eom_id|>"));
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "code_interpreter");
    assert_eq!(r.tool_calls[0].arguments, json!({"code": code}));
}

#[test]
fn reply_json_forms() {
    let md = "<|python_tag|>{\n    \"type\": \"function\",\n    \"name\": \"trending_songs\",\n    \"parameters\": {\n        \"n\": \"10\",\n        \"genre\": \"all\"\n    }\n}<|eom_id|>";
    assert_eq!(
        names_args(md),
        vec![("trending_songs".into(), json!({"n": "10", "genre": "all"}))]
    );
    assert_eq!(
        names_args(r#"{"name": "f", "arguments": "{\"x\": 1}"}"#),
        vec![("f".into(), json!({"x": 1}))]
    );
    assert_eq!(
        names_args(r#"[{"name": "f", "parameters": {"x": 1}}, {"name": "g", "parameters": {}}]"#),
        vec![("f".into(), json!({"x": 1})), ("g".into(), json!({}))]
    );
    assert_eq!(
        names_args("{\"name\": \"f\", \"parameters\": {\"x\": 1}}; {\"name\": \"g\", \"parameters\": {\"y\": [2]}}\n{\"name\": \"h\"}"),
        vec![("f".into(), json!({"x": 1})), ("g".into(), json!({"y": [2]})), ("h".into(), json!({}))]
    );
    // JSON that is not a call is content.
    let r = parse_assistant_reply(r#"{"answer": 42}"#);
    assert!(r.tool_calls.is_empty());
    assert_eq!(r.content, r#"{"answer": 42}"#);
}

#[test]
fn reply_function_tags() {
    let r = parse_assistant_reply(
        r#"<function=trending_songs>{"n": 10}</function><function=get_weather>{"loc": {"city": "Paris"}}</function><|eot_id|>"#,
    );
    assert_eq!(r.eom, Some(false));
    assert_eq!(r.content, "");
    let got: Vec<_> = r
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), c.arguments.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("trending_songs", json!({"n": 10})),
            ("get_weather", json!({"loc": {"city": "Paris"}}))
        ]
    );
    // Meta's single-quote fallback.
    assert_eq!(
        names_args("<function=f>{'a': 'b'}</function>"),
        vec![("f".into(), json!({"a": "b"}))]
    );
    // Text around the calls is kept as content.
    let r = parse_assistant_reply(r#"Sure. <function=f>{"a": 1}</function> Done."#);
    assert_eq!(r.content, "Sure.  Done.");
    assert_eq!(r.tool_calls.len(), 1);
}

#[test]
fn reply_pythonic_list_all_calls() {
    assert_eq!(
        names_args(r#"[get_weather(city="Paris"), get_time(tz="CET", precise=True)]"#),
        vec![
            ("get_weather".into(), json!({"city": "Paris"})),
            ("get_time".into(), json!({"tz": "CET", "precise": true})),
        ]
    );
}

#[test]
fn reply_builtin_in_custom_format_gets_query() {
    // Meta: a builtin called in the custom format gets {"query": first argument}.
    assert_eq!(
        names_args(r#"<function=brave_search>{"q": "llama"}</function>"#),
        vec![("brave_search".into(), json!({"query": "llama"}))]
    );
}

#[test]
fn reply_plain_text() {
    let r = parse_assistant_reply(" The 100th decimal of pi is 7.<|eot_id|>");
    assert!(r.tool_calls.is_empty());
    assert_eq!(r.content, "The 100th decimal of pi is 7.");
    assert_eq!(r.eom, Some(false));
}

// --- encoder (Meta's ToolUtils.encode_tool_call) ---

#[test]
fn encode_like_meta() {
    let brave = ToolCall::new("brave_search", json!({"query": "a \"b\"", "other": 1}));
    assert_eq!(
        encode_tool_call(&brave, ToolPromptFormat::Json).unwrap(),
        r#"brave_search.call(query="a "b"")"#
    );
    let code = ToolCall::new("code_interpreter", json!({"code": "print(1)"}));
    assert_eq!(
        encode_tool_call(&code, ToolPromptFormat::Json).unwrap(),
        "print(1)"
    );
    let custom = ToolCall::new("get_weather", json!({"city": "Zürich", "n": 1.0}));
    assert_eq!(
        encode_tool_call(&custom, ToolPromptFormat::Json).unwrap(),
        r#"{"type": "function", "name": "get_weather", "parameters": {"city": "Z\u00fcrich", "n": 1.0}}"#
    );
    assert_eq!(
        encode_tool_call(&custom, ToolPromptFormat::FunctionTag).unwrap(),
        r#"<function=get_weather>{"city": "Z\u00fcrich", "n": 1.0}</function>"#
    );
    let py = ToolCall::new(
        "f",
        json!({"a": "x", "b": true, "c": null, "d": [1, 2], "e": {"k": 3}}),
    );
    assert_eq!(
        encode_tool_call(&py, ToolPromptFormat::PythonList).unwrap(),
        r#"[f(a="x", b=True, c=None, d=[1, 2], e={k=3})]"#
    );
    assert!(encode_tool_call(
        &ToolCall::new("wolfram_alpha", json!({})),
        ToolPromptFormat::Json
    )
    .is_err());
}

#[test]
fn encode_then_parse_round_trip() {
    let calls = [
        ToolCall::new("get_weather", json!({"city": "Paris", "days": [1, 2]})),
        ToolCall::new("brave_search", json!({"query": "llama 3.1"})),
    ];
    for fmt in [
        ToolPromptFormat::Json,
        ToolPromptFormat::FunctionTag,
        ToolPromptFormat::PythonList,
    ] {
        let text = encode_tool_call(&calls[0], fmt).unwrap();
        assert_eq!(
            names_args(&text),
            vec![("get_weather".into(), calls[0].arguments.clone())],
            "{fmt:?}"
        );
    }
    let text = encode_tool_call(&calls[1], ToolPromptFormat::Json).unwrap();
    assert_eq!(
        names_args(&text),
        vec![("brave_search".into(), calls[1].arguments.clone())]
    );
}
