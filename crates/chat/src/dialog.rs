//! Llama 3.1 dialog encoding, identical to Meta's `ChatFormat.encode_dialog_prompt`.
//!
//! `<|begin_of_text|>`, then per message `<|start_header_id|>{role}<|end_header_id|>\n\n` +
//! content + `<|eot_id|>` (`<|eom_id|>` for an assistant message that stopped for a tool call),
//! role `tool` written `ipython`, and the assistant header at the end. Content is never trimmed
//! and text that looks like a special token is ordinary text.

use crate::error::{ChatError, Result};
use crate::messages::{BuiltinTool, Message, Role};
use crate::tool_calls::{encode_tool_call, ToolPromptFormat};
use llama31_tokenizer::{TokenId, Tokenizer};

pub const BEGIN_OF_TEXT: &str = "<|begin_of_text|>";
pub const START_HEADER: &str = "<|start_header_id|>";
pub const END_HEADER: &str = "<|end_header_id|>";
pub const EOT: &str = "<|eot_id|>";
pub const EOM: &str = "<|eom_id|>";
pub const PYTHON_TAG: &str = "<|python_tag|>";

/// One unit of a rendered dialog: a special token, or text encoded on its own (Meta calls the
/// tokenizer once per text piece, so pieces are never merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Special(&'static str),
    Text(String),
}

fn push_header(out: &mut Vec<Piece>, role: Role) {
    out.push(Piece::Special(START_HEADER));
    out.push(Piece::Text(role.header_name().to_string()));
    out.push(Piece::Special(END_HEADER));
    out.push(Piece::Text("\n\n".to_string()));
}

/// Meta's `encode_message` as pieces.
pub fn message_pieces(message: &Message, format: ToolPromptFormat) -> Result<Vec<Piece>> {
    let mut out = Vec::with_capacity(8 + message.tool_calls.len());
    push_header(&mut out, message.role);
    let is_assistant = message.role == Role::Assistant;
    let code_call = message
        .tool_calls
        .first()
        .is_some_and(|c| c.builtin() == Some(BuiltinTool::CodeInterpreter));
    if is_assistant && (code_call || message.python_tag) {
        out.push(Piece::Special(PYTHON_TAG));
    }
    for part in message.content.parts() {
        if !part.is_empty() {
            out.push(Piece::Text(part.into_owned()));
        }
    }
    if is_assistant {
        for call in &message.tool_calls {
            let text = encode_tool_call(call, format)?;
            if !text.is_empty() {
                out.push(Piece::Text(text));
            }
        }
    }
    out.push(Piece::Special(if message.ends_with_eom() {
        EOM
    } else {
        EOT
    }));
    Ok(out)
}

/// Meta's `encode_dialog_prompt` as pieces, with a given format for custom tool calls.
pub fn render_pieces_with(messages: &[Message], format: ToolPromptFormat) -> Result<Vec<Piece>> {
    render_pieces_opts(messages, format, true)
}

/// Like [`render_pieces_with`]; `add_generation_prompt = false` leaves out the final assistant
/// header (Meta always writes it; templates make it optional).
pub fn render_pieces_opts(
    messages: &[Message],
    format: ToolPromptFormat,
    add_generation_prompt: bool,
) -> Result<Vec<Piece>> {
    let mut out = Vec::with_capacity(messages.len().saturating_mul(8).saturating_add(6));
    out.push(Piece::Special(BEGIN_OF_TEXT));
    for m in messages {
        out.extend(message_pieces(m, format)?);
    }
    if add_generation_prompt {
        push_header(&mut out, Role::Assistant);
    }
    Ok(out)
}

/// Meta's `encode_dialog_prompt` as pieces (custom tool calls as JSON, Meta's default).
pub fn render_pieces(messages: &[Message]) -> Result<Vec<Piece>> {
    render_pieces_with(messages, ToolPromptFormat::Json)
}

/// The pieces as text, special tokens written as their text.
pub fn pieces_to_text(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Special(t) => s.push_str(t),
            Piece::Text(t) => s.push_str(t),
        }
    }
    s
}

/// The dialog prompt as text (special tokens as their text).
pub fn render_text(messages: &[Message]) -> Result<String> {
    Ok(pieces_to_text(&render_pieces(messages)?))
}

/// Token ids of pieces: special tokens by id, text with `allow_special = false`.
pub fn encode_pieces(tokenizer: &Tokenizer, pieces: &[Piece]) -> Result<Vec<TokenId>> {
    let mut ids = Vec::with_capacity(pieces.len().saturating_mul(4));
    let mut cache: Vec<(&'static str, TokenId)> = Vec::with_capacity(6);
    for p in pieces {
        match p {
            Piece::Special(name) => {
                let id = match cache.iter().find(|(n, _)| n == name) {
                    Some((_, id)) => *id,
                    None => {
                        let id = tokenizer
                            .token_id(name)
                            .ok_or_else(|| ChatError::MissingSpecialToken(name.to_string()))?;
                        cache.push((name, id));
                        id
                    }
                };
                ids.push(id);
            }
            Piece::Text(t) => ids.extend(tokenizer.encode(t, false)),
        }
    }
    Ok(ids)
}

/// Token ids of a dialog prompt, identical to Meta's `ChatFormat.encode_dialog_prompt`.
pub fn encode_dialog(tokenizer: &Tokenizer, messages: &[Message]) -> Result<Vec<TokenId>> {
    encode_pieces(tokenizer, &render_pieces(messages)?)
}

/// Like [`encode_dialog`], with a given format for custom tool calls.
pub fn encode_dialog_with(
    tokenizer: &Tokenizer,
    messages: &[Message],
    format: ToolPromptFormat,
) -> Result<Vec<TokenId>> {
    encode_pieces(tokenizer, &render_pieces_with(messages, format)?)
}

/// Token ids of one message (Meta's `encode_message`).
pub fn encode_message(
    tokenizer: &Tokenizer,
    message: &Message,
    format: ToolPromptFormat,
) -> Result<Vec<TokenId>> {
    encode_pieces(tokenizer, &message_pieces(message, format)?)
}
