//! The sampler chain: logit bias → penalties → top-k → top-p → min-p → temperature → draw.
//!
//! The order follows llama.cpp's default chain (`common/sampling.cpp`: logit bias is added first,
//! then `penalties → top_k → top_p → min_p → temperature → dist`). Semantics:
//! - **logit bias**: `logit[id] += bias` for each entry; a bias of `-inf` (or a large negative
//!   number such as -100) bans a token. Ids outside the vocabulary are a typed error.
//! - **repetition penalty** (llama.cpp): for each *distinct* token among the last `repeat_last_n`
//!   tokens of the sequence (prompt included), a positive logit is divided by the penalty and a
//!   non-positive one multiplied by it.
//! - **presence / frequency penalties** (OpenAI): over the *generated* tokens,
//!   `logit[id] -= presence_penalty * (count > 0) + frequency_penalty * count`.
//! - **temperature 0** is greedy decoding: the argmax of the biased, penalized logits, ties broken
//!   towards the lowest id; no random number is drawn and the later filters are skipped (they
//!   always keep the argmax).
//! - **top-k** keeps the `k` highest logits (`0` disables it); **top-p** keeps the smallest prefix
//!   of the tokens sorted by probability whose mass reaches `top_p` (`1` disables it); **min-p**
//!   keeps tokens whose probability is at least `min_p` times the largest (`0` disables it). The
//!   filters use the untempered distribution (temperature comes after them, as in llama.cpp) and
//!   always keep at least one token. Ties in sorting are broken by the lower id.
//! - **draw**: softmax of `logit / temperature` in f64 over the survivors, then one uniform double
//!   from the sampler's own xoshiro256** generator ([`crate::rng`]) picks by cumulative mass. The
//!   same seed therefore gives the same tokens on every machine (up to the last-ulp behaviour of
//!   the platform's `exp`, which only matters when a draw lands exactly on a boundary).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Display;

use crate::error::SamplingError;
use crate::rng::{entropy_seed, Xoshiro256StarStar};

/// How to choose the next token. Field names are the ones reported in [`SamplingError`].
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature, `>= 0`; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables; negative is an error.
    pub top_k: i32,
    /// Nucleus sampling mass in `(0, 1]`; `1` disables.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token, in `[0, 1]`; `0` disables.
    pub min_p: f32,
    /// llama.cpp repetition penalty, `> 0`; `1` disables.
    pub repeat_penalty: f32,
    /// How many of the most recent tokens (prompt included) the repetition penalty looks at;
    /// `0` disables the repetition penalty.
    pub repeat_last_n: usize,
    /// OpenAI presence penalty (finite; OpenAI allows `[-2, 2]`), over generated tokens.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty (finite; OpenAI allows `[-2, 2]`), over generated tokens.
    pub frequency_penalty: f32,
    /// Additive bias per token id, applied first. Values must not be NaN or `+inf`.
    pub logit_bias: BTreeMap<u32, f32>,
    /// Seed of the sampler's PRNG; `None` picks one from process entropy (see
    /// [`Sampler::seed`] to report it).
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    /// llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: BTreeMap::new(),
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (temperature 0) with no penalties or bias.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Self::default()
        }
    }

    /// Pure sampling from the softmax at `temperature` (no top-k/top-p/min-p, no penalties).
    pub fn plain(temperature: f32, seed: u64) -> Self {
        Self {
            temperature,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: Some(seed),
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first offending field.
    pub fn validate(&self) -> Result<(), SamplingError> {
        fn bad(field: &'static str, value: impl Display, reason: &'static str) -> SamplingError {
            SamplingError::InvalidParam {
                field,
                value: value.to_string(),
                reason,
            }
        }
        let t = self.temperature;
        if !t.is_finite() || t < 0.0 {
            return Err(bad("temperature", t, "must be a finite number >= 0"));
        }
        if self.top_k < 0 {
            return Err(bad("top_k", self.top_k, "must be >= 0 (0 disables top-k)"));
        }
        let p = self.top_p;
        if !p.is_finite() || p <= 0.0 || p > 1.0 {
            return Err(bad("top_p", p, "must be in (0, 1]"));
        }
        let m = self.min_p;
        if !m.is_finite() || !(0.0..=1.0).contains(&m) {
            return Err(bad("min_p", m, "must be in [0, 1]"));
        }
        let r = self.repeat_penalty;
        if !r.is_finite() || r <= 0.0 {
            return Err(bad("repeat_penalty", r, "must be a finite number > 0"));
        }
        if !self.presence_penalty.is_finite() {
            return Err(bad(
                "presence_penalty",
                self.presence_penalty,
                "must be finite",
            ));
        }
        if !self.frequency_penalty.is_finite() {
            return Err(bad(
                "frequency_penalty",
                self.frequency_penalty,
                "must be finite",
            ));
        }
        for (&id, &b) in &self.logit_bias {
            if b.is_nan() || b == f32::INFINITY {
                return Err(SamplingError::InvalidParam {
                    field: "logit_bias",
                    value: format!("{{{id}: {b}}}"),
                    reason: "biases must be finite or -inf",
                });
            }
        }
        Ok(())
    }
}

/// Descending by logit, then ascending by id: a total order, so unstable sorts are deterministic.
fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Sorts `cands` so that its first `m` entries are the `m` largest in [`by_logit_desc`] order.
fn sort_prefix(cands: &mut [(u32, f32)], m: usize) {
    if m == 0 {
        return;
    }
    if m < cands.len() {
        cands.select_nth_unstable_by(m - 1, by_logit_desc);
        if let Some(prefix) = cands.get_mut(..m) {
            prefix.sort_unstable_by(by_logit_desc);
        }
    } else {
        cands.sort_unstable_by(by_logit_desc);
    }
}

/// A stateful sampler for one sequence: it remembers recent tokens (repetition penalty) and the
/// counts of generated tokens (presence/frequency penalties), and owns the PRNG.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    vocab_size: usize,
    seed: u64,
    rng: Xoshiro256StarStar,
    /// The last `repeat_last_n` tokens of the sequence (prompt and generated).
    recent: VecDeque<u32>,
    /// How often each token was generated.
    counts: HashMap<u32, u32>,
    work: Vec<f32>,
    cands: Vec<(u32, f32)>,
    scratch: Vec<u32>,
}

