//! Encoding throughput on a text file, single thread.
//!
//! `cargo run --release -p llama31-tokenizer --example tokenizer_bench -- TOKENIZER TEXT [ITERS]`
//! TOKENIZER is a `tokenizer.model` (tiktoken) or a `tokenizer.json`. Prints one line
//! `rust <loader> bytes=.. tokens=.. secs=.. MB/s=..` (best of ITERS runs).

use std::path::Path;
use std::time::Instant;

use llama31_tokenizer::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(tok_path), Some(text_path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: tokenizer_bench TOKENIZER TEXT [ITERS]");
        std::process::exit(2);
    };
    let iters: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let text = std::fs::read_to_string(text_path)?;
    let t0 = Instant::now();
    let (loader, tok) = if tok_path.ends_with(".json") {
        (
            "tokenizer.json",
            Tokenizer::from_hf_json_file(Path::new(tok_path))?,
        )
    } else {
        (
            "tokenizer.model",
            Tokenizer::from_tiktoken_file(Path::new(tok_path))?,
        )
    };
    let load = t0.elapsed().as_secs_f64();
    let mut best = f64::INFINITY;
    let mut n = 0;
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        let ids = tok.encode(&text, false);
        best = best.min(t.elapsed().as_secs_f64());
        n = ids.len();
    }
    let t = Instant::now();
    let bytes = tok.decode(&tok.encode(&text, false));
    let rt = t.elapsed().as_secs_f64();
    assert_eq!(bytes, text.as_bytes(), "round trip");
    println!(
        "rust {loader} bytes={} tokens={n} secs={best:.4} MB/s={:.2} load_s={load:.3} encode+decode_s={rt:.3}",
        text.len(),
        text.len() as f64 / best / 1e6
    );
    Ok(())
}
