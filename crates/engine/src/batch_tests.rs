//! The batching engine on toy models: batching does not change any output (which is also the
//! single-request generator's), and stop strings and cancellation go through the same step.

use std::ops::ControlFlow;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::generate::generate;
use crate::sampler::SamplingParams;
use crate::testing::{script_vocab, BigramModel, ScriptModel};

#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    tokens: Vec<u32>,
    pieces: Vec<String>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

fn outcome() -> Outcome {
    Outcome {
        tokens: Vec::new(),
        pieces: Vec::new(),
        finish: None,
        usage: None,
    }
}

fn submit(engine: &Engine, req: Request) -> (Ticket, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let ticket = engine
        .submit(req, Box::new(move |ev| tx.send(ev).is_ok()))
        .unwrap();
    (ticket, rx)
}

fn collect(rx: &mpsc::Receiver<Event>) -> Outcome {
    let mut o = outcome();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)).expect("event") {
            Event::Token { id, text, .. } => {
                if id != u32::MAX {
                    o.tokens.push(id);
                }
                o.pieces.push(text);
            }
            Event::Done { finish, usage, .. } => {
                o.finish = Some(finish);
                o.usage = Some(usage);
                return o;
            }
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
}

/// Prompts of different lengths (so prefill chunks and decode steps mix), seeded sampling.
fn bigram_requests() -> Vec<Request> {
    (0..5usize)
        .map(|i| Request {
            max_tokens: Some(8 + 2 * i),
            sampling: SamplingParams {
                temperature: 0.9,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed: Some(100 + i as u64),
                ..SamplingParams::default()
            },
            stop_tokens: vec![0],
            stop_strings: if i == 2 {
                vec!["SS".into()]
            } else {
                Vec::new()
            },
            logprobs: (i == 3).then_some(2),
            ..Request::new(
                (0..3 + 5 * i)
                    .map(|k| ((k * 7 + i) % 15 + 1) as u32)
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn batching_gives_the_same_tokens_as_alone_and_as_the_generator() {
    let vocab = Arc::new(script_vocab());
    let reqs = bigram_requests();

    let model = Arc::new(BigramModel::new(16, 64));
    let config = EngineConfig {
        slots: 1,
        ctx: 64,
        max_queue: 16,
        step_tokens: 256,
    };
    let alone_engine = Engine::start(Arc::clone(&model), Arc::clone(&vocab), config).unwrap();
    let alone: Vec<Outcome> = reqs
        .iter()
        .map(|r| collect(&submit(&alone_engine, r.clone()).1))
        .collect();
    drop(alone_engine);

    let batched_model = Arc::new(BigramModel::new(16, 64));
    let config = EngineConfig {
        slots: 4,
        ctx: 64,
        max_queue: 16,
        step_tokens: 7,
    };
    let engine = Engine::start(Arc::clone(&batched_model), Arc::clone(&vocab), config).unwrap();
    let running: Vec<_> = reqs.iter().map(|r| submit(&engine, r.clone())).collect();
    let batched: Vec<Outcome> = running.iter().map(|(_, rx)| collect(rx)).collect();
    assert_eq!(alone, batched);
    let steps = batched_model.steps.lock().unwrap().clone();
    assert!(
        steps.iter().any(|&n| n >= 3),
        "several sequences per step: {steps:?}"
    );
    assert!(batched.iter().any(|o| o.tokens.len() >= 4));
    assert!(matches!(
        batched[2].finish,
        Some(FinishReason::StopString { index: 0, .. })
    ));

    // The single-request generator runs the same step.
    for (req, o) in reqs.iter().zip(&alone) {
        let mut pieces = Vec::new();
        let g = generate(&*model, &*vocab, req, &mut |t| {
            pieces.push(t.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(g.tokens, o.tokens);
        assert_eq!(g.text, o.pieces.concat());
        assert_eq!(Some(g.finish_reason), o.finish);
        assert_eq!(Some(g.usage), o.usage);
    }
}

fn script_engine(slots: usize) -> (Engine, Arc<ScriptModel>) {
    let vocab = Arc::new(script_vocab());
    // Every request has a 3-token prompt; the k-th generated token is script[k].
    let model = Arc::new(ScriptModel::new(16, 64, 3, vec![1, 2, 5, 6, 3, 4, 0]));
    let config = EngineConfig {
        slots,
        ctx: 64,
        max_queue: 16,
        step_tokens: 64,
    };
    let engine = Engine::start(Arc::clone(&model), vocab, config).unwrap();
    (engine, model)
}

fn script_request(stop_strings: &[&str]) -> Request {
    Request {
        max_tokens: Some(16),
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![0],
        stop_strings: stop_strings.iter().map(|s| s.to_string()).collect(),
        ..Request::new(vec![7, 7, 7])
    }
}

#[test]
fn stop_strings_are_cut_and_held_text_is_released() {
    let (engine, _) = script_engine(2);
    // "Hel" "lo" "ST" "OP": the stop string spans two tokens and is never shown.
    let o = collect(&submit(&engine, script_request(&["STOP"])).1);
    assert_eq!(o.pieces, vec!["Hel", "lo", "", ""]);
    assert_eq!(o.tokens, vec![1, 2, 5, 6]);
    assert_eq!(
        o.finish,
        Some(FinishReason::StopString {
            index: 0,
            stop: "STOP".into()
        })
    );
    // "ST" is held while it could start "STX", and released ("OP" shows it is not).
    let o = collect(&submit(&engine, script_request(&["STX"])).1);
    assert_eq!(o.pieces.concat(), "HelloSTOP world");
    assert_eq!(o.finish, Some(FinishReason::StopToken { id: 0 }));
    assert_eq!(o.usage.unwrap().completion_tokens, 7);
    // Held text at the token budget comes as a last piece with no token of its own.
    let mut req = script_request(&["STX"]);
    req.max_tokens = Some(3);
    let o = collect(&submit(&engine, req).1);
    assert_eq!(o.pieces, vec!["Hel", "lo", "", "ST"]);
    assert_eq!(o.tokens, vec![1, 2, 5]);
    assert_eq!(o.finish, Some(FinishReason::Length));
}

#[test]
fn cancellation_frees_the_slot_without_done() {
    let (engine, _) = script_engine(1);

    // A sink that stops listening after two tokens.
    let (tx, rx) = mpsc::channel();
    let mut seen = 0;
    let sink = Box::new(move |ev: Event| {
        seen += 1;
        let _ = tx.send(ev);
        seen < 2
    });
    let _ticket = engine.submit(script_request(&[]), sink).unwrap();

    // A ticket dropped (by the sink, from the engine thread) after the first token.
    let (ticket_tx, ticket_rx) = mpsc::channel::<Ticket>();
    let (tx2, rx2) = mpsc::channel();
    let sink = Box::new(move |ev: Event| {
        if let Ok(t) = ticket_rx.recv_timeout(Duration::from_secs(30)) {
            drop(t);
        }
        tx2.send(ev).is_ok()
    });
    let ticket = engine.submit(script_request(&[]), sink).unwrap();
    ticket_tx.send(ticket).unwrap();

    // The only slot serves the next request: both were freed.
    let o = collect(&submit(&engine, script_request(&[])).1);
    assert_eq!(o.pieces.concat(), "HelloSTOP world");

    let first: Vec<Event> = rx.try_iter().collect();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|e| matches!(e, Event::Token { .. })));
    let second: Vec<Event> = rx2.try_iter().collect();
    assert_eq!(second.len(), 1);
    assert!(matches!(second[0], Event::Token { id: 1, .. }));
    let m = engine.metrics();
    assert_eq!(m.cancelled.load(Ordering::Relaxed), 2);
    assert_eq!(m.requests.load(Ordering::Relaxed), 3);
}

#[test]
fn a_cancelled_sequence_samples_nothing() {
    let req = script_request(&[]);
    let mut seq = Sequence::new(&req, 16, 64).unwrap();
    let flag = Arc::clone(seq.cancel_flag());
    flag.store(true, Ordering::Relaxed);
    let step = seq.accept_logits(&[0.0; 16], &script_vocab()).unwrap();
    assert_eq!(step.token, None);
    assert_eq!(step.finish, Some(FinishReason::Cancelled));
    assert_eq!(seq.usage().completion_tokens, 0);
    // Logits of the wrong size are an error, not a token.
    let mut seq = Sequence::new(&req, 16, 64).unwrap();
    assert!(matches!(
        seq.accept_logits(&[0.0; 15], &script_vocab()),
        Err(EngineError::LogitsShape {
            expected: 16,
            got: 15
        })
    ));
}

#[test]
fn a_model_error_fails_the_request_and_the_engine_goes_on() {
    let (engine, _) = script_engine(1);
    // Without the end token the script runs out after 7 tokens: the model fails.
    let mut req = script_request(&[]);
    req.stop_tokens.clear();
    let (_t, rx) = submit(&engine, req);
    let error = loop {
        match rx.recv_timeout(Duration::from_secs(30)).expect("event") {
            Event::Error(e) => break e,
            Event::Done { .. } => panic!("the request should fail"),
            Event::Token { .. } => {}
        }
    };
    assert_eq!(error, "model error: script exhausted");
    let o = collect(&submit(&engine, script_request(&[])).1);
    assert_eq!(o.finish, Some(FinishReason::StopToken { id: 0 }));
}

fn engine_with_queue(slots: usize, max_queue: usize) -> Engine {
    let vocab = Arc::new(script_vocab());
    let model = Arc::new(ScriptModel::new(16, 64, 3, vec![1, 2, 5, 6, 3, 4, 0]));
    let config = EngineConfig {
        slots,
        ctx: 64,
        max_queue,
        step_tokens: 64,
    };
    Engine::start(model, vocab, config).unwrap()
}

fn try_submit(engine: &Engine) -> Result<(Ticket, mpsc::Receiver<Event>), SubmitError> {
    let (tx, rx) = mpsc::channel();
    engine
        .submit(script_request(&[]), Box::new(move |ev| tx.send(ev).is_ok()))
        .map(|t| (t, rx))
}

#[test]
fn a_free_slot_takes_a_request_even_with_no_queue() {
    let engine = engine_with_queue(1, 0);
    for _ in 0..20 {
        let (_t, rx) = try_submit(&engine).expect("refused although the slot is free");
        assert!(matches!(
            collect(&rx).finish,
            Some(FinishReason::StopToken { .. })
        ));
    }
}

#[test]
fn a_request_sent_as_soon_as_another_finishes_is_not_refused() {
    // One slot, one place in the queue: a client that sends its next request the moment it hears
    // `Done` must find room (the finished request's slot), even before the engine has moved the
    // waiting request into it.
    let engine = engine_with_queue(1, 1);
    let (_t1, mut running) = try_submit(&engine).unwrap();
    let mut tickets = Vec::new();
    for i in 0..30 {
        let (t, waiting) =
            try_submit(&engine).unwrap_or_else(|e| panic!("request {i} refused: {e:?}"));
        tickets.push(t);
        collect(&running);
        running = waiting;
    }
    collect(&running);
}