/// How many top candidates top-p sorts first before falling back to a full sort.
const TOP_P_PREFIX: usize = 256;

impl Sampler {
    /// A sampler for a vocabulary of `vocab_size` tokens; validates `params` and the logit-bias ids.
    pub fn new(params: &SamplingParams, vocab_size: usize) -> Result<Self, SamplingError> {
        params.validate()?;
        if let Some((&id, _)) = params
            .logit_bias
            .iter()
            .find(|(&id, _)| usize::try_from(id).map_or(true, |i| i >= vocab_size))
        {
            return Err(SamplingError::LogitBiasOutOfVocab { id, vocab_size });
        }
        let seed = params.seed.unwrap_or_else(entropy_seed);
        Ok(Self {
            params: params.clone(),
            vocab_size,
            seed,
            rng: Xoshiro256StarStar::seed_from_u64(seed),
            recent: VecDeque::with_capacity(params.repeat_last_n.min(4096)),
            counts: HashMap::new(),
            work: Vec::with_capacity(vocab_size),
            cands: Vec::with_capacity(vocab_size),
            scratch: Vec::new(),
        })
    }

    /// The seed in use (the given one, or the one drawn from entropy).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The parameters this sampler was built with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    fn push_recent(&mut self, token: u32) {
        let n = self.params.repeat_last_n;
        if n == 0 {
            return;
        }
        if self.recent.len() >= n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Records prompt tokens: they count for the repetition penalty (llama.cpp), not for the
    /// presence/frequency penalties (OpenAI counts generated tokens only).
    pub fn accept_prompt(&mut self, tokens: &[u32]) {
        let n = self.params.repeat_last_n;
        let start = tokens.len().saturating_sub(n);
        for &t in tokens.get(start..).unwrap_or(&[]) {
            self.push_recent(t);
        }
    }

    /// Records a generated token.
    pub fn accept(&mut self, token: u32) {
        self.push_recent(token);
        *self.counts.entry(token).or_insert(0) += 1;
    }

    /// Applies logit bias, then the repetition, presence and frequency penalties, in place.
    pub fn adjust_logits(&mut self, logits: &mut [f32]) -> Result<(), SamplingError> {
        if logits.len() != self.vocab_size {
            return Err(SamplingError::LogitsLength {
                expected: self.vocab_size,
                got: logits.len(),
            });
        }
        for (&id, &bias) in &self.params.logit_bias {
            // Ids were checked against the vocabulary in `new`.
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        let rp = self.params.repeat_penalty;
        if rp != 1.0 && !self.recent.is_empty() {
            self.scratch.clear();
            self.scratch.extend(self.recent.iter().copied());
            self.scratch.sort_unstable();
            self.scratch.dedup();
            for &id in &self.scratch {
                if let Some(l) = logits.get_mut(id as usize) {
                    if *l > 0.0 {
                        *l /= rp;
                    } else {
                        *l *= rp;
                    }
                }
            }
        }
        let (pp, fp) = (self.params.presence_penalty, self.params.frequency_penalty);
        if pp != 0.0 || fp != 0.0 {
            for (&id, &count) in &self.counts {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= pp * f32::from(u8::from(count > 0)) + fp * count as f32;
                }
            }
        }
        Ok(())
    }

