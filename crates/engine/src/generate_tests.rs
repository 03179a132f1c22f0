//! Tests of the generation loop with scripted toy models.

use super::*;
use crate::error::SamplingError;
use crate::request::{Request, Usage};
use crate::sampler::SamplingParams;
use crate::testing::{script_vocab, ScriptModel, ToyVocab};

const EOT: u32 = 0;

fn vocab() -> ToyVocab {
    script_vocab()
}

struct Run {
    gen: Generation,
    pieces: Vec<String>,
    calls: Vec<(Vec<u32>, usize)>,
}

fn run_with(
    prompt: Vec<u32>,
    script: Vec<u32>,
    context: usize,
    setup: impl FnOnce(&mut Request),
) -> Result<Run, EngineError> {
    let v = vocab();
    let model = ScriptModel::new(v.0.len(), context, prompt.len(), script);
    let mut req = Request {
        prompt,
        max_tokens: Some(16),
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![EOT],
        stop_strings: Vec::new(),
        logprobs: None,
        constraint: None,
        adapter: None,
    };
    setup(&mut req);
    let mut pieces = Vec::new();
    let gen = generate(&model, &v, &req, &mut |t| {
        pieces.push(t.to_string());
        ControlFlow::Continue(())
    })?;
    let calls = model.calls();
    Ok(Run { gen, pieces, calls })
}

fn run(script: Vec<u32>, setup: impl FnOnce(&mut Request)) -> Run {
    run_with(vec![1, 2, 3], script, 64, setup).unwrap()
}

#[test]
fn prefill_is_one_batch_then_one_token_per_step() {
    let r = run(vec![1, 2, 3, 4, EOT], |_| {});
    assert_eq!(r.gen.text, "Hello world");
    assert_eq!(r.gen.tokens, vec![1, 2, 3, 4]);
    assert_eq!(r.gen.finish_reason, FinishReason::StopToken { id: EOT });
    assert_eq!(r.gen.finish_reason.as_openai_str(), "stop");
    assert_eq!(
        r.calls,
        vec![
            (vec![1, 2, 3], 0),
            (vec![1], 3),
            (vec![2], 4),
            (vec![3], 5),
            (vec![4], 6),
        ]
    );
    assert_eq!(
        r.gen.usage,
        Usage {
            prompt_tokens: 3,
            completion_tokens: 5,
            total_tokens: 8,
            cached_tokens: 0
        }
    );
    assert_eq!(r.gen.timings.prefill_tokens, 3);
    assert_eq!(r.gen.timings.decode_tokens, 4);
    assert_eq!(r.pieces.concat(), r.gen.text);
}

#[test]
fn any_caller_stop_token_ends_generation() {
    let r = run(vec![1, 2, 7, 3], |req| req.stop_tokens = vec![EOT, 7]);
    assert_eq!(r.gen.text, "Hello");
    assert_eq!(r.gen.finish_reason, FinishReason::StopToken { id: 7 });
}

#[test]
fn max_tokens_gives_length() {
    let r = run(vec![1, 2, 3, 4, EOT], |req| req.max_tokens = Some(2));
    assert_eq!(r.gen.text, "Hello");
    assert_eq!(r.gen.finish_reason, FinishReason::Length);
    assert_eq!(r.gen.finish_reason.as_openai_str(), "length");
    assert_eq!(r.gen.usage.completion_tokens, 2);
    // The last sampled token is never run through the model.
    assert_eq!(r.calls.len(), 2);
}

#[test]
fn stop_string_across_token_boundary_is_cut_and_never_streamed() {
    // "Hel" "lo" "ST" "OP" " wo": stop "STOP" spans two tokens.
    let r = run(vec![1, 2, 5, 6, 3, EOT], |req| {
        req.stop_strings = vec!["STOP".into()]
    });
    assert_eq!(r.gen.text, "Hello");
    assert_eq!(
        r.gen.finish_reason,
        FinishReason::StopString {
            index: 0,
            stop: "STOP".into()
        }
    );
    assert_eq!(r.pieces, vec!["Hel", "lo"]);
    assert!(r.pieces.iter().all(|p| !p.contains('S')));
    // The tokens that carried the stop string are reported.
    assert_eq!(r.gen.tokens, vec![1, 2, 5, 6]);

    // Stop string starting inside a token and ending inside a later one: "lo" "S" "TOP tail".
    let r = run(vec![1, 2, 13, 14, EOT], |req| {
        req.stop_strings = vec!["oSTOP".into(), "never".into()]
    });
    assert_eq!(r.gen.text, "Hell");
    assert_eq!(r.pieces.concat(), "Hell");
    assert!(matches!(
        r.gen.finish_reason,
        FinishReason::StopString { index: 0, .. }
    ));
}

