//! Rough timing of prefill and decode: `cargo run --release -p llama31-model --example
//! bench_forward -- <model path> [prompt_len] [decode_steps]`.

use std::time::Instant;

use llama31_model::{LoadOptions, LogitsMode, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: bench_forward <model> [prompt_len] [decode_steps]")?;
    let prompt_len: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let steps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let t0 = Instant::now();
    let model = Model::load(
        path,
        LoadOptions {
            max_seq_len: Some(prompt_len + steps + 1),
            progress: None,
            weights: llama31_model::WeightMode::Dequantized,
            ..Default::default()
        },
    )?;
    let vocab = model.config().vocab_size as u32;
    eprintln!("load: {:.2?}", t0.elapsed());
    let tokens: Vec<u32> = (0..prompt_len as u32)
        .map(|i| (i * 7919 + 13) % vocab)
        .collect();
    let mut cache = model.new_cache(prompt_len + steps + 1)?;
    let mut logits = Vec::new();
    let t = Instant::now();
    model.forward_into(&tokens, 0, &mut cache, LogitsMode::Last, &mut logits)?;
    let dt = t.elapsed().as_secs_f64();
    eprintln!(
        "prefill {prompt_len}: {:.3}s = {:.1} tok/s",
        dt,
        prompt_len as f64 / dt
    );
    let t = Instant::now();
    let mut tok = 1u32;
    for s in 0..steps {
        model.forward_into(
            &[tok],
            prompt_len + s,
            &mut cache,
            LogitsMode::Last,
            &mut logits,
        )?;
        tok = logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                if v > b.1 {
                    (i, v)
                } else {
                    b
                }
            })
            .0 as u32;
    }
    let dt = t.elapsed().as_secs_f64();
    eprintln!(
        "decode {steps}: {:.3}s = {:.1} tok/s",
        dt,
        steps as f64 / dt
    );
    Ok(())
}
