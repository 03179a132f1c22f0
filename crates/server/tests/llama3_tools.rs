//! Llama 3.1 tool calling end to end on the tiny random Llama 3.1: OpenAI `tools` reach the prompt
//! as the Llama 3.1 system prompt describes them, and a forced `tool_choice` yields a call of that
//! function with arguments valid for its schema even from random weights.

mod common;

use common::{post, stream_text};
use llama31_chat::{ChatFormatter, Message, PromptOptions, ToolDefinition};
use llama31_engine::EngineConfig;
use llama31_tokenizer::Tokenizer;
use serde_json::{json, Value};

fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 16},
                "days": {"type": "integer"},
                "unit": {"enum": ["c", "f"]}
            }, "required": ["city", "days", "unit"]}
        }},
        {"type": "function", "function": {"name": "brave_search"}}
    ])
}

#[test]
fn tools_reach_the_prompt_and_forced_calls_parse() {
    let addr = common::start_tiny_llama(EngineConfig {
        slots: 2,
        ctx: 1024,
        max_queue: 8,
        step_tokens: 128,
    });
    let messages = json!([{"role": "user", "content": "Weather in Paris for 3 days?"}]);

    // The prompt the server builds equals the Llama 3.1 preparation of the same dialog: custom
    // tools as JSON in the first user message, brave_search on the system prompt's Tools line.
    let t = post(
        addr,
        "/tokenize",
        &json!({"messages": messages, "tools": tools()}),
    )
    .json();
    let ids: Vec<u32> = t["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let dir = common::cache_dir().join("tiny/hf-untied");
    let tok = Tokenizer::from_hf_json_file(&dir.join("tokenizer.json")).unwrap();
    let defs = vec![ToolDefinition::from_json(0, &tools()[0]).unwrap()];
    let opts = PromptOptions {
        tools: Some(defs),
        builtin_tools: Some(vec![llama31_chat::BuiltinTool::BraveSearch]),
        ..PromptOptions::default()
    };
    let want = ChatFormatter::Llama3
        .render(
            &tok,
            &[Message::user("Weather in Paris for 3 days?")],
            Some(&opts),
            true,
        )
        .unwrap();
    assert_eq!(ids, want.ids);
    assert!(
        want.text
            .contains("Environment: ipython\nTools: brave_search\n"),
        "{}",
        want.text
    );
    assert!(
        want.text.contains("\"name\": \"get_weather\""),
        "{}",
        want.text
    );

    // A forced call from random weights: valid arguments, finish_reason tool_calls.
    for stream in [false, true] {
        let body = json!({
            "messages": messages,
            "tools": tools(),
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_tokens": 200,
            "temperature": 1.0,
            "seed": 3,
            "stream": stream,
        });
        let r = post(addr, "/v1/chat/completions", &body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let call = if stream {
            let (_, chunks) = stream_text(&r);
            assert!(chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
            chunks
                .iter()
                .find_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
                .expect("a tool_calls delta")[0]
                .clone()
        } else {
            let v = r.json();
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
            v["choices"][0]["message"]["tool_calls"][0].clone()
        };
        assert_eq!(call["function"]["name"], "get_weather");
        let raw = call["function"]["arguments"].as_str().unwrap();
        let args: Value = serde_json::from_str(raw).unwrap();
        assert!(
            args["city"].as_str().unwrap().chars().count() <= 16,
            "{args}"
        );
        // An integer (random weights may write one too long for i64: check the text).
        let days = raw
            .split("\"days\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        assert!(
            !days.is_empty()
                && days
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit()),
            "{raw}"
        );
        assert!(
            ["c", "f"].contains(&args["unit"].as_str().unwrap()),
            "{args}"
        );
    }
}
