//! OpenAI `tools` / `tool_choice` and turning replies into `tool_calls`.

use serde_json::{json, Value};

use llama31_chat::{parse_assistant_reply, BuiltinTool, PromptOptions, ToolCall, ToolDefinition};
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

    /// The prompt options for these tools: Meta's built-in tools (`brave_search`,
    /// `wolfram_alpha`, `code_interpreter`, given as functions of those names) go on the system
    /// prompt's `Tools:` line; every other function is described as JSON (the official Llama 3.1
    /// template's layout).
    pub fn prompt_options(&self) -> PromptOptions {
        if !self.active() {
            return PromptOptions::default();
        }
        let (builtin, custom): (Vec<&ToolDefinition>, Vec<&ToolDefinition>) = self
            .defs
            .iter()
            .partition(|d| BuiltinTool::from_name(&d.name).is_some());
        PromptOptions {
            tools: Some(custom.into_iter().cloned().collect()),
            builtin_tools: (!builtin.is_empty()).then(|| {
                builtin
                    .iter()
                    .filter_map(|d| BuiltinTool::from_name(&d.name))
                    .collect()
            }),
            ..PromptOptions::default()
        }
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

/// One call in OpenAI's form; `arguments` is JSON text (for a forced call, exactly the text the
/// model wrote, so numbers keep their digits).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl Call {
    fn from_tool_call(c: ToolCall) -> Call {
        Call {
            id: crate::run::new_id("call_"),
            arguments: serde_json::to_string(&c.arguments).unwrap_or_else(|_| "{}".into()),
            name: c.name,
        }
    }

    /// `{"id", "type": "function", "function": {"name", "arguments"}}`.
    pub fn to_openai_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        })
    }
}

/// A reply split into content and calls (calls get fresh ids).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub content: Option<String>,
    pub calls: Vec<Call>,
}

/// The `parameters` of a forced call `{"name": …, "parameters": …}`, as written.
#[derive(serde::Deserialize)]
struct ForcedCall<'a> {
    name: String,
    #[serde(borrow)]
    parameters: &'a serde_json::value::RawValue,
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
        if let Ok(call) = serde_json::from_str::<ForcedCall<'_>>(text) {
            calls.push(Call {
                id: crate::run::new_id("call_"),
                name: call.name,
                arguments: call.parameters.get().to_string(),
            });
            content = None;
        }
    } else {
        let parsed = parse_assistant_reply(text);
        if !parsed.tool_calls.is_empty() {
            calls = parsed
                .tool_calls
                .into_iter()
                .map(Call::from_tool_call)
                .collect();
            content = (!parsed.content.trim().is_empty()).then_some(parsed.content);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(choice: Value) -> Tools {
        let mut o = Obj::new();
        o.insert(
            "tools".into(),
            json!([
                {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "brave_search"}}
            ]),
        );
        o.insert("tool_choice".into(), choice);
        parse(&o).unwrap()
    }

    #[test]
    fn replies_become_calls() {
        let auto = tools(json!("auto"));
        let r = parse_reply(
            &auto,
            r#"{"name": "get_weather", "parameters": {"city": "Paris"}}"#,
        );
        assert_eq!(r.calls.len(), 1);
        assert_eq!(r.calls[0].name, "get_weather");
        assert_eq!(r.calls[0].arguments, r#"{"city":"Paris"}"#);
        assert!(r.calls[0].id.starts_with("call_"));
        assert_eq!(r.content, None);
        // A built-in call after <|python_tag|> (the model ended it with <|eom_id|>).
        let r = parse_reply(
            &auto,
            r#"<|python_tag|>brave_search.call(query="weather in Paris")"#,
        );
        assert_eq!(r.calls[0].name, "brave_search");
        assert_eq!(r.calls[0].arguments, r#"{"query":"weather in Paris"}"#);
        // Plain text stays text; with tool_choice none nothing is parsed.
        let r = parse_reply(&auto, "It is sunny.");
        assert!(r.calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("It is sunny."));
        let none = tools(json!("none"));
        let r = parse_reply(&none, r#"{"name": "get_weather", "parameters": {}}"#);
        assert!(r.calls.is_empty());
        // Forced: the constrained JSON.
        let forced = tools(json!({"type": "function", "function": {"name": "get_weather"}}));
        assert!(forced.forced());
        let raw = r#"{"city":"Oslo","n":123456789012345678901234567890}"#;
        let r = parse_reply(
            &forced,
            &format!(r#"{{"name":"get_weather","parameters":{raw}}}"#),
        );
        assert_eq!(r.calls[0].arguments, raw);
    }

    #[test]
    fn builtins_go_on_the_tools_line() {
        let o = tools(json!("auto")).prompt_options();
        assert_eq!(o.builtin_tools, Some(vec![BuiltinTool::BraveSearch]));
        let custom = o.tools.unwrap();
        assert_eq!(custom.len(), 1);
        assert_eq!(custom[0].name, "get_weather");
        assert_eq!(
            tools(json!("none")).prompt_options(),
            PromptOptions::default()
        );
    }

    #[test]
    fn held_text_while_it_may_be_a_call() {
        for t in [
            "",
            " ",
            "{",
            " {\"na",
            "[get_",
            "<|python",
            "<|python_tag|>x",
            "<func",
        ] {
            assert!(may_be_call(t), "{t:?}");
        }
        for t in ["Hello", " The", "<b>", "x{"] {
            assert!(!may_be_call(t), "{t:?}");
        }
    }

    #[test]
    fn bad_tool_choices_are_errors() {
        let mut o = Obj::new();
        o.insert(
            "tools".into(),
            json!([{"type": "function", "function": {"name": "f"}}]),
        );
        o.insert(
            "tool_choice".into(),
            json!({"type": "function", "function": {"name": "g"}}),
        );
        assert_eq!(parse(&o).unwrap_err().param.as_deref(), Some("tool_choice"));
        o.insert("tool_choice".into(), json!("sometimes"));
        assert!(parse(&o).is_err());
        o.insert("tools".into(), json!([{"type": "retrieval"}]));
        o.insert("tool_choice".into(), json!("auto"));
        assert_eq!(parse(&o).unwrap_err().param.as_deref(), Some("tools"));
    }
}
