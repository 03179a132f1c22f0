//! `POST /v1/completions`: plain text completion of a prompt (a string or token ids).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use llama31_engine::{Constraint, Event, TokenLogprob};

use crate::chat::{engine_requests, finish_str, limits};
use crate::error::ApiError;
use crate::json::{response_format, JsonConstraint};
use crate::params::{self, get, opt_bool, opt_int, parse_object, Obj};
use crate::run::{self, check_context, new_id, usage_json, Running};
use crate::stream::{sse_channel, SseSender};
use crate::{read_body, AppState, Backend};

/// Most prompts in one request.
const MAX_PROMPTS: usize = 16;

pub async fn handler(State(state): State<Arc<AppState>>, body: Body) -> Response {
    state
        .metrics
        .completion_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match handle(Arc::clone(&state), body).await {
        Ok(r) => r,
        Err(e) => {
            state.metrics.error(e.status.as_u16());
            e.into_response()
        }
    }
}

/// Token ids from a JSON array (each within the vocabulary).
fn ids(list: &[Value], vocab: usize) -> Result<Vec<u32>, ApiError> {
    list.iter()
        .map(|v| match v.as_u64() {
            Some(id) if (id as usize) < vocab && id <= u64::from(u32::MAX) => Ok(id as u32),
            _ => Err(ApiError::field(
                "prompt",
                format!(
                    "'prompt' token {v} is not a token id of this model (vocabulary of {vocab})."
                ),
            )),
        })
        .collect()
}

/// The prompts of a request as token ids.
fn prompts(backend: &Backend, o: &Obj) -> Result<Vec<Vec<u32>>, ApiError> {
    let tok = &backend.tokenizer;
    let encode = |text: &str| {
        let mut out = Vec::new();
        if tok.add_bos() {
            out.extend(tok.bos_id());
        }
        out.extend(tok.encode(text, true));
        out
    };
    let vocab = backend.vocab_size;
    let list = match get(o, "prompt") {
        None => return Err(ApiError::field("prompt", "'prompt' is required.")),
        Some(Value::String(s)) => vec![encode(s)],
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::field("prompt", "'prompt' must not be empty."))
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => vec![ids(a, vocab)?],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .map(|s| encode(s.as_str().unwrap_or_default()))
            .collect(),
        Some(Value::Array(a)) if a.iter().all(Value::is_array) => a
            .iter()
            .map(|v| ids(v.as_array().map_or(&[][..], Vec::as_slice), vocab))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ApiError::field(
                "prompt",
                format!(
                    "'prompt' must be a string, an array of strings, or token ids; got {}.",
                    params::type_name(v)
                ),
            ))
        }
    };
    if list.len() > MAX_PROMPTS {
        return Err(ApiError::field(
            "prompt",
            format!("At most {MAX_PROMPTS} prompts per request."),
        ));
    }
    Ok(list)
}

async fn handle(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let bytes = read_body(&state, body).await?;
    let o = parse_object(&bytes)?;
    let backend = state.backend()?;
    let (model, adapter) = crate::lora::resolve_model(&state, &o)?;
    let prompts = prompts(&backend, &o)?;
    let mut common = params::common(&o, &limits(&state, &backend), &["max_tokens"])?;
    if get(&o, "max_tokens").is_none() {
        common.max_tokens = Some(16); // OpenAI's default for this endpoint
    }
    if get(&o, "suffix").is_some() {
        return Err(ApiError::field("suffix", "'suffix' is not supported."));
    }
    if opt_int(&o, "best_of", 1, 1).is_err() {
        return Err(ApiError::field(
            "best_of",
            "'best_of' other than 1 is not supported.",
        ));
    }
    let echo = opt_bool(&o, "echo")?.unwrap_or(false);
    let logprobs =
        opt_int(&o, "logprobs", 0, state.config.max_top_logprobs as i64)?.map(|k| k as usize);
    if echo && logprobs.is_some() {
        return Err(ApiError::field(
            "echo",
            "'echo' together with 'logprobs' is not supported.",
        ));
    }
    if prompts.len() * common.n > state.config.max_n {
        return Err(ApiError::field(
            "n",
            format!("prompts × n must be at most {}.", state.config.max_n),
        ));
    }
    let constraint = response_format(&o)?
        .map(|g| Arc::new(JsonConstraint::new(g, backend.token_index())) as Arc<dyn Constraint>);
    let mut requests = Vec::new();
    for p in &prompts {
        check_context(p.len(), common.max_tokens, backend.ctx())?;
        requests.extend(engine_requests(
            &backend,
            p,
            &common,
            logprobs,
            constraint.clone(),
            adapter.as_ref(),
        ));
    }
    drop(adapter);
    let echoes: Vec<String> = if echo {
        prompts
            .iter()
            .map(|p| String::from_utf8_lossy(&backend.tokenizer.decode(p)).into_owned())
            .collect()
    } else {
        vec![String::new(); prompts.len()]
    };
    let prompt_tokens: usize = prompts.iter().map(Vec::len).sum();
    let total = requests.len();
    let running = run::start(&backend, requests, started)?;
    let ctx = TextCtx {
        id: new_id("cmpl-"),
        model,
        created: crate::unix_now(),
        n: common.n,
        total,
        echoes,
        logprobs: logprobs.is_some(),
        include_usage: common.include_usage,
        prompt_tokens,
    };
    if common.stream {
        let (tx, resp) = sse_channel(state.config.stream_stall_timeout);
        tokio::spawn(ctx.stream(tx, state, backend, running));
        return Ok(resp);
    }
    let outs = run::collect(&state, running, total).await?;
    let mut completion = 0;
    let mut cached = 0;
    let choices: Vec<Value> = outs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            completion += c.usage.completion_tokens;
            cached = cached.max(c.usage.cached_tokens);
            let echo = &ctx.echoes[i / ctx.n];
            json!({
                "index": i,
                "text": format!("{echo}{}", c.text),
                "logprobs": ctx.logprobs.then(|| legacy_logprobs(&backend, &c.logprobs, echo.len())),
                "finish_reason": finish_str(c.finish.as_ref()),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "id": ctx.id,
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.model,
        "system_fingerprint": crate::misc::fingerprint(),
        "choices": choices,
        "usage": usage_json(prompt_tokens, completion, cached),
    }))
    .into_response())
}

