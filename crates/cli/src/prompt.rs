//! `llama31 prompt`: OpenAI-style messages rendered into the model's prompt (text or token ids).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use llama31_chat::{self as chat, PromptOptions, ToolFormat};

use crate::source::{ChatFormat, Source};

#[derive(Args)]
pub struct PromptArgs {
    /// A tokenizer.model, a tokenizer.json, a Meta model dir, an HF model dir or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// JSON file with an array of OpenAI-style messages (system/user/assistant/tool).
    #[arg(long)]
    messages: PathBuf,
    /// JSON file with an array of OpenAI-style tool definitions.
    #[arg(long)]
    tools: Option<PathBuf>,
    /// Encode exactly the given messages (Meta's ChatFormat), without system-prompt preparation.
    #[arg(long)]
    raw: bool,
    /// Print token ids (a JSON array) instead of the prompt text.
    #[arg(long)]
    ids: bool,
    /// The `Today Date:` of the Llama 3.1 system prompt (default: today, e.g. "26 Jul 2024").
    #[arg(long)]
    date: Option<String>,
    /// Built-in tools to enable, comma-separated: brave_search, wolfram_alpha, code_interpreter.
    #[arg(long, value_delimiter = ',')]
    builtin_tools: Vec<String>,
    /// Put custom tool definitions in the system message instead of the first user message.
    #[arg(long)]
    tools_in_system: bool,
    /// How custom tools are described to a Llama 3.1 model.
    #[arg(long, value_enum, default_value_t = ToolStyle::Json)]
    tool_format: ToolStyle,
}

#[derive(Clone, Copy, ValueEnum)]
enum ToolStyle {
    /// JSON function definitions (the official template's wording).
    Json,
    /// `<function=NAME>{...}</function>` instructions (Meta's prompt_format.md).
    FunctionTag,
}

/// The rendered prompt: its text (special tokens as text) and, when asked for, its ids.
pub struct Rendered {
    pub text: String,
    pub ids: Vec<u32>,
}

/// Whether [`render`] should also tokenize the prompt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Text,
    TextAndIds,
}

/// Renders `messages` (+ `tools`) for the model at `source` with its chat format.
pub fn render(
    source: &Source,
    tokenizer: &llama31_tokenizer::Tokenizer,
    messages: &[chat::Message],
    opts: Option<&PromptOptions>,
    want: Want,
) -> Result<Rendered> {
    match source.chat_format(tokenizer)? {
        ChatFormat::Llama3 => {
            let dialog = match opts {
                Some(opts) => chat::prepare_dialog(messages, opts)?,
                None => messages.to_vec(),
            };
            let pieces = chat::render_pieces(&dialog)?;
            let text = chat::dialog::pieces_to_text(&pieces);
            let ids = match want {
                Want::Text => Vec::new(),
                Want::TextAndIds => chat::dialog::encode_pieces(tokenizer, &pieces)?,
            };
            Ok(Rendered { text, ids })
        }
        ChatFormat::Template(template) => {
            let tools = opts
                .and_then(|o| o.tools.as_ref())
                .map(|t| serde_json::Value::Array(t.iter().map(|d| d.raw.clone()).collect()));
            let token_text = |id: Option<u32>| {
                id.map(|id| String::from_utf8_lossy(&tokenizer.decode(&[id])).into_owned())
                    .unwrap_or_default()
            };
            let bos = token_text(tokenizer.bos_id());
            let eos = token_text(tokenizer.eos_ids().first().copied());
            let messages_json =
                serde_json::Value::Array(messages.iter().map(|m| m.to_openai_json()).collect());
            let text = template.render(
                &messages_json,
                tools.as_ref(),
                true,
                &bos,
                &eos,
                &Default::default(),
            )?;
            let mut ids = Vec::new();
            if want == Want::Text {
                return Ok(Rendered { text, ids });
            }
            if let Some(b) = tokenizer.bos_id() {
                if tokenizer.add_bos() && (bos.is_empty() || !text.starts_with(&bos)) {
                    ids.push(b);
                }
            }
            ids.extend(tokenizer.encode(&text, true));
            Ok(Rendered { text, ids })
        }
    }
}

pub fn run(args: PromptArgs) -> Result<()> {
    let source = Source::detect(&args.model)?;
    let tokenizer = source.load_tokenizer()?;
    let json = std::fs::read_to_string(&args.messages)
        .with_context(|| format!("reading messages file {}", args.messages.display()))?;
    let messages = chat::parse_messages(&json)
        .with_context(|| format!("in messages file {}", args.messages.display()))?;
    let tools = match &args.tools {
        Some(p) => {
            let json = std::fs::read_to_string(p)
                .with_context(|| format!("reading tools file {}", p.display()))?;
            Some(
                chat::parse_tools(&json)
                    .with_context(|| format!("in tools file {}", p.display()))?,
            )
        }
        None => None,
    };
    let builtin_tools = if args.builtin_tools.is_empty() {
        None
    } else {
        let mut list = Vec::new();
        for name in &args.builtin_tools {
            list.push(chat::BuiltinTool::from_name(name.trim()).with_context(|| {
                format!("unknown built-in tool {name:?} (brave_search, wolfram_alpha, code_interpreter, photogen)")
            })?);
        }
        Some(list)
    };
    let opts = PromptOptions {
        tools,
        builtin_tools,
        tools_in_user_message: !args.tools_in_system,
        tool_format: match args.tool_format {
            ToolStyle::Json => ToolFormat::Json,
            ToolStyle::FunctionTag => ToolFormat::FunctionTag,
        },
        date: args.date.clone(),
        ..PromptOptions::default()
    };
    let rendered = render(
        &source,
        &tokenizer,
        &messages,
        if args.raw { None } else { Some(&opts) },
        if args.ids {
            Want::TextAndIds
        } else {
            Want::Text
        },
    )?;
    if args.ids {
        println!("{}", serde_json::to_string(&rendered.ids)?);
    } else {
        print!("{}", rendered.text);
    }
    Ok(())
}
