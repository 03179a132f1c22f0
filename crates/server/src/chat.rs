//! `POST /v1/chat/completions`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use llama31_chat::Message;
use llama31_engine::{Adapter, Constraint, Event, FinishReason, Request, TokenLogprob};

use crate::error::ApiError;
use crate::json::{response_format, JsonConstraint};
use crate::params::{self, get, opt_bool, opt_int, parse_object, Common, Limits, Obj};
use crate::run::{self, check_context, new_id, usage_json, Running};
use crate::stream::{sse_channel, SseSender};
use crate::tools::{self, may_be_call, parse_reply, Tools};
use crate::{read_body, AppState, Backend};

pub async fn handler(State(state): State<Arc<AppState>>, body: Body) -> Response {
    state
        .metrics
        .chat_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match handle(Arc::clone(&state), body).await {
        Ok(r) => r,
        Err(e) => {
            state.metrics.error(e.status.as_u16());
            e.into_response()
        }
    }
}

/// What a chat request asks for, checked.
struct ChatRequest {
    common: Common,
    tools: Tools,
    logprobs: Option<usize>,
    prompt: Vec<u32>,
    constraint: Option<Arc<dyn Constraint>>,
}

fn prepare(state: &AppState, backend: &Backend, o: &Obj) -> Result<ChatRequest, ApiError> {
    let formatter = backend.formatter.as_ref().ok_or_else(|| {
        ApiError::invalid(
            None,
            "This model has no chat template; use /v1/completions.".to_string(),
        )
    })?;
    let messages = match get(o, "messages") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, m)| Message::from_json(i, m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::field("messages", e.to_string()))?,
        Some(Value::Array(_)) => {
            return Err(ApiError::field("messages", "'messages' must not be empty."))
        }
        Some(v) => {
            return Err(ApiError::field(
                "messages",
                format!("'messages' must be an array, got {}.", params::type_name(v)),
            ))
        }
        None => return Err(ApiError::field("messages", "'messages' is required.")),
    };
    let tools = tools::parse(o)?;
    let limits = limits(state, backend);
    let common = params::common(o, &limits, &["max_tokens", "max_completion_tokens"])?;
    let logprobs = logprobs(state, o)?;
    let grammar = match tools::forced_grammar(&tools)? {
        Some(g) => Some(g),
        None => response_format(o)?,
    };
    let constraint = grammar
        .map(|g| Arc::new(JsonConstraint::new(g, backend.token_index())) as Arc<dyn Constraint>);
    let opts = tools.prompt_options();
    let rendered = formatter
        .render(&backend.tokenizer, &messages, Some(&opts), true)
        .map_err(|e| ApiError::field("messages", e.to_string()))?;
    check_context(rendered.ids.len(), common.max_tokens, backend.ctx())?;
    Ok(ChatRequest {
        common,
        tools,
        logprobs,
        prompt: rendered.ids,
        constraint,
    })
}

pub fn limits(state: &AppState, backend: &Backend) -> Limits {
    Limits {
        max_n: state.config.max_n,
        max_stop: state.config.max_stop,
        max_stop_len: 1024,
        ctx: backend.ctx(),
        vocab: backend.vocab_size,
    }
}

fn logprobs(state: &AppState, o: &Obj) -> Result<Option<usize>, ApiError> {
    let on = opt_bool(o, "logprobs")?.unwrap_or(false);
    let top = opt_int(o, "top_logprobs", 0, state.config.max_top_logprobs as i64)?;
    match (on, top) {
        (false, Some(_)) => Err(ApiError::field(
            "top_logprobs",
            "'top_logprobs' needs 'logprobs' set to true.",
        )),
        (true, t) => Ok(Some(t.unwrap_or(0) as usize)),
        (false, None) => Ok(None),
    }
}

