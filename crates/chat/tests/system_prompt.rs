//! System-prompt options that the golden files do not cover.

use llama31_chat::system_prompt::{
    prepare_dialog, render_prompt_text, PromptOptions, PromptStyle, ToolFormat,
};
use llama31_chat::{BuiltinTool, ChatError, Message, Role, ToolCall, ToolDefinition};
use serde_json::json;

fn weather() -> ToolDefinition {
    ToolDefinition::new(
        "get_weather",
        "Get the weather",
        json!({"type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}),
    )
}

#[test]
fn default_date_is_today_in_hf_format() {
    let text = render_prompt_text(&[Message::user("hi")], &PromptOptions::default()).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Today Date: "))
        .expect("Today Date line");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert!(
        parts[0].len() == 2 && parts[0].chars().all(|c| c.is_ascii_digit()),
        "{line}"
    );
    assert!(
        parts[1].len() == 3 && parts[1].chars().next().unwrap().is_ascii_uppercase(),
        "{line}"
    );
    assert!(
        parts[2].len() == 4 && parts[2].chars().all(|c| c.is_ascii_digit()),
        "{line}"
    );
}

#[test]
fn hf_function_tag_format_in_user_message() {
    let opts = PromptOptions {
        tools: Some(vec![weather()]),
        tool_format: ToolFormat::FunctionTag,
        date: Some("26 Jul 2024".into()),
        ..PromptOptions::default()
    };
    let msgs = prepare_dialog(&[Message::user("  Weather in Paris?  ")], &opts).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].role, Role::System);
    assert_eq!(
        msgs[0].content.to_text(),
        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    );
    let user = msgs[1].content.to_text();
    assert!(user.starts_with("You have access to the following functions:\n\nUse the function 'get_weather' to 'Get the weather':\n{\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"properties\": {\"city\": {\"description\": \"City\", \"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}\n\n"), "{user}");
    assert!(
        user.ends_with("- Put the entire function call reply on one line\n\nWeather in Paris?"),
        "{user}"
    );
}

#[test]
fn hf_errors() {
    let opts = PromptOptions {
        tools: Some(vec![weather()]),
        ..PromptOptions::default()
    };
    assert_eq!(
        prepare_dialog(&[Message::system("s")], &opts).unwrap_err(),
        ChatError::NoUserMessage
    );
    let two = Message::assistant_calls(vec![
        ToolCall::new("a", json!({})),
        ToolCall::new("b", json!({})),
    ]);
    assert!(matches!(
        prepare_dialog(&[Message::user("u"), two], &PromptOptions::default()),
        Err(ChatError::InvalidDialog(_))
    ));
}

#[test]
fn meta_style_tools_in_system_and_python_tag() {
    let opts = PromptOptions {
        style: PromptStyle::Meta,
        tools: Some(vec![weather()]),
        builtin_tools: Some(vec![BuiltinTool::CodeInterpreter]),
        tools_in_user_message: false,
        tool_format: ToolFormat::FunctionTag,
        date: Some("21 September 2024".into()),
        ..PromptOptions::default()
    };
    let dialog = [
        Message::user("u"),
        Message::assistant_calls(vec![ToolCall::new("get_weather", json!({"city": "Paris"}))]),
    ];
    let text = render_prompt_text(&dialog, &opts).unwrap();
    let expected_head = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n\nCutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n\nYou have access to the following functions:";
    assert!(text.starts_with(expected_head), "{text}");
    assert!(text.contains("- Put the entire function call reply on one line\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nu<|eot_id|>"), "{text}");
    assert!(text.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n<function=get_weather>{\"city\": \"Paris\"}</function><|eom_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), "{text}");
}
