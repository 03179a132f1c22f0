//! Golden files made by `scripts/goldens/chat_goldens.py` with Meta's `llama_models` and jinja2.

use llama31_chat::messages::{parse_messages_value, parse_tools_value};
use llama31_chat::system_prompt::{render_prompt_text, PromptOptions};
use llama31_chat::{encode_dialog, render_text, BuiltinTool, ChatTemplate};
use llama31_tokenizer::Tokenizer;
use serde_json::{Map, Value};
use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/llama31")
        })
}

fn lines(name: &str) -> Vec<Value> {
    let path = repo_root().join("goldens/chat").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect();
    assert!(!v.is_empty(), "{name} is empty");
    v
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing {key}"))
}

#[test]
fn dialogs_text_equals_meta() {
    for case in lines("dialogs.jsonl") {
        let name = s(&case, "name");
        let messages =
            parse_messages_value(&case["messages"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = render_text(&messages).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text, s(&case, "text"), "dialog {name}");
    }
}

#[test]
fn dialogs_ids_equal_meta() {
    let tok = Tokenizer::from_tiktoken_file(&cache_dir().join("tokenizer.model"))
        .expect("tokenizer.model in the fixture cache");
    let cases = lines("dialogs.jsonl");
    for case in &cases {
        let name = s(case, "name");
        let messages =
            parse_messages_value(&case["messages"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids = encode_dialog(&tok, &messages).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        assert_eq!(ids, expected, "dialog {name}");
    }
}

fn hf_options(case: &Value) -> PromptOptions {
    let kwargs = case["kwargs"].as_object().expect("kwargs");
    let tools = match case.get("tools") {
        None | Some(Value::Null) => None,
        Some(t) => Some(parse_tools_value(t).expect("tools")),
    };
    let builtin_tools = kwargs.get("builtin_tools").map(|b| {
        b.as_array()
            .expect("builtin_tools list")
            .iter()
            .map(|n| BuiltinTool::from_name(n.as_str().unwrap_or("")).expect("known builtin"))
            .collect()
    });
    PromptOptions {
        tools,
        builtin_tools,
        tools_in_user_message: kwargs
            .get("tools_in_user_message")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        // The template's own default when `date_string` is not given.
        date: Some(
            kwargs
                .get("date_string")
                .and_then(Value::as_str)
                .unwrap_or("26 Jul 2024")
                .to_string(),
        ),
        add_generation_prompt: kwargs["add_generation_prompt"].as_bool().expect("bool"),
        ..PromptOptions::default()
    }
}

#[test]
fn hf_llama31_template_native_preparation() {
    for case in lines("hf_llama31_template.jsonl") {
        let name = s(&case, "name");
        let messages =
            parse_messages_value(&case["messages"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = render_prompt_text(&messages, &hf_options(&case))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text, s(&case, "rendered"), "HF template case {name}");
    }
}

/// Renders a golden line with a Jinja template, passing its kwargs like transformers does.
fn render_with_template(tmpl: &ChatTemplate, case: &Value) -> String {
    let name = s(case, "name");
    let kwargs = case["kwargs"].as_object().expect("kwargs");
    let mut extra = Map::new();
    for (k, v) in kwargs {
        if !matches!(
            k.as_str(),
            "add_generation_prompt" | "bos_token" | "eos_token"
        ) {
            extra.insert(k.clone(), v.clone());
        }
    }
    let tools = case.get("tools").filter(|t| !t.is_null());
    tmpl.render(
        &case["messages"],
        tools,
        kwargs["add_generation_prompt"].as_bool().expect("bool"),
        kwargs["bos_token"].as_str().expect("bos"),
        kwargs["eos_token"].as_str().expect("eos"),
        &extra,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn hf_llama31_template_through_jinja() {
    let path = cache_dir().join("llama3.1_chat_template_hf.jinja");
    let source = std::fs::read_to_string(&path).expect("HF template in the fixture cache");
    let tmpl = ChatTemplate::new(&source).expect("template compiles");
    for case in lines("hf_llama31_template.jsonl") {
        assert_eq!(
            render_with_template(&tmpl, &case),
            s(&case, "rendered"),
            "case {}",
            s(&case, "name")
        );
    }
}

fn smollm2_template_source(first: &Value) -> Option<String> {
    if let Some(t) = first.get("template").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    let meta = repo_root().join("goldens/tokenizer/smollm2_meta.json");
    if let Ok(text) = std::fs::read_to_string(meta) {
        let v: Value = serde_json::from_str(&text).ok()?;
        if let Some(t) = v.get("chat_template").and_then(Value::as_str) {
            return Some(t.to_string());
        }
    }
    // The template stored in the GGUF file itself.
    let gguf = llama31_formats::GgufFile::open(cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf"))
        .ok()?;
    gguf.opt_str("tokenizer.chat_template")
        .ok()?
        .map(str::to_owned)
}

#[test]
fn smollm2_template_goldens() {
    let cases = lines("smollm2_template.jsonl");
    let Some(source) = smollm2_template_source(&cases[0]) else {
        panic!("SmolLM2 chat template not found (goldens/tokenizer/smollm2_meta.json)");
    };
    let tmpl = ChatTemplate::new(&source).expect("template compiles");
    for case in &cases {
        assert_eq!(
            render_with_template(&tmpl, case),
            s(case, "rendered"),
            "case {}",
            s(case, "name")
        );
    }
}
