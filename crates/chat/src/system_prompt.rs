//! System-prompt preparation for Llama 3.1 instruct: tools, built-in tools, dates.
//!
//! Two layouts:
//! - [`PromptStyle::HfTemplate`] (default) reproduces the official Hugging Face chat template
//!   (`llama3.1_chat_template_hf.jinja`) natively, quirks included (message text is trimmed,
//!   tool results are written as JSON strings, one tool call per assistant message).
//! - [`PromptStyle::Meta`] follows Meta's `llama-models` prompt templates as shown in
//!   `llama3_1/prompt_format.md` (custom tools in their own user message, `<|python_tag|>`
//!   before built-in calls, content untouched).
//!
//! The result is a list of messages, encoded by [`crate::dialog`].

use crate::dialog::{self, Piece};
use crate::error::{ChatError, Result};
use crate::messages::{BuiltinTool, Message, Role, ToolDefinition};
use crate::pyjson::{dumps, DumpOptions};
use crate::tool_calls::ToolPromptFormat;
use serde_json::Value;

/// How custom tools are described to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolFormat {
    /// JSON definitions (HF template wording, or Meta's JSON wording in [`PromptStyle::Meta`]).
    #[default]
    Json,
    /// The `<function=NAME>{...}</function>` instructions of `prompt_format.md`.
    FunctionTag,
}

/// Which reference layout to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptStyle {
    /// The official Hugging Face Llama 3.1 chat template.
    #[default]
    HfTemplate,
    /// Meta's `llama-models` prompt templates (`prompt_format.md`).
    Meta,
}

/// Options of the system-prompt preparation.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptOptions {
    /// Custom tools (`None`: no tools; `Some(vec![])` still turns on `Environment: ipython`,
    /// like the template's `tools is not none`).
    pub tools: Option<Vec<ToolDefinition>>,
    /// Built-in tools (`None`: not defined; `code_interpreter` is implied by ipython and never
    /// listed on the `Tools:` line).
    pub builtin_tools: Option<Vec<BuiltinTool>>,
    /// Put the custom tools in the (first) user message rather than the system message.
    pub tools_in_user_message: bool,
    pub tool_format: ToolFormat,
    /// `Today Date:` text; `None`: today (`%d %b %Y`, or `%d %B %Y` in the Meta style).
    pub date: Option<String>,
    pub style: PromptStyle,
    /// Write the `Cutting Knowledge Date` / `Today Date` lines (the HF template always does).
    pub knowledge_date: bool,
    /// End with the assistant header (Meta always does).
    pub add_generation_prompt: bool,
}

impl Default for PromptOptions {
    fn default() -> Self {
        PromptOptions {
            tools: None,
            builtin_tools: None,
            tools_in_user_message: true,
            tool_format: ToolFormat::Json,
            date: None,
            style: PromptStyle::HfTemplate,
            knowledge_date: true,
            add_generation_prompt: true,
        }
    }
}

impl PromptOptions {
    fn date_string(&self) -> String {
        if let Some(d) = &self.date {
            return d.clone();
        }
        let fmt = match self.style {
            PromptStyle::HfTemplate => "%d %b %Y",
            PromptStyle::Meta => "%d %B %Y",
        };
        chrono::Local::now().format(fmt).to_string()
    }
}

/// Python's `str.strip()` (jinja2's `trim`).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

const KNOWLEDGE: &str = "Cutting Knowledge Date: December 2023\n";

const HF_SYSTEM_TOOLS: &str = "You have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n";

const HF_USER_TOOLS: &str = "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n";

const FUNCTION_TAG_HEAD: &str = "You have access to the following functions:\n\n";

const FUNCTION_TAG_TAIL: &str = "Think very carefully before calling functions.\nIf you choose to call a function ONLY reply in the following format with no prefix or suffix:\n\n<function=example_function_name>{\"example_name\": \"example_value\"}</function>\n\nReminder:\n- If looking for real time information use relevant functions before falling back to brave_search\n- Function calls MUST follow the specified format, start with <function= and end with </function>\n- Required parameters MUST be specified\n- Only call one function at a time\n- Put the entire function call reply on one line";

