//! `Model::forward_batch` gives every sequence exactly (bit for bit) the logits it gets when it
//! runs alone, whatever else shares the step: prompts prefilled in chunks beside other sequences'
//! decode steps, the same as one prefill and single-token steps. Checked on the tiny Llama 3.1
//! (bf16, GQA, untied head) and on SmolLM2's Q4_1 blocks kept quantized.

mod common;

use llama31_model::{BatchSeq, KvCache, LoadOptions, LogitsMode, Model, Scratch, WeightMode};

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Alone: prefill the whole prompt, then `steps` greedy single-token steps; returns every
/// logits row produced (last prompt position, then one per step).
fn alone(model: &Model, prompt: &[u32], steps: usize) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(128).unwrap();
    let mut rows = Vec::new();
    let mut logits = model
        .forward(prompt, 0, &mut cache, LogitsMode::Last)
        .unwrap();
    for pos in prompt.len()..prompt.len() + steps {
        let t = argmax(&logits);
        rows.push(std::mem::take(&mut logits));
        logits = model
            .forward(&[t], pos, &mut cache, LogitsMode::Last)
            .unwrap();
    }
    rows.push(logits);
    rows
}

struct Seq {
    prompt: Vec<u32>,
    cache: KvCache,
    pos: usize,
    next: Option<u32>,
    rows: Vec<Vec<f32>>,
    start_step: usize,
}

/// Batched: sequences join at different steps, prompts go in chunks of `chunk` tokens, and every
/// step runs all active sequences together.
fn batched(model: &Model, prompts: &[Vec<u32>], steps: usize, chunk: usize) -> Vec<Vec<Vec<f32>>> {
    let vocab = model.config().vocab_size;
    let mut seqs: Vec<Seq> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Seq {
            prompt: p.clone(),
            cache: model.new_cache(128).unwrap(),
            pos: 0,
            next: None,
            rows: Vec::new(),
            start_step: i * 2,
        })
        .collect();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for step in 0.. {
        let mut batch = Vec::new();
        let mut who = Vec::new();
        let mut toks: Vec<Vec<u32>> = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            if step < s.start_step || s.rows.len() > steps {
                continue;
            }
            let t: Vec<u32> = if s.pos < s.prompt.len() {
                s.prompt[s.pos..(s.pos + chunk).min(s.prompt.len())].to_vec()
            } else {
                vec![s.next.unwrap()]
            };
            toks.push(t);
            who.push(i);
        }
        if who.is_empty() {
            if seqs.iter().all(|s| s.rows.len() > steps) {
                break;
            }
            continue;
        }
        let mut caches: Vec<&mut Seq> = Vec::new();
        for (i, s) in seqs.iter_mut().enumerate() {
            if who.contains(&i) {
                caches.push(s);
            }
        }
        for (s, t) in caches.iter_mut().zip(&toks) {
            let done_prompt = s.pos + t.len() >= s.prompt.len();
            batch.push(BatchSeq {
                tokens: t,
                start_pos: s.pos,
                cache: &mut s.cache,
                logits: if done_prompt {
                    LogitsMode::Last
                } else {
                    LogitsMode::None
                },
                lora: None,
            });
        }
        model
            .forward_batch(&mut batch, &mut scratch, &mut out)
            .unwrap();
        drop(batch);
        let mut r = 0;
        for (s, t) in caches.iter_mut().zip(&toks) {
            s.pos += t.len();
            if s.pos >= s.prompt.len() {
                let row = out[r * vocab..(r + 1) * vocab].to_vec();
                s.next = Some(argmax(&row));
                s.rows.push(row);
                r += 1;
            }
        }
        assert_eq!(r * vocab, out.len());
    }
    seqs.into_iter().map(|s| s.rows).collect()
}

fn check(model: &Model, prompts: &[Vec<u32>], chunk: usize) {
    let steps = 6;
    let together = batched(model, prompts, steps, chunk);
    for (i, p) in prompts.iter().enumerate() {
        let solo = alone(model, p, steps);
        assert_eq!(solo.len(), together[i].len());
        for (k, (a, b)) in solo.iter().zip(&together[i]).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "sequence {i}, row {k}: batched logits differ from running alone"
            );
        }
    }
}

#[test]
fn tiny_llama_batched_equals_alone() {
    let dir = common::tiny("hf-untied").unwrap();
    let model = Model::load(
        &dir,
        LoadOptions {
            max_seq_len: Some(128),
            progress: None,
            ..Default::default()
        },
    )
    .unwrap();
    let prompts = vec![
        vec![
            128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679,
        ],
        vec![128000, 9906, 1917],
        vec![
            128000, 40, 1093, 311, 2512, 264, 3280, 922, 279, 9581, 11, 1524, 13, 578,
        ],
    ];
    check(&model, &prompts, 4);
}

#[test]
fn smollm2_quantized_batched_equals_alone() {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} not found: run scripts/fetch-fixtures.sh",
        path.display()
    );
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(128),
            progress: None,
            weights: WeightMode::AsStored,
            ..Default::default()
        },
    )
    .unwrap();
    let prompts = vec![
        vec![1, 4093, 198, 504, 3575, 282, 4649, 314],
        vec![
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3150, 28, 6121, 411, 9434,
        ],
        vec![1, 13, 260, 2116],
    ];
    check(&model, &prompts, 3);
}
