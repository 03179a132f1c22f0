//! The tool-call codec: writing a [`ToolCall`] as Llama 3.1 expects it in a dialog, and reading
//! the calls out of a model's reply.
//!
//! Reading follows Meta's `ChatFormat.decode_assistant_message_from_content` and
//! `ToolUtils.maybe_extract_*`, except that every call in a reply is returned (Meta keeps the
//! first) and more shapes are accepted: JSON (`{"name"|"type":"function", "parameters"|
//! "arguments"}`, a JSON list of them, or several objects separated by `;`/newlines),
//! `<function=NAME>{...}</function>` (several), built-ins `brave_search.call(query="...")`,
//! the code interpreter (`<|python_tag|>` + code) and the pythonic list `[f(a=1), g(b="x")]`.

use crate::error::{ChatError, Result};
use crate::messages::{BuiltinTool, ToolCall};
use crate::pyjson::{dumps, DumpOptions};
use crate::pythonic::{format_python_value, parse_call_args, parse_python_list};
use serde_json::{Map, Value};

/// How custom tool calls are written into the dialog (Meta's `ToolPromptFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolPromptFormat {
    /// `{"type": "function", "name": ..., "parameters": ...}` (Meta's default).
    #[default]
    Json,
    /// `<function=NAME>{...}</function>`.
    FunctionTag,
    /// `[NAME(a=1, b="x")]`.
    PythonList,
}

/// Meta's `ToolUtils.encode_tool_call`: the text of one call inside an assistant message.
pub fn encode_tool_call(call: &ToolCall, format: ToolPromptFormat) -> Result<String> {
    if let Some(builtin) = call.builtin() {
        return match builtin {
            BuiltinTool::CodeInterpreter => match call.arguments.get("code") {
                Some(Value::String(code)) => Ok(code.clone()),
                Some(_) => Err(ChatError::InvalidToolCall(
                    "code_interpreter: `code` must be a string".into(),
                )),
                None => Err(ChatError::InvalidToolCall(
                    "code_interpreter call without `code`".into(),
                )),
            },
            other => {
                let q = match call.arguments.get("query") {
                    Some(Value::String(q)) => q.clone(),
                    Some(v) => format_python_value(v),
                    None => {
                        return Err(ChatError::InvalidToolCall(format!(
                            "{} call without `query`",
                            other.as_str()
                        )))
                    }
                };
                Ok(format!("{}.call(query=\"{q}\")", other.as_str()))
            }
        };
    }
    match format {
        ToolPromptFormat::Json => {
            let mut obj = Map::new();
            obj.insert("type".into(), Value::String("function".into()));
            obj.insert("name".into(), Value::String(call.name.clone()));
            obj.insert("parameters".into(), call.arguments.clone());
            Ok(dumps(&Value::Object(obj), DumpOptions::PYTHON_DEFAULT))
        }
        ToolPromptFormat::FunctionTag => Ok(format!(
            "<function={}>{}</function>",
            call.name,
            dumps(&call.arguments, DumpOptions::PYTHON_DEFAULT)
        )),
        ToolPromptFormat::PythonList => {
            let args = match &call.arguments {
                Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| format!("{k}={}", format_python_value(v)))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => {
                    return Err(ChatError::InvalidToolCall(format!(
                        "{}: python_list format needs object arguments",
                        call.name
                    )))
                }
            };
            Ok(format!("[{}({args})]", call.name))
        }
    }
}

/// A model reply split into text and tool calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedReply {
    /// The text outside the calls (empty when the reply is only calls).
    pub content: String,
    /// Every call found, in order.
    pub tool_calls: Vec<ToolCall>,
    /// The reply started with `<|python_tag|>`.
    pub python_tag: bool,
    /// The reply ended with `<|eom_id|>` (Some(true)) or `<|eot_id|>` (Some(false)).
    pub eom: Option<bool>,
}

const PYTHON_TAG: &str = "<|python_tag|>";
const ASSISTANT_HEADER: &str = "<|start_header_id|>assistant<|end_header_id|>\n\n";

/// Reads the tool calls out of an assistant reply (decoded text, special tokens as text).
pub fn parse_assistant_reply(text: &str) -> ParsedReply {
    let mut content = text.trim_matches(' ');
    if let Some(rest) = content.strip_prefix(ASSISTANT_HEADER) {
        content = rest;
    }
    let python_tag = content.starts_with(PYTHON_TAG);
    if python_tag {
        content = &content[PYTHON_TAG.len()..];
    }
    let mut eom = None;
    if let Some(rest) = content.strip_suffix("<|eot_id|>") {
        content = rest;
        eom = Some(false);
    } else if let Some(rest) = content.strip_suffix("<|eom_id|>") {
        content = rest;
        eom = Some(true);
    }
    let (remaining, mut calls) = if let Some(found) = extract_function_tags(content) {
        found
    } else if let Some(calls) = extract_json_calls(content) {
        (String::new(), calls)
    } else if let Ok(list) = parse_python_list(content.trim()) {
        let calls = list
            .into_iter()
            .map(|(name, args)| ToolCall::new(name, Value::Object(args)))
            .collect();
        (String::new(), calls)
    } else if let Some(found) = extract_builtin_calls(content) {
        found
    } else if python_tag {
        let mut args = Map::new();
        args.insert("code".into(), Value::String(content.to_string()));
        (
            String::new(),
            vec![ToolCall::new(
                BuiltinTool::CodeInterpreter.as_str(),
                Value::Object(args),
            )],
        )
    } else {
        (content.to_string(), Vec::new())
    };
    for call in &mut calls {
        normalize_builtin_args(call);
        if call.id.is_empty() {
            call.id = new_call_id();
        }
    }
    tracing::debug!(calls = calls.len(), python_tag, "parsed assistant reply");
    ParsedReply {
        content: remaining,
        tool_calls: calls,
        python_tag,
        eom,
    }
}

