//! llama31 chat: Llama 3.1 dialogs exactly as Meta encodes them.
//!
//! - [`messages`]: dialog types and OpenAI-style JSON parsing.
//! - [`dialog`]: Meta's `ChatFormat.encode_dialog_prompt` (pieces, text, token ids).
//! - [`system_prompt`]: system prompt preparation (tools, built-ins, dates) as the official
//!   Hugging Face template or Meta's `prompt_format.md` write it.
//! - [`tool_calls`] / [`pythonic`]: writing tool calls and reading them from model output.
//! - [`template`]: sandboxed Jinja chat templates for other models.
//! - [`source`]: the chat template, chat format and "is instruct" of a detected model source.

pub mod dialog;
pub mod error;
pub mod formatter;
mod mask;
pub mod messages;
pub mod pyjson;
pub mod pythonic;
pub mod source;
pub mod system_prompt;
pub mod template;
pub mod tool_calls;

pub use dialog::{encode_dialog, encode_dialog_with, render_pieces, render_text, Piece};
pub use error::{ChatError, Result};
pub use formatter::{ChatFormatter, Rendered};
pub use messages::{
    parse_messages, parse_tools, BuiltinTool, Content, Message, Role, ToolCall, ToolDefinition,
};
pub use system_prompt::{prepare_dialog, PromptOptions, PromptStyle, ToolFormat};
pub use template::{ChatTemplate, TemplateLimits};
pub use tool_calls::{encode_tool_call, parse_assistant_reply, ParsedReply, ToolPromptFormat};
