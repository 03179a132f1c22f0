//! OpenAI `tools` / `tool_choice` and turning replies into `tool_calls`.

use serde_json::{json, Value};

use llama31_chat::{parse_assistant_reply, ToolCall, ToolDefinition};
use llama31_grammar::Grammar;

use crate::error::ApiError;
use crate::json::compile;
use crate::params::{get, type_name, Obj};

/// What `tool_choice` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// The request's tools and choice.
#[derive(Debug, Clone)]
pub struct Tools {
    pub defs: Vec<ToolDefinition>,
    pub choice: ToolChoice,
}

impl Tools {
    /// Tools are offered to the model (and replies parsed for calls).
    pub fn active(&self) -> bool {
        !self.defs.is_empty() && self.choice != ToolChoice::None
    }

    /// A call is forced (the output is constrained to one).
    pub fn forced(&self) -> bool {
        self.active() && matches!(self.choice, ToolChoice::Required | ToolChoice::Named(_))
    }
}

pub fn parse(o: &Obj) -> Result<Tools, ApiError> {
    let defs = match get(o, "tools") {
        None => Vec::new(),
        Some(Value::Array(list)) => {
            if list.len() > 128 {
                return Err(ApiError::field("tools", "At most 128 tools are allowed."));
            }
            let mut defs = Vec::with_capacity(list.len());
            for (i, t) in list.iter().enumerate() {
                if let Some(kind) = t.get("type") {
                    if kind != "function" {
                        return Err(ApiError::field(
                            "tools",
                            format!("tools[{i}].type must be 'function', got {kind}."),
                        ));
                    }
                }
                let def = ToolDefinition::from_json(i, t)
                    .map_err(|e| ApiError::field("tools", e.to_string()))?;
                defs.push(def);
            }
            defs
        }
        Some(v) => {
            return Err(ApiError::field(
                "tools",
                format!("'tools' must be an array, got {}.", type_name(v)),
            ))
        }
    };
    let choice = match get(o, "tool_choice") {
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::field(
                    "tool_choice",
                    format!("'tool_choice' must be 'none', 'auto', 'required' or a function, got {other:?}."),
                ))
            }
        },
        Some(Value::Object(c)) => {
            let name = c
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::field(
                        "tool_choice",
                        "'tool_choice' must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                    )
                })?;
            ToolChoice::Named(name.to_string())
        }
        Some(v) => {
            return Err(ApiError::field(
                "tool_choice",
                format!("'tool_choice' must be a string or an object, got {}.", type_name(v)),
            ))
        }
    };
    match &choice {
        ToolChoice::Required if defs.is_empty() => {
            return Err(ApiError::field(
                "tool_choice",
                "'tool_choice' is 'required' but no tools are given.",
            ))
        }
        ToolChoice::Named(n) if !defs.iter().any(|d| &d.name == n) => {
            return Err(ApiError::field(
                "tool_choice",
                format!("'tool_choice' names the function {n:?}, which is not among the tools."),
            ))
        }
        _ => {}
    }
    Ok(Tools { defs, choice })
}

/// The schema of one call: `{"name": <const>, "parameters": <the tool's schema>}` — the JSON form
/// of Llama 3.1's custom tool calls.
fn call_schema(def: &ToolDefinition) -> Value {
    let params = match &def.parameters {
        Value::Object(m) if m.is_empty() => json!({"type": "object"}),
        other => other.clone(),
    };
    json!({
        "type": "object",
        "properties": {"name": {"const": def.name}, "parameters": params},
        "required": ["name", "parameters"],
    })
}

/// The grammar of a forced call (`None` unless `required` or a named function).
pub fn forced_grammar(tools: &Tools) -> Result<Option<Grammar>, ApiError> {
    if !tools.forced() {
        return Ok(None);
    }
    let schema = match &tools.choice {
        ToolChoice::Named(n) => tools
            .defs
            .iter()
            .find(|d| &d.name == n)
            .map(call_schema)
            .unwrap_or_else(|| json!({})),
        _ => json!({"anyOf": tools.defs.iter().map(call_schema).collect::<Vec<_>>()}),
    };
    // Compact JSON, as Llama 3.1 writes its calls.
    compile(&schema, "tools", 0).map(Some)
}

/// A reply split into content and calls (calls get fresh ids).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub content: Option<String>,
    pub calls: Vec<ToolCall>,
}

/// Parses a finished reply: a forced call is JSON `{"name", "parameters"}`; otherwise Llama 3.1's
/// call forms (JSON, `<|python_tag|>` built-ins, `<function=…>`, pythonic lists).
pub fn parse_reply(tools: &Tools, text: &str) -> Reply {
    if !tools.active() {
        return Reply {
            content: Some(text.to_string()),
            calls: Vec::new(),
        };
    }
    let mut calls = Vec::new();
    let mut content = Some(text.to_string());
    if tools.forced() {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) {
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                let args = o.get("parameters").or_else(|| o.get("arguments")).cloned();
                calls.push(ToolCall::new(name, args.unwrap_or_else(|| json!({}))));
                content = None;
            }
        }
    } else {
        let parsed = parse_assistant_reply(text);
        if !parsed.tool_calls.is_empty() {
            calls = parsed.tool_calls;
            content = (!parsed.content.trim().is_empty()).then_some(parsed.content);
        }
    }
    for c in &mut calls {
        c.id = crate::run::new_id("call_");
    }
    Reply { content, calls }
}

/// Whether streamed text might still turn out to be a tool call (so it is held back).
pub fn may_be_call(text: &str) -> bool {
    let t = text.trim_start();
    if t.is_empty() {
        return true;
    }
    ["{", "[", "<|python_tag|>", "<function="]
        .iter()
        .any(|p| t.starts_with(p) || p.starts_with(t))
}