/// One engine request per choice (seeds `seed + i`).
pub fn engine_requests(
    backend: &Backend,
    prompt: &[u32],
    common: &Common,
    logprobs: Option<usize>,
    constraint: Option<Arc<dyn Constraint>>,
    adapter: Option<&Adapter>,
) -> Vec<Request> {
    (0..common.n)
        .map(|i| {
            let mut sampling = common.sampling.clone();
            sampling.seed = sampling.seed.map(|s| s.wrapping_add(i as u64));
            Request {
                prompt: prompt.to_vec(),
                max_tokens: common.max_tokens,
                sampling,
                stop_tokens: if common.ignore_eos {
                    Vec::new()
                } else {
                    backend.stop_tokens.clone()
                },
                stop_strings: common.stop.clone(),
                logprobs,
                constraint: constraint.clone(),
                adapter: adapter.cloned(),
            }
        })
        .collect()
}

async fn handle(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let bytes = read_body(&state, body).await?;
    let o = parse_object(&bytes)?;
    let backend = state.backend()?;
    let (model, adapter) = crate::lora::resolve_model(&state, &o)?;
    let req = prepare(&state, &backend, &o)?;
    let requests = engine_requests(
        &backend,
        &req.prompt,
        &req.common,
        req.logprobs,
        req.constraint.clone(),
        adapter.as_ref(),
    );
    drop(adapter);
    let running = run::start(&backend, requests, started)?;
    let id = new_id("chatcmpl-");
    let created = crate::unix_now();
    if req.common.stream {
        let ctx = StreamChat {
            id,
            model,
            created,
            n: req.common.n,
            tools: req.tools,
            logprobs: req.logprobs.is_some(),
            include_usage: req.common.include_usage,
            prompt_tokens: req.prompt.len(),
        };
        let (tx, resp) = sse_channel(state.config.stream_stall_timeout);
        tokio::spawn(ctx.run(tx, state, backend, running));
        return Ok(resp);
    }
    let n = req.common.n;
    let outs = run::collect(&state, running, n).await?;
    let mut choices = Vec::with_capacity(n);
    let mut completion = 0;
    let mut cached = 0;
    for (i, c) in outs.iter().enumerate() {
        completion += c.usage.completion_tokens;
        cached = cached.max(c.usage.cached_tokens);
        let reply = parse_reply(&req.tools, &c.text);
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), json!(reply.content));
        let finish = if reply.calls.is_empty() {
            finish_str(c.finish.as_ref())
        } else {
            message.insert(
                "tool_calls".into(),
                Value::Array(reply.calls.iter().map(|c| c.to_openai_json()).collect()),
            );
            "tool_calls"
        };
        choices.push(json!({
            "index": i,
            "message": message,
            "logprobs": req.logprobs.map(|_| json!({"content": logprob_content(&backend, &c.logprobs)})),
            "finish_reason": finish,
        }));
    }
    Ok(axum::Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": crate::misc::fingerprint(),
        "choices": choices,
        "usage": usage_json(req.prompt.len(), completion, cached),
    }))
    .into_response())
}

pub fn finish_str(f: Option<&FinishReason>) -> &'static str {
    f.map_or("stop", FinishReason::as_openai_str)
}

fn token_json(backend: &Backend, id: u32, logprob: f32) -> Value {
    let bytes = backend.tokenizer.token_bytes(id).unwrap_or_default();
    json!({
        "token": String::from_utf8_lossy(bytes),
        "logprob": logprob,
        "bytes": bytes,
    })
}

/// OpenAI's chat `logprobs.content` entries.
pub fn logprob_content(backend: &Backend, lps: &[TokenLogprob]) -> Vec<Value> {
    lps.iter()
        .map(|lp| {
            let mut v = token_json(backend, lp.id, lp.logprob);
            v["top_logprobs"] = Value::Array(
                lp.top
                    .iter()
                    .map(|&(id, l)| token_json(backend, id, l))
                    .collect(),
            );
            v
        })
        .collect()
}

/// The state of a streamed chat completion.
struct StreamChat {
    id: String,
    model: String,
    created: u64,
    n: usize,
    tools: Tools,
    logprobs: bool,
    include_usage: bool,
    prompt_tokens: usize,
}

