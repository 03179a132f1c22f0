//! An OpenAI chat-completions body on arbitrary bytes, through what the server does before the
//! engine: JSON object, messages, tools and tool_choice, sampling parameters and limits,
//! response_format and forced-call grammars, then the prompt rendered for Llama 3 (Meta's
//! format) and for SmolLM2 (its Jinja template).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llama31_chat::{ChatFormatter, ChatTemplate, Message};
use llama31_server::json::response_format;
use llama31_server::params::{common, get, parse_object, Limits};
use llama31_server::tools;
use serde_json::Value;

fn smollm2_formatter() -> &'static ChatFormatter {
    static F: OnceLock<ChatFormatter> = OnceLock::new();
    F.get_or_init(|| {
        let src = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        ChatFormatter::Template(Box::new(ChatTemplate::new(src).expect("template compiles")))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(o) = parse_object(data) else { return };
    let Some(Value::Array(list)) = get(&o, "messages") else {
        return;
    };
    let Ok(messages) = list
        .iter()
        .enumerate()
        .map(|(i, m)| Message::from_json(i, m))
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let Ok(tools) = tools::parse(&o) else { return };
    let limits = Limits {
        max_n: 8,
        max_stop: 4,
        max_stop_len: 64,
        ctx: 4096,
        vocab: 128_256,
    };
    let _ = common(&o, &limits, &["max_tokens", "max_completion_tokens"]);
    match tools::forced_grammar(&tools) {
        Ok(Some(_)) => {}
        _ => {
            let _ = response_format(&o);
        }
    }
    let opts = tools.prompt_options();
    let _ = ChatFormatter::Llama3.render(llama31_fuzz::llama3(), &messages, Some(&opts), true);
    if let Ok(r) = smollm2_formatter().render(llama31_fuzz::smollm2(), &messages, Some(&opts), true)
    {
        assert_eq!(llama31_fuzz::smollm2().decode(&r.ids), r.text.as_bytes());
    }
});
