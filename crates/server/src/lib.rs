//! llama31's OpenAI-compatible HTTP server: `/v1/chat/completions` (tools, streaming, JSON
//! schema output), `/v1/completions`, `/v1/models`, `/health`, `/metrics`, `/tokenize`,
//! `/detokenize`, LoRA adapters as models (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`),
//! on top of the continuous-batching [`Engine`]; a chat page for the browser at `/` ([`web`]).
//!
//! [`app`] builds the router from an [`AppState`]; the binary binds it (tests bind
//! `127.0.0.1:0`). The state starts without a model (`/health` answers 503 while loading) and
//! gets its [`Backend`] with [`AppState::set_backend`].

pub mod chat;
pub mod completions;
pub mod error;
pub mod json;
pub mod lora;
pub mod metrics;
pub mod misc;
pub mod params;
pub mod run;
pub mod serve;
pub mod stream;
pub mod tools;
pub mod web;

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use llama31_chat::ChatFormatter;
use llama31_engine::Engine;
use llama31_grammar::TokenIndex;
use llama31_tokenizer::Tokenizer;

pub use error::ApiError;
pub use metrics::ServerMetrics;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The id reported by `/v1/models` and in responses.
    pub model_id: String,
    /// Required `Authorization: Bearer` key (`None`: no authentication).
    pub api_key: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest `n`.
    pub max_n: usize,
    /// Most stop strings per request.
    pub max_stop: usize,
    /// Most `top_logprobs` per token.
    pub max_top_logprobs: usize,
    /// Most LoRA adapters served at once (vLLM's `--max-loras`).
    pub max_loras: usize,
    /// A streaming client that takes no chunk for this long while the stream's buffer is full
    /// counts as gone: its request is cancelled and its slot freed (`None`: never).
    pub stream_stall_timeout: Option<std::time::Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_id: "llama31".into(),
            api_key: None,
            max_body_bytes: 4 << 20,
            max_n: 16,
            max_stop: 16,
            max_top_logprobs: 20,
            max_loras: 16,
            stream_stall_timeout: Some(std::time::Duration::from_secs(30)),
        }
    }
}

/// The loaded model: engine, tokenizer, chat format.
pub struct Backend {
    pub engine: Engine,
    pub tokenizer: Arc<Tokenizer>,
    /// `None` for a base model without a chat template (chat completions are refused).
    pub formatter: Option<ChatFormatter>,
    /// End-of-generation tokens.
    pub stop_tokens: Vec<u32>,
    /// The model's vocabulary size (logits per position).
    pub vocab_size: usize,
    /// Loads LoRA adapters for this model (`None`: adapters cannot be loaded).
    pub lora_loader: Option<lora::LoraLoader>,
    token_index: OnceLock<Arc<TokenIndex>>,
}

impl Backend {
    pub fn new(
        engine: Engine,
        tokenizer: Arc<Tokenizer>,
        formatter: Option<ChatFormatter>,
        stop_tokens: Vec<u32>,
        vocab_size: usize,
    ) -> Self {
        Backend {
            engine,
            tokenizer,
            formatter,
            stop_tokens,
            vocab_size,
            lora_loader: None,
            token_index: OnceLock::new(),
        }
    }

    /// This backend, able to load LoRA adapters with `loader`.
    pub fn with_lora_loader(mut self, loader: lora::LoraLoader) -> Self {
        self.lora_loader = Some(loader);
        self
    }

    /// Tokens per slot.
    pub fn ctx(&self) -> usize {
        self.engine.config().ctx
    }

    /// The vocabulary as bytes for constrained decoding (built on first use).
    pub fn token_index(&self) -> Arc<TokenIndex> {
        Arc::clone(self.token_index.get_or_init(|| {
            let tok = &self.tokenizer;
            let tokens: Vec<Option<Vec<u8>>> = (0..self.vocab_size as u32)
                .map(|id| {
                    if tok.is_special(id) {
                        None
                    } else {
                        tok.token_bytes(id).map(<[u8]>::to_vec)
                    }
                })
                .collect();
            Arc::new(TokenIndex::new(&tokens))
        }))
    }
}

/// Shared state of the app.
pub struct AppState {
    pub config: ServerConfig,
    backend: OnceLock<Arc<Backend>>,
    pub metrics: ServerMetrics,
    /// Unix time the server started (`created` of the model).
    pub created: u64,
    /// LoRA adapters served besides the base model.
    pub adapters: lora::Adapters,
    /// Set when shutdown began: new work is refused, running requests finish.
    draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Arc<AppState> {
        Arc::new(AppState {
            config,
            backend: OnceLock::new(),
            metrics: ServerMetrics::default(),
            created: unix_now(),
            adapters: lora::Adapters::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Installs the loaded model (once).
    pub fn set_backend(&self, backend: Backend) {
        let _ = self.backend.set(Arc::new(backend));
    }

    /// The model, or 503 while it is loading.
    /// The model, or 503 while it is loading or once the server is draining.
    pub fn backend(&self) -> Result<Arc<Backend>, ApiError> {
        if self.is_draining() {
            return Err(ApiError::draining());
        }
        self.backend.get().cloned().ok_or_else(ApiError::loading)
    }

    /// The model once loaded, draining or not (for metrics and model listings).
    pub fn loaded(&self) -> Option<Arc<Backend>> {
        self.backend.get().cloned()
    }

    /// The model is loaded.
    pub fn is_ready(&self) -> bool {
        self.backend.get().is_some()
    }

    /// Refuses new work from now on (shutdown); requests already running finish.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The router: every endpoint, authentication (all but the probes and the chat page),
/// OpenAI-shaped 404/405.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handler))
        .route("/v1/completions", post(completions::handler))
        .route("/v1/models", get(misc::models))
        .route("/v1/models/{id}", get(misc::model))
        .route("/metrics", get(misc::metrics))
        .route("/tokenize", post(misc::tokenize))
        .route("/detokenize", post(misc::detokenize))
        .route("/v1/load_lora_adapter", post(lora::load))
        .route("/v1/unload_lora_adapter", post(lora::unload))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
        .route("/health", get(misc::health))
        .route("/v1/health", get(misc::health))
        .route("/ready", get(misc::ready))
        .route("/live", get(misc::live))
        .merge(web::routes())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{} does not take {method} requests.", uri.path()))
}

async fn fallback(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("No route for {method} {}.", uri.path()))
}

/// Checks `Authorization: Bearer KEY` in constant time (for keys of equal length).
async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.trim().as_bytes(), key.as_bytes()) {
            state.metrics.error(401);
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Reads the whole body up to the configured limit (413 beyond it).
pub async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` fails with a length-limit error past `limit`, or on a broken connection.
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid(None, format!("could not read the request body: {e}"))
        }
    })
}
