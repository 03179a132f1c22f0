//! Continuous batching: a fixed set of slots (one KV cache each) served by one engine thread.
//!
//! Every step runs one forward pass over all active sequences ([`LanguageModel::forward_batch`]): one
//! token for each sequence that is decoding, plus chunks of the prompts still being prefilled,
//! within a per-step token budget, so a long prompt never stalls the others for long. A request
//! joins a free slot as soon as one is there (the slot whose cached tokens share the longest
//! prefix with its prompt, whose keys and values are then reused) and leaves it when it finishes
//! or is cancelled. Requests beyond the slots wait in a bounded queue.
//!
//! Each output row of a step is computed exactly as it would be alone (the model's kernels do not
//! depend on the batch size, and every request has its own sampler and seed), so a request gives
//! the same tokens whether it runs alone or beside others. Each row goes through the same step as
//! in the single-request generator, [`Sequence::accept_logits`].
//!
//! Requests may run with different adapters ([`Request::adapter`]) in the same step: the model
//! groups the rows of each adapter (the S-LoRA / Punica way) rather than running one forward per
//! adapter. A slot's cached keys and values are reused only by a request with the same adapter.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::EngineError;
use crate::language_model::{Detokenizer, LanguageModel, LogitsMode, SeqInput};
use crate::request::{Adapter, FinishReason, Request, TokenLogprob, Usage};
use crate::sequence::{common_prefix, Sequence};

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
    /// Positions of the KV caches held by requests in a slot now (prompt and generated tokens).
    pub kv_used: AtomicUsize,
    /// Positions all slots can hold (slots × context).
    pub kv_capacity: AtomicUsize,
    /// Running and waiting requests per adapter name, now (adapters with none are absent).
    pub adapters: Mutex<BTreeMap<String, AdapterLoad>>,
}

/// Requests of one adapter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AdapterLoad {
    pub running: usize,
    pub waiting: usize,
}