/// The legacy completions `logprobs` object.
fn legacy_logprobs(backend: &Backend, lps: &[TokenLogprob], offset: usize) -> Value {
    let text = |id: u32| {
        String::from_utf8_lossy(backend.tokenizer.token_bytes(id).unwrap_or_default()).into_owned()
    };
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top = Vec::new();
    let mut offsets = Vec::new();
    let mut pos = offset;
    for lp in lps {
        let t = text(lp.id);
        offsets.push(pos);
        pos += t.len();
        tokens.push(Value::String(t));
        token_logprobs.push(json!(lp.logprob));
        let mut m = Map::new();
        for &(id, l) in &lp.top {
            m.insert(text(id), json!(l));
        }
        top.push(Value::Object(m));
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets})
}

struct TextCtx {
    id: String,
    model: String,
    created: u64,
    n: usize,
    total: usize,
    echoes: Vec<String>,
    logprobs: bool,
    include_usage: bool,
    prompt_tokens: usize,
}

impl TextCtx {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": crate::misc::fingerprint(),
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }

    fn text_chunk(&self, i: usize, text: &str, lps: Option<Value>, finish: Option<&str>) -> Value {
        self.chunk(
            json!([{"index": i, "text": text, "logprobs": lps, "finish_reason": finish}]),
            None,
        )
    }

    async fn stream(
        self,
        tx: SseSender,
        state: Arc<AppState>,
        backend: Arc<Backend>,
        mut running: Running,
    ) {
        for i in 0..self.total {
            let echo = &self.echoes[i / self.n];
            if !echo.is_empty() && !tx.send(&self.text_chunk(i, echo, None, None)).await {
                return;
            }
        }
        let mut offsets = vec![0usize; self.total];
        let (mut left, mut completion, mut cached) = (self.total, 0usize, 0usize);
        while left > 0 {
            let Some((i, ev)) = tx.next_or_closed(&mut running, &state).await else {
                return;
            };
            match ev {
                Event::Token { text, logprob, .. } => {
                    let lps = match (&logprob, self.logprobs) {
                        (Some(lp), true) => {
                            let v = legacy_logprobs(&backend, std::slice::from_ref(lp), offsets[i]);
                            Some(v)
                        }
                        _ => None,
                    };
                    offsets[i] += text.len();
                    if (text.is_empty() && lps.is_none())
                        || tx.send(&self.text_chunk(i, &text, lps, None)).await
                    {
                        continue;
                    }
                    return;
                }
                Event::Done { finish, usage, .. } => {
                    completion += usage.completion_tokens;
                    cached = cached.max(usage.cached_tokens);
                    left -= 1;
                    if !tx
                        .send(&self.text_chunk(i, "", None, Some(finish.as_openai_str())))
                        .await
                    {
                        return;
                    }
                }
                Event::Error(e) => {
                    tx.send(&ApiError::internal(e).body()).await;
                    tx.done().await;
                    return;
                }
            }
        }
        if self.include_usage {
            let usage = usage_json(self.prompt_tokens, completion, cached);
            if !tx.send(&self.chunk(json!([]), Some(usage))).await {
                return;
            }
        }
        tx.done().await;
    }
}
