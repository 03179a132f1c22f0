//! Continuous batching: a fixed set of slots (one KV cache each) served by one engine thread.
//!
//! Every step runs one forward pass over all active sequences ([`Model::forward_batch`]): one
//! token for each sequence that is decoding, plus chunks of the prompts still being prefilled,
//! within a per-step token budget, so a long prompt never stalls the others for long. A request
//! joins a free slot as soon as one is there (the slot whose cached tokens share the longest
//! prefix with its prompt, whose keys and values are then reused) and leaves it when it finishes
//! or is cancelled. Requests beyond the slots wait in a bounded queue.
//!
//! Each output row of a step is computed exactly as it would be alone (the model's kernels do not
//! depend on the batch size, and every request has its own sampler and seed), so a request gives
//! the same tokens whether it runs alone or beside others.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use llama31_model::{BatchSeq, KvCache, LogitsMode, Model, Scratch};
use llama31_tokenizer::Tokenizer;

use crate::constraint::{Constraint, ConstraintMatcher};
use crate::error::EngineError;
use crate::generate::{check_request, FinishReason, Usage};
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::TextOut;

/// Sizes of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences served at once (each gets a KV cache of `ctx` positions).
    pub slots: usize,
    /// Positions per slot (prompt + completion of one request).
    pub ctx: usize,
    /// Requests that may wait for a slot; more are refused with [`SubmitError::QueueFull`].
    pub max_queue: usize,
    /// Tokens one step may run in all (decode tokens first, then prompt chunks).
    pub step_tokens: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            slots: 4,
            ctx: 4096,
            max_queue: 64,
            step_tokens: 256,
        }
    }
}

/// One completion request, tokenized.
#[derive(Debug, Clone)]
pub struct Request {
    /// The prompt (BOS and chat formatting included); not empty.
    pub prompt: Vec<u32>,
    /// Most tokens to generate (the end token counts); `None`: until the slot is full.
    pub max_tokens: Option<usize>,
    /// How to pick tokens.
    pub sampling: SamplingParams,
    /// Tokens that end generation (not part of the output).
    pub stop_tokens: Vec<u32>,
    /// Strings that end generation (not part of the output).
    pub stop_strings: Vec<String>,
    /// Report the chosen token's log-probability and this many alternatives per token.
    pub logprobs: Option<usize>,
    /// Only tokens that keep the output a valid prefix of this language are sampled.
    pub constraint: Option<Arc<dyn Constraint>>,
}

impl Request {
    /// A request with default sampling and no stop rules.
    pub fn new(prompt: Vec<u32>) -> Self {
        Self {
            prompt,
            max_tokens: None,
            sampling: SamplingParams::default(),
            stop_tokens: Vec::new(),
            stop_strings: Vec::new(),
            logprobs: None,
            constraint: None,
        }
    }
}

/// Log-probabilities of one sampled token (of the model's distribution, before sampling
/// adjustments), with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
    /// `(id, logprob)`, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// What the engine reports about a request, in order: `Token`s, then one `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum Event {
    /// A generated token (the end token is not reported) and the text it made safe to show
    /// (may be empty: held back while it could become a stop string or a broken character).
    Token {
        id: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// Generation ended.
    Done {
        finish: FinishReason,
        usage: Usage,
        seed: u64,
    },
    /// The request failed inside the engine.
    Error(String),
}