/// Meta: a built-in tool called in the custom format gets `{"query": <first argument>}`.
fn normalize_builtin_args(call: &mut ToolCall) {
    let key = match call.builtin() {
        Some(BuiltinTool::CodeInterpreter) => "code",
        Some(_) => "query",
        None => return,
    };
    if let Value::Object(map) = &call.arguments {
        if map.contains_key(key) {
            return;
        }
        if let Some(first) = map.values().next() {
            let mut args = Map::new();
            args.insert(key.into(), first.clone());
            call.arguments = Value::Object(args);
        }
    }
}

fn new_call_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("call_{:016x}", h.finish())
}

/// Parses one JSON value at the start of `s`; returns it and the bytes read.
fn json_prefix(s: &str) -> Option<(Value, usize)> {
    let mut stream = serde_json::Deserializer::from_str(s).into_iter::<Value>();
    match stream.next() {
        Some(Ok(v)) => Some((v, stream.byte_offset())),
        _ => None,
    }
}

/// All `<function=NAME>{...}</function>` calls; `None` when there are none.
fn extract_function_tags(content: &str) -> Option<(String, Vec<ToolCall>)> {
    const OPEN: &str = "<function=";
    const CLOSE: &str = "</function>";
    if !content.contains(OPEN) {
        return None;
    }
    let mut calls = Vec::new();
    let mut remaining = String::new();
    let mut rest = content;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(gt) = after.find('>') else { break };
        let name = after[..gt].trim();
        let body = &after[gt + 1..];
        let parsed = if name.is_empty() || name.contains('}') || !body.starts_with('{') {
            None
        } else if let Some((v, n)) = json_prefix(body) {
            Some((v, n))
        } else {
            // Meta's fallback: the text up to the first `}`, single quotes made double.
            body.find('}').and_then(|end| {
                serde_json::from_str::<Value>(&body[..=end].replace('\'', "\""))
                    .ok()
                    .map(|v| (v, end + 1))
            })
        };
        match parsed {
            Some((args, n)) => {
                remaining.push_str(&rest[..start]);
                calls.push(ToolCall::new(name, args));
                let mut tail = &body[n..];
                let trimmed = tail.trim_start();
                if let Some(t) = trimmed.strip_prefix(CLOSE) {
                    tail = t;
                }
                rest = tail;
            }
            None => {
                remaining.push_str(&rest[..start + OPEN.len()]);
                rest = after;
            }
        }
    }
    if calls.is_empty() {
        return None;
    }
    remaining.push_str(rest);
    Some((remaining.trim().to_string(), calls))
}

/// A JSON object that is a call: `{"name": ..., "parameters"|"arguments": ...}` or
/// `{"type": "function", "function": {...}}`.
fn json_to_call(v: &Value) -> Option<ToolCall> {
    let obj = v.as_object()?;
    let is_fn = obj.get("type").and_then(Value::as_str) == Some("function");
    if let (true, Some(Value::Object(f))) = (is_fn, obj.get("function")) {
        return json_to_call(&Value::Object(f.clone()));
    }
    let name = obj.get("name")?.as_str()?;
    let args = obj.get("parameters").or_else(|| obj.get("arguments"));
    let arguments = match args {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(v) => v.clone(),
    };
    Some(ToolCall::new(name, arguments))
}

/// The whole text is JSON calls: one object, a list, or objects separated by `;`/whitespace.
fn extract_json_calls(content: &str) -> Option<Vec<ToolCall>> {
    let text = content.trim();
    if !(text.starts_with('{') || text.starts_with('[')) {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return match &v {
            Value::Array(items) if !items.is_empty() => items.iter().map(json_to_call).collect(),
            Value::Object(_) => json_to_call(&v).map(|c| vec![c]),
            _ => None,
        };
    }
    let mut calls = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if rest.is_empty() {
            break;
        }
        let (v, n) = json_prefix(rest)?;
        calls.push(json_to_call(&v)?);
        rest = &rest[n..];
    }
    if calls.is_empty() {
        None
    } else {
        Some(calls)
    }
}

/// All `NAME.call(kw=..., ...)` calls, found anywhere (Meta searches the text).
fn extract_builtin_calls(content: &str) -> Option<(String, Vec<ToolCall>)> {
    const MARK: &str = ".call(";
    let mut calls = Vec::new();
    let mut remaining = String::new();
    let mut pos = 0;
    let mut search_from = 0;
    while let Some(off) = content[search_from..].find(MARK) {
        let dot = search_from + off;
        let before = &content[pos..dot];
        let name_len: usize = before
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .map(char::len_utf8)
            .sum();
        let name_start = dot - name_len;
        let open = dot + MARK.len() - 1;
        if name_len > 0 {
            if let Ok((args, n)) = parse_call_args(&content[open..]) {
                remaining.push_str(&content[pos..name_start]);
                calls.push(ToolCall::new(
                    &content[name_start..dot],
                    Value::Object(args),
                ));
                pos = open + n;
                search_from = pos;
                continue;
            }
        }
        search_from = dot + MARK.len();
    }
    if calls.is_empty() {
        return None;
    }
    remaining.push_str(&content[pos..]);
    Some((remaining.trim().to_string(), calls))
}
