//! `llama31 prompt` against Meta's `ChatFormat`, the official HF Llama 3.1 template and SmolLM2's template,
//! all rendered by the reference implementations (see scripts/goldens/chat_goldens.py).

mod common;

use common::*;
use serde_json::Value;

fn write_json(name: &str, value: &Value) -> tempfile::TempPath {
    temp_file(name, &serde_json::to_vec(value).unwrap())
}

#[test]
fn raw_dialogs_equal_meta_encode_dialog_prompt() {
    let model = fixture("tokenizer.model");
    let cases = read_jsonl(&golden("chat/dialogs.jsonl"));
    assert!(cases.len() >= 30);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let msgs = write_json(&format!("{name}.json"), &case["messages"]);
        let args = [
            "prompt",
            "--model",
            model.to_str().unwrap(),
            "--messages",
            msgs.to_str().unwrap(),
            "--raw",
        ];
        let text = llama31_ok(&args, b"");
        assert_eq!(
            text,
            case["text"].as_str().unwrap(),
            "text of dialog {name}"
        );
        let mut with_ids = args.to_vec();
        with_ids.push("--ids");
        let ids: Value = serde_json::from_str(llama31_ok(&with_ids, b"").trim()).unwrap();
        assert_eq!(ids, case["ids"], "ids of dialog {name}");
    }
}

#[test]
fn prepared_prompts_equal_the_official_hf_template() {
    for model in [fixture("tokenizer.model"), fixture("tokenizer.json")] {
        let cases = read_jsonl(&golden("chat/hf_llama31_template.jsonl"));
        let mut checked = 0;
        for case in &cases {
            let kwargs = &case["kwargs"];
            if kwargs["add_generation_prompt"] != Value::Bool(true) {
                continue; // the CLI always ends with the assistant header
            }
            let name = case["name"].as_str().unwrap();
            let msgs = write_json(&format!("hf-{name}.json"), &case["messages"]);
            let date = kwargs["date_string"].as_str().unwrap_or("26 Jul 2024");
            let mut args: Vec<String> = vec![
                "prompt".into(),
                "--model".into(),
                model.to_str().unwrap().into(),
                "--messages".into(),
                msgs.to_str().unwrap().into(),
                "--date".into(),
                date.into(),
            ];
            let tools; // kept until the command has run
            if !case["tools"].is_null() {
                tools = write_json(&format!("hf-{name}-tools.json"), &case["tools"]);
                args.push("--tools".into());
                args.push(tools.to_str().unwrap().into());
            }
            if kwargs["tools_in_user_message"] == Value::Bool(false) {
                args.push("--tools-in-system".into());
            }
            if let Some(list) = kwargs["builtin_tools"].as_array() {
                let names: Vec<&str> = list.iter().map(|v| v.as_str().unwrap()).collect();
                args.push("--builtin-tools".into());
                args.push(names.join(","));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let text = llama31_ok(&args, b"");
            assert_eq!(
                text,
                case["rendered"].as_str().unwrap(),
                "HF template case {name}"
            );
            checked += 1;
        }
        assert!(checked >= 10, "checked {checked} cases");
    }
}

#[test]
fn smollm2_chatml_template_renders_as_python_jinja2() {
    let model = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    let cases = read_jsonl(&golden("chat/smollm2_template.jsonl"));
    let mut checked = 0;
    for case in &cases {
        if case["kwargs"]["add_generation_prompt"] != Value::Bool(true) {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let msgs = write_json(&format!("smol-{name}.json"), &case["messages"]);
        let text = llama31_ok(
            &[
                "prompt",
                "--model",
                model.to_str().unwrap(),
                "--messages",
                msgs.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(
            text,
            case["rendered"].as_str().unwrap(),
            "SmolLM2 case {name}"
        );
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn bad_messages_are_clear_errors() {
    let model = fixture("tokenizer.model");
    let m = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases: [(&str, &str, &str); 5] = [
        ("malformed.json", "[{\"role\": \"user\", ", "messages"),
        ("not-array.json", "{\"role\": \"user\"}", "array"),
        ("unknown-role.json", "[{\"role\": \"wizard\", \"content\": \"hi\"}]", "wizard"),
        ("bad-content.json", "[{\"role\": \"user\", \"content\": 42}]", "content"),
        ("bad-tool-args.json", "[{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"1\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{not json\"}}]}]", "arguments"),
    ];
    for (name, body, needle) in cases {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let err = llama31_err(
            &["prompt", "--model", m, "--messages", p.to_str().unwrap()],
            b"",
        );
        assert!(
            err.contains(needle),
            "{name}: error should mention {needle:?}: {err}"
        );
    }
    let err = llama31_err(
        &[
            "prompt",
            "--model",
            m,
            "--messages",
            "/nonexistent/messages.json",
        ],
        b"",
    );
    assert!(err.contains("/nonexistent/messages.json"), "{err}");
}

fn gguf_with_template(name: &str, template: &str) -> tempfile::TempPath {
    smollm2_vocab_gguf(
        name,
        &[("tokenizer.chat_template", template.to_string().into())],
    )
}

#[test]
fn template_errors_are_clear_errors_not_hangs() {
    let msgs = write_json(
        "tmpl-msgs.json",
        &serde_json::json!([{"role": "user", "content": "hi"}]),
    );
    let cases = [
        (
            "syntax.gguf",
            "{% for m in messages %}{{ m.content }",
            "template",
        ),
        (
            "raise.gguf",
            "{{ raise_exception('Only user and assistant roles are supported') }}",
            "Only user and assistant roles are supported",
        ),
        (
            "loop.gguf",
            "{% for i in range(1000000000) %}{{ i }}{% endfor %}",
            "template",
        ),
        (
            "recursion.gguf",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "template",
        ),
        (
            "blowup.gguf",
            "{% set s = 'x' * 1000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
            "template",
        ),
    ];
    for (name, template, needle) in cases {
        let p = gguf_with_template(name, template);
        let start = std::time::Instant::now();
        let err = llama31_err(
            &[
                "prompt",
                "--model",
                p.to_str().unwrap(),
                "--messages",
                msgs.to_str().unwrap(),
            ],
            b"",
        );
        assert!(
            err.contains(needle),
            "{name}: error should mention {needle:?}: {err}"
        );
        assert!(
            start.elapsed().as_secs() < 30,
            "{name} took {:?}",
            start.elapsed()
        );
    }
}
