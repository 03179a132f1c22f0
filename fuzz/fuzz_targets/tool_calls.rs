//! The tool-call parsers on arbitrary model output: Llama 3.1's JSON, `<function=…>` and
//! built-in (`<|python_tag|>`) forms, the pythonic list form, and the server's reading of a
//! reply for a request with tools.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_chat::parse_assistant_reply;
use llama31_chat::pythonic::{parse_call_args, parse_python_list};
use llama31_server::params::parse_object;
use llama31_server::tools;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_assistant_reply(&text);
    let _ = parse_python_list(&text);
    let _ = parse_call_args(&text);
    let _ = tools::may_be_call(&text);
    let body = br#"{"tools": [{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}"#;
    if let Ok(o) = parse_object(body) {
        if let Ok(t) = tools::parse(&o) {
            let _ = tools::parse_reply(&t, &text);
        }
    }
});