#[test]
fn held_prefix_is_released_when_stop_does_not_complete() {
    // "ST" could start "STOP" and is held; "x" shows it is not a stop; then the end token.
    let r = run(vec![1, 5, 7, 5, EOT], |req| {
        req.stop_strings = vec!["STOP".into()]
    });
    assert_eq!(r.pieces, vec!["Hel", "STx", "ST"]);
    assert_eq!(r.gen.text, "HelSTxST");
    assert_eq!(r.gen.finish_reason, FinishReason::StopToken { id: EOT });
    // Same at the length limit.
    let r = run(vec![1, 5, 7, 5, EOT], |req| {
        req.stop_strings = vec!["STOP".into()];
        req.max_tokens = Some(2);
    });
    assert_eq!(r.pieces, vec!["Hel", "ST"]);
    assert_eq!(r.gen.finish_reason, FinishReason::Length);
}

#[test]
fn utf8_split_across_tokens_is_held_until_complete() {
    let r = run(vec![1, 8, 9, 10, 11, EOT], |_| {});
    assert_eq!(r.pieces, vec!["Hel", "é", "🙂!"]);
    assert_eq!(r.gen.text, "Helé🙂!");
}

#[test]
fn invalid_and_trailing_incomplete_bytes_become_replacement_chars() {
    let r = run(vec![1, 12, 15, EOT], |_| {});
    assert_eq!(r.gen.text, "Hel\u{FFFD}\u{FFFD}");
    assert_eq!(r.pieces.concat(), r.gen.text);
}

#[test]
fn cancellation_stops_and_text_equals_streamed_pieces() {
    let v = vocab();
    let model = ScriptModel::new(v.0.len(), 64, 1, vec![1, 2, 5, 3, 4, EOT]);
    let req = Request {
        prompt: vec![1],
        max_tokens: Some(10),
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![EOT],
        stop_strings: vec!["STOP".into()],
        logprobs: None,
        constraint: None,
        adapter: None,
    };
    let mut pieces = Vec::new();
    let gen = generate(&model, &v, &req, &mut |t| {
        pieces.push(t.to_string());
        if pieces.len() == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(gen.finish_reason, FinishReason::Cancelled);
    assert_eq!(pieces, vec!["Hel", "lo"]);
    assert_eq!(gen.text, "Hello");
    assert_eq!(gen.tokens, vec![1, 2]);
    assert_eq!(model.calls().len(), 2);
}

#[test]
fn context_overflow_is_an_error_with_counts() {
    let err = run_with(vec![1, 2, 3, 4, 5], vec![1; 20], 10, |req| {
        req.max_tokens = Some(6)
    })
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            EngineError::ContextOverflow {
                prompt_tokens: 5,
                max_tokens: 6,
                context: 10
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("10"));
    // Exactly full is fine.
    let ok = run_with(vec![1, 2, 3, 4, 5], vec![1; 20], 10, |req| {
        req.max_tokens = Some(5)
    })
    .unwrap();
    assert_eq!(ok.gen.usage.completion_tokens, 5);
    assert_eq!(ok.gen.finish_reason, FinishReason::Length);
    assert_eq!(
        err.to_string(),
        "request does not fit the context: 5 prompt tokens + 6 max tokens > context of 10 tokens"
    );
    // Empty prompt.
    let err = run_with(vec![], vec![1; 20], 10, |_| {}).err().unwrap();
    assert!(matches!(
        err,
        EngineError::ContextOverflow {
            prompt_tokens: 0,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "the prompt is empty: at least one token is needed"
    );
    // Prompt alone longer than the context, with no max_tokens.
    let err = run_with(vec![1; 11], vec![1; 20], 10, |req| req.max_tokens = None)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        EngineError::ContextOverflow {
            prompt_tokens: 11,
            max_tokens: 1,
            context: 10
        }
    ));
    assert_eq!(
        err.to_string(),
        "the prompt has 11 tokens but the context holds 10: no room is left for a generated token \
         (shorten the prompt or use a larger context)"
    );
    // A prompt that fills the context leaves no room for even one token.
    let err = run_with(vec![1; 10], vec![1; 20], 10, |req| req.max_tokens = None)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        EngineError::ContextOverflow {
            prompt_tokens: 10,
            max_tokens: 1,
            context: 10
        }
    ));
    // Huge max_tokens does not overflow arithmetic.
    let err = run_with(vec![1], vec![1; 20], 10, |req| {
        req.max_tokens = Some(usize::MAX)
    })
    .err()
    .unwrap();
    assert!(matches!(err, EngineError::ContextOverflow { .. }));
}