    /// Chooses the next token from `logits` (one per vocabulary entry). Does not record it: call
    /// [`Sampler::accept`] with the token that is actually appended to the sequence.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SamplingError> {
        if logits.len() != self.vocab_size {
            return Err(SamplingError::LogitsLength {
                expected: self.vocab_size,
                got: logits.len(),
            });
        }
        let mut work = std::mem::take(&mut self.work);
        work.clear();
        work.extend_from_slice(logits);
        let result = self
            .adjust_logits(&mut work)
            .and_then(|()| self.choose(&work));
        self.work = work;
        result
    }

    /// Greedy or filtered sampling over already-adjusted logits.
    fn choose(&mut self, logits: &[f32]) -> Result<u32, SamplingError> {
        if self.params.temperature == 0.0 {
            return greedy(logits).ok_or(SamplingError::NoCandidates);
        }
        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan() && **l != f32::NEG_INFINITY)
                .map(|(i, &l)| (i as u32, l)),
        );
        let result = if cands.is_empty() {
            Err(SamplingError::NoCandidates)
        } else {
            self.filter(&mut cands);
            Ok(self.draw(&cands))
        };
        self.cands = cands;
        result
    }

    /// Top-k, top-p and min-p, in that order, on the untempered logits. Keeps at least one.
    fn filter(&self, cands: &mut Vec<(u32, f32)>) {
        // Number of leading entries known to be sorted in `by_logit_desc` order.
        let mut sorted = 0usize;
        let k = usize::try_from(self.params.top_k).unwrap_or(0);
        if k > 0 && k < cands.len() {
            sort_prefix(cands, k);
            cands.truncate(k);
            sorted = k;
        }
        let top_p = f64::from(self.params.top_p);
        if top_p < 1.0 && cands.len() > 1 {
            let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
            let total: f64 = cands
                .iter()
                .map(|c| (f64::from(c.1) - f64::from(max)).exp())
                .sum();
            let target = top_p * total;
            let mut prefix = TOP_P_PREFIX.min(cands.len());
            loop {
                if sorted < prefix {
                    sort_prefix(cands, prefix);
                    sorted = prefix;
                }
                let mut cum = 0.0f64;
                let mut keep = None;
                for (i, c) in cands.iter().take(prefix).enumerate() {
                    cum += (f64::from(c.1) - f64::from(max)).exp();
                    if cum >= target {
                        keep = Some(i + 1);
                        break;
                    }
                }
                match keep {
                    Some(n) => {
                        cands.truncate(n);
                        break;
                    }
                    None if prefix >= cands.len() => break, // rounding: keep everything
                    None => prefix = cands.len(),
                }
            }
        }
        let min_p = f64::from(self.params.min_p);
        if min_p > 0.0 && cands.len() > 1 {
            let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
            // p_i / p_max = exp(l_i - l_max) >= min_p; the max itself always passes.
            cands.retain(|c| (f64::from(c.1) - f64::from(max)).exp() >= min_p);
        }
    }

    /// Softmax at the temperature in f64, then one uniform draw by cumulative mass.
    fn draw(&mut self, cands: &[(u32, f32)]) -> u32 {
        let t = f64::from(self.params.temperature);
        let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let weight = |l: f32| ((f64::from(l) - f64::from(max)) / t).exp();
        let total: f64 = cands.iter().map(|c| weight(c.1)).sum();
        let u = self.rng.next_f64() * total;
        let mut cum = 0.0f64;
        for c in cands {
            cum += weight(c.1);
            if u < cum {
                return c.0;
            }
        }
        // Rounding left `u` at or past the final sum: take the last token with non-zero weight.
        cands
            .iter()
            .rev()
            .find(|c| weight(c.1) > 0.0)
            .or(cands.last())
            .map_or(0, |c| c.0)
    }
}

/// Index of the largest non-NaN logit, ties to the lowest id; `None` if every logit is NaN or
/// `-inf`.
pub fn greedy(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() || l == f32::NEG_INFINITY {
            continue;
        }
        match best {
            Some((_, b)) if l <= b => {}
            _ => best = Some((i, l)),
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
