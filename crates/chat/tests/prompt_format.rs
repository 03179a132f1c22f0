//! Every "Input Prompt Format" example of Meta's `llama3_1/prompt_format.md`, rebuilt from
//! messages and tools and compared byte for byte with the file in the fixture cache.

use llama31_chat::dialog::{pieces_to_text, render_text, Piece, BEGIN_OF_TEXT};
use llama31_chat::system_prompt::{render_prompt_text, PromptOptions, PromptStyle, ToolFormat};
use llama31_chat::{BuiltinTool, Message, ToolCall, ToolDefinition};
use serde_json::json;
use std::path::PathBuf;

fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/llama31")
        })
}

/// The text of each "##### Input Prompt Format" code block, in order.
fn examples() -> Vec<String> {
    let path = cache_dir().join("llama-models/llama_models/llama3_1/prompt_format.md");
    let md = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut rest = md.as_str();
    while let Some(i) = rest.find("##### Input Prompt Format\n```\n") {
        let body = &rest[i + "##### Input Prompt Format\n```\n".len()..];
        let end = body.find("\n```").expect("unterminated code block");
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

fn meta_opts() -> PromptOptions {
    PromptOptions {
        style: PromptStyle::Meta,
        date: Some("21 September 2024".into()),
        ..PromptOptions::default()
    }
}

fn trending_songs_schema() -> ToolDefinition {
    ToolDefinition::new(
        "trending_songs",
        "Returns the trending songs on a Music site",
        json!({
            "type": "object",
            "properties": {
                "n": {"type": "int", "description": "The number of songs to return"},
                "genre": {"type": "str", "description": "The genre of the songs to return"}
            },
            "required": ["n"]
        }),
    )
}

fn trending_songs_meta_params() -> ToolDefinition {
    ToolDefinition::new(
        "trending_songs",
        "Returns the trending songs on a Music site",
        json!({
            "n": {"param_type": "int", "description": "The number of songs to return", "required": true},
            "genre": {"param_type": "str", "description": "The genre of the songs to return", "required": false}
        }),
    )
}

fn built() -> Vec<String> {
    let mut out = Vec::new();
    // 1. Base model: plain completion after BOS.
    out.push(pieces_to_text(&[
        Piece::Special(BEGIN_OF_TEXT),
        Piece::Text("Color of sky is blue but sometimes can also be".into()),
    ]));
    // 2. User and assistant conversation (no preparation).
    out.push(
        render_text(&[
            Message::system("You are a helpful assistant"),
            Message::user("Answer who are you in the form of jeopardy?"),
        ])
        .unwrap(),
    );
    // 3. Builtin tool calling.
    let opts = PromptOptions {
        builtin_tools: Some(vec![BuiltinTool::BraveSearch, BuiltinTool::WolframAlpha]),
        ..meta_opts()
    };
    out.push(
        render_prompt_text(
            &[
                Message::system("You are a helpful assistant.\n"),
                Message::user("Search the web for the latest price of 1oz gold?"),
            ],
            &opts,
        )
        .unwrap(),
    );
    // 4. Builtin code interpreter: the system prompt is written by hand in Meta's example.
    out.push(
        render_text(&[
            Message::system("Environment: ipython"),
            Message::user(
                "Write code to check if number is prime, use that to see if the number 7 is prime",
            ),
        ])
        .unwrap(),
    );
    // 5. Built-in tools full interaction (no date lines in Meta's example).
    let opts = PromptOptions {
        builtin_tools: Some(vec![BuiltinTool::BraveSearch, BuiltinTool::WolframAlpha]),
        knowledge_date: false,
        ..meta_opts()
    };
    let wolfram_result = "\n{\n    \"queryresult\": {\n        \"success\": true,\n        \"inputstring\": \"100th decimal of pi\",\n        \"pods\": [\n            {\n                \"title\": \"Input interpretation\",\n                \"subpods\": [\n                    {\n                        \"title\": \"\",\n                        \"plaintext\": \"100th digit | π\"\n                    }\n                ]\n            },\n            {\n                \"title\": \"Nearby digits\",\n                \"subpods\": [\n                    {\n                        \"title\": \"\",\n                        \"plaintext\": \"...86208998628034825342117067982148086513282306647093...\"\n                    }\n                ]\n            },\n            {\n                \"title\": \"Result\",\n                \"primary\": true,\n                \"subpods\": [\n                    {\n                        \"title\": \"\",\n                        \"plaintext\": \"7\"\n                    }\n                ]\n            }\n        ]\n    }\n}\n";
    out.push(
        render_prompt_text(
            &[
                Message::user("What is the 100th decimal of pi?"),
                Message::assistant_calls(vec![ToolCall::new(
                    "wolfram_alpha",
                    json!({"query": "100th decimal of pi"}),
                )]),
                Message::tool(wolfram_result),
            ],
            &opts,
        )
        .unwrap(),
    );
    // 6. JSON based tool calling (tools in their own user message).
    let opts = PromptOptions {
        tools: Some(vec![trending_songs_schema()]),
        tool_format: ToolFormat::Json,
        ..meta_opts()
    };
    let dialog = [
        Message::system("You are a helpful assistant.\n"),
        Message::user("Use tools to get latest trending songs"),
    ];
    out.push(render_prompt_text(&dialog, &opts).unwrap());
    // 7. `<function>` based tool calling.
    let opts = PromptOptions {
        tools: Some(vec![trending_songs_meta_params()]),
        tool_format: ToolFormat::FunctionTag,
        ..meta_opts()
    };
    out.push(render_prompt_text(&dialog, &opts).unwrap());
    out
}

#[test]
fn prompt_format_md_examples_byte_for_byte() {
    let expected = examples();
    let ours = built();
    assert_eq!(
        expected.len(),
        ours.len(),
        "number of examples in prompt_format.md"
    );
    for (i, (e, o)) in expected.iter().zip(&ours).enumerate() {
        assert_eq!(o, e, "example {} of prompt_format.md differs", i + 1);
    }
}