#[test]
fn no_max_tokens_fills_the_context() {
    let r = run_with(vec![1, 2], vec![7; 20], 6, |req| req.max_tokens = None).unwrap();
    assert_eq!(r.gen.usage.completion_tokens, 4);
    assert_eq!(r.gen.text, "xxxx");
    assert_eq!(r.gen.finish_reason, FinishReason::Length);
}

#[test]
fn bad_requests_are_typed_errors() {
    let err = run_with(vec![1, 99], vec![1; 4], 64, |_| {}).err().unwrap();
    assert!(matches!(
        err,
        EngineError::TokenOutOfVocab {
            id: 99,
            index: 1,
            ..
        }
    ));
    let err = run_with(vec![1], vec![1; 4], 64, |req| {
        req.stop_strings = vec![String::new()]
    })
    .err()
    .unwrap();
    assert!(matches!(err, EngineError::EmptyStopString { index: 0 }));
    let err = run_with(vec![1], vec![1; 4], 64, |req| req.sampling.top_p = 0.0)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        EngineError::Sampling(SamplingError::InvalidParam { field: "top_p", .. })
    ));
}

#[test]
fn zero_max_tokens_runs_nothing() {
    let r = run(vec![1], |req| req.max_tokens = Some(0));
    assert_eq!(r.gen.text, "");
    assert_eq!(r.gen.finish_reason, FinishReason::Length);
    assert!(r.calls.is_empty());
}

#[test]
fn session_reuses_the_cached_prefix() {
    let v = vocab();
    // Script indexed by absolute position (prompt_len 0): the token at position p is 1 + p % 7.
    let script: Vec<u32> = (0..64).map(|p| 1 + p % 7).collect();
    let model = ScriptModel::new(v.0.len(), 64, 0, script);
    let mut session = Session::new(&model, 32).unwrap();
    assert_eq!(session.capacity(), 32);
    let mut req = Request {
        prompt: vec![1, 2, 3],
        max_tokens: Some(2),
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![EOT],
        stop_strings: Vec::new(),
        logprobs: None,
        constraint: None,
        adapter: None,
    };
    let go = |req: &Request, session: &mut Session<ScriptModel>| {
        generate_in_session(&model, &v, session, req, &mut |_| ControlFlow::Continue(())).unwrap()
    };
    let g = go(&req, &mut session);
    // Positions 3 and 4 → tokens 4 and 5; only the first was run through the model.
    assert_eq!(g.tokens, vec![4, 5]);
    assert_eq!(session.cached_tokens(), &[1, 2, 3, 4]);
    assert_eq!(g.usage.cached_tokens, 0);

    // The next turn extends the cached tokens: only the new ones are prefilled.
    req.prompt = vec![1, 2, 3, 4, 5, 7];
    let g = go(&req, &mut session);
    assert_eq!(g.usage.cached_tokens, 4);
    assert_eq!(g.usage.prompt_tokens, 6);
    assert_eq!(g.timings.prefill_tokens, 2);
    assert_eq!(session.cached_tokens(), &[1, 2, 3, 4, 5, 7, 7]);

    // The same prompt again: the last prompt token is re-run to get its logits.
    let g = go(&req, &mut session);
    assert_eq!(g.usage.cached_tokens, 5);
    assert_eq!(g.timings.prefill_tokens, 1);

    // A diverging prompt reuses only the common prefix.
    req.prompt = vec![1, 9];
    let g = go(&req, &mut session);
    assert_eq!(g.usage.cached_tokens, 1);
    assert_eq!(session.cached_tokens(), &[1, 9, 3]);

    let calls = model.calls();
    assert_eq!(
        calls,
        vec![
            (vec![1, 2, 3], 0),
            (vec![4], 3),
            (vec![5, 7], 4),
            (vec![7], 6),
            (vec![7], 5),
            (vec![7], 6),
            (vec![9], 1),
            (vec![3], 2),
        ]
    );

    // The session's capacity bounds the request.
    req.max_tokens = Some(31);
    let err = generate_in_session(&model, &v, &mut session, &req, &mut |_| {
        ControlFlow::Continue(())
    })
    .err()
    .unwrap();
    assert!(matches!(
        err,
        EngineError::ContextOverflow {
            prompt_tokens: 2,
            max_tokens: 31,
            context: 32
        }
    ));
}
