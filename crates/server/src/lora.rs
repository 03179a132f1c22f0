//! Serving LoRA adapters: each one a model id of `/v1/models` (with `parent` = the base), picked by
//! a request's `model`; `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` (vLLM's routes
//! and bodies) add and drop them while the server runs.
//!
//! Adapters are loaded by a [`LoraLoader`] the binary installs with the model (the server never
//! sees the model type); requests hold their adapter until they finish, so an unload takes the
//! name away at once and answers when the last request using it is done.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llama31_engine::Adapter;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::params::{get, opt_str, parse_object, Obj};
use crate::{read_body, AppState};

/// Loads the adapter at a path for the loaded model, under a name.
pub type LoraLoader = Arc<dyn Fn(&str, &Path) -> Result<Adapter, String> + Send + Sync>;

/// How long an unload waits for the requests that use the adapter.
const UNLOAD_WAIT: Duration = Duration::from_secs(600);

/// An adapter being served.
#[derive(Debug, Clone)]
pub struct Served {
    pub adapter: Adapter,
    /// Where it was loaded from (`root` in `/v1/models`).
    pub path: String,
    pub created: u64,
}

/// The adapters being served, by name.
#[derive(Debug, Default)]
pub struct Adapters {
    map: RwLock<BTreeMap<String, Served>>,
}

impl Adapters {
    /// The adapters, by name.
    pub fn list(&self) -> Vec<(String, Served)> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn get(&self, name: &str) -> Option<Served> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `served` under `name` unless the name is taken or `max` adapters are served.
    pub fn insert(&self, name: &str, served: Served, max: usize) -> Result<(), ApiError> {
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        if m.contains_key(name) {
            return Err(ApiError::field(
                "lora_name",
                format!("The lora adapter '{name}' has already been loaded."),
            ));
        }
        if m.len() >= max {
            return Err(ApiError::field(
                "lora_name",
                format!("{max} adapters are loaded, the most this server serves (--max-loras); unload one first."),
            ));
        }
        m.insert(name.to_string(), served);
        Ok(())
    }

    fn remove(&self, name: &str) -> Option<Served> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }
}

/// The model a request names: the base (absent `model`, or the base's id) or a served adapter;
/// anything else is 404 in OpenAI's shape. Returns the id to answer with and the adapter.
pub fn resolve_model(state: &AppState, o: &Obj) -> Result<(String, Option<Adapter>), ApiError> {
    let base = &state.config.model_id;
    match opt_str(o, "model")? {
        None => Ok((base.clone(), None)),
        Some(m) if m == base => Ok((base.clone(), None)),
        Some(m) => match state.adapters.get(m) {
            Some(s) => Ok((m.to_string(), Some(s.adapter))),
            None => Err(model_not_found(m)),
        },
    }
}

pub fn model_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("The model `{id}` does not exist."))
        .with_code("model_not_found")
        .with_param("model")
}

/// `/v1/models` entries of the served adapters.
pub fn model_entries(state: &AppState) -> Vec<Value> {
    state
        .adapters
        .list()
        .into_iter()
        .map(|(name, s)| {
            json!({
                "id": name,
                "object": "model",
                "created": s.created,
                "owned_by": "llama31",
                "root": s.path,
                "parent": state.config.model_id,
            })
        })
        .collect()
}

fn name_field(o: &Obj) -> Result<String, ApiError> {
    match opt_str(o, "lora_name")? {
        Some(n) if !n.trim().is_empty() && n.len() <= 256 => Ok(n.to_string()),
        Some(_) => Err(ApiError::field(
            "lora_name",
            "'lora_name' must be 1 to 256 characters.",
        )),
        None => Err(ApiError::field("lora_name", "'lora_name' is required.")),
    }
}

/// `POST /v1/load_lora_adapter` `{"lora_name": NAME, "lora_path": PATH}`.
pub async fn load(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match load_inner(&state, body).await {
        Ok(msg) => (StatusCode::OK, msg).into_response(),
        Err(e) => {
            state.metrics.error(e.status.as_u16());
            e.into_response()
        }
    }
}

async fn load_inner(state: &Arc<AppState>, body: Body) -> Result<String, ApiError> {
    let bytes = read_body(state, body).await?;
    let o = parse_object(&bytes)?;
    let name = name_field(&o)?;
    let path = match opt_str(&o, "lora_path")? {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => return Err(ApiError::field("lora_path", "'lora_path' is required.")),
    };
    if name == state.config.model_id {
        return Err(ApiError::field(
            "lora_name",
            format!("'{name}' is the base model's id."),
        ));
    }
    if state.adapters.get(&name).is_some() {
        return Err(ApiError::field(
            "lora_name",
            format!("The lora adapter '{name}' has already been loaded."),
        ));
    }
    let backend = state.backend()?;
    let Some(loader) = backend.lora_loader.clone() else {
        return Err(ApiError::invalid(
            None,
            "This server cannot load LoRA adapters.",
        ));
    };
    let (n, p) = (name.clone(), path.clone());
    // Reading and checking an adapter is file I/O and arithmetic: off the async workers.
    let adapter = tokio::task::spawn_blocking(move || loader(&n, Path::new(&p)))
        .await
        .map_err(|e| ApiError::internal(format!("loading the adapter: {e}")))?
        .map_err(|e| ApiError::field("lora_path", e))?;
    let served = Served {
        adapter,
        path,
        created: crate::unix_now(),
    };
    state
        .adapters
        .insert(&name, served, state.config.max_loras)?;
    tracing::info!(adapter = %name, "LoRA adapter loaded");
    Ok(format!(
        "Success: LoRA adapter '{name}' added successfully."
    ))
}

/// `POST /v1/unload_lora_adapter` `{"lora_name": NAME}`: the name is gone at once; the answer
/// comes when no request uses the adapter any more.
pub async fn unload(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match unload_inner(&state, body).await {
        Ok(msg) => (StatusCode::OK, msg).into_response(),
        Err(e) => {
            state.metrics.error(e.status.as_u16());
            e.into_response()
        }
    }
}

async fn unload_inner(state: &Arc<AppState>, body: Body) -> Result<String, ApiError> {
    let bytes = read_body(state, body).await?;
    let o = parse_object(&bytes)?;
    let name = name_field(&o)?;
    if get(&o, "lora_int_id").is_some_and(|v| !v.is_null() && !v.is_u64()) {
        return Err(ApiError::field(
            "lora_int_id",
            "'lora_int_id' must be an integer.",
        ));
    }
    let Some(served) = state.adapters.remove(&name) else {
        return Err(
            ApiError::not_found(format!("The lora adapter '{name}' cannot be found."))
                .with_param("lora_name"),
        );
    };
    let start = Instant::now();
    // This copy is one holder; requests in flight hold the others.
    while served.adapter.holders() > 1 && start.elapsed() < UNLOAD_WAIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(adapter = %name, waited_ms = start.elapsed().as_millis() as u64, "LoRA adapter unloaded");
    Ok(format!(
        "Success: LoRA adapter '{name}' removed successfully."
    ))
}
