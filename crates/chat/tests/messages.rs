//! OpenAI-style messages JSON parsing and its typed errors.

use llama31_chat::messages::{parse_messages, parse_tools, Content};
use llama31_chat::{ChatError, Role};
use serde_json::json;

#[test]
fn parses_openai_messages() {
    let msgs = parse_messages(
        r#"[
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "ipython", "content": {"temp": 18}},
        {"role": "assistant", "content": "It is 18C.", "name": "bot"}
    ]"#,
    )
    .unwrap();
    assert_eq!(msgs.len(), 6);
    assert_eq!(msgs[0].role, Role::System);
    assert_eq!(
        msgs[1].content,
        Content::Parts(vec!["a".into(), "b".into()])
    );
    assert_eq!(msgs[2].tool_calls[0].name, "get_weather");
    assert_eq!(msgs[2].tool_calls[0].id, "call_1");
    assert_eq!(msgs[2].tool_calls[0].arguments, json!({"city": "Paris"}));
    assert!(msgs[2].ends_with_eom());
    assert_eq!(msgs[3].role, Role::Tool);
    assert_eq!(msgs[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(msgs[4].content, Content::Json(json!({"temp": 18})));
    assert_eq!(msgs[5].name.as_deref(), Some("bot"));
    assert!(!msgs[5].ends_with_eom());
}

#[test]
fn typed_errors() {
    assert!(matches!(
        parse_messages("[{"),
        Err(ChatError::MalformedJson(_))
    ));
    assert_eq!(
        parse_messages(r#"[{"role": "wizard", "content": "x"}]"#).unwrap_err(),
        ChatError::UnknownRole("wizard".into())
    );
    assert_eq!(
        parse_messages(r#"[{"role": "user"}]"#).unwrap_err(),
        ChatError::MissingContent {
            index: 0,
            role: "user".into()
        }
    );
    assert_eq!(
        parse_messages(r#"[{"content": "x"}]"#).unwrap_err(),
        ChatError::MissingField {
            index: 0,
            field: "role"
        }
    );
    assert!(matches!(
        parse_messages(r#"[{"role": "user", "content": 5}]"#),
        Err(ChatError::WrongType {
            field: "content",
            ..
        })
    ));
    assert!(matches!(
        parse_messages(r#"[{"role": 1, "content": "x"}]"#),
        Err(ChatError::WrongType { field: "role", .. })
    ));
    assert!(matches!(
        parse_messages(r#"{"role": "user", "content": "x"}"#),
        Err(ChatError::WrongType {
            field: "messages",
            ..
        })
    ));
    assert!(matches!(
        parse_messages(
            r#"[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]"#
        ),
        Err(ChatError::UnsupportedContent { .. })
    ));
    assert!(matches!(
        parse_messages(
            r#"[{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}]"#
        ),
        Err(ChatError::InvalidToolCall(_))
    ));
    assert!(matches!(
        parse_messages(
            r#"[{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]"#
        ),
        Err(ChatError::MissingField { .. })
    ));
    assert!(matches!(
        parse_messages(r#"[{"role": "user", "content": "x", "tool_call_id": 3}]"#),
        Err(ChatError::WrongType {
            field: "tool_call_id",
            ..
        })
    ));
}

#[test]
fn tools_openai_and_bare() {
    let tools = parse_tools(
        r#"[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
            {"name": "g"}]"#,
    )
    .unwrap();
    assert_eq!(tools[0].name, "f");
    assert_eq!(tools[0].description.as_deref(), Some("d"));
    assert_eq!(tools[0].parameters, json!({"type": "object"}));
    assert_eq!(tools[1].name, "g");
    assert_eq!(tools[1].parameters, json!({}));
    assert!(matches!(
        parse_tools(r#"[{"type": "function"}]"#),
        Err(ChatError::InvalidTool(_))
    ));
    assert!(matches!(
        parse_tools("nope"),
        Err(ChatError::MalformedJson(_))
    ));
}
