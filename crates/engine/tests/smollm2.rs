//! End-to-end checks of the engine on the real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by
//! `scripts/fetch-fixtures.sh`), its weights kept quantized and multiplied with f32 activations
//! (`--activations f32`, the dequantized model's results at the quantized file's memory).

use std::ops::ControlFlow;
use std::path::PathBuf;

use llama31_engine::{
    default_stop_tokens, generate, perplexity, perplexity_tokens, FinishReason, LanguageModel,
    LogitsMode, PerplexityOptions, Request, SamplingParams, SeqInput,
};
use llama31_model::{LoadOptions, Model};
use llama31_tokenizer::Tokenizer;

fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/llama31"))
}

fn load() -> (Model, Tokenizer) {
    let path = cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(512),
            progress: None,
            weights: llama31_model::WeightMode::AsStored,
            activations: llama31_model::Activations::F32,
            ..Default::default()
        },
    )
    .unwrap();
    (model, tok)
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog. Paris is the capital of France, \
and Berlin is the capital of Germany. Water boils at one hundred degrees Celsius at sea level. \
The sun rises in the east and sets in the west.";

#[test]
fn greedy_generation_with_stops_and_seeded_sampling() {
    let (model, tok) = load();
    let prompt_text =
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let prompt = tok.encode(prompt_text, true);
    let stops = default_stop_tokens(&tok, &model.config().eos_token_ids);
    let mut req = Request {
        max_tokens: Some(40),
        sampling: SamplingParams::greedy(),
        stop_tokens: stops,
        ..Request::new(prompt)
    };
    let mut pieces = String::new();
    let g = generate(&model, &tok, &req, &mut |t| {
        pieces.push_str(t);
        ControlFlow::Continue(())
    })
    .unwrap();
    eprintln!("{:?} {:?} {:?}", g.text, g.finish_reason, g.timings);
    assert_eq!(pieces, g.text);
    assert_eq!(g.text, tok.decode_lossy(&g.tokens));
    assert!(g.text.contains("Paris"), "{:?}", g.text);
    assert!(g.usage.completion_tokens >= 1);

    // Stop at "Paris": the text ends right before it.
    req.stop_strings = vec!["Paris".into()];
    let s = generate(&model, &tok, &req, &mut |_| ControlFlow::Continue(())).unwrap();
    let cut = g.text.find("Paris").unwrap();
    assert_eq!(s.text, g.text[..cut]);
    assert!(matches!(s.finish_reason, FinishReason::StopString { .. }));

    // Seeded sampling is reproducible.
    req.stop_strings.clear();
    req.sampling = SamplingParams {
        seed: Some(7),
        temperature: 1.0,
        ..SamplingParams::default()
    };
    let a = generate(&model, &tok, &req, &mut |_| ControlFlow::Continue(())).unwrap();
    let b = generate(&model, &tok, &req, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(a.tokens, b.tokens);
}

/// Runs every sequence one token at a time (so `forward_all` is a string of single-token steps).
struct OneByOne<'a>(&'a Model);

impl LanguageModel for OneByOne<'_> {
    type Cache = llama31_model::KvCache;
    type Scratch = llama31_model::Scratch;
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn context_len(&self) -> usize {
        self.0.context_len()
    }
    fn new_cache(&self, n: usize) -> Result<Self::Cache, llama31_engine::EngineError> {
        LanguageModel::new_cache(self.0, n)
    }
    fn copy_prefix(
        &self,
        dst: &mut Self::Cache,
        src: &Self::Cache,
        n: usize,
    ) -> Result<(), llama31_engine::EngineError> {
        LanguageModel::copy_prefix(self.0, dst, src, n)
    }
    fn forward_batch(
        &self,
        seqs: &mut [SeqInput<'_, Self::Cache>],
        scratch: &mut Self::Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(), llama31_engine::EngineError> {
        out.clear();
        let mut row = Vec::new();
        for s in seqs.iter_mut() {
            for (i, t) in s.tokens.iter().enumerate() {
                let last = i + 1 == s.tokens.len();
                self.0.forward_one(
                    s.cache,
                    &[*t],
                    s.start_pos + i,
                    LogitsMode::Last,
                    scratch,
                    &mut row,
                )?;
                if s.logits == LogitsMode::All || (s.logits == LogitsMode::Last && last) {
                    out.extend_from_slice(&row);
                }
            }
        }
        Ok(())
    }
}

#[test]
fn perplexity_batched_equals_sequential_and_text_beats_shuffle() {
    let (model, tok) = load();
    let tokens = perplexity_tokens(&tok, TEXT);
    assert_eq!(
        Some(tokens[0]),
        tok.bos_id().filter(|_| tok.add_bos()).or(Some(tokens[0]))
    );
    let opts = PerplexityOptions::new(24);
    let batched = perplexity(&model, &tokens, opts, &mut |_| {}).unwrap();
    let seq = perplexity(&OneByOne(&model), &tokens, opts, &mut |_| {}).unwrap();
    assert_eq!(batched.nll.len(), seq.nll.len());
    for (a, b) in batched.nll.iter().zip(&seq.nll) {
        assert!((a - b).abs() < 2e-3, "batched {a} vs sequential {b}");
    }
    // Natural text is far more predictable than the same tokens reversed.
    let mut rev = tokens.clone();
    rev.reverse();
    let r = perplexity(&model, &rev, opts, &mut |_| {}).unwrap();
    eprintln!("ppl text {} reversed {}", batched.ppl, r.ppl);
    assert!(batched.ppl < 60.0, "ppl {}", batched.ppl);
    assert!(batched.ppl * 4.0 < r.ppl);
}
