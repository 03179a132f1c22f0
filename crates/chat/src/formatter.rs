//! Dialogs → prompt text and token ids for one model: Meta's Llama 3 format (encoded natively)
//! or the model's own Jinja chat template.

use serde_json::Value;

use crate::error::Result;
use crate::messages::Message;
use crate::system_prompt::PromptOptions;
use crate::template::ChatTemplate;
use crate::{dialog, prepare_dialog};
use llama31_tokenizer::Tokenizer;

/// How dialogs are turned into a prompt for a model.
pub enum ChatFormatter {
    /// Meta's Llama 3 format, encoded natively (exactly as `ChatFormat.encode_dialog_prompt`);
    /// tools follow the official Llama 3.1 template (see [`PromptOptions`]).
    Llama3,
    /// The model's own Jinja chat template (tools passed as its `tools` variable).
    Template(Box<ChatTemplate>),
}

impl std::fmt::Debug for ChatFormatter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChatFormatter::Llama3 => "ChatFormatter::Llama3",
            ChatFormatter::Template(_) => "ChatFormatter::Template",
        })
    }
}

/// A rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub text: String,
    /// Empty when only the text was asked for.
    pub ids: Vec<u32>,
}

impl ChatFormatter {
    /// Llama 3's own format when the vocabulary has its header tokens, else `template`.
    pub fn for_tokenizer(tokenizer: &Tokenizer, template: Option<ChatTemplate>) -> Option<Self> {
        let llama3 = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
            .iter()
            .all(|t| tokenizer.token_id(t).is_some());
        if llama3 {
            return Some(ChatFormatter::Llama3);
        }
        template.map(|t| ChatFormatter::Template(Box::new(t)))
    }

    /// Renders `messages` (+ the tools of `opts`) ending with the assistant's header; with
    /// `ids`, tokenizes the text too (special-token text becomes special tokens).
    pub fn render(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        opts: Option<&PromptOptions>,
        ids: bool,
    ) -> Result<Rendered> {
        match self {
            ChatFormatter::Llama3 => {
                let dialog = match opts {
                    Some(opts) => prepare_dialog(messages, opts)?,
                    None => messages.to_vec(),
                };
                let pieces = dialog::render_pieces(&dialog)?;
                let text = dialog::pieces_to_text(&pieces);
                let ids = if ids {
                    dialog::encode_pieces(tokenizer, &pieces)?
                } else {
                    Vec::new()
                };
                Ok(Rendered { text, ids })
            }
            ChatFormatter::Template(template) => {
                let tools = opts
                    .and_then(|o| o.tools.as_ref())
                    .map(|t| Value::Array(t.iter().map(|d| d.raw.clone()).collect()));
                let token_text = |id: Option<u32>| {
                    id.map(|id| String::from_utf8_lossy(&tokenizer.decode(&[id])).into_owned())
                        .unwrap_or_default()
                };
                let bos = token_text(tokenizer.bos_id());
                let eos = token_text(tokenizer.eos_ids().first().copied());
                let messages_json =
                    Value::Array(messages.iter().map(|m| m.to_openai_json()).collect());
                let text = template.render(
                    &messages_json,
                    tools.as_ref(),
                    true,
                    &bos,
                    &eos,
                    &Default::default(),
                )?;
                let mut out = Vec::new();
                if !ids {
                    return Ok(Rendered { text, ids: out });
                }
                if let Some(b) = tokenizer.bos_id() {
                    if tokenizer.add_bos() && (bos.is_empty() || !text.starts_with(&bos)) {
                        out.push(b);
                    }
                }
                out.extend(tokenizer.encode(&text, true));
                Ok(Rendered { text, ids: out })
            }
        }
    }
}
