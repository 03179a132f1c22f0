//! `llama31 serve`: the OpenAI-compatible HTTP server. It listens at once (`/health` answers 503
//! while the model loads) and serves once the model is in memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use llama31_engine::{default_stop_tokens, Adapter, Engine, EngineConfig};
use llama31_model::{LoraAdapter, LoraSet, Model};
use llama31_server::lora::{LoraLoader, Served};
use llama31_server::serve::{serve, ServeOptions};
use llama31_server::{app, AppState, Backend, ServerConfig};

use crate::source::{self, Source, SourceExt};

#[derive(Args)]
pub struct ServeArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
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
    /// Context per slot in tokens, prompt + completion of one request, or `auto`: the longest
    /// that fits the memory plan for `--parallel` slots, up to the model's trained context (the
    /// default). A context that does not fit, or is past the trained one, is refused.
    #[arg(long, value_name = "N|auto")]
    ctx: Option<crate::load::CtxArg>,
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
    /// Most LoRA adapters served at once (`--lora NAME=PATH` and `/v1/load_lora_adapter`).
    #[arg(long, default_value_t = 16)]
    max_loras: usize,
    /// On SIGTERM or Ctrl-C: stop accepting connections, let running requests finish for up to
    /// this many seconds, then exit (status 0).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    drain_timeout: u64,
    /// Commit the KV caches' memory at startup (every slot's whole context) instead of page by
    /// page as requests fill it: the server then fails at startup, not under load, if the memory
    /// the plan counted is not there.
    #[arg(long)]
    kv_commit: bool,
    /// Seconds a client has to send a request's head (request line and headers), and that an
    /// idle keep-alive connection is kept; a slower client is disconnected. 0: no limit.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    header_timeout: u64,
    /// Seconds a client may leave the server's writes blocked (it reads nothing: a full socket
    /// or stream buffer) before it is disconnected and its request cancelled. 0: no limit.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    write_timeout: u64,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

