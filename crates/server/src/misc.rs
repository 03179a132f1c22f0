//! `/v1/models`, `/health`, `/metrics`, `/tokenize`, `/detokenize`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use llama31_chat::Message;

use crate::error::ApiError;
use crate::params::{get, opt_bool, parse_object, type_name};
use crate::{read_body, AppState};

/// `system_fingerprint`: the server's version.
pub fn fingerprint() -> String {
    format!("llama31-{}", env!("CARGO_PKG_VERSION"))
}

fn model_json(state: &AppState) -> Value {
    let ctx = state.loaded().map(|b| b.ctx());
    json!({
        "id": state.config.model_id,
        "object": "model",
        "created": state.created,
        "owned_by": "llama31",
        "max_model_len": ctx,
    })
}

/// The base model, then the served LoRA adapters (`parent`: the base).
pub async fn models(State(state): State<Arc<AppState>>) -> Response {
    let mut data = vec![model_json(&state)];
    data.extend(crate::lora::model_entries(&state));
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if id == state.config.model_id {
        return axum::Json(model_json(&state)).into_response();
    }
    match crate::lora::model_entries(&state)
        .into_iter()
        .find(|m| m["id"] == id.as_str())
    {
        Some(m) => axum::Json(m).into_response(),
        None => fail(&state, crate::lora::model_not_found(&id)),
    }
}

/// 200 `{"status":"ok"}` once the model is loaded, 503 `{"status":"loading"}` before.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        axum::Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

/// Readiness (Kubernetes `readinessProbe`): 200 `{"status":"ready"}` while the model serves, 503
/// `{"status":"loading"}` before and `{"status":"draining"}` once shutdown began.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let status = if state.is_draining() {
        "draining"
    } else if state.is_ready() {
        return axum::Json(json!({"status": "ready"})).into_response();
    } else {
        "loading"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "status": status })),
    )
        .into_response()
}

/// Liveness (Kubernetes `livenessProbe`): 200 while the process answers, loading or not.
pub async fn live() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let backend = state.loaded();
    let text = state.metrics.render(
        backend.as_ref().map(|b| b.engine.metrics()),
        state.config.max_loras,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn fail(state: &AppState, e: ApiError) -> Response {
    state.metrics.error(e.status.as_u16());
    e.into_response()
}

/// `{"content" | "prompt": text}` or `{"messages": [...], "tools": [...]}` (the chat prompt) →
/// `{"tokens", "count", "max_model_len"}`;
/// `"add_special"` (default true) adds BOS where the model does; `"with_pieces"` returns
/// `[{"id", "piece"}]`.
pub async fn tokenize(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match tokenize_inner(&state, body).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(&state, e),
    }
}

async fn tokenize_inner(state: &AppState, body: Body) -> Result<Value, ApiError> {
    let o = parse_object(&read_body(state, body).await?)?;
    let backend = state.backend()?;
    let tok = &backend.tokenizer;
    let add_special = opt_bool(&o, "add_special")?.unwrap_or(true);
    let with_pieces = opt_bool(&o, "with_pieces")?.unwrap_or(false);
    let ids = if let Some(messages) = get(&o, "messages") {
        let list = messages
            .as_array()
            .ok_or_else(|| ApiError::field("messages", "'messages' must be an array."))?;
        let messages = list
            .iter()
            .enumerate()
            .map(|(i, m)| Message::from_json(i, m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::field("messages", e.to_string()))?;
        let f = backend
            .formatter
            .as_ref()
            .ok_or_else(|| ApiError::field("messages", "This model has no chat template."))?;
        let opts = crate::tools::parse(&o)?.prompt_options();
        f.render(tok, &messages, Some(&opts), true)
            .map_err(|e| ApiError::field("messages", e.to_string()))?
            .ids
    } else {
        let (key, text) = match (get(&o, "content"), get(&o, "prompt")) {
            (Some(v), _) => ("content", v),
            (None, Some(v)) => ("prompt", v),
            (None, None) => {
                return Err(ApiError::field(
                    "content",
                    "Give 'content' (or 'prompt', or 'messages').",
                ))
            }
        };
        let text = text.as_str().ok_or_else(|| {
            ApiError::field(
                key,
                format!("'{key}' must be a string, got {}.", type_name(text)),
            )
        })?;
        let mut ids = Vec::new();
        if add_special && tok.add_bos() {
            ids.extend(tok.bos_id());
        }
        ids.extend(tok.encode(text, true));
        ids
    };
    let tokens: Vec<Value> = if with_pieces {
        ids.iter()
            .map(|&id| {
                let piece = String::from_utf8_lossy(tok.token_bytes(id).unwrap_or_default());
                json!({"id": id, "piece": piece})
            })
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(json!({"tokens": tokens, "count": ids.len(), "max_model_len": backend.ctx()}))
}

/// `{"tokens": [ids]}` → `{"content": text, "prompt": text}`.
pub async fn detokenize(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match detokenize_inner(&state, body).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(&state, e),
    }
}

async fn detokenize_inner(state: &AppState, body: Body) -> Result<Value, ApiError> {
    let o = parse_object(&read_body(state, body).await?)?;
    let backend = state.backend()?;
    let list = match get(&o, "tokens") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::field(
                "tokens",
                format!(
                    "'tokens' must be an array of token ids, got {}.",
                    type_name(v)
                ),
            ))
        }
        None => return Err(ApiError::field("tokens", "'tokens' is required.")),
    };
    let vocab = backend.tokenizer.vocab_size();
    let ids = list
        .iter()
        .map(|v| match v.as_u64() {
            Some(id) if (id as usize) < vocab => Ok(id as u32),
            _ => Err(ApiError::field(
                "tokens",
                format!("{v} is not a token id of this model (vocabulary of {vocab})."),
            )),
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let text = String::from_utf8_lossy(&backend.tokenizer.decode(&ids)).into_owned();
    Ok(json!({"content": text, "prompt": text}))
}
