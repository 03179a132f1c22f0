//! Running the choices of one HTTP request on the engine and collecting their events.

use std::time::Instant;

use tokio::sync::mpsc;

use llama31_engine::{
    EngineError, Event, FinishReason, Request, SubmitError, Ticket, TokenLogprob, Usage,
};

use crate::error::ApiError;
use crate::{AppState, Backend};

/// The choices of one request in flight. Dropping it cancels them all (a client that went away).
pub struct Running {
    pub rx: mpsc::UnboundedReceiver<(usize, Event)>,
    _tickets: Vec<Ticket>,
    started: Instant,
    first: bool,
    last_token: Vec<Option<Instant>>,
}

/// Submits one engine request per choice. A refusal cancels the choices already queued.
pub fn start(
    backend: &Backend,
    requests: Vec<Request>,
    started: Instant,
) -> Result<Running, ApiError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let n = requests.len();
    let mut tickets = Vec::with_capacity(n);
    for (i, req) in requests.into_iter().enumerate() {
        let tx = tx.clone();
        let sink = Box::new(move |ev: Event| tx.send((i, ev)).is_ok());
        let ticket = backend.engine.submit(req, sink).map_err(submit_error)?;
        tickets.push(ticket);
    }
    Ok(Running {
        rx,
        _tickets: tickets,
        started,
        first: true,
        last_token: vec![None; n],
    })
}

/// The 4xx/503 answer for a refused submission.
pub fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::QueueFull { queued } => ApiError::busy(format!(
            "The server is busy ({queued} requests waiting); retry later."
        )),
        SubmitError::Stopped => ApiError::busy("The engine is shutting down."),
        SubmitError::Invalid(EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens,
            context,
        }) => context_error(prompt_tokens, max_tokens, context),
        SubmitError::Invalid(e @ EngineError::TokenOutOfVocab { .. }) => {
            ApiError::field("prompt", e.to_string())
        }
        SubmitError::Invalid(e) => ApiError::invalid(None, e.to_string()),
    }
}

/// 400 stating the prompt and completion counts against the context.
pub fn context_error(prompt_tokens: usize, max_tokens: usize, context: usize) -> ApiError {
    ApiError::field(
        "messages",
        format!(
            "This model's maximum context length is {context} tokens. However, you requested \
             {} tokens ({prompt_tokens} in the prompt, {max_tokens} in the completion). Please \
             reduce the length of the prompt or the completion.",
            prompt_tokens.saturating_add(max_tokens)
        ),
    )
    .with_code("context_length_exceeded")
}

/// Checks `prompt + max_tokens <= ctx` up front (the engine checks again).
pub fn check_context(prompt: usize, max_tokens: Option<usize>, ctx: usize) -> Result<(), ApiError> {
    if prompt == 0 {
        return Err(ApiError::field("prompt", "The prompt is empty."));
    }
    let m = max_tokens.unwrap_or(1);
    if prompt.saturating_add(m) > ctx {
        return Err(context_error(prompt, m, ctx));
    }
    Ok(())
}

impl Running {
    /// The next event; records latency metrics.
    pub async fn next(&mut self, state: &AppState) -> Option<(usize, Event)> {
        let item = self.rx.recv().await?;
        if let (i, Event::Token { id, .. }) = &item {
            if *id != u32::MAX {
                let now = Instant::now();
                if self.first {
                    self.first = false;
                    state.metrics.ttft.observe(now - self.started);
                }
                if let Some(slot) = self.last_token.get_mut(*i) {
                    if let Some(prev) = slot.replace(now) {
                        state
                            .metrics
                            .per_token
                            .observe(now.saturating_duration_since(prev));
                    }
                }
            }
        }
        Some(item)
    }
}

/// One finished choice.
#[derive(Debug, Default)]
pub struct ChoiceOut {
    pub text: String,
    pub tokens: Vec<u32>,
    pub logprobs: Vec<TokenLogprob>,
    pub finish: Option<FinishReason>,
    pub usage: Usage,
}

/// Waits for every choice to finish.
pub async fn collect(
    state: &AppState,
    mut running: Running,
    n: usize,
) -> Result<Vec<ChoiceOut>, ApiError> {
    let mut out: Vec<ChoiceOut> = (0..n).map(|_| ChoiceOut::default()).collect();
    let mut done = 0;
    while done < n {
        let Some((i, ev)) = running.next(state).await else {
            return Err(ApiError::internal(
                "the engine stopped before the request finished",
            ));
        };
        let Some(c) = out.get_mut(i) else { continue };
        match ev {
            Event::Token { id, text, logprob } => {
                c.text.push_str(&text);
                if id != u32::MAX {
                    c.tokens.push(id);
                }
                c.logprobs.extend(logprob);
            }
            Event::Done { finish, usage, .. } => {
                c.finish = Some(finish);
                c.usage = usage;
                done += 1;
            }
            Event::Error(e) => return Err(ApiError::internal(e)),
        }
    }
    Ok(out)
}

/// A short random-looking id (`chatcmpl-…`, `call_…`).
pub fn new_id(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(Instant::now().elapsed().as_nanos());
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    format!("{prefix}{a:016x}{b:08x}")
}

/// Usage JSON summed over choices (the prompt counted once per distinct prompt).
pub fn usage_json(
    prompt_tokens: usize,
    completion_tokens: usize,
    cached: usize,
) -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}