impl EngineMetrics {
    /// [`EngineMetrics::adapters`], copied.
    pub fn adapter_load(&self) -> BTreeMap<String, AdapterLoad> {
        self.adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct Job {
    req: Request,
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

/// The serving engine: the handle to the engine thread, which owns the model, the slots and the
/// detokenizer. The model is any [`LanguageModel`] (chosen by [`Engine::start`]).
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
    /// Allocates `config.slots` caches of `config.ctx` positions (clamped to the model's
    /// context) and starts the engine thread, which runs `model` and turns tokens into text with
    /// `detokenizer`.
    pub fn start<M, D>(
        model: Arc<M>,
        detokenizer: Arc<D>,
        mut config: EngineConfig,
    ) -> Result<Engine, EngineError>
    where
        M: LanguageModel + Send + Sync + 'static,
        D: Detokenizer + Send + Sync + 'static,
    {
        let model_ctx = model.context_len();
        config.ctx = config.ctx.clamp(1, model_ctx.max(1));
        config.slots = config.slots.max(1);
        config.step_tokens = config.step_tokens.max(config.slots);
        let mut slots = Vec::with_capacity(config.slots);
        for _ in 0..config.slots {
            slots.push(Slot {
                cache: model.new_cache(config.ctx)?,
                cached: Vec::new(),
                cached_adapter: None,
                active: None,
            });
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            metrics: EngineMetrics::default(),
        });
        shared
            .metrics
            .kv_capacity
            .store(config.slots * config.ctx, Ordering::Relaxed);
        let vocab = model.vocab_size();
        let worker = Worker {
            model,
            detokenizer,
            shared: Arc::clone(&shared),
            config: config.clone(),
            slots,
            scratch: M::Scratch::default(),
            logits: Vec::new(),
            rr: 0,
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
        Sequence::validate(&req, self.vocab, self.config.ctx)?;
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut q = self.shared.lock();
            if q.shutdown {
                return Err(SubmitError::Stopped);
            }
            // A slot freed during the current step (its request finished) takes a waiting request
            // at the next step: a request that arrives meanwhile is not refused because of it.
            let free = self
                .config
                .slots
                .saturating_sub(self.shared.metrics.active.load(Ordering::SeqCst));
            if q.jobs.len() >= self.config.max_queue + free {
                return Err(SubmitError::QueueFull {
                    queued: q.jobs.len(),
                });
            }
            q.jobs.push_back(Job {
                req,
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
    seq: Sequence,
    sink: Sink,
    adapter: Option<Adapter>,
}

struct Slot<C> {
    cache: C,
    /// Tokens whose keys and values the cache holds, in position order.
    cached: Vec<u32>,
    /// The adapter those keys and values were computed with ([`Adapter::id`]).
    cached_adapter: Option<u64>,
    active: Option<Active>,
}

struct Worker<M: LanguageModel, D> {
    model: Arc<M>,
    detokenizer: Arc<D>,
    shared: Arc<Shared>,
    config: EngineConfig,
    slots: Vec<Slot<M::Cache>>,
    scratch: M::Scratch,
    logits: Vec<f32>,
    /// Round-robin start for prompt chunks.
    rr: usize,
}

/// What one slot runs in a step.
struct Planned {
    slot: usize,
    start: usize,
    len: usize,
    /// The run ends at the last prompt token or is a decode token: logits wanted.
    sample: bool,
}

impl<M: LanguageModel, D: Detokenizer> Worker<M, D> {
    fn run(mut self) {
        loop {
            if !self.admit() {
                return;
            }
            self.drop_cancelled();
            let mut plan = self.plan();
            if plan.is_empty() {
                continue;
            }
            // Sequences of one adapter next to each other: the model applies each adapter once
            // to all of its rows (row order does not change any row's result).
            plan.sort_by_key(|p| {
                self.slots[p.slot]
                    .active
                    .as_ref()
                    .and_then(|a| a.adapter.as_ref().map(Adapter::id))
            });
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
            while let Some(free) = self.best_free_slot(q.jobs.front().map(|j| &j.req)) {
                let Some(job) = q.jobs.pop_front() else { break };
                self.assign(free, job);
            }
            shared.metrics.queued.store(q.jobs.len(), Ordering::Relaxed);
            let active = self.slots.iter().filter(|s| s.active.is_some()).count();
            shared.metrics.active.store(active, Ordering::SeqCst);
            self.count_kv();
            self.count_adapters(&q.jobs);
            if active > 0 {
                return true;
            }
            q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The free slot sharing the longest prefix with `req`'s prompt, computed with the same
    /// adapter (`None` if no slot is free or there is no request).
    fn best_free_slot(&self, req: Option<&Request>) -> Option<usize> {
        let req = req?;
        let adapter = req.adapter.as_ref().map(Adapter::id);
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .max_by_key(|(i, s)| {
                let common = if s.cached_adapter == adapter {
                    common_prefix(&s.cached, &req.prompt)
                } else {
                    0
                };
                (common, usize::MAX - i)
            })
            .map(|(i, _)| i)
    }

    /// Cache positions held by active requests, into the metrics.
    fn count_kv(&self) {
        let used: usize = self
            .slots
            .iter()
            .filter(|s| s.active.is_some())
            .map(|s| s.cached.len())
            .sum();
        self.shared.metrics.kv_used.store(used, Ordering::Relaxed);
    }

    /// Running and waiting requests per adapter, into the metrics.
    fn count_adapters(&self, jobs: &VecDeque<Job>) {
        let mut load: BTreeMap<String, AdapterLoad> = BTreeMap::new();
        for a in self.slots.iter().filter_map(|s| s.active.as_ref()) {
            if let Some(ad) = &a.adapter {
                load.entry(ad.name().to_string()).or_default().running += 1;
            }
        }
        for j in jobs {
            if let Some(ad) = &j.req.adapter {
                load.entry(ad.name().to_string()).or_default().waiting += 1;
            }
        }
        let mut m = self
            .shared
            .metrics
            .adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *m != load {
            *m = load;
        }
    }

    fn assign(&mut self, slot: usize, job: Job) {
        let vocab = self.model.vocab_size();
        let Job {
            mut req,
            mut sink,
            cancel,
        } = job;
        let adapter = req.adapter.take();
        let mut seq = match Sequence::new(&req, vocab, self.config.ctx) {
            Ok(seq) => seq.with_cancel_flag(cancel),
            // `submit` validated the request; report rather than panic if that ever changes.
            Err(e) => {
                sink(Event::Error(e.to_string()));
                return;
            }
        };
        let s = &mut self.slots[slot];
        // Keys and values computed with another adapter are not this request's.
        let adapter_id = adapter.as_ref().map(Adapter::id);
        if s.cached_adapter != adapter_id {
            s.cached.clear();
            s.cached_adapter = adapter_id;
        }
        // At least the last prompt token runs, to get its logits.
        let common = seq.reuse_prefix(&s.cached);
        s.cached.truncate(common);
        let m = &self.shared.metrics;
        m.prompt_tokens
            .fetch_add(req.prompt.len() as u64, Ordering::Relaxed);
        m.cached_prompt_tokens
            .fetch_add(common as u64, Ordering::Relaxed);
        tracing::debug!(
            slot,
            prompt = req.prompt.len(),
            cached = common,
            "request admitted"
        );
        let a = Active { seq, sink, adapter };
        if let Some(finish) = a.seq.finish_reason().cloned() {
            // Nothing to generate (a budget of zero tokens).
            self.finish(a, finish, String::new());
            return;
        }
        s.active = Some(a);
    }

    fn drop_cancelled(&mut self) {
        for s in &mut self.slots {
            if s.active.as_ref().is_some_and(|a| a.seq.is_cancelled()) {
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
                if a.seq.is_decoding() {
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
                let left = a.seq.prompt_left();
                if !a.seq.is_decoding() && left > 0 {
                    let len = left.min(budget);
                    budget -= len;
                    plan.push(Planned {
                        slot: i,
                        start: s.cached.len(),
                        len,
                        sample: a.seq.wants_logits(len),
                    });
                }
            }
        }
        self.rr = (self.rr + 1) % n;
        plan
    }

    fn step(&mut self, plan: &[Planned]) {
        let result = {
            let mut by_slot: Vec<Option<&mut Slot<M::Cache>>> =
                self.slots.iter_mut().map(Some).collect();
            let mut batch = Vec::with_capacity(plan.len());
            for p in plan {
                if let Some(Slot {
                    cache,
                    active: Some(a),
                    ..
                }) = by_slot[p.slot].take()
                {
                    batch.push(SeqInput {
                        tokens: a.seq.input(p.len),
                        start_pos: p.start,
                        cache,
                        logits: if p.sample {
                            LogitsMode::Last
                        } else {
                            LogitsMode::None
                        },
                        adapter: a.adapter.as_ref().map(Adapter::handle),
                    });
                }
            }
            self.model
                .forward_batch(&mut batch, &mut self.scratch, &mut self.logits)
        };
        self.shared.metrics.steps.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            tracing::warn!(error = %e, "forward step failed");
            // A model's error reads "model error: …".
            let message = match &e {
                EngineError::Model(_) => e.to_string(),
                other => format!("model error: {other}"),
            };
            for p in plan {
                if let Some(mut a) = self.slots[p.slot].active.take() {
                    (a.sink)(Event::Error(message.clone()));
                }
                self.slots[p.slot].cached.clear();
            }
            return;
        }
        let vocab = self.model.vocab_size();
        let mut row = 0usize;
        let logits = std::mem::take(&mut self.logits);
        for p in plan {
            let s = &mut self.slots[p.slot];
            let Some(a) = s.active.as_mut() else { continue };
            s.cached.extend_from_slice(a.seq.input(p.len));
            a.seq.advance(p.len);
            if p.sample {
                let r = logits.get(row * vocab..(row + 1) * vocab).unwrap_or(&[]);
                row += 1;
                self.after_logits(p.slot, r);
            }
        }
        self.logits = logits;
        self.count_kv();
    }

    /// The next token of the request in `slot` (through [`Sequence::accept_logits`]), reported
    /// to its sink.
    fn after_logits(&mut self, slot: usize, logits: &[f32]) {
        let Some(mut a) = self.slots[slot].active.take() else {
            return;
        };
        let before = a.seq.usage().completion_tokens;
        let step = match a.seq.accept_logits(logits, &*self.detokenizer) {
            Ok(step) => step,
            Err(e) => {
                (a.sink)(Event::Error(e.to_string()));
                return;
            }
        };
        let sampled = a.seq.usage().completion_tokens - before;
        self.shared
            .metrics
            .generated_tokens
            .fetch_add(sampled as u64, Ordering::Relaxed);
        if let Some(t) = step.token {
            let event = Event::Token {
                id: t.id,
                text: t.text,
                logprob: t.logprob,
            };
            if !(a.sink)(event) {
                a.seq.cancel();
                self.shared
                    .metrics
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        match step.finish {
            None => self.slots[slot].active = Some(a),
            Some(finish) => {
                // The slot is free from now on (before the client hears `Done`, so that its next
                // request counts it).
                self.release_slot();
                self.finish(a, finish, step.tail)
            }
        }
    }

    /// Counts one slot less in use (the gauge is set again at the next admission).
    fn release_slot(&self) {
        let _ = self
            .shared
            .metrics
            .active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Reports the released `tail` text and `Done` (nothing for a cancelled request).
    fn finish(&mut self, mut a: Active, finish: FinishReason, tail: String) {
        if finish == FinishReason::Cancelled {
            self.shared
                .metrics
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !tail.is_empty() {
            // A last piece of text with no token of its own.
            (a.sink)(Event::Token {
                id: u32::MAX,
                text: tail,
                logprob: None,
            });
        }
        tracing::debug!(
            ?finish,
            tokens = a.seq.usage().completion_tokens,
            "request done"
        );
        (a.sink)(Event::Done {
            finish,
            usage: a.seq.usage(),
            seed: a.seq.seed(),
        });
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
