//! Dialog types and the parsing of OpenAI-style messages and tools.

use crate::error::{ChatError, Result};
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    /// A tool result; Llama 3.1 writes this role as `ipython`.
    Tool,
}

impl Role {
    /// Parses an OpenAI role name (`ipython` is accepted for [`Role::Tool`]).
    pub fn parse(name: &str) -> Result<Role> {
        match name {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "tool" | "ipython" => Ok(Role::Tool),
            other => Err(ChatError::UnknownRole(other.to_string())),
        }
    }
    /// The OpenAI name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
    /// The name written in the Llama 3.1 header (`tool` becomes `ipython`).
    pub fn header_name(self) -> &'static str {
        match self {
            Role::Tool => "ipython",
            other => other.as_str(),
        }
    }
}

/// The text of a message: one string, or text parts that Meta encodes one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Parts(Vec<String>),
    /// A JSON value given as a tool result (`{"role":"tool","content":{...}}`); written as
    /// Python's `json.dumps(value, ensure_ascii=False)`.
    Json(Value),
}

impl Default for Content {
    fn default() -> Self {
        Content::Text(String::new())
    }
}

impl Content {
    /// All the text, parts concatenated.
    pub fn to_text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(p) => p.concat(),
            Content::Json(v) => crate::pyjson::dumps(v, crate::pyjson::DumpOptions::HF),
        }
    }
    /// The pieces Meta encodes separately.
    pub fn parts(&self) -> Vec<std::borrow::Cow<'_, str>> {
        match self {
            Content::Text(s) => vec![s.as_str().into()],
            Content::Parts(p) => p.iter().map(|s| s.as_str().into()).collect(),
            Content::Json(_) => vec![self.to_text().into()],
        }
    }
    /// True when there is no text at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Content::Text(s) => s.is_empty(),
            Content::Parts(p) => p.iter().all(String::is_empty),
            Content::Json(_) => false,
        }
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_string())
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

/// One call of a tool by the assistant.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call id (OpenAI `id`); may be empty.
    pub id: String,
    /// The tool's name (`brave_search`, `code_interpreter`, or a custom function).
    pub name: String,
    /// The arguments, normally a JSON object.
    pub arguments: Value,
}

impl ToolCall {
    /// A call with an empty id.
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        ToolCall {
            id: String::new(),
            name: name.into(),
            arguments,
        }
    }
    /// The builtin tool this call names, if any.
    pub fn builtin(&self) -> Option<BuiltinTool> {
        BuiltinTool::from_name(&self.name)
    }
    /// The OpenAI form `{"id","type":"function","function":{"name","arguments": "<json string>"}}`.
    pub fn to_openai_json(&self) -> Value {
        let mut function = Map::new();
        function.insert("name".into(), Value::String(self.name.clone()));
        function.insert(
            "arguments".into(),
            Value::String(serde_json::to_string(&self.arguments).unwrap_or_default()),
        );
        let mut call = Map::new();
        call.insert("id".into(), Value::String(self.id.clone()));
        call.insert("type".into(), Value::String("function".into()));
        call.insert("function".into(), Value::Object(function));
        Value::Object(call)
    }
}

/// Meta's built-in tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinTool {
    BraveSearch,
    WolframAlpha,
    Photogen,
    CodeInterpreter,
}

impl BuiltinTool {
    /// All built-in tools, in Meta's order.
    pub const ALL: [BuiltinTool; 4] = [
        BuiltinTool::BraveSearch,
        BuiltinTool::WolframAlpha,
        BuiltinTool::Photogen,
        BuiltinTool::CodeInterpreter,
    ];
    /// The tool's name as the model writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinTool::BraveSearch => "brave_search",
            BuiltinTool::WolframAlpha => "wolfram_alpha",
            BuiltinTool::Photogen => "photogen",
            BuiltinTool::CodeInterpreter => "code_interpreter",
        }
    }
    /// The built-in tool of that name, if any.
    pub fn from_name(name: &str) -> Option<BuiltinTool> {
        BuiltinTool::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One message of a dialog.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub role: Role,
    pub content: Content,
    /// Calls made by an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the id of the call answered.
    pub tool_call_id: Option<String>,
    /// Optional author name (OpenAI `name`).
    pub name: Option<String>,
    /// Whether an assistant message ends with `<|eom_id|>` (Meta's `stop_reason ==
    /// end_of_message`); `None` means: `<|eom_id|>` exactly when it has tool calls.
    pub eom: Option<bool>,
    /// Force `<|python_tag|>` before the content (Meta only writes it on its own for a first
    /// call to `code_interpreter`).
    pub python_tag: bool,
}

