//! The Jinja sandbox on an arbitrary template and context: compile, then render with messages
//! and tools from JSON. Fuel, the recursion limit and the output cap must turn every hostile
//! template into a typed error, within libFuzzer's time and memory limits.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use llama31_chat::{ChatTemplate, TemplateLimits};
use serde_json::{Map, Value};

#[derive(Arbitrary, Debug)]
struct Input {
    template: String,
    messages: String,
    tools: Option<String>,
    add_generation_prompt: bool,
}

fuzz_target!(|input: Input| {
    let limits = TemplateLimits {
        fuel: 200_000,
        recursion: 64,
        max_output: 1 << 20,
    };
    let Ok(t) = ChatTemplate::with_limits(&input.template, limits) else {
        return;
    };
    let messages = serde_json::from_str::<Value>(&input.messages)
        .unwrap_or_else(|_| serde_json::json!([{"role": "user", "content": input.messages}]));
    let tools = input
        .tools
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    if let Ok(out) = t.render(
        &messages,
        tools.as_ref(),
        input.add_generation_prompt,
        "<s>",
        "</s>",
        &Map::new(),
    ) {
        assert!(out.len() <= limits.max_output);
    }
});