#[derive(Default)]
struct ChoiceStream {
    holding: bool,
    held: String,
    lps: Vec<TokenLogprob>,
    done: bool,
}

impl StreamChat {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": crate::misc::fingerprint(),
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        } else if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    fn delta(
        &self,
        backend: &Backend,
        i: usize,
        delta: Value,
        lps: &[TokenLogprob],
        finish: Option<&str>,
    ) -> Value {
        let logprobs = if self.logprobs && !lps.is_empty() {
            json!({"content": logprob_content(backend, lps)})
        } else {
            Value::Null
        };
        self.chunk(
            json!([{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]),
            None,
        )
    }

    async fn run(
        self,
        tx: SseSender,
        state: Arc<AppState>,
        backend: Arc<Backend>,
        mut running: Running,
    ) {
        let mut choices: Vec<ChoiceStream> = (0..self.n)
            .map(|_| ChoiceStream {
                holding: self.tools.active(),
                ..ChoiceStream::default()
            })
            .collect();
        for i in 0..self.n {
            let first = self.delta(
                &backend,
                i,
                json!({"role": "assistant", "content": ""}),
                &[],
                None,
            );
            if !tx.send(&first).await {
                return;
            }
        }
        let mut completion = 0usize;
        let mut cached = 0usize;
        let mut left = self.n;
        while left > 0 {
            let Some((i, ev)) = tx.next_or_closed(&mut running, &state).await else {
                return;
            };
            let Some(c) = choices.get_mut(i) else {
                continue;
            };
            match ev {
                Event::Token { text, logprob, .. } => {
                    c.lps.extend(logprob);
                    if c.holding {
                        c.held.push_str(&text);
                        if self.tools.forced() || may_be_call(&c.held) {
                            continue;
                        }
                        c.holding = false;
                        let text = std::mem::take(&mut c.held);
                        let lps = std::mem::take(&mut c.lps);
                        if !tx
                            .send(&self.delta(&backend, i, json!({"content": text}), &lps, None))
                            .await
                        {
                            return;
                        }
                        continue;
                    }
                    if text.is_empty() && c.lps.is_empty() {
                        continue;
                    }
                    let lps = std::mem::take(&mut c.lps);
                    if !tx
                        .send(&self.delta(&backend, i, json!({"content": text}), &lps, None))
                        .await
                    {
                        return;
                    }
                }
                Event::Done { finish, usage, .. } => {
                    completion += usage.completion_tokens;
                    cached = cached.max(usage.cached_tokens);
                    let mut reason = finish.as_openai_str();
                    let lps = std::mem::take(&mut c.lps);
                    if c.holding {
                        let reply = parse_reply(&self.tools, &std::mem::take(&mut c.held));
                        let mut delta = Map::new();
                        if let Some(content) = reply.content.filter(|s| !s.is_empty()) {
                            delta.insert("content".into(), json!(content));
                        }
                        if !reply.calls.is_empty() {
                            reason = "tool_calls";
                            let calls: Vec<Value> = reply
                                .calls
                                .iter()
                                .enumerate()
                                .map(|(k, call)| {
                                    let mut v = call.to_openai_json();
                                    v["index"] = json!(k);
                                    v
                                })
                                .collect();
                            delta.insert("tool_calls".into(), Value::Array(calls));
                        }
                        if (!delta.is_empty() || !lps.is_empty())
                            && !tx
                                .send(&self.delta(&backend, i, Value::Object(delta), &lps, None))
                                .await
                        {
                            return;
                        }
                    } else if !lps.is_empty()
                        && !tx
                            .send(&self.delta(&backend, i, json!({}), &lps, None))
                            .await
                    {
                        return;
                    }
                    if !tx
                        .send(&self.delta(&backend, i, json!({}), &[], Some(reason)))
                        .await
                    {
                        return;
                    }
                    c.done = true;
                    left -= 1;
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
