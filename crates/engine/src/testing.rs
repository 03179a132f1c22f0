//! Toy models for unit tests.

use std::sync::Mutex;

use crate::error::EngineError;
use crate::language_model::{Detokenizer, LanguageModel, LogitsMode, SeqInput};

/// A cache that only counts positions, so tests can check that the loop passes the right ones.
#[derive(Debug, Default)]
pub struct PosSession {
    pub len: usize,
    pub cap: usize,
}

fn advance(s: &mut PosSession, start_pos: usize, n: usize) -> Result<(), EngineError> {
    // Rewinding (overwriting later positions) is allowed; gaps are not.
    if start_pos > s.len || start_pos + n > s.cap {
        return Err(EngineError::Model(
            format!(
                "bad positions: start {start_pos}, cached {}, batch {n}, capacity {}",
                s.len, s.cap
            )
            .into(),
        ));
    }
    s.len = start_pos + n;
    Ok(())
}

fn new_pos_session(max_seq: usize) -> PosSession {
    PosSession {
        len: 0,
        cap: max_seq,
    }
}

fn copy_pos_prefix(dst: &mut PosSession, src: &PosSession, n: usize) -> Result<(), EngineError> {
    if n > src.len || n > dst.cap {
        return Err(EngineError::Model(
            format!(
                "bad prefix copy: {n} positions from {} cached into capacity {}",
                src.len, dst.cap
            )
            .into(),
        ));
    }
    dst.len = n;
    Ok(())
}

/// Logits depend on the previous token and its position: `logits_at(token, pos)`.
pub struct BigramModel {
    vocab: usize,
    context: usize,
    /// The number of sequences of every `forward_batch` step.
    pub steps: Mutex<Vec<usize>>,
}

impl BigramModel {
    pub fn new(vocab: usize, context: usize) -> Self {
        Self {
            vocab,
            context,
            steps: Mutex::new(Vec::new()),
        }
    }

    pub fn logits_at(&self, token: u32, pos: usize) -> Vec<f32> {
        (0..self.vocab)
            .map(|v| {
                let x = (token as f32 * 1.7 + v as f32 * 0.9).sin() * 3.0;
                x + if v == pos % self.vocab { 1.5 } else { 0.0 }
            })
            .collect()
    }
}

impl LanguageModel for BigramModel {
    type Cache = PosSession;
    type Scratch = ();
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn context_len(&self) -> usize {
        self.context
    }
    fn new_cache(&self, max_seq: usize) -> Result<PosSession, EngineError> {
        Ok(new_pos_session(max_seq))
    }
    fn copy_prefix(
        &self,
        dst: &mut PosSession,
        src: &PosSession,
        n: usize,
    ) -> Result<(), EngineError> {
        copy_pos_prefix(dst, src, n)
    }
    fn forward_batch(
        &self,
        seqs: &mut [SeqInput<'_, PosSession>],
        _: &mut (),
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        out.clear();
        if let Ok(mut steps) = self.steps.lock() {
            steps.push(seqs.len());
        }
        for s in seqs.iter_mut() {
            advance(s.cache, s.start_pos, s.tokens.len())?;
            let rows = match s.logits {
                LogitsMode::None => 0..0,
                LogitsMode::Last => s.tokens.len() - 1..s.tokens.len(),
                LogitsMode::All => 0..s.tokens.len(),
            };
            for i in rows {
                out.extend(self.logits_at(s.tokens[i], s.start_pos + i));
            }
        }
        Ok(())
    }
}

/// Emits `script[k]` as the k-th generated token (greedy), whatever the input.
pub struct ScriptModel {
    pub vocab: usize,
    pub context: usize,
    pub prompt_len: usize,
    pub script: Vec<u32>,
    /// Every forward call: (tokens, start_pos).
    pub calls: Mutex<Vec<(Vec<u32>, usize)>>,
}

impl ScriptModel {
    pub fn new(vocab: usize, context: usize, prompt_len: usize, script: Vec<u32>) -> Self {
        Self {
            vocab,
            context,
            prompt_len,
            script,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<(Vec<u32>, usize)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl LanguageModel for ScriptModel {
    type Cache = PosSession;
    type Scratch = ();
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn context_len(&self) -> usize {
        self.context
    }
    fn new_cache(&self, max_seq: usize) -> Result<PosSession, EngineError> {
        Ok(new_pos_session(max_seq))
    }
    fn copy_prefix(
        &self,
        dst: &mut PosSession,
        src: &PosSession,
        n: usize,
    ) -> Result<(), EngineError> {
        copy_pos_prefix(dst, src, n)
    }
    /// Only the last position's logits (whatever the mode asks).
    fn forward_batch(
        &self,
        seqs: &mut [SeqInput<'_, PosSession>],
        _: &mut (),
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        out.clear();
        for s in seqs.iter_mut() {
            advance(s.cache, s.start_pos, s.tokens.len())?;
            if let Ok(mut calls) = self.calls.lock() {
                calls.push((s.tokens.to_vec(), s.start_pos));
            }
            if s.logits == LogitsMode::None {
                continue;
            }
            let k = s.start_pos + s.tokens.len() - self.prompt_len;
            let next = *self
                .script
                .get(k)
                .ok_or_else(|| EngineError::Model("script exhausted".into()))?;
            let start = out.len();
            out.resize(start + self.vocab, 0.0);
            out[start + next as usize] = 10.0;
        }
        Ok(())
    }
}

/// A vocabulary of byte strings.
pub struct ToyVocab(pub Vec<Vec<u8>>);

impl Detokenizer for ToyVocab {
    fn token_bytes(&self, id: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0[id as usize]);
    }
}

/// Toy vocabulary: id 0 is the end token.
pub fn script_vocab() -> ToyVocab {
    let pieces: Vec<&[u8]> = vec![
        b"<eot>",     // 0
        b"Hel",       // 1
        b"lo",        // 2
        b" wo",       // 3
        b"rld",       // 4
        b"ST",        // 5
        b"OP",        // 6
        b"x",         // 7
        b"\xC3",      // 8: first byte of "é"
        b"\xA9",      // 9: second byte of "é"
        b"\xF0\x9F",  // 10: first half of "🙂"
        b"\x99\x82!", // 11: second half of "🙂" then "!"
        b"\xFF",      // 12: invalid byte
        b"S",         // 13
        b"TOP tail",  // 14
        b"\xE2\x82",  // 15: incomplete "€"
    ];
    ToyVocab(pieces.into_iter().map(<[u8]>::to_vec).collect())
}
