//! The memory plan: what a model needs in RAM before anything is allocated — its weights, the KV
//! caches of its sequences, the activation buffers of a step — against what the machine has, so
//! that a context that does not fit is refused with numbers instead of failing (or swapping)
//! later, and `--ctx auto` takes the longest context that fits.
//!
//! Weights are counted as held: block-quantized tensors as stored (or as f32 where they are
//! dequantized at load), float tensors as stored, whether the file is mapped or read. KV caches
//! are counted in full even though their pages are committed only as positions fill: a context
//! the plan admits can be filled.

use std::path::Path;

use llama31_formats::{FileLoading, ModelSource, WeightFile};

use crate::backend::KvType;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::error::{ModelError, Result};

/// Where the memory budget came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetSource {
    /// `MemAvailable` of `/proc/meminfo`.
    MemAvailable,
    /// The control group's `memory.max` less its `memory.current` (smaller than MemAvailable).
    Cgroup,
    /// Given by the user (`--mem-limit`).
    Given,
    /// Nothing could be read (not Linux): no limit is enforced.
    Unknown,
}

/// The memory the plan may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    pub source: BudgetSource,
}

impl Budget {
    /// The memory available now: the smaller of `/proc/meminfo`'s `MemAvailable` and what the
    /// process's cgroup (v2) still allows; unlimited where neither can be read.
    pub fn available() -> Budget {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| mem_available(&t));
        let cgroup = cgroup_room();
        match (meminfo, cgroup) {
            (Some(m), Some(c)) if c < m => Budget {
                bytes: c,
                source: BudgetSource::Cgroup,
            },
            (Some(m), _) => Budget {
                bytes: m,
                source: BudgetSource::MemAvailable,
            },
            (None, Some(c)) => Budget {
                bytes: c,
                source: BudgetSource::Cgroup,
            },
            (None, None) => Budget {
                bytes: u64::MAX,
                source: BudgetSource::Unknown,
            },
        }
    }

    /// A budget the user gave.
    pub fn given(bytes: u64) -> Budget {
        Budget {
            bytes,
            source: BudgetSource::Given,
        }
    }

    /// "23.05 GiB available", "the 8.00 GiB limit given", …
    pub fn describe(&self) -> String {
        match self.source {
            BudgetSource::MemAvailable => format!("{} available", gib(self.bytes)),
            BudgetSource::Cgroup => format!("{} left in this cgroup", gib(self.bytes)),
            BudgetSource::Given => format!("the {} limit given", gib(self.bytes)),
            BudgetSource::Unknown => "no known limit".into(),
        }
    }
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo`.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// What the process's cgroup v2 still allows (`memory.max − memory.current`), if it has a limit.
fn cgroup_room() -> Option<u64> {
    let rel = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // cgroup v2: one line "0::/path".
    let path = rel.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// `bytes` in GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// What runs: how many sequences at once and how many token rows the largest step holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Sequences with a KV cache each (1 for `run`/`chat`, `--parallel` for `serve`).
    pub sequences: usize,
    /// Token rows of the largest forward step (a prompt chunk, or a serving step's budget).
    pub step_rows: usize,
    /// Rows of logits the largest step returns.
    pub logit_rows: usize,
}

/// A memory plan for one model, KV type and workload; [`MemoryPlan::fit`] chooses or checks the
/// context.
#[derive(Debug, Clone)]
pub struct MemoryPlan {
    /// Bytes of the weights as held.
    pub weights: u64,
    /// Bytes of one position of one sequence's KV cache (every layer, keys and values).
    pub kv_per_token: u64,
    /// Bytes of the RoPE table per position.
    pub rope_per_token: u64,
    /// Activation buffers of the largest step, logits, attention tiles.
    pub scratch: u64,
    pub kv_type: KvType,
    pub workload: Workload,
    /// The model's trained context.
    pub trained: usize,
    pub budget: Budget,
    /// Layers and key/value width (for [`MemoryPlan::with_kv_type`]).
    n_layers: usize,
    kv_dim: usize,
}

/// Bytes of one position of a KV cache: keys and values of every layer.
fn kv_bytes_per_token(n_layers: usize, kv_dim: usize, kv_type: KvType) -> Result<u64> {
    let row = kv_type
        .row_bytes(kv_dim)
        .map_err(|e| ModelError::Config(e.to_string()))?;
    Ok(2 * n_layers as u64 * row as u64)
}

/// Threads whose attention tiles may each hold [`SCORES_PER_THREAD`] bytes of scores.
fn threads() -> u64 {
    rayon::current_num_threads().max(1) as u64
}

/// The attention kernels keep at most 16 MiB of scores per tile, one tile per thread.
const SCORES_PER_THREAD: u64 = 16 << 20;

/// The share of the available memory `--ctx auto` plans for (vLLM's default
/// `--gpu-memory-utilization` is the same 0.9).
pub const AUTO_SHARE: f64 = 0.9;

/// The smallest context `--ctx auto` will settle for.
pub const MIN_AUTO_CTX: usize = 256;

impl MemoryPlan {
    /// The plan of `config`'s model whose weights hold `weights` bytes.
    pub fn new(
        config: &Config,
        weights: u64,
        kv_type: KvType,
        workload: Workload,
        budget: Budget,
    ) -> Result<MemoryPlan> {
        let kv_per_token = kv_bytes_per_token(config.n_layers, config.kv_dim(), kv_type)?;
        let (dim, q, kv, ffn) = (
            config.dim as u64,
            (config.n_heads * config.head_dim) as u64,
            config.kv_dim() as u64,
            config.ffn_dim as u64,
        );
        let rows = workload.step_rows.max(1) as u64;
        // The CPU backend's nine activation buffers (f32), the activations quantized for the
        // weights (at most one byte and a bit per value of the widest input), the logits.
        let per_row = 4 * (3 * dim + 2 * q + 2 * kv + 2 * ffn) + 2 * ffn.max(dim);
        let scratch = rows * per_row
            + workload.logit_rows.max(1) as u64 * config.vocab_size as u64 * 4
            + threads() * SCORES_PER_THREAD;
        Ok(MemoryPlan {
            weights,
            kv_per_token,
            rope_per_token: config.head_dim as u64 * 4,
            scratch,
            kv_type,
            workload,
            trained: config.max_seq_len,
            budget,
            n_layers: config.n_layers,
            kv_dim: config.kv_dim(),
        })
    }

    /// This plan with a KV cache of `kv_type` instead (an error where the model's key/value
    /// width does not suit it).
    pub fn with_kv_type(&self, kv_type: KvType) -> Result<MemoryPlan> {
        Ok(MemoryPlan {
            kv_per_token: kv_bytes_per_token(self.n_layers, self.kv_dim, kv_type)?,
            kv_type,
            ..self.clone()
        })
    }

    /// The KV caches of every sequence at `ctx` positions each.
    pub fn kv_bytes(&self, ctx: usize) -> u64 {
        self.kv_per_token
            .saturating_mul(ctx as u64)
            .saturating_mul(self.workload.sequences.max(1) as u64)
    }

    /// Everything at `ctx` positions per sequence.
    pub fn total(&self, ctx: usize) -> u64 {
        self.weights
            .saturating_add(self.scratch)
            .saturating_add(self.rope_per_token.saturating_mul(ctx as u64))
            .saturating_add(self.kv_bytes(ctx))
    }

    /// The longest context per sequence (up to the trained one) that fits the budget, if any.
    pub fn largest_ctx(&self) -> Option<usize> {
        self.largest_within(self.budget.bytes)
    }

    /// The budget `--ctx auto` plans within: all of a limit the user gave, else
    /// [`AUTO_SHARE`] of the memory available (room for the page cache and other processes).
    pub fn auto_budget(&self) -> u64 {
        match self.budget.source {
            BudgetSource::Given | BudgetSource::Unknown => self.budget.bytes,
            _ => (self.budget.bytes as f64 * AUTO_SHARE) as u64,
        }
    }

    fn largest_within(&self, budget: u64) -> Option<usize> {
        let fixed = self.weights.saturating_add(self.scratch);
        let room = budget.checked_sub(fixed)?;
        let per = self
            .kv_per_token
            .saturating_mul(self.workload.sequences.max(1) as u64)
            .saturating_add(self.rope_per_token)
            .max(1);
        let n = (room / per).min(self.trained as u64) as usize;
        (n > 0).then_some(n)
    }

    /// The context to run with: `requested` if it fits, else an error with the numbers and the
    /// longest that would; `None` (auto): the longest that fits, up to the trained context.
    pub fn fit(&self, requested: Option<usize>) -> Result<usize> {
        match requested {
            Some(n) if n > self.trained => Err(ModelError::ContextTooLong {
                requested: n,
                trained: self.trained,
            }),
            Some(n) if self.total(n) <= self.budget.bytes => Ok(n),
            Some(n) => Err(self.no_room(n)),
            None => match self.largest_within(self.auto_budget()) {
                Some(n) if n >= MIN_AUTO_CTX.min(self.trained) => Ok(n),
                _ => Err(self.no_room(MIN_AUTO_CTX.min(self.trained))),
            },
        }
    }

    fn no_room(&self, ctx: usize) -> ModelError {
        let largest = match self.largest_ctx() {
            Some(n) => format!("the longest context that fits is {n} tokens"),
            None => "even the weights and buffers do not fit".into(),
        };
        ModelError::OutOfMemory(format!(
            "a context of {ctx} tokens needs {} ({}), more than {}; {largest} (try --kv-type \
             q8_0, fewer --parallel sequences or a smaller --ctx)",
            gib(self.total(ctx)),
            self.breakdown(ctx),
            self.budget.describe(),
        ))
    }

    /// "weights …, KV cache … (type, sequences × ctx), scratch …".
    pub fn breakdown(&self, ctx: usize) -> String {
        format!(
            "weights {}, KV cache {} ({} × {} × {ctx} tokens), scratch {}",
            gib(self.weights),
            gib(self.kv_bytes(ctx)),
            self.kv_type,
            self.workload.sequences.max(1),
            gib(self.scratch + self.rope_per_token * ctx as u64),
        )
    }

    /// Lines describing the plan at `ctx` (for `info` and the load report).
    pub fn report(&self, ctx: usize) -> String {
        let budget = match self.budget.source {
            BudgetSource::Unknown => "unknown".to_string(),
            _ => self.budget.describe(),
        };
        format!(
            "memory plan at {ctx} tokens: {} total = {}; budget: {budget}; longest context that \
             fits: {}",
            gib(self.total(ctx)),
            self.breakdown(ctx),
            self.largest_ctx()
                .map_or_else(|| "none".into(), |n| format!("{n} tokens")),
        )
    }
}

/// The bytes the weights of `source` will hold once loaded: quantized tensors as stored when
/// `keep_quantized`, else as f32; float tensors as stored. Reads only the files' headers (the
/// files are mapped, not read).
pub fn weight_bytes(source: &ModelSource, keep_quantized: bool) -> Result<u64> {
    let file = WeightFile::open_source_with(source, FileLoading::Map)?;
    held_bytes(&file, keep_quantized)
}

/// [`weight_bytes`] of an open checkpoint.
fn held_bytes(file: &WeightFile, keep_quantized: bool) -> Result<u64> {
    Ok(match file {
        WeightFile::Gguf(g) => g
            .tensor_infos()
            .iter()
            .map(|t| {
                if t.ggml_type.is_quantized() && !keep_quantized {
                    t.shape.iter().product::<usize>() as u64 * 4
                } else {
                    t.n_bytes as u64
                }
            })
            .sum(),
        WeightFile::Safetensors(s) => s
            .shards()
            .iter()
            .map(|f| f.shared_bytes().len() as u64)
            .sum(),
        WeightFile::Meta(m) => m
            .shards()
            .iter()
            .map(|f| f.shared_bytes().len() as u64)
            .sum(),
        other => {
            return Err(ModelError::Config(format!(
                "no memory plan for {:?} files",
                other.format()
            )))
        }
    })
}

/// The plan of the model at `source` (its config and weight sizes read from the headers).
pub fn plan_for(
    source: &ModelSource,
    keep_quantized: bool,
    kv_type: KvType,
    workload: Workload,
    budget: Budget,
) -> Result<MemoryPlan> {
    let file = WeightFile::open_source_with(source, FileLoading::Map)?;
    let config = Checkpoint::describe(source, &file)?.config;
    let weights = held_bytes(&file, keep_quantized)?;
    MemoryPlan::new(&config, weights, kv_type, workload, budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_8b() -> Config {
        Config {
            dim: 4096,
            n_layers: 32,
            n_heads: 32,
            n_kv_heads: 8,
            head_dim: 128,
            ffn_dim: 14336,
            vocab_size: 128256,
            norm_eps: 1e-5,
            rope_theta: 500000.0,
            rope_scaling: None,
            max_seq_len: 131072,
            tie_embeddings: false,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
        }
    }

    fn work(sequences: usize) -> Workload {
        Workload {
            sequences,
            step_rows: 512,
            logit_rows: 1,
        }
    }

    /// The arithmetic: 32 layers × 1,024 KV width × 2 × 4 bytes = 256 KiB per token in
    /// f32, 32 GiB at 131,072 tokens; f16 half that; q8_0 34/128 of it.
    #[test]
    fn kv_bytes_of_llama_3_1_8b() {
        let b = Budget::given(24 << 30);
        let f32p = MemoryPlan::new(&config_8b(), 0, KvType::F32, work(1), b.clone()).unwrap();
        assert_eq!(f32p.kv_per_token, 256 << 10);
        assert_eq!(f32p.kv_bytes(131072), 32 << 30);
        let f16p = MemoryPlan::new(&config_8b(), 0, KvType::F16, work(1), b.clone()).unwrap();
        assert_eq!(f16p.kv_bytes(131072), 16 << 30);
        let q8 = MemoryPlan::new(&config_8b(), 0, KvType::Q8_0, work(2), b).unwrap();
        assert_eq!(q8.kv_per_token, 2 * 32 * (1024 / 32 * 34));
        let again = f32p.with_kv_type(KvType::Q8_0).unwrap();
        assert_eq!(
            (again.kv_per_token, again.kv_type),
            (q8.kv_per_token, KvType::Q8_0)
        );
        assert_eq!(
            again.with_kv_type(KvType::F32).unwrap().kv_per_token,
            256 << 10
        );
        assert_eq!(q8.kv_bytes(1000), 2 * 1000 * q8.kv_per_token);
    }

    /// The 8B Q4_K_M weights (4.92 GB) at 131,072 tokens fit 24 GiB with a q8_0 cache, not with
    /// an f32 one; auto takes the longest that fits, and a refusal names it.
    #[test]
    fn fit_refuses_with_numbers_and_auto_takes_the_longest() {
        let weights = 4_920_000_000;
        let budget = Budget::given(23 << 30);
        let f32p =
            MemoryPlan::new(&config_8b(), weights, KvType::F32, work(1), budget.clone()).unwrap();
        let err = f32p.fit(Some(131072)).unwrap_err().to_string();
        let largest = f32p.largest_ctx().unwrap();
        assert!(err.contains(&format!("{largest} tokens")), "{err}");
        assert!(err.contains("32.00 GiB"), "{err}");
        assert!(largest > 60_000 && largest < 131072, "{largest}");
        assert_eq!(f32p.fit(None).unwrap(), largest);
        assert!(f32p.total(largest) <= budget.bytes);
        assert!(f32p.total(largest + 1) > budget.bytes);
        assert_eq!(f32p.fit(Some(largest)).unwrap(), largest);
        let q8 = MemoryPlan::new(&config_8b(), weights, KvType::Q8_0, work(1), budget).unwrap();
        assert_eq!(q8.fit(None).unwrap(), 131072);
        assert_eq!(q8.fit(Some(131072)).unwrap(), 131072);
        // Past the trained context: refused whatever the memory.
        assert!(matches!(
            q8.fit(Some(131073)),
            Err(ModelError::ContextTooLong { .. })
        ));
        // Four sequences share the room.
        let four = MemoryPlan::new(
            &config_8b(),
            weights,
            KvType::F32,
            work(4),
            Budget::given(23 << 30),
        )
        .unwrap();
        let l4 = four.largest_ctx().unwrap();
        assert!(four.total(l4) <= 23 << 30 && four.total(l4 + 1) > 23 << 30);
        assert!((l4 * 4).abs_diff(largest) < largest / 100, "{l4} {largest}");
        // Weights alone too big.
        let tiny = MemoryPlan::new(
            &config_8b(),
            weights,
            KvType::F32,
            work(1),
            Budget::given(1),
        )
        .unwrap();
        assert!(tiny
            .fit(None)
            .unwrap_err()
            .to_string()
            .contains("weights and buffers do not"));
    }

    /// Auto keeps a tenth of the machine's available memory free; a given limit is used whole.
    #[test]
    fn auto_leaves_headroom_of_available_memory_only() {
        let avail = Budget {
            bytes: 23 << 30,
            source: BudgetSource::MemAvailable,
        };
        let p = MemoryPlan::new(&config_8b(), 4_920_000_000, KvType::F32, work(1), avail).unwrap();
        let auto = p.fit(None).unwrap();
        assert!(p.total(auto) <= (p.budget.bytes as f64 * AUTO_SHARE) as u64);
        assert!(auto < p.largest_ctx().unwrap());
        // An explicit context may use all of it.
        assert!(p.fit(Some(p.largest_ctx().unwrap())).is_ok());
    }

    #[test]
    fn reads_mem_available() {
        let text = "MemTotal:       24683772 kB\nMemFree:  1 kB\nMemAvailable:   24174780 kB\n";
        assert_eq!(mem_available(text), Some(24174780 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: lots kB\n"), None);
    }

    /// The q8_0 type needs rows of a multiple of 32.
    #[test]
    fn q8_0_on_an_odd_width_is_an_error() {
        let cfg = Config {
            n_kv_heads: 3,
            head_dim: 16,
            ..config_8b()
        };
        assert!(MemoryPlan::new(&cfg, 0, KvType::Q8_0, work(1), Budget::given(1 << 40)).is_err());
    }
}
