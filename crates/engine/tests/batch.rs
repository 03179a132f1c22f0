//! The continuous-batching engine on the real SmolLM2-135M-Instruct GGUF: requests give the same
//! tokens alone and beside others, the queue is bounded, cancellation frees the slot, prompts that
//! share a start reuse the cached keys and values, and a constraint restricts the output.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use llama31_engine::{
    default_stop_tokens, Constraint, ConstraintMatcher, Engine, EngineConfig, Event, FinishReason,
    Request, SamplingParams, SubmitError, Ticket,
};
use llama31_model::{LoadOptions, Model};
use llama31_tokenizer::Tokenizer;

fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/llama31"))
}

fn load() -> (Arc<Model>, Arc<Tokenizer>) {
    let path = cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-fixtures.sh",
        path.display()
    );
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(1024),
            progress: None,
            weights: llama31_model::WeightMode::Dequantized,
            ..Default::default()
        },
    )
    .unwrap();
    (Arc::new(model), Arc::new(tok))
}

fn chat_prompt(tok: &Tokenizer, user: &str) -> Vec<u32> {
    tok.encode_with_special(&format!(
        "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    ))
}

struct Outcome {
    tokens: Vec<u32>,
    text: String,
    finish: Option<FinishReason>,
    cached: usize,
}

fn submit(engine: &Engine, req: Request) -> (Ticket, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let ticket = engine
        .submit(req, Box::new(move |ev| tx.send(ev).is_ok()))
        .unwrap();
    (ticket, rx)
}

fn collect(rx: &mpsc::Receiver<Event>) -> Outcome {
    let mut o = Outcome {
        tokens: Vec::new(),
        text: String::new(),
        finish: None,
        cached: 0,
    };
    loop {
        match rx
            .recv_timeout(Duration::from_secs(120))
            .expect("engine event")
        {
            Event::Token { id, text, .. } => {
                if id != u32::MAX {
                    o.tokens.push(id);
                }
                o.text.push_str(&text);
            }
            Event::Done { finish, usage, .. } => {
                o.finish = Some(finish);
                o.cached = usage.cached_tokens;
                return o;
            }
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
}

fn request(tok: &Tokenizer, user: &str, sampling: SamplingParams, n: usize) -> Request {
    let mut r = Request::new(chat_prompt(tok, user));
    r.max_tokens = Some(n);
    r.sampling = sampling;
    r.stop_tokens = default_stop_tokens(tok, &[]);
    r
}

#[test]
fn same_tokens_alone_and_beside_others() {
    let (model, tok) = load();
    let engine = Engine::start(
        model,
        Arc::clone(&tok),
        EngineConfig {
            slots: 4,
            ctx: 512,
            max_queue: 16,
            step_tokens: 16, // prompts go in several chunks interleaved with decoding
        },
    )
    .unwrap();
    let questions = [
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "List three prime numbers.",
        "Why is the sky blue? Answer in one sentence.",
    ];
    let sampling = |i: usize| {
        if i.is_multiple_of(2) {
            SamplingParams::greedy()
        } else {
            SamplingParams::plain(0.9, 1234 + i as u64)
        }
    };
    let alone: Vec<Outcome> = questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let (_t, rx) = submit(&engine, request(&tok, q, sampling(i), 24));
            collect(&rx)
        })
        .collect();
    assert!(alone[0].text.contains("Paris"), "{}", alone[0].text);
    // All four at once (twice over, so later ones queue and join running batches).
    let mut pending = Vec::new();
    for round in 0..2 {
        for (i, q) in questions.iter().enumerate() {
            pending.push((i, round, submit(&engine, request(&tok, q, sampling(i), 24))));
        }
    }
    for (i, round, (_t, rx)) in pending {
        let together = collect(&rx);
        assert_eq!(
            together.tokens, alone[i].tokens,
            "request {i} (round {round}) differs beside others"
        );
        assert_eq!(together.text, alone[i].text);
        assert_eq!(together.finish, alone[i].finish);
    }
    assert!(
        engine
            .metrics()
            .cached_prompt_tokens
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

#[test]
fn queue_is_bounded_and_cancel_frees_the_slot() {
    let (model, tok) = load();
    let engine = Engine::start(
        model,
        Arc::clone(&tok),
        EngineConfig {
            slots: 1,
            ctx: 512,
            max_queue: 2,
            step_tokens: 64,
        },
    )
    .unwrap();
    let long = |n| {
        request(
            &tok,
            "Tell me a long story about a dragon.",
            SamplingParams::greedy(),
            n,
        )
    };
    let (t1, rx1) = submit(&engine, long(400));
    // Wait until it runs, so the next two are the queue.
    assert!(matches!(
        rx1.recv_timeout(Duration::from_secs(60)).unwrap(),
        Event::Token { .. }
    ));
    let (_t2, rx2) = submit(&engine, long(3));
    let (_t3, _rx3) = submit(&engine, long(3));
    match engine.submit(long(3), Box::new(|_| true)) {
        Err(SubmitError::QueueFull { queued }) => assert_eq!(queued, 2),
        other => panic!("expected QueueFull, got {:?}", other.map(|_| ())),
    }
    // Cancelling the running request lets the queued ones through, and it reports nothing more
    // than a token or two already on their way.
    drop(t1);
    let second = collect(&rx2);
    assert_eq!(second.finish, Some(FinishReason::Length));
    let mut late = 0;
    while let Ok(ev) = rx1.try_recv() {
        assert!(
            !matches!(ev, Event::Done { .. }),
            "a cancelled request must not finish"
        );
        late += 1;
    }
    assert!(late <= 2, "{late} events after cancellation");
}

#[test]
fn prefix_is_reused_and_bad_requests_are_refused() {
    let (model, tok) = load();
    let engine = Engine::start(model, Arc::clone(&tok), EngineConfig::default()).unwrap();
    let r = request(&tok, "Name a color.", SamplingParams::greedy(), 4);
    let (_t, rx) = submit(&engine, r.clone());
    let first = collect(&rx);
    assert_eq!(first.cached, 0);
    let (_t, rx) = submit(&engine, r.clone());
    let again = collect(&rx);
    assert_eq!(again.cached, r.prompt.len() - 1);
    assert_eq!(again.tokens, first.tokens);

    let mut big = r.clone();
    big.max_tokens = Some(1 << 40);
    assert!(matches!(
        engine.submit(big, Box::new(|_| true)),
        Err(SubmitError::Invalid(_))
    ));
    let mut bad = r.clone();
    bad.prompt.push(49152);
    assert!(matches!(
        engine.submit(bad, Box::new(|_| true)),
        Err(SubmitError::Invalid(_))
    ));
    let mut nan = r;
    nan.sampling.temperature = f32::NAN;
    assert!(matches!(
        engine.submit(nan, Box::new(|_| true)),
        Err(SubmitError::Invalid(_))
    ));
}

/// Output restricted to a decimal number of exactly three digits.
#[derive(Debug)]
struct ThreeDigits(Arc<Tokenizer>);

struct DigitsMatcher {
    tok: Arc<Tokenizer>,
    len: usize,
}

impl Constraint for ThreeDigits {
    fn matcher(&self) -> Box<dyn ConstraintMatcher> {
        Box::new(DigitsMatcher {
            tok: Arc::clone(&self.0),
            len: 0,
        })
    }
}

impl ConstraintMatcher for DigitsMatcher {
    fn accepts(&self, bytes: &[u8]) -> bool {
        !bytes.is_empty() && self.len + bytes.len() <= 3 && bytes.iter().all(u8::is_ascii_digit)
    }
    fn accept(&mut self, bytes: &[u8]) -> bool {
        let ok = self.accepts(bytes);
        if ok {
            self.len += bytes.len();
        }
        ok
    }
    fn is_complete(&self) -> bool {
        self.len == 3
    }
    fn can_continue(&self) -> bool {
        self.len < 3
    }
    fn allowed(&self, allowed: &mut [bool]) {
        for (id, a) in allowed.iter_mut().enumerate() {
            *a = !self.tok.is_special(id as u32)
                && self
                    .tok
                    .token_bytes(id as u32)
                    .is_some_and(|b| self.accepts(b));
        }
    }
}

#[test]
fn constraint_restricts_the_output() {
    let (model, tok) = load();
    let engine = Engine::start(model, Arc::clone(&tok), EngineConfig::default()).unwrap();
    let mut r = request(&tok, "Say hello.", SamplingParams::plain(1.0, 7), 20);
    r.constraint = Some(Arc::new(ThreeDigits(Arc::clone(&tok))));
    r.logprobs = Some(3);
    let (_t, rx) = submit(&engine, r);
    let o = collect(&rx);
    assert_eq!(o.finish, Some(FinishReason::Complete));
    assert_eq!(o.text.len(), 3, "{:?}", o.text);
    assert!(o.text.bytes().all(|b| b.is_ascii_digit()), "{:?}", o.text);
}
