//! Speculative decoding for the single-request generator: a [`Drafter`] guesses the next tokens,
//! the model runs the pending token and the guesses in one forward pass (logits of every
//! position), and the sequence then takes its steps on those rows one by one, exactly as plain
//! decoding would take them one pass at a time, for as long as each sampled token is the guess
//! that was run after it.
//!
//! Because a row's logits are the same bits in a batch as alone (the kernels do not depend on the
//! number of rows), and the sampler, stop rules, constraints and log-probabilities see the same
//! rows in the same order with the same random state, the output is **identical token for
//! token** to decoding without speculation — greedy or sampled with a seed. Nothing is rolled
//! back in the sequence: only the cache positions of rejected guesses, which the next pass
//! overwrites. With a deterministic drafter (prompt lookup) a guess is taken with the target's
//! own probability of that token, which is what the standard rejection rule accepts with too.

/// Something that proposes the tokens likely to follow `context`.
pub trait Drafter: Send {
    /// Appends up to `max` proposed next tokens of `context` (prompt, generated tokens and the
    /// pending one) to `out`; nothing when it has no guess.
    fn draft(&mut self, context: &[u32], max: usize, out: &mut Vec<u32>);
}

/// Prompt lookup (n-gram) drafting: finds the latest earlier occurrence of the context's last
/// `ngram` tokens (in the prompt or the text generated so far) and proposes the tokens that
/// followed it. Cheap, no second model; pays off where the output repeats the input (edit this
/// file, quote this passage).
#[derive(Debug, Clone)]
pub struct PromptLookup {
    ngram: usize,
}

impl PromptLookup {
    /// Matches the last `ngram` tokens (at least 1).
    pub fn new(ngram: usize) -> PromptLookup {
        PromptLookup {
            ngram: ngram.max(1),
        }
    }
}

impl Drafter for PromptLookup {
    fn draft(&mut self, context: &[u32], max: usize, out: &mut Vec<u32>) {
        let n = self.ngram;
        if max == 0 || context.len() <= n {
            return;
        }
        let tail = &context[context.len() - n..];
        // Latest match first: recent text predicts best. The match must end before the tail.
        for start in (0..context.len() - n).rev() {
            if &context[start..start + n] == tail {
                let from = start + n;
                let end = (from + max).min(context.len());
                out.extend_from_slice(&context[from..end]);
                return;
            }
        }
    }
}

/// How many guesses to run per pass: starts at `max`, doubles (up to `max`) after a pass whose
/// guesses were all taken, halves after a pass that took fewer than half; after passes that took
/// none it stops drafting for a while (8 tokens, doubling up to 64), so that a drafter that never
/// guesses right costs almost nothing. It also times itself: when passes with guesses (drafting
/// included) have cost more per token they produced than passes without (running averages),
/// drafting pauses the same way — where a pass over several tokens, or the drafting, is
/// expensive, speculation steps aside.
#[derive(Debug)]
pub struct Speculation {
    drafter: Box<dyn Drafter>,
    max: usize,
    k: usize,
    pause: usize,
    pause_len: usize,
    /// Running averages of seconds per produced token: passes with guesses, plain passes.
    spec_cost: Option<f64>,
    plain_cost: Option<f64>,
    stats: SpecStats,
}

/// Weight of the newest sample in the running cost averages.
const COST_ALPHA: f64 = 0.2;

fn ewma(avg: &mut Option<f64>, x: f64) {
    *avg = Some(match *avg {
        Some(a) => a + COST_ALPHA * (x - a),
        None => x,
    });
}

/// What speculation did during one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecStats {
    /// Forward passes that ran guesses.
    pub passes: usize,
    /// Guesses run.
    pub drafted: usize,
    /// Guesses that were the sampled token (each saved one forward pass).
    pub accepted: usize,
}

impl SpecStats {
    /// Accepted ÷ drafted (0 when nothing was drafted).
    pub fn acceptance(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }
}

impl std::fmt::Debug for dyn Drafter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drafter")
    }
}

impl Speculation {
    /// Speculation with `drafter`, at most `max` guesses per pass.
    pub fn new(drafter: Box<dyn Drafter>, max: usize) -> Speculation {
        let max = max.max(1);
        Speculation {
            drafter,
            max,
            k: max,
            pause: 0,
            pause_len: 8,
            spec_cost: None,
            plain_cost: None,
            stats: SpecStats::default(),
        }
    }

