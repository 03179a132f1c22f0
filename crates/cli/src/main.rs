//! The `llama31` command-line tool: a thin layer that parses arguments and wires the library crates.

mod bench;
mod eval;
mod generate;
mod hub;
mod info;
mod load;
mod perplexity;
mod prompt;
mod quantize;
mod report;
mod serve;
mod source;
mod tokenize;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run Meta's Llama 3.1 models: tokenize, format dialogs, generate, serve and evaluate.
#[derive(Parser)]
#[command(name = "llama31", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tokenize standard input and print the ids as a JSON array.
    Tokenize(tokenize::TokenizeArgs),
    /// Render OpenAI-style messages into the model's prompt (text, or ids with --ids).
    Prompt(prompt::PromptArgs),
    /// Generate a reply to one prompt, streamed (chat format for chat models unless --raw).
    Run(generate::RunArgs),
    /// Chat interactively with a model.
    Chat(generate::ChatArgs),
    /// Score a text file: per-token negative log-likelihood and perplexity.
    Perplexity(perplexity::PerplexityArgs),
    /// Show what a model path holds: config, tensors, tokenizer, chat template, provenance.
    Info(info::InfoArgs),
    /// Measure prefill and decode speed (like llama-bench).
    Bench(bench::BenchArgs),
    /// Write a quantized GGUF (llama.cpp's type mixes) from a GGUF, HF or Meta model.
    Quantize(quantize::QuantizeArgs),
    /// Serve the model over an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Evaluate a model on MMLU, HumanEval or MATH.
    Eval(eval::EvalArgs),
    /// Download a model from the Hugging Face hub into its cache; prints the local path.
    Pull(hub::PullArgs),
    /// List the models in the Hugging Face hub cache.
    List(hub::ListArgs),
    /// Remove one repo from the Hugging Face hub cache.
    Rm(hub::RmArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LLAMA31_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tokenize(args) => tokenize::run(args),
        Command::Prompt(args) => prompt::run(args),
        Command::Run(args) => generate::run(args),
        Command::Chat(args) => generate::chat(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Pull(args) => hub::pull(args),
        Command::List(args) => hub::list(args),
        Command::Rm(args) => hub::rm(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", report::error_line(&err));
            ExitCode::from(2)
        }
    }
}
