//! Speculative decoding (prompt lookup) gives the output of plain decoding token for token —
//! greedy and sampled with a seed, with stop strings — on real models: SmolLM2-135M Q4_1 with
//! each activation precision, and the tiny Llama 3.1 with a LoRA adapter attached. Its guesses
//! must also be taken sometimes, or the comparison would prove nothing.

use std::ops::ControlFlow;
use std::path::PathBuf;

use llama31_engine::{
    default_stop_tokens, generate_in_session, DraftModel, Drafter, Generation, PromptLookup,
    Request, SamplingParams, Session, Speculation,
};
use llama31_model::{Activations, LoadOptions, LoraAdapter, Model};
use llama31_tokenizer::Tokenizer;

fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/llama31"))
}

/// A prompt that asks for a copy of a passage, so the continuation repeats the input.
const PASSAGE: &str = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\
def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result\n";

/// `req` on `model`, speculating with `spec` (a drafter and the most guesses per pass) if given;
/// checks that the streamed text is the reply's.
fn run(
    model: &Model,
    tok: &Tokenizer,
    req: &Request,
    spec: Option<(Box<dyn Drafter>, usize)>,
) -> Generation {
    let mut session = Session::new(model, 1024).unwrap();
    if let Some((drafter, k)) = spec {
        session.speculate(Speculation::new(drafter, k));
    }
    let mut streamed = String::new();
    let g = generate_in_session(model, tok, &mut session, req, &mut |t| {
        streamed.push_str(t);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(streamed, g.text);
    g
}

fn requests(tok: &Tokenizer, stops: Vec<u32>) -> Vec<Request> {
    let prompt = tok.encode(
        &format!(
            "<|im_start|>user\nCopy this Python code exactly, with no comment:\n\n{PASSAGE}<|im_end|>\n\
             <|im_start|>assistant\n```python\n"
        ),
        true,
    );
    let base = Request {
        max_tokens: Some(90),
        stop_tokens: stops,
        ..Request::new(prompt)
    };
    vec![
        Request {
            sampling: SamplingParams::greedy(),
            ..base.clone()
        },
        Request {
            sampling: SamplingParams {
                temperature: 0.8,
                top_k: 40,
                top_p: 0.95,
                seed: Some(7),
                ..SamplingParams::default()
            },
            ..base.clone()
        },
        Request {
            sampling: SamplingParams::greedy(),
            stop_strings: vec!["return result".into()],
            ..base
        },
    ]
}

fn check(model: &Model, tok: &Tokenizer, what: &str, specs: &[(usize, usize)]) -> (usize, usize) {
    let stops = default_stop_tokens(tok, &model.config().eos_token_ids);
    let (mut drafted, mut accepted) = (0, 0);
    for (i, req) in requests(tok, stops).iter().enumerate() {
        let plain = run(model, tok, req, None);
        for &(ngram, k) in specs {
            let spec = run(
                model,
                tok,
                req,
                Some((Box::new(PromptLookup::new(ngram)), k)),
            );
            assert_eq!(
                spec.tokens, plain.tokens,
                "{what} request {i}, ngram {ngram}, k {k}"
            );
            assert_eq!(spec.text, plain.text);
            assert_eq!(spec.finish_reason, plain.finish_reason);
            assert_eq!(spec.usage, plain.usage);
            let st = spec.speculation.unwrap();
            eprintln!(
                "{what} request {i} ngram {ngram} k {k}: {} tokens in {} passes (plain {}), {} of {} guesses taken",
                spec.tokens.len(),
                spec.timings.decode_tokens,
                plain.timings.decode_tokens,
                st.accepted,
                st.drafted
            );
            accepted += st.accepted;
            drafted += st.drafted;
        }
    }
    (drafted, accepted)
}

#[test]
fn prompt_lookup_gives_plain_decodings_tokens_smollm2() {
    let path = cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    for act in [Activations::Q8, Activations::F32] {
        let model = Model::load(
            &path,
            LoadOptions {
                max_seq_len: Some(1024),
                activations: act,
                ..Default::default()
            },
        )
        .unwrap();
        let (_, taken) = check(&model, &tok, &format!("SmolLM2 {act}"), &[(2, 4), (3, 8)]);
        assert!(taken > 20, "SmolLM2 {act}: only {taken} guesses taken");
    }
}

#[test]
fn prompt_lookup_gives_plain_decodings_tokens_tiny_with_lora() {
    let dir = cache_dir().join("tiny/hf-untied");
    let tok = Tokenizer::from_hf_json_file(&dir.join("tokenizer.json")).unwrap();
    let mut model = Model::load(
        &dir,
        LoadOptions {
            max_seq_len: Some(1024),
            ..Default::default()
        },
    )
    .unwrap();
    let adapter = LoraAdapter::load(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../goldens/lora/peft-r8"
    )))
    .unwrap();
    model.attach_lora(&[(&adapter, 1.0)]).unwrap();
    // A random model repeats little: one-token matches make guesses anyway, nearly all rejected,
    // which exercises the positions a rejected guess leaves behind.
    let (drafted, _) = check(&model, &tok, "tiny + LoRA", &[(1, 4), (1, 2)]);
    assert!(drafted >= 10, "only {drafted} guesses");
}

/// A draft model gives plain decoding's tokens too: the tiny model (HF safetensors) drafted by the
/// same weights from its GGUF with a q8_0 KV cache (guesses that are mostly, not always, right, so
/// rejected guesses are rolled back in the draft's cache), greedy, sampled and with stop strings.
#[test]
fn a_draft_model_gives_plain_decodings_tokens_tiny() {
    let dir = cache_dir().join("tiny/hf-untied");
    let tok = Tokenizer::from_hf_json_file(&dir.join("tokenizer.json")).unwrap();
    let opts = || LoadOptions {
        max_seq_len: Some(1024),
        ..Default::default()
    };
    let model = Model::load(&dir, opts()).unwrap();
    let stops = default_stop_tokens(&tok, &model.config().eos_token_ids);
    let (mut drafted, mut accepted) = (0, 0);
    for (i, req) in requests(&tok, stops).iter().enumerate() {
        let plain = run(&model, &tok, req, None);
        let draft = Model::load(
            cache_dir().join("tiny/llama31-tiny-bf16.gguf"),
            LoadOptions {
                kv_type: llama31_model::KvType::Q8_0,
                ..opts()
            },
        )
        .unwrap();
        let drafter = Box::new(DraftModel::new(draft, 1024).unwrap());
        let spec = run(&model, &tok, req, Some((drafter, 6)));
        assert_eq!(spec.tokens, plain.tokens, "request {i}");
        assert_eq!(spec.text, plain.text);
        assert_eq!(spec.finish_reason, plain.finish_reason);
        let st = spec.speculation.unwrap();
        eprintln!(
            "tiny draft request {i}: {} tokens in {} passes (plain {}), {} of {} guesses taken",
            spec.tokens.len(),
            spec.timings.decode_tokens,
            plain.timings.decode_tokens,
            st.accepted,
            st.drafted
        );
        drafted += st.drafted;
        accepted += st.accepted;
    }
    assert!(accepted > 20, "only {accepted} of {drafted} guesses taken");
}