const META_JSON_HEAD: &str = "Answer the user's question by making use of the following functions if needed.\nIf none of the function can be used, please say so.\nHere is a list of functions in JSON format:\n";

const META_JSON_TAIL: &str = "\nReturn function calls in JSON format.";

/// jinja2's `tojson` (sorted keys, HTML-safe escapes of `<>&'`).
fn jinja_tojson(v: &Value) -> String {
    let opts = DumpOptions {
        indent: None,
        sort_keys: true,
        ensure_ascii: true,
    };
    dumps(v, opts)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027")
}

/// The `<function=...>` instructions of `prompt_format.md` (Meta's FunctionTagCustomToolGenerator).
pub fn function_tag_block(tools: &[ToolDefinition]) -> String {
    let mut s = String::from(FUNCTION_TAG_HEAD);
    for t in tools {
        let desc = t.description.as_deref().unwrap_or("");
        let mut params = t.parameters.clone();
        if let Value::Object(map) = &mut params {
            for v in map.values_mut() {
                if let Value::Object(inner) = v {
                    inner.shift_remove("default");
                }
            }
        }
        s.push_str(&format!(
            "Use the function '{}' to '{desc}':\n{{\"name\": \"{}\", \"description\": \"{desc}\", \"parameters\": {}}}\n\n",
            t.name,
            t.name,
            jinja_tojson(&params)
        ));
    }
    s.push_str(FUNCTION_TAG_TAIL);
    s
}

/// (name, description, required) of each parameter: from a JSON schema (`properties` and
/// `required`) or from Meta's `{name: {description, required, param_type}}` form.
fn meta_params(parameters: &Value) -> Vec<(String, String, bool)> {
    let describe = |v: &Value| {
        v.get("description")
            .and_then(Value::as_str)
            .unwrap_or("None")
            .to_string()
    };
    match parameters {
        Value::Object(map) => match map.get("properties") {
            Some(Value::Object(props)) => {
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), describe(v), required.contains(&k.as_str())))
                    .collect()
            }
            _ => map
                .iter()
                .map(|(k, v)| {
                    let req = v.get("required").and_then(Value::as_bool).unwrap_or(true);
                    (k.clone(), describe(v), req)
                })
                .collect(),
        },
        _ => Vec::new(),
    }
}

