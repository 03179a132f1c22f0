//! Tools given to a model whose chat template does not render them (SmolLM2's ChatML) reach it
//! through the system message; a template that renders tools is left alone.

use std::path::PathBuf;

use llama31_chat::formatter::{tools_system_text, TOOLS_PREAMBLE};
use llama31_chat::{parse_tools, ChatFormatter, ChatTemplate, Message, PromptOptions};
use llama31_tokenizer::Tokenizer;

fn smollm2() -> PathBuf {
    let dir = std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/llama31")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} missing: run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
}

fn weather() -> PromptOptions {
    let tools = parse_tools(
        r#"[{"type": "function", "function": {"name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}}]"#,
    )
    .unwrap();
    PromptOptions {
        tools: Some(tools),
        ..Default::default()
    }
}

fn formatter(template: &str) -> (Tokenizer, ChatFormatter) {
    let tok = Tokenizer::from_gguf_file(&smollm2()).unwrap();
    let f = ChatFormatter::Template(Box::new(ChatTemplate::new(template).unwrap()));
    (tok, f)
}

fn smollm2_template() -> String {
    let g = llama31_formats::GgufFile::open(smollm2()).unwrap();
    g.opt_str("tokenizer.chat_template")
        .unwrap()
        .unwrap()
        .to_string()
}

#[test]
fn tools_go_into_the_system_message_when_the_template_ignores_them() {
    let (tok, f) = formatter(&smollm2_template());
    let user = [Message::user("What is the weather in Paris?".to_string())];
    let opts = weather();
    let with = f.render(&tok, &user, Some(&opts), true).unwrap();
    let tools_text = tools_system_text(opts.tools.as_deref().unwrap());
    assert!(tools_text.starts_with(TOOLS_PREAMBLE));
    assert!(
        tools_text.ends_with(
            "\n{\"name\":\"get_weather\",\"description\":\"Current weather of a city\",\
             \"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\
             \"required\":[\"city\"]}}"
        ),
        "{tools_text}"
    );
    assert_eq!(
        with.text,
        format!(
            "<|im_start|>system\n{tools_text}<|im_end|>\n<|im_start|>user\nWhat is the weather in \
             Paris?<|im_end|>\n<|im_start|>assistant\n"
        )
    );
    // Without tools, the template's own rendering (its default system prompt).
    let without = f.render(&tok, &user, None, false).unwrap();
    assert!(without
        .text
        .contains("You are a helpful AI assistant named SmolLM"));
    assert!(!without.text.contains(TOOLS_PREAMBLE));

    // A system message of the caller's keeps its text after the tools.
    let dialog = [
        Message::system("Answer like a pirate.".to_string()),
        Message::user("Weather in Oslo?".to_string()),
    ];
    let with = f.render(&tok, &dialog, Some(&opts), false).unwrap();
    assert!(
        with.text.starts_with(&format!(
            "<|im_start|>system\n{tools_text}\n\nAnswer like a pirate.<|im_end|>\n"
        )),
        "{}",
        with.text
    );
}

#[test]
fn a_template_that_renders_tools_is_left_alone() {
    let template = "{% if tools %}TOOLS:{{ tools | tojson }}\n{% endif %}\
                    {% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
    let (tok, f) = formatter(template);
    let user = [Message::user("Hi".to_string())];
    let with = f.render(&tok, &user, Some(&weather()), false).unwrap();
    assert!(with.text.starts_with("TOOLS:[{"), "{}", with.text);
    assert!(!with.text.contains(TOOLS_PREAMBLE), "{}", with.text);
}
