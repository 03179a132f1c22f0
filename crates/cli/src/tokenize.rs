//! `llama31 tokenize`: text from standard input to token ids.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::source::{self, SourceExt};

#[derive(Args)]
pub struct TokenizeArgs {
    /// A tokenizer.model, a tokenizer.json, a Meta model dir, an HF model dir, a .gguf file or
    /// hf://ORG/NAME[:QUANT|/FILE] (see `llama31 pull`).
    #[arg(long)]
    model: PathBuf,
    /// Prepend the beginning-of-text token.
    #[arg(long)]
    bos: bool,
    /// Read one JSON string per input line and print one JSON array of ids per output line.
    #[arg(long)]
    jsonl: bool,
    /// Parse special tokens written as text (e.g. `<|eot_id|>`) instead of encoding them as ordinary text.
    #[arg(long)]
    special: bool,
}

pub fn run(args: TokenizeArgs) -> Result<()> {
    let tokenizer = source::detect(&args.model)?.load_tokenizer()?;
    let bos = if args.bos {
        Some(
            tokenizer
                .bos_id()
                .context("--bos given but this tokenizer has no beginning-of-text token")?,
        )
    } else {
        None
    };
    let encode = |text: &str| -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.extend(bos);
        ids.extend(tokenizer.encode(text, args.special));
        ids
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.jsonl {
        for (n, line) in stdin.lock().lines().enumerate() {
            let line = line.context("reading standard input")?;
            let text: String = serde_json::from_str(&line)
                .with_context(|| format!("input line {} is not a JSON string", n + 1))?;
            serde_json::to_writer(&mut out, &encode(&text))?;
            out.write_all(b"\n")?;
        }
    } else {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        let text = String::from_utf8(bytes).context("standard input is not valid UTF-8")?;
        serde_json::to_writer(&mut out, &encode(&text))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