/// Receives a request's events; returns `false` when nobody listens any more (the request is
/// then cancelled).
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request is invalid (context, token ids, sampling values, stop strings).
    #[error(transparent)]
    Invalid(#[from] EngineError),
    /// The queue already holds `max_queue` waiting requests.
    #[error("the server is busy: {queued} requests are waiting already")]
    QueueFull { queued: usize },
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

/// Cancels its request when cancelled explicitly or dropped (a client that went away).
#[derive(Debug)]
pub struct Ticket {
    cancel: Arc<AtomicBool>,
}

impl Ticket {
    /// Stops the request at the next step; its slot is freed without a `Done` event.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Counters for monitoring (all since start).
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub requests: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub cached_prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub cancelled: AtomicU64,
    pub steps: AtomicU64,
    /// Requests waiting for a slot now.
    pub queued: AtomicUsize,
    /// Requests in a slot now.
    pub active: AtomicUsize,
}

struct Job {
    req: Request,
    max_tokens: usize,
    sink: Sink,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    metrics: EngineMetrics,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a consistent queue (pushes and pops only).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The serving engine: owns the model, the slots and the engine thread.
pub struct Engine {
    shared: Arc<Shared>,
    config: EngineConfig,
    vocab: usize,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Allocates `config.slots` KV caches of `config.ctx` positions (clamped to the model's
    /// context) and starts the engine thread.
    pub fn start(
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        mut config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let model_ctx = model.config().max_seq_len.min(model.max_seq_len());
        config.ctx = config.ctx.clamp(1, model_ctx.max(1));
        config.slots = config.slots.max(1);
        config.step_tokens = config.step_tokens.max(config.slots);
        let mut slots = Vec::with_capacity(config.slots);
        for _ in 0..config.slots {
            slots.push(Slot {
                cache: model.new_cache(config.ctx)?,
                cached: Vec::new(),
                active: None,
            });
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            metrics: EngineMetrics::default(),
        });
        let vocab = model.config().vocab_size;
        let worker = Worker {
            model,
            tokenizer,
            shared: Arc::clone(&shared),
            config: config.clone(),
            slots,
            scratch: Scratch::default(),
            logits: Vec::new(),
            rr: 0,
            bytes: Vec::new(),
            emit: String::new(),
        };
        let thread = std::thread::Builder::new()
            .name("llama31-engine".into())
            .spawn(move || worker.run())
            .map_err(|e| EngineError::Model(Box::new(e)))?;
        tracing::info!(
            slots = config.slots,
            ctx = config.ctx,
            max_queue = config.max_queue,
            "engine started"
        );
        Ok(Engine {
            shared,
            config,
            vocab,
            thread: Some(thread),
        })
    }

    /// The effective configuration (ctx clamped to the model).
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters for monitoring.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.shared.metrics
    }

    /// Checks `req` (context, ids, sampling values, stop strings) and queues it; its events go to
    /// `sink` from the engine thread. Dropping the returned ticket cancels the request.
    pub fn submit(&self, req: Request, sink: Sink) -> Result<Ticket, SubmitError> {
        let max_tokens = check_request(&req.prompt, req.max_tokens, self.vocab, self.config.ctx)?;
        Sampler::new(&req.sampling, self.vocab).map_err(EngineError::from)?;
        TextOut::new(&req.stop_strings)?;
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut q = self.shared.lock();
            if q.shutdown {
                return Err(SubmitError::Stopped);
            }
            if q.jobs.len() >= self.config.max_queue {
                return Err(SubmitError::QueueFull {
                    queued: q.jobs.len(),
                });
            }
            q.jobs.push_back(Job {
                req,
                max_tokens,
                sink,
                cancel: Arc::clone(&cancel),
            });
            self.shared
                .metrics
                .queued
                .store(q.jobs.len(), Ordering::Relaxed);
        }
        self.shared.metrics.requests.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        Ok(Ticket { cancel })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request in a slot.
struct Active {
    job: Job,
    sampler: Sampler,
    text: TextOut,
    constraint: Option<Box<dyn ConstraintMatcher>>,
    /// Next prompt index to prefill (== prompt.len() once decoding).
    prompt_pos: usize,
    /// The sampled token to run next.
    pending: Option<u32>,
    usage: Usage,
}

struct Slot {
    cache: KvCache,
    /// Tokens whose keys and values the cache holds, in position order.
    cached: Vec<u32>,
    active: Option<Active>,
}

struct Worker {
    model: Arc<Model>,
    tokenizer: Arc<Tokenizer>,
    shared: Arc<Shared>,
    config: EngineConfig,
    slots: Vec<Slot>,
    scratch: Scratch,
    logits: Vec<f32>,
    /// Round-robin start for prompt chunks.
    rr: usize,
    bytes: Vec<u8>,
    emit: String,
}

/// What one slot runs in a step.
struct Planned {
    slot: usize,
    start: usize,
    len: usize,
    /// The run ends at the last prompt token or is a decode token: logits wanted.
    sample: bool,
}

impl Worker {
    fn run(mut self) {
        loop {
            if !self.admit() {
                return;
            }
            self.drop_cancelled();
            let plan = self.plan();
            if plan.is_empty() {
                continue;
            }
            self.step(&plan);
        }
    }

    /// Moves queued jobs into free slots; waits while there is nothing to do. `false` on
    /// shutdown.
    fn admit(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut q = shared.lock();
        loop {
            if q.shutdown {
                return false;
            }
            // Jobs cancelled while waiting never take a slot.
            let before = q.jobs.len();
            q.jobs.retain(|j| !j.cancel.load(Ordering::Relaxed));
            let dropped = before - q.jobs.len();
            if dropped > 0 {
                shared
                    .metrics
                    .cancelled
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
            while let Some(free) = self.best_free_slot(q.jobs.front().map(|j| &j.req.prompt[..])) {
                let Some(job) = q.jobs.pop_front() else { break };
                self.assign(free, job);
            }
            shared.metrics.queued.store(q.jobs.len(), Ordering::Relaxed);
            let active = self.slots.iter().filter(|s| s.active.is_some()).count();
            shared.metrics.active.store(active, Ordering::Relaxed);
            if active > 0 {
                return true;
            }
            q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The free slot sharing the longest prefix with `prompt` (`None` if no slot is free or
    /// there is no prompt).
    fn best_free_slot(&self, prompt: Option<&[u32]>) -> Option<usize> {
        let prompt = prompt?;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .max_by_key(|(i, s)| (common_prefix(&s.cached, prompt), usize::MAX - i))
            .map(|(i, _)| i)
    }

    fn assign(&mut self, slot: usize, job: Job) {
        let vocab = self.model.config().vocab_size;
        let s = &mut self.slots[slot];
        let prompt = &job.req.prompt;
        // At least the last prompt token runs, to get its logits.
        let common = common_prefix(&s.cached, prompt).min(prompt.len() - 1);
        s.cached.truncate(common);
        let (sampler, text) = match (
            Sampler::new(&job.req.sampling, vocab),
            TextOut::new(&job.req.stop_strings),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            // `submit` validated both; report rather than panic if that ever changes.
            (Err(e), _) => return fail(job, &e.to_string()),
            (_, Err(e)) => return fail(job, &e.to_string()),
        };
        let mut sampler = sampler;
        sampler.accept_prompt(prompt);
        let m = &self.shared.metrics;
        m.prompt_tokens
            .fetch_add(prompt.len() as u64, Ordering::Relaxed);
        m.cached_prompt_tokens
            .fetch_add(common as u64, Ordering::Relaxed);
        tracing::debug!(
            slot,
            prompt = prompt.len(),
            cached = common,
            "request admitted"
        );
        let constraint = job.req.constraint.as_ref().map(|c| c.matcher());
        s.active = Some(Active {
            usage: Usage {
                prompt_tokens: prompt.len(),
                completion_tokens: 0,
                total_tokens: prompt.len(),
                cached_tokens: common,
            },
            sampler,
            text,
            constraint,
            prompt_pos: common,
            pending: None,
            job,
        });
    }

    fn drop_cancelled(&mut self) {
        for s in &mut self.slots {
            if s.active
                .as_ref()
                .is_some_and(|a| a.job.cancel.load(Ordering::Relaxed))
            {
                s.active = None;
                self.shared
                    .metrics
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!("request cancelled");
            }
        }
    }

    /// Decode tokens first (one per decoding slot), then prompt chunks round-robin within the
    /// step budget.
    fn plan(&mut self) -> Vec<Planned> {
        let mut plan = Vec::new();
        let mut budget = self.config.step_tokens;
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(a) = &s.active {
                if a.pending.is_some() {
                    plan.push(Planned {
                        slot: i,
                        start: s.cached.len(),
                        len: 1,
                        sample: true,
                    });
                    budget = budget.saturating_sub(1);
                }
            }
        }
        let n = self.slots.len();
        for k in 0..n {
            if budget == 0 {
                break;
            }
            let i = (self.rr + k) % n;
            let s = &self.slots[i];
            if let Some(a) = &s.active {
                let left = a.job.req.prompt.len() - a.prompt_pos;
                if a.pending.is_none() && left > 0 {
                    let len = left.min(budget);
                    budget -= len;
                    plan.push(Planned {
                        slot: i,
                        start: s.cached.len(),
                        len,
                        sample: len == left,
                    });
                }
            }
        }
        self.rr = (self.rr + 1) % n;
        plan
    }

    fn step(&mut self, plan: &[Planned]) {
        // The tokens of each planned run.
        let runs: Vec<Vec<u32>> = plan
            .iter()
            .map(|p| {
                let a = self.slots[p.slot].active.as_ref();
                match a.and_then(|a| a.pending) {
                    Some(t) => vec![t],
                    None => a.map_or_else(Vec::new, |a| {
                        a.job.req.prompt[a.prompt_pos..a.prompt_pos + p.len].to_vec()
                    }),
                }
            })
            .collect();
        let result = {
            let mut by_slot: Vec<Option<&mut Slot>> = self.slots.iter_mut().map(Some).collect();
            let mut batch = Vec::with_capacity(plan.len());
            for (p, toks) in plan.iter().zip(&runs) {
                if let Some(s) = by_slot[p.slot].take() {
                    batch.push(BatchSeq {
                        tokens: toks,
                        start_pos: p.start,
                        cache: &mut s.cache,
                        logits: if p.sample {
                            LogitsMode::Last
                        } else {
                            LogitsMode::None
                        },
                    });
                }
            }
            self.model
                .forward_batch(&mut batch, &mut self.scratch, &mut self.logits)
        };
        self.shared.metrics.steps.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            tracing::warn!(error = %e, "forward step failed");
            for p in plan {
                if let Some(a) = self.slots[p.slot].active.take() {
                    fail(a.job, &format!("model error: {e}"));
                }
                self.slots[p.slot].cached.clear();
            }
            return;
        }
        let vocab = self.model.config().vocab_size;
        let mut row = 0usize;
        let logits = std::mem::take(&mut self.logits);
        for (p, toks) in plan.iter().zip(&runs) {
            let s = &mut self.slots[p.slot];
            s.cached.extend_from_slice(toks);
            if let Some(a) = s.active.as_mut() {
                if a.pending.take().is_none() {
                    a.prompt_pos += p.len;
                }
            }
            if p.sample {
                let r = logits.get(row * vocab..(row + 1) * vocab).unwrap_or(&[]);
                row += 1;
                self.after_logits(p.slot, r);
            }
        }
        self.logits = logits;
    }

    /// Samples the next token of the request in `slot` and reports it.
    fn after_logits(&mut self, slot: usize, logits: &[f32]) {
        let Some(mut a) = self.slots[slot].active.take() else {
            return;
        };
        match self.next_token(&mut a, logits) {
            Ok(None) => self.slots[slot].active = Some(a),
            Ok(Some(finish)) => self.finish(a, finish),
            Err(message) => fail(a.job, &message),
        }
    }

    /// One token: sample (within the constraint), report, decide whether to go on.
    /// `Ok(Some(reason))` when the request ends.
    fn next_token(
        &mut self,
        a: &mut Active,
        logits: &[f32],
    ) -> Result<Option<FinishReason>, String> {
        let stop_tokens = &a.job.req.stop_tokens;
        let mut token = a.sampler.sample(logits).map_err(|e| e.to_string())?;
        if let Some(m) = a.constraint.as_mut() {
            let ok = if stop_tokens.contains(&token) {
                m.is_complete()
            } else {
                self.bytes.clear();
                self.bytes
                    .extend_from_slice(self.tokenizer.token_bytes(token).unwrap_or_default());
                !self.bytes.is_empty() && m.accepts(&self.bytes)
            };
            if !ok {
                // Resample among the allowed tokens only: with the first draw rejected, this
                // gives exactly the distribution restricted to the allowed tokens.
                let mut allowed = vec![false; logits.len()];
                m.allowed(&mut allowed);
                if m.is_complete() {
                    for &t in stop_tokens {
                        if let Some(x) = allowed.get_mut(t as usize) {
                            *x = true;
                        }
                    }
                }
                let masked: Vec<f32> = logits
                    .iter()
                    .zip(&allowed)
                    .map(|(&l, &ok)| if ok { l } else { f32::NEG_INFINITY })
                    .collect();
                token = a.sampler.sample(&masked).map_err(|_| {
                    "no token can continue the constrained output (is the schema satisfiable?)"
                        .to_string()
                })?;
            }
        }
        a.sampler.accept(token);
        a.usage.completion_tokens += 1;
        a.usage.total_tokens += 1;
        self.shared
            .metrics
            .generated_tokens
            .fetch_add(1, Ordering::Relaxed);
        if stop_tokens.contains(&token) {
            return Ok(Some(FinishReason::StopToken { id: token }));
        }
        self.bytes.clear();
        self.bytes
            .extend_from_slice(self.tokenizer.token_bytes(token).unwrap_or_default());
        if let Some(m) = a.constraint.as_mut() {
            m.accept(&self.bytes);
        }
        self.emit.clear();
        let hit = a.text.push(&self.bytes, &mut self.emit);
        let logprob = a.job.req.logprobs.map(|k| logprob_of(logits, token, k));
        let event = Event::Token {
            id: token,
            text: std::mem::take(&mut self.emit),
            logprob,
        };
        if !(a.job.sink)(event) {
            a.job.cancel.store(true, Ordering::Relaxed);
            return Ok(Some(FinishReason::Cancelled));
        }
        if let Some(index) = hit {
            return Ok(Some(FinishReason::StopString {
                index,
                stop: a
                    .job
                    .req
                    .stop_strings
                    .get(index)
                    .cloned()
                    .unwrap_or_default(),
            }));
        }
        if a.constraint
            .as_ref()
            .is_some_and(|m| m.is_complete() && !m.can_continue())
        {
            return Ok(Some(FinishReason::Complete));
        }
        if a.usage.completion_tokens >= a.job.max_tokens {
            return Ok(Some(FinishReason::Length));
        }
        a.pending = Some(token);
        Ok(None)
    }

    /// Releases held text and reports `Done` (nothing for a cancelled request).
    fn finish(&mut self, mut a: Active, finish: FinishReason) {
        if finish == FinishReason::Cancelled {
            self.shared
                .metrics
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let finish = match finish {
            FinishReason::StopString { .. } => finish,
            other => {
                self.emit.clear();
                let hit = a.text.finish(&mut self.emit);
                if !self.emit.is_empty() {
                    let text = std::mem::take(&mut self.emit);
                    // A last piece of text with no token of its own.
                    (a.job.sink)(Event::Token {
                        id: u32::MAX,
                        text,
                        logprob: None,
                    });
                }
                match hit {
                    Some(index) => FinishReason::StopString {
                        index,
                        stop: a
                            .job
                            .req
                            .stop_strings
                            .get(index)
                            .cloned()
                            .unwrap_or_default(),
                    },
                    None => other,
                }
            }
        };
        tracing::debug!(?finish, tokens = a.usage.completion_tokens, "request done");
        (a.job.sink)(Event::Done {
            finish,
            usage: a.usage,
            seed: a.sampler.seed(),
        });
    }
}

/// Log-probability of `token` and the `k` most likely tokens under `softmax(logits)`.
fn logprob_of(logits: &[f32], token: u32, k: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&l| (f64::from(l) - f64::from(max)).exp())
        .sum();
    let lse = f64::from(max) + sum.ln();
    let lp = |id: u32| {
        logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&l| (f64::from(l) - lse) as f32)
    };
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if top.len() < k || top.last().is_some_and(|&(_, m)| l > m) {
                let pos = top.partition_point(|&(_, m)| m >= l);
                top.insert(pos, (i as u32, l));
                top.truncate(k);
            }
        }
    }
    TokenLogprob {
        id: token,
        logprob: lp(token),
        top: top.into_iter().map(|(id, _)| (id, lp(id))).collect(),
    }
}

fn fail(mut job: Job, message: &str) {
    (job.sink)(Event::Error(message.to_string()));
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