/// Meta's JSON tool instructions (JsonCustomToolGenerator in `llama-models`).
pub fn meta_json_block(tools: &[ToolDefinition]) -> String {
    let mut s = String::from(META_JSON_HEAD);
    for t in tools {
        let params = meta_params(&t.parameters);
        let required: Vec<Value> = params
            .iter()
            .filter(|p| p.2)
            .map(|p| Value::String(p.0.clone()))
            .collect();
        s.push_str("{\n    \"type\": \"function\",\n    \"function\": {\n");
        s.push_str(&format!("        \"name\": \"{}\",\n", t.name));
        s.push_str(&format!(
            "        \"description\": \"{}\",\n",
            t.description.as_deref().unwrap_or("None")
        ));
        s.push_str("        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": [");
        for (i, (name, desc, _)) in params.iter().enumerate() {
            s.push_str(&format!(
                "\n                {{\n                    \"{name}\": {{\n                        \"type\": \"object\",\n                        \"description\": \"{desc}\"\n                    }}\n                }}"
            ));
            if i + 1 < params.len() {
                s.push(',');
            }
        }
        s.push_str("\n            ],\n");
        s.push_str(&format!(
            "            \"required\": {}\n",
            jinja_tojson(&Value::Array(required))
        ));
        s.push_str("        }\n    }\n}\n");
    }
    s.push_str(META_JSON_TAIL);
    s
}

fn hf_tools_json(tools: &[ToolDefinition]) -> String {
    let opts = DumpOptions {
        indent: Some(4),
        sort_keys: false,
        ensure_ascii: false,
    };
    let mut s = String::new();
    for t in tools {
        s.push_str(&dumps(&t.raw, opts));
        s.push_str("\n\n");
    }
    s
}

/// Prepares a dialog for Llama 3.1 instruct: returns the messages to encode with
/// [`crate::dialog`].
pub fn prepare_dialog(messages: &[Message], opts: &PromptOptions) -> Result<Vec<Message>> {
    match opts.style {
        PromptStyle::HfTemplate => prepare_hf(messages, opts),
        PromptStyle::Meta => prepare_meta(messages, opts),
    }
}

/// The prepared dialog's pieces (assistant header at the end).
pub fn prepare_pieces(messages: &[Message], opts: &PromptOptions) -> Result<Vec<Piece>> {
    dialog::render_pieces_opts(
        &prepare_dialog(messages, opts)?,
        ToolPromptFormat::Json,
        opts.add_generation_prompt,
    )
}

/// The prepared dialog as text (special tokens as their text).
pub fn render_prompt_text(messages: &[Message], opts: &PromptOptions) -> Result<String> {
    Ok(dialog::pieces_to_text(&prepare_pieces(messages, opts)?))
}

/// The prepared dialog's token ids.
pub fn encode_prompt(
    tokenizer: &llama31_tokenizer::Tokenizer,
    messages: &[Message],
    opts: &PromptOptions,
) -> Result<Vec<llama31_tokenizer::TokenId>> {
    dialog::encode_pieces(tokenizer, &prepare_pieces(messages, opts)?)
}

fn builtin_line(builtins: &[BuiltinTool]) -> String {
    builtins
        .iter()
        .filter(|b| **b != BuiltinTool::CodeInterpreter)
        .map(|b| b.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn prepare_hf(messages: &[Message], opts: &PromptOptions) -> Result<Vec<Message>> {
    let (system_message, mut rest) = match messages.first() {
        Some(m) if m.role == Role::System => {
            (py_strip(&m.content.to_text()).to_string(), &messages[1..])
        }
        _ => (String::new(), messages),
    };
    let date = opts.date_string();
    let mut sys = String::new();
    if opts.builtin_tools.is_some() || opts.tools.is_some() {
        sys.push_str("Environment: ipython\n");
    }
    if let Some(b) = &opts.builtin_tools {
        sys.push_str(&format!("Tools: {}\n\n", builtin_line(b)));
    }
    sys.push_str(KNOWLEDGE);
    sys.push_str(&format!("Today Date: {date}\n\n"));
    let tools_block = |in_user: bool, tools: &[ToolDefinition]| match opts.tool_format {
        ToolFormat::Json => {
            let head = if in_user {
                HF_USER_TOOLS
            } else {
                HF_SYSTEM_TOOLS
            };
            format!("{head}{}", hf_tools_json(tools))
        }
        ToolFormat::FunctionTag => format!("{}\n\n", function_tag_block(tools)),
    };
    if let Some(tools) = &opts.tools {
        if !opts.tools_in_user_message {
            sys.push_str(&tools_block(false, tools));
        }
    }
    sys.push_str(&system_message);
    let mut out = Vec::with_capacity(messages.len() + 1);
    out.push(Message::system(sys));
    if let Some(tools) = &opts.tools {
        if opts.tools_in_user_message {
            let first = rest.first().ok_or(ChatError::NoUserMessage)?;
            rest = &rest[1..];
            let text = format!(
                "{}{}",
                tools_block(true, tools),
                py_strip(&first.content.to_text())
            );
            out.push(Message::user(text));
        }
    }
    let builtin_names: Option<Vec<&str>> = opts
        .builtin_tools
        .as_ref()
        .map(|b| b.iter().map(|t| t.as_str()).collect());
    for m in rest {
        if m.role == Role::Tool {
            // The template writes `content | tojson` (a string is iterable in Jinja).
            let text = match &m.content {
                crate::messages::Content::Json(v) => dumps(v, DumpOptions::HF),
                other => dumps(&Value::String(other.to_text()), DumpOptions::HF),
            };
            out.push(Message::tool(text));
        } else if !m.tool_calls.is_empty() {
            if m.tool_calls.len() != 1 {
                return Err(ChatError::InvalidDialog(
                    "This model only supports single tool-calls at once!".into(),
                ));
            }
            let call = &m.tool_calls[0];
            let mut msg = Message::assistant("");
            let is_builtin = builtin_names
                .as_ref()
                .is_some_and(|n| n.contains(&call.name.as_str()));
            let text = if is_builtin {
                msg.python_tag = true;
                let mut s = format!("{}.call(", call.name);
                if let Value::Object(args) = &call.arguments {
                    let mut first = true;
                    for (k, v) in args {
                        let v = v.as_str().ok_or_else(|| {
                            ChatError::InvalidToolCall(format!(
                                "{}: built-in call arguments must be strings",
                                call.name
                            ))
                        })?;
                        if !first {
                            s.push_str(", ");
                        }
                        first = false;
                        s.push_str(&format!("{k}=\"{v}\""));
                    }
                }
                s.push(')');
                s
            } else {
                format!(
                    "{{\"name\": \"{}\", \"parameters\": {}}}",
                    call.name,
                    dumps(&call.arguments, DumpOptions::HF)
                )
            };
            msg.content = text.into();
            msg.eom = Some(opts.builtin_tools.is_some());
            out.push(msg);
        } else {
            let mut msg = Message::new(m.role, py_strip(&m.content.to_text()));
            msg.eom = Some(false);
            out.push(msg);
        }
    }
    Ok(out)
}

fn prepare_meta(messages: &[Message], opts: &PromptOptions) -> Result<Vec<Message>> {
    let (system_message, rest) = match messages.first() {
        Some(m) if m.role == Role::System => (Some(m.content.to_text()), &messages[1..]),
        _ => (None, messages),
    };
    let custom_tools: &[ToolDefinition] = opts.tools.as_deref().unwrap_or(&[]);
    let builtins: &[BuiltinTool] = opts.builtin_tools.as_deref().unwrap_or(&[]);
    let mut sys = String::new();
    if !custom_tools.is_empty() || !builtins.is_empty() {
        sys.push_str("Environment: ipython");
        let line = builtin_line(builtins);
        if line.is_empty() {
            sys.push('\n');
        } else {
            sys.push_str("\nTools: ");
            sys.push_str(&line);
        }
        sys.push('\n');
    }
    if opts.knowledge_date {
        sys.push_str(KNOWLEDGE);
        sys.push_str(&format!("Today Date: {}\n", opts.date_string()));
    }
    let block = if custom_tools.is_empty() {
        None
    } else {
        Some(match opts.tool_format {
            ToolFormat::Json => meta_json_block(custom_tools),
            ToolFormat::FunctionTag => function_tag_block(custom_tools),
        })
    };
    if let (Some(b), false) = (&block, opts.tools_in_user_message) {
        sys.push('\n');
        sys.push_str(b);
        sys.push('\n');
    }
    if let Some(s) = &system_message {
        sys.push('\n');
        sys.push_str(s);
    }
    let mut out = Vec::with_capacity(messages.len() + 2);
    if !sys.is_empty() {
        out.push(Message::system(sys));
    }
    if let (Some(b), true) = (block, opts.tools_in_user_message) {
        out.push(Message::user(b));
    }
    let format = match opts.tool_format {
        ToolFormat::Json => ToolPromptFormat::Json,
        ToolFormat::FunctionTag => ToolPromptFormat::FunctionTag,
    };
    for m in rest {
        let mut msg = m.clone();
        if m.role == Role::Assistant {
            if let Some(first) = m.tool_calls.first() {
                // The model writes `<|python_tag|>` before built-in calls (prompt_format.md).
                msg.python_tag = m.python_tag || first.builtin().is_some();
                if format == ToolPromptFormat::FunctionTag {
                    // Pre-render custom calls so the dialog encoder keeps its JSON default.
                    let mut text = m.content.to_text();
                    for c in &m.tool_calls {
                        text.push_str(&crate::tool_calls::encode_tool_call(c, format)?);
                    }
                    msg.content = text.into();
                    msg.tool_calls.clear();
                    msg.eom = Some(m.ends_with_eom());
                }
            }
        }
        out.push(msg);
    }
    Ok(out)
}
