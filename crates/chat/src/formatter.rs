//! Dialogs → prompt text and token ids for one model: Meta's Llama 3 format (encoded natively)
//! or the model's own Jinja chat template.

use serde_json::Value;

use crate::error::Result;
use crate::mask::{with_masking, Masker};
use crate::messages::{Content, Message, Role, ToolDefinition};
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

/// The instructions and definitions [`tools_system_text`] puts before the system message.
pub const TOOLS_PREAMBLE: &str = "You can call the following tools. To call one, reply with \
     only a JSON object {\"name\": <tool name>, \"parameters\": <arguments object>} and nothing \
     else (a JSON list of such objects calls several). Otherwise reply as usual.\n\nTools:";

/// The text that describes `tools` to a model whose chat template does not render them:
/// [`TOOLS_PREAMBLE`], then one line of JSON per tool (`{"name", "description", "parameters"}`).
pub fn tools_system_text(tools: &[ToolDefinition]) -> String {
    let mut text = TOOLS_PREAMBLE.to_string();
    for t in tools {
        let mut def = serde_json::Map::new();
        def.insert("name".into(), Value::String(t.name.clone()));
        if let Some(d) = &t.description {
            def.insert("description".into(), Value::String(d.clone()));
        }
        def.insert("parameters".into(), t.parameters.clone());
        text.push('\n');
        text.push_str(&Value::Object(def).to_string());
    }
    text
}

/// `messages` with [`tools_system_text`] before the first system message's text (or as a new
/// first system message).
fn with_tools_in_system(messages: &[Message], tools: &[ToolDefinition]) -> Vec<Message> {
    let tools_text = tools_system_text(tools);
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(m) if m.role == Role::System => {
            let own = match &m.content {
                Content::Text(t) => t.clone(),
                Content::Parts(p) => p.concat(),
                Content::Json(v) => v.to_string(),
            };
            m.content = Content::Text(format!("{tools_text}\n\n{own}"));
        }
        _ => out.insert(0, Message::system(tools_text)),
    }
    out
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
                let token_text = |id: Option<u32>| {
                    id.map(|id| String::from_utf8_lossy(&tokenizer.decode(&[id])).into_owned())
                        .unwrap_or_default()
                };
                let bos = token_text(tokenizer.bos_id());
                let eos = token_text(tokenizer.eos_ids().first().copied());
                // Request values go in masked: only the template's own text can become a
                // control token (see `mask`).
                let mut masker = Masker::new(tokenizer);
                let tools = opts
                    .and_then(|o| o.tools.as_ref())
                    .map(|t| Value::Array(t.iter().map(|d| d.raw.clone()).collect()))
                    .map(|t| masker.mask_value(&t))
                    .transpose()?;
                let as_json =
                    |ms: &[Message]| Value::Array(ms.iter().map(|m| m.to_openai_json()).collect());
                let render = |messages: &Value, tools: Option<&Value>| {
                    with_masking(|| {
                        template.render(messages, tools, true, &bos, &eos, &Default::default())
                    })
                };
                let masked = masker.mask_value(&as_json(messages))?;
                let mut rendered = render(&masked, tools.as_ref())?;
                let defs = opts.and_then(|o| o.tools.as_deref()).unwrap_or_default();
                if !defs.is_empty() && rendered == render(&masked, None)? {
                    // The template ignores `tools`: the model still learns of them, from the
                    // system message, in the format the tool-call parser reads.
                    tracing::info!(
                        tools = defs.len(),
                        "the chat template does not render tools; their definitions go into the \
                         system message"
                    );
                    let with_tools =
                        masker.mask_value(&as_json(&with_tools_in_system(messages, defs)))?;
                    rendered = render(&with_tools, None)?;
                }
                if !masker.is_empty() {
                    tracing::debug!(
                        "special-token look-alikes in the request are rendered as text"
                    );
                }
                let (text, plain) = masker.unmask(&rendered);
                let mut out = Vec::new();
                if !ids {
                    return Ok(Rendered { text, ids: out });
                }
                if let Some(b) = tokenizer.bos_id() {
                    if tokenizer.add_bos() && (bos.is_empty() || !text.starts_with(&bos)) {
                        out.push(b);
                    }
                }
                out.extend(tokenizer.encode_with_plain_spans(&text, &plain));
                Ok(Rendered { text, ids: out })
            }
        }
    }
}