impl ServeArgs {
    fn ctx_arg(&self) -> crate::load::Ctx {
        crate::load::Ctx::or_auto(self.ctx).with_work(llama31_model::Workload {
            sequences: self.parallel,
            step_rows: self.step_tokens.max(self.parallel),
            logit_rows: self.parallel,
        })
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.parallel == 0 || args.parallel > 256 {
        bail!(
            "--parallel must be between 1 and 256, got {}",
            args.parallel
        );
    }
    let ctx = args.ctx_arg();
    if ctx.tokens < 2 {
        bail!("--ctx must be at least 2, got {}", ctx.tokens);
    }
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("LLAMA31_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let source = source::detect_model(&args.model)?;
    let model_id = args.alias.clone().unwrap_or_else(|| {
        let spec = args.model.to_str().filter(|s| llama31_hub::is_hub_spec(s));
        match spec {
            Some(s) => s.trim_start_matches(llama31_hub::HF_SCHEME).to_string(),
            None => args
                .model
                .file_name()
                .map_or_else(|| "llama31".into(), |n| n.to_string_lossy().into_owned()),
        }
    });
    let state = AppState::new(ServerConfig {
        model_id,
        api_key,
        max_body_bytes: args.max_body,
        max_loras: args.max_loras,
        stream_stall_timeout: (args.write_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.write_timeout)),
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

    let drain = std::time::Duration::from_secs(args.drain_timeout);
    let serve_options = ServeOptions {
        header_read_timeout: (args.header_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.header_timeout)),
        write_timeout: (args.write_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.write_timeout)),
    };
    let loader_state = Arc::clone(&state);
    std::thread::Builder::new()
        .name("llama31-load".into())
        .spawn(move || {
            // A load that fails, or panics, ends the server: answering 503 forever would hide it.
            let loaded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&source, &args)));
            match loaded {
                Ok(Ok((backend, adapters))) => {
                    for (name, served) in adapters {
                        if let Err(e) = loader_state.adapters.insert(
                            &name,
                            served,
                            loader_state.config.max_loras,
                        ) {
                            eprintln!("error: --lora {name}: {}", e.message);
                            std::process::exit(2);
                        }
                    }
                    loader_state.set_backend(backend);
                    eprintln!("llama31 serve: model loaded, ready (chat page: http://{addr}/)");
                }
                Ok(Err(e)) => {
                    eprintln!("error: {}", crate::report::error_line(&e));
                    std::process::exit(2);
                }
                Err(_) => {
                    eprintln!("error: loading the model panicked (see the message above)");
                    std::process::exit(2);
                }
            }
        })?;
    let drain_state = Arc::clone(&state);
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown_signal().await;
            drain_state.start_draining();
            eprintln!(
                "llama31 serve: shutting down: no new connections; finishing running requests \
                 (up to {} s)",
                drain.as_secs()
            );
            let _ = tx.send(true);
        };
        let server = serve(listener, app(state), serve_options, signal);
        let deadline = async move {
            let _ = rx.wait_for(|&v| v).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            () = server => {}
            () = deadline => {
                eprintln!("llama31 serve: --drain-timeout reached with requests still running; exiting");
            }
        }
    });
    eprintln!("llama31 serve: stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM (what Kubernetes and systemd send to stop a server).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The model with its unnamed `--lora` adapters applied, and the named ones ready to serve.
fn load(source: &Source, args: &ServeArgs) -> Result<(Backend, Vec<(String, Served)>)> {
    let tokenizer = Arc::new(source.load_tokenizer()?);
    let formatter = match source.chat_format(&tokenizer) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(
                "chat completions disabled: {}",
                crate::report::error_line(&e)
            );
            None
        }
    };
    let (weights, named) = args.weights.split_named();
    if weights.merge_lora() && !named.is_empty() {
        bail!("--merge-lora merges the unnamed --lora adapters; served adapters (NAME=PATH) stay unmerged: pass them without --merge-lora");
    }
    let mut model = crate::load::load_model(source, Some(args.ctx_arg()), &weights)?;
    model.set_commit_kv(args.kv_commit);
    let model = Arc::new(model);
    let stop_tokens = default_stop_tokens(&tokenizer, &model.config().eos_token_ids);
    let vocab = model.config().vocab_size;
    let lora_model = Arc::clone(&model);
    let loader: LoraLoader = Arc::new(move |name: &str, path: &Path| {
        load_adapter(&lora_model, name, path, 1.0).map_err(|e| crate::report::error_line(&e))
    });
    let mut served = Vec::new();
    for spec in &named {
        let name = spec.name.clone().unwrap_or_default();
        let adapter = load_adapter(&model, &name, &spec.path, spec.scale)
            .with_context(|| format!("--lora {name}={}", spec.path.display()))?;
        eprintln!(
            "llama31 serve: LoRA adapter {} served as model {name:?} (scale {})",
            spec.path.display(),
            spec.scale
        );
        served.push((
            name,
            Served {
                adapter,
                path: spec.path.display().to_string(),
                created: llama31_server::unix_now(),
            },
        ));
    }
    let slot_ctx = args.ctx_arg().on(&model);
    let engine = Engine::start(
        model,
        Arc::clone(&tokenizer),
        EngineConfig {
            slots: args.parallel,
            ctx: slot_ctx,
            max_queue: args.max_queue,
            step_tokens: args.step_tokens,
        },
    )?;
    let backend =
        Backend::new(engine, tokenizer, formatter, stop_tokens, vocab).with_lora_loader(loader);
    Ok((backend, served))
}

/// A LoRA adapter read from `path` and made ready for `model` (unmerged), under `name`.
fn load_adapter(model: &Model, name: &str, path: &Path, scale: f32) -> Result<Adapter> {
    let adapter = LoraAdapter::load(path)?;
    let set = LoraSet::new(model, &[(&adapter, scale)])?;
    Ok(Adapter::new(name, Arc::new(set)))
}
