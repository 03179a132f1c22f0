//! `llama31 serve`: the OpenAI-compatible HTTP server. It listens at once (`/health` answers 503
//! while the model loads) and serves once the model is in memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use llama31_engine::{default_stop_tokens, Engine, EngineConfig};
use llama31_server::{app, AppState, Backend, ServerConfig};

use crate::source::{self, Source, SourceExt};

#[derive(Args)]
pub struct ServeArgs {
    /// A .gguf file, an HF model dir or a Meta model dir.
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences served at once (continuous batching slots).
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Context per slot in tokens (prompt + completion of one request; clamped to the model's).
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// API key clients must send as `Authorization: Bearer KEY` (default: $LLAMA31_API_KEY; none
    /// if unset).
    #[arg(long)]
    api_key: Option<String>,
    /// Requests that may wait for a slot; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Tokens one engine step may process (decode tokens plus prompt chunks).
    #[arg(long, default_value_t = 256)]
    step_tokens: usize,
    /// The model id reported to clients (default: the file or directory name).
    #[arg(long)]
    alias: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.parallel == 0 || args.parallel > 256 {
        bail!(
            "--parallel must be between 1 and 256, got {}",
            args.parallel
        );
    }
    if args.ctx < 2 {
        bail!("--ctx must be at least 2, got {}", args.ctx);
    }
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("LLAMA31_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let source = source::detect_model(&args.model)?;
    let model_id = args.alias.clone().unwrap_or_else(|| {
        args.model
            .file_name()
            .map_or_else(|| "llama31".into(), |n| n.to_string_lossy().into_owned())
    });
    let state = AppState::new(ServerConfig {
        model_id,
        api_key,
        max_body_bytes: args.max_body,
        ..ServerConfig::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((
            args.host.as_str(),
            args.port,
        )))
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr: SocketAddr = listener.local_addr()?;
    eprintln!(
        "llama31 serve: listening on http://{addr} (loading {})",
        args.model.display()
    );

    let loader_state = Arc::clone(&state);
    std::thread::Builder::new()
        .name("llama31-load".into())
        .spawn(move || {
            // A load that fails, or panics, ends the server: answering 503 forever would hide it.
            let loaded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&source, &args)));
            match loaded {
                Ok(Ok(backend)) => {
                    loader_state.set_backend(backend);
                    eprintln!("llama31 serve: model loaded, ready");
                }
                Ok(Err(e)) => {
                    eprintln!("error: {e:#}");
                    std::process::exit(2);
                }
                Err(_) => {
                    eprintln!("error: loading the model panicked (see the message above)");
                    std::process::exit(2);
                }
            }
        })?;
    rt.block_on(async move {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })
    .context("serving")?;
    Ok(())
}

fn load(source: &Source, args: &ServeArgs) -> Result<Backend> {
    let tokenizer = Arc::new(source.load_tokenizer()?);
    let formatter = match source.chat_format(&tokenizer) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("chat completions disabled: {e:#}");
            None
        }
    };
    let model = crate::load::load_model(source, Some(args.ctx), &args.weights)?;
    let stop_tokens = default_stop_tokens(&tokenizer, &model.config().eos_token_ids);
    let vocab = model.config().vocab_size;
    let engine = Engine::start(
        Arc::new(model),
        Arc::clone(&tokenizer),
        EngineConfig {
            slots: args.parallel,
            ctx: args.ctx,
            max_queue: args.max_queue,
            step_tokens: args.step_tokens,
        },
    )?;
    Ok(Backend::new(
        engine,
        tokenizer,
        formatter,
        stop_tokens,
        vocab,
    ))
}
