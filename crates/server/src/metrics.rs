//! Prometheus metrics: requests, tokens, queue depth, time to first token and per-token latency.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use llama31_engine::EngineMetrics;

/// A histogram with fixed upper bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistState>,
}

#[derive(Debug, Default)]
struct HistState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub const fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            inner: Mutex::new(HistState {
                counts: Vec::new(),
                sum: 0.0,
                count: 0,
            }),
        }
    }

    pub fn observe(&self, d: Duration) {
        let v = d.as_secs_f64();
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.counts.len() != self.bounds.len() {
            s.counts = vec![0; self.bounds.len()];
        }
        for (c, &b) in s.counts.iter_mut().zip(self.bounds) {
            if v <= b {
                *c += 1;
            }
        }
        s.sum += v;
        s.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in self.bounds.iter().enumerate() {
            let c = s.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum {}", s.sum);
        let _ = writeln!(out, "{name}_count {}", s.count);
    }
}

const TTFT_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const TOKEN_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters of the HTTP layer.
#[derive(Debug)]
pub struct ServerMetrics {
    pub chat_requests: AtomicU64,
    pub completion_requests: AtomicU64,
    pub errors_4xx: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub ttft: Histogram,
    pub per_token: Histogram,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            chat_requests: AtomicU64::new(0),
            completion_requests: AtomicU64::new(0),
            errors_4xx: AtomicU64::new(0),
            errors_5xx: AtomicU64::new(0),
            ttft: Histogram::new(TTFT_BOUNDS),
            per_token: Histogram::new(TOKEN_BOUNDS),
        }
    }
}

impl ServerMetrics {
    /// Counts an error response by its status.
    pub fn error(&self, status: u16) {
        if status >= 500 {
            self.errors_5xx.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors_4xx.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, engine: Option<&EngineMetrics>, max_loras: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "llama31_chat_requests_total",
            "Chat completion requests received.",
            "counter",
            ld(&self.chat_requests),
        );
        counter(
            "llama31_completion_requests_total",
            "Text completion requests received.",
            "counter",
            ld(&self.completion_requests),
        );
        counter(
            "llama31_request_errors_4xx_total",
            "Requests answered with a 4xx error.",
            "counter",
            ld(&self.errors_4xx),
        );
        counter(
            "llama31_request_errors_5xx_total",
            "Requests answered with a 5xx error.",
            "counter",
            ld(&self.errors_5xx),
        );
        if let Some(e) = engine {
            let lz = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as u64;
            counter(
                "llama31_engine_requests_total",
                "Sequences submitted to the engine (one per choice).",
                "counter",
                ld(&e.requests),
            );
            counter(
                "llama31_prompt_tokens_total",
                "Prompt tokens of admitted sequences.",
                "counter",
                ld(&e.prompt_tokens),
            );
            counter(
                "llama31_prompt_tokens_cached_total",
                "Prompt tokens whose keys and values were reused from a slot.",
                "counter",
                ld(&e.cached_prompt_tokens),
            );
            counter(
                "llama31_generation_tokens_total",
                "Generated tokens.",
                "counter",
                ld(&e.generated_tokens),
            );
            counter(
                "llama31_cancelled_total",
                "Sequences cancelled (client gone).",
                "counter",
                ld(&e.cancelled),
            );
            counter(
                "llama31_queue_depth",
                "Sequences waiting for a slot.",
                "gauge",
                lz(&e.queued),
            );
            counter(
                "llama31_active_slots",
                "Sequences being served.",
                "gauge",
                lz(&e.active),
            );
            // The names vLLM exports, which LoRA-aware gateways (the Gateway API Inference
            // Extension) read.
            counter(
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                "gauge",
                lz(&e.active),
            );
            counter(
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                "gauge",
                lz(&e.queued),
            );
            let cap = lz(&e.kv_capacity).max(1) as f64;
            let usage = lz(&e.kv_used) as f64 / cap;
            for (name, help) in [
                (
                    "vllm:kv_cache_usage_perc",
                    "KV-cache usage. 1 means 100 percent usage.",
                ),
                (
                    "vllm:gpu_cache_usage_perc",
                    "KV-cache usage (vLLM's older name). 1 means 100 percent usage.",
                ),
                (
                    "llama31_kv_cache_usage_ratio",
                    "Positions of the slots' KV caches held by running requests / all positions.",
                ),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {usage}"
                );
            }
            let load = e.adapter_load();
            let names = |f: fn(&llama31_engine::AdapterLoad) -> usize| {
                load.iter()
                    .filter(|(_, l)| f(l) > 0)
                    .map(|(n, _)| n.replace(['"', '\\', ',', '\n'], "_"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let _ = writeln!(
                out,
                "# HELP vllm:lora_requests_info Running stats on lora requests.\n\
                 # TYPE vllm:lora_requests_info gauge\n\
                 vllm:lora_requests_info{{max_lora=\"{max_loras}\",running_lora_adapters=\"{}\",\
                 waiting_lora_adapters=\"{}\"}} {now}",
                names(|l| l.running),
                names(|l| l.waiting),
            );
        }
        self.ttft.render(
            &mut out,
            "llama31_time_to_first_token_seconds",
            "Time from request arrival to the first generated token.",
        );
        self.per_token.render(
            &mut out,
            "llama31_time_per_output_token_seconds",
            "Time between consecutive generated tokens of a sequence.",
        );
        out
    }
}
