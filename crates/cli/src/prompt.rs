//! `llama31 prompt`: OpenAI-style messages rendered into the model's prompt (text or token ids).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use llama31_chat::{self as chat, PromptOptions, ToolFormat};

use crate::source::{self, Source, SourceExt};

#[derive(Args)]
pub struct PromptArgs {
    /// A tokenizer.model, a tokenizer.json, a Meta model dir, an HF model dir, a .gguf file or
    /// hf://ORG/NAME[:QUANT|/FILE] (see `llama31 pull`).
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

pub use llama31_chat::Rendered;

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
    Ok(source.chat_format(tokenizer)?.render(
        tokenizer,
        messages,
        opts,
        want == Want::TextAndIds,
    )?)
}

pub fn run(args: PromptArgs) -> Result<()> {
    let source = source::detect(&args.model)?;
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
