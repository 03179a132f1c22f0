//! Toy models for unit tests.

use std::cell::RefCell;

use crate::error::EngineError;
use crate::generate::{Detokenizer, LanguageModel};

/// A session that only counts positions, so tests can check that the loop passes the right ones.
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

/// Logits depend on the previous token and its position: `logits_at(token, pos)`.
pub struct BigramModel {
    vocab: usize,
    context: usize,
}

impl BigramModel {
    pub fn new(vocab: usize, context: usize) -> Self {
        Self { vocab, context }
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
    type Session = PosSession;
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn context_len(&self) -> usize {
        self.context
    }
    fn new_session(&self, max_seq: usize) -> Result<PosSession, EngineError> {
        Ok(PosSession {
            len: 0,
            cap: max_seq,
        })
    }
    fn forward(
        &self,
        s: &mut PosSession,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        advance(s, start_pos, tokens.len())?;
        let last = tokens.len() - 1;
        Ok(self.logits_at(tokens[last], start_pos + last))
    }
    fn forward_all(
        &self,
        s: &mut PosSession,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        advance(s, start_pos, tokens.len())?;
        Ok(tokens
            .iter()
            .enumerate()
            .flat_map(|(i, &t)| self.logits_at(t, start_pos + i))
            .collect())
    }
}

/// Emits `script[k]` as the k-th generated token (greedy), whatever the input.
pub struct ScriptModel {
    pub vocab: usize,
    pub context: usize,
    pub prompt_len: usize,
    pub script: Vec<u32>,
    /// Every forward call: (tokens, start_pos).
    pub calls: RefCell<Vec<(Vec<u32>, usize)>>,
}

impl ScriptModel {
    pub fn new(vocab: usize, context: usize, prompt_len: usize, script: Vec<u32>) -> Self {
        Self {
            vocab,
            context,
            prompt_len,
            script,
            calls: RefCell::new(Vec::new()),
        }
    }
}

impl LanguageModel for ScriptModel {
    type Session = PosSession;
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn context_len(&self) -> usize {
        self.context
    }
    fn new_session(&self, max_seq: usize) -> Result<PosSession, EngineError> {
        Ok(PosSession {
            len: 0,
            cap: max_seq,
        })
    }
    fn forward(
        &self,
        s: &mut PosSession,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<Vec<f32>, EngineError> {
        advance(s, start_pos, tokens.len())?;
        self.calls.borrow_mut().push((tokens.to_vec(), start_pos));
        let k = start_pos + tokens.len() - self.prompt_len;
        let next = *self
            .script
            .get(k)
            .ok_or_else(|| EngineError::Model("script exhausted".into()))?;
        let mut logits = vec![0.0f32; self.vocab];
        logits[next as usize] = 10.0;
        Ok(logits)
    }
}

/// A vocabulary of byte strings.
pub struct ToyVocab(pub Vec<Vec<u8>>);

impl Detokenizer for ToyVocab {
    fn token_bytes(&self, id: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0[id as usize]);
    }
}