impl Message {
    /// A text message.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Message {
            role,
            content: content.into(),
            ..Message::default()
        }
    }
    pub fn system(content: impl Into<Content>) -> Self {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<Content>) -> Self {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<Content>) -> Self {
        Message::new(Role::Assistant, content)
    }
    pub fn tool(content: impl Into<Content>) -> Self {
        Message::new(Role::Tool, content)
    }
    /// An assistant message that calls tools.
    pub fn assistant_calls(calls: Vec<ToolCall>) -> Self {
        Message {
            role: Role::Assistant,
            tool_calls: calls,
            ..Message::default()
        }
    }
    /// Whether this message ends with `<|eom_id|>`.
    pub fn ends_with_eom(&self) -> bool {
        self.role == Role::Assistant && self.eom.unwrap_or(!self.tool_calls.is_empty())
    }

    /// Parses one OpenAI-style message object; `index` is used in error messages.
    pub fn from_json(index: usize, value: &Value) -> Result<Message> {
        let obj = value.as_object().ok_or_else(|| ChatError::WrongType {
            context: format!("message {index}"),
            field: "message",
            expected: "an object",
        })?;
        let role = match obj.get("role") {
            None | Some(Value::Null) => {
                return Err(ChatError::MissingField {
                    index,
                    field: "role",
                })
            }
            Some(Value::String(s)) => Role::parse(s)?,
            Some(_) => return Err(wrong(index, "role", "a string")),
        };
        let tool_calls = match obj.get("tool_calls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(calls)) => calls
                .iter()
                .enumerate()
                .map(|(j, c)| parse_tool_call(index, j, c))
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(wrong(index, "tool_calls", "an array")),
        };
        let content = match obj.get("content") {
            None | Some(Value::Null) => {
                if role == Role::Assistant && !tool_calls.is_empty() {
                    Content::default()
                } else {
                    return Err(ChatError::MissingContent {
                        index,
                        role: role.as_str().to_string(),
                    });
                }
            }
            Some(Value::String(s)) => Content::Text(s.clone()),
            Some(Value::Array(parts)) if role != Role::Tool => {
                Content::Parts(parse_parts(index, parts)?)
            }
            Some(v) if role == Role::Tool => Content::Json(v.clone()),
            Some(_) => return Err(wrong(index, "content", "a string or an array of parts")),
        };
        let opt_string = |field: &'static str| -> Result<Option<String>> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(wrong(index, field, "a string")),
            }
        };
        let tool_call_id = opt_string("tool_call_id")?;
        let name = opt_string("name")?;
        let eom = match obj.get("stop_reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.as_str() {
                "end_of_message" => Some(true),
                "end_of_turn" | "out_of_tokens" => Some(false),
                _ => return Err(wrong(index, "stop_reason", "end_of_turn or end_of_message")),
            },
            Some(_) => return Err(wrong(index, "stop_reason", "a string")),
        };
        Ok(Message {
            role,
            content,
            tool_calls,
            tool_call_id,
            name,
            eom,
            python_tag: false,
        })
    }

    /// The OpenAI form of this message (what Jinja templates receive).
    pub fn to_openai_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("role".into(), Value::String(self.role.as_str().into()));
        obj.insert("content".into(), Value::String(self.content.to_text()));
        if !self.tool_calls.is_empty() {
            obj.insert(
                "tool_calls".into(),
                Value::Array(
                    self.tool_calls
                        .iter()
                        .map(ToolCall::to_openai_json)
                        .collect(),
                ),
            );
        }
        if let Some(id) = &self.tool_call_id {
            obj.insert("tool_call_id".into(), Value::String(id.clone()));
        }
        if let Some(name) = &self.name {
            obj.insert("name".into(), Value::String(name.clone()));
        }
        Value::Object(obj)
    }
}

fn wrong(index: usize, field: &'static str, expected: &'static str) -> ChatError {
    ChatError::WrongType {
        context: format!("message {index}"),
        field,
        expected,
    }
}

fn parse_parts(index: usize, parts: &[Value]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Value::String(s) => out.push(s.clone()),
            Value::Object(p) => {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("text");
                if kind != "text" {
                    return Err(ChatError::UnsupportedContent {
                        index,
                        kind: kind.to_string(),
                    });
                }
                match p.get("text") {
                    Some(Value::String(s)) => out.push(s.clone()),
                    None => {
                        return Err(ChatError::MissingField {
                            index,
                            field: "content[].text",
                        })
                    }
                    Some(_) => return Err(wrong(index, "content[].text", "a string")),
                }
            }
            _ => return Err(wrong(index, "content[]", "a string or a text part")),
        }
    }
    Ok(out)
}