    /// Records a pass without guesses that took `secs`.
    pub(crate) fn record_plain(&mut self, secs: f64) {
        ewma(&mut self.plain_cost, secs);
    }

    fn pause_drafting(&mut self) {
        self.pause = self.pause_len;
        self.pause_len = (self.pause_len * 2).min(64);
    }

    /// Guesses for the next pass (at most `room`), into `out` (cleared first).
    pub(crate) fn draft(&mut self, context: &[u32], room: usize, out: &mut Vec<u32>) {
        out.clear();
        if self.pause > 0 {
            self.pause -= 1;
            return;
        }
        self.drafter.draft(context, self.k.min(room), out);
        out.truncate(self.k.min(room));
    }

    /// Records a pass that ran `drafted` guesses of which `accepted` were taken, in `secs`.
    pub(crate) fn record(&mut self, drafted: usize, accepted: usize, secs: f64) {
        self.stats.passes += 1;
        self.stats.drafted += drafted;
        self.stats.accepted += accepted;
        ewma(&mut self.spec_cost, secs / (accepted + 1) as f64);
        if accepted == drafted {
            self.k = (self.k * 2).min(self.max);
        } else if accepted == 0 {
            self.k = (self.k / 2).max(1);
            if self.k == 1 {
                self.pause_drafting();
                return;
            }
        } else if accepted * 2 < drafted {
            self.k = (self.k / 2).max(1);
        }
        match (self.spec_cost, self.plain_cost) {
            (Some(spec), Some(plain)) if spec > plain => self.pause_drafting(),
            _ if accepted == drafted => self.pause_len = 8,
            _ => {}
        }
    }

    /// What was done so far.
    pub fn stats(&self) -> SpecStats {
        self.stats
    }

    /// Forgets the statistics (a new request in the same session).
    pub fn reset_stats(&mut self) {
        self.stats = SpecStats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_proposes_what_followed_the_latest_match() {
        let mut d = PromptLookup::new(2);
        let mut out = Vec::new();
        // "1 2" occurs at 0 and 4; the latest earlier match (4) is followed by 9 8.
        d.draft(&[1, 2, 3, 4, 1, 2, 9, 8, 7, 1, 2], 3, &mut out);
        assert_eq!(out, [9, 8, 7]);
        out.clear();
        d.draft(&[1, 2, 3, 4, 1, 2, 9, 8, 7, 1, 2], 1, &mut out);
        assert_eq!(out, [9]);
        out.clear();
        d.draft(&[5, 6, 7], 4, &mut out);
        assert!(out.is_empty());
        // A match right before the tail proposes up to the tail's start, no further.
        out.clear();
        d.draft(&[3, 3, 3], 4, &mut out);
        assert_eq!(out, [3]);
    }

    #[test]
    fn k_adapts_and_pauses() {
        let mut s = Speculation::new(Box::new(PromptLookup::new(1)), 8);
        s.record(8, 8, 0.0);
        assert_eq!(s.k, 8);
        s.record(8, 3, 0.0);
        assert_eq!(s.k, 4);
        s.record(4, 0, 0.0);
        assert_eq!(s.k, 2);
        s.record(2, 0, 0.0);
        assert_eq!((s.k, s.pause), (1, 8));
        let mut out = Vec::new();
        for _ in 0..8 {
            s.draft(&[1, 1, 1], 4, &mut out);
            assert!(out.is_empty());
        }
        s.draft(&[1, 1, 1], 4, &mut out);
        assert_eq!(out, [1]);
        assert_eq!(s.stats().drafted, 22);
        assert_eq!(s.stats().accepted, 11);
    }

    /// Passes with guesses that cost more per token than plain passes pause drafting even when
    /// guesses are taken; cheaper ones keep it going.
    #[test]
    fn steps_aside_when_guessing_costs_more() {
        let mut s = Speculation::new(Box::new(PromptLookup::new(1)), 4);
        s.record_plain(0.010);
        s.record(4, 4, 0.030); // 5 tokens in 30 ms: 6 ms each, cheaper than 10
        assert_eq!(s.pause, 0);
        let mut s = Speculation::new(Box::new(PromptLookup::new(1)), 4);
        s.record_plain(0.010);
        s.record(4, 2, 0.045); // 3 tokens in 45 ms: 15 ms each
        assert_eq!(s.pause, 8);
    }
}