/// Parses a tool call in OpenAI form (`{"id","type","function":{"name","arguments"}}`) or flat
/// form (`{"name","arguments"|"parameters"}`). String arguments must hold JSON.
fn parse_tool_call(index: usize, j: usize, value: &Value) -> Result<ToolCall> {
    let ctx = || format!("message {index}, tool call {j}");
    let obj = value.as_object().ok_or_else(|| ChatError::WrongType {
        context: ctx(),
        field: "tool_calls[]",
        expected: "an object",
    })?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ChatError::WrongType {
                context: ctx(),
                field: "id",
                expected: "a string",
            })
        }
    };
    let func = match obj.get("function") {
        Some(Value::Object(f)) => f,
        Some(_) => {
            return Err(ChatError::WrongType {
                context: ctx(),
                field: "function",
                expected: "an object",
            })
        }
        None => obj,
    };
    let name = match func.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(ChatError::MissingField {
                index,
                field: "tool_calls[].function.name",
            })
        }
        Some(_) => {
            return Err(ChatError::WrongType {
                context: ctx(),
                field: "name",
                expected: "a string",
            })
        }
    };
    let args = func.get("arguments").or_else(|| func.get("parameters"));
    let arguments = match args {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            ChatError::InvalidToolCall(format!("{}: arguments are not JSON: {e}", ctx()))
        })?,
        Some(v) => v.clone(),
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

/// Parses a JSON array of OpenAI-style messages.
pub fn parse_messages(json: &str) -> Result<Vec<Message>> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| ChatError::MalformedJson(e.to_string()))?;
    parse_messages_value(&value)
}

/// Parses an already-decoded JSON array of OpenAI-style messages.
pub fn parse_messages_value(value: &Value) -> Result<Vec<Message>> {
    let items = value.as_array().ok_or_else(|| ChatError::WrongType {
        context: "messages".into(),
        field: "messages",
        expected: "an array",
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, m)| Message::from_json(i, m))
        .collect()
}

/// A custom tool (function) the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: Option<String>,
    /// JSON schema of the arguments (or whatever object the caller gave).
    pub parameters: Value,
    /// The definition exactly as given (templates serialize this).
    pub raw: Value,
}

impl ToolDefinition {
    /// A tool in OpenAI form `{"type":"function","function":{name, description, parameters}}`.
    pub fn new(name: &str, description: &str, parameters: Value) -> Self {
        let mut f = Map::new();
        f.insert("name".into(), Value::String(name.into()));
        f.insert("description".into(), Value::String(description.into()));
        f.insert("parameters".into(), parameters.clone());
        let mut raw = Map::new();
        raw.insert("type".into(), Value::String("function".into()));
        raw.insert("function".into(), Value::Object(f));
        ToolDefinition {
            name: name.into(),
            description: Some(description.into()),
            parameters,
            raw: Value::Object(raw),
        }
    }

    /// Parses the OpenAI form or a bare `{"name","description","parameters"}` object.
    pub fn from_json(index: usize, value: &Value) -> Result<ToolDefinition> {
        let ctx = format!("tool {index}");
        let obj = value.as_object().ok_or_else(|| ChatError::WrongType {
            context: ctx.clone(),
            field: "tool",
            expected: "an object",
        })?;
        let func = match obj.get("function") {
            Some(Value::Object(f)) => f,
            Some(_) => {
                return Err(ChatError::WrongType {
                    context: ctx,
                    field: "function",
                    expected: "an object",
                })
            }
            None => obj,
        };
        let name = match func.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(ChatError::InvalidTool(format!(
                    "{ctx}: missing string `name`"
                )))
            }
        };
        let description = match func.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ChatError::WrongType {
                    context: ctx,
                    field: "description",
                    expected: "a string",
                })
            }
        };
        let parameters = func
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        Ok(ToolDefinition {
            name,
            description,
            parameters,
            raw: value.clone(),
        })
    }
}

/// Parses a JSON array of tools.
pub fn parse_tools(json: &str) -> Result<Vec<ToolDefinition>> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| ChatError::MalformedJson(e.to_string()))?;
    parse_tools_value(&value)
}

/// Parses an already-decoded JSON array of tools.
pub fn parse_tools_value(value: &Value) -> Result<Vec<ToolDefinition>> {
    let items = value.as_array().ok_or_else(|| ChatError::WrongType {
        context: "tools".into(),
        field: "tools",
        expected: "an array",
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, t)| ToolDefinition::from_json(i, t))
        .collect()
}
