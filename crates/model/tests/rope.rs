//! Llama 3 RoPE scaling vs Meta's `apply_scaling` (numpy transcription in
//! `scripts/goldens/rope_goldens.py` → `goldens/model/rope_llama3.json`), and the GGUF
//! `rope_freqs` factors written by llama.cpp's converter.

mod common;

use llama31_kernels::rope::{base_inv_freqs, llama3_scale, RopeTable};
use llama31_model::Llama3RopeScaling;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

#[test]
fn llama3_scaled_frequencies_match_meta() {
    let text = std::fs::read_to_string(common::goldens().join("model/rope_llama3.json")).unwrap();
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f64s = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let hd = c["head_dim"].as_u64().unwrap() as usize;
        let base = base_inv_freqs(hd, 500000.0);
        let scaled = llama3_scale(&base, &Llama3RopeScaling::META.to_kernel());
        for (i, (a, b)) in base.iter().zip(f64s(&c["base"])).enumerate() {
            assert!(rel(*a as f64, b) < 1e-6, "hd {hd} base[{i}]: {a} vs {b}");
        }
        let want = f64s(&c["scaled"]);
        // The three regimes (high frequencies kept, low divided by 8, smooth in between) all occur.
        assert!(want.iter().zip(f64s(&c["base"])).any(|(s, b)| *s == b));
        assert!(want
            .iter()
            .zip(f64s(&c["base"]))
            .any(|(s, b)| rel(*s, b / 8.0) < 1e-6));
        for (i, (a, b)) in scaled.iter().zip(&want).enumerate() {
            assert!(rel(*a as f64, *b) < 2e-6, "hd {hd} scaled[{i}]: {a} vs {b}");
        }
        let positions: Vec<usize> = c["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        let max_pos = positions.iter().max().unwrap() + 1;
        let table = RopeTable::new(&scaled, max_pos).unwrap();
        for (k, &p) in positions.iter().enumerate() {
            let (cos, sin) = table.cos_sin(p).unwrap();
            let (wc, ws) = (f64s(&c["cos"][k]), f64s(&c["sin"][k]));
            for i in 0..hd / 2 {
                // Angles up to 131071 rad are rounded to f32 (as torch does); allow that rounding.
                assert!(
                    (cos[i] as f64 - wc[i]).abs() < 2e-3,
                    "hd {hd} pos {p} cos[{i}]"
                );
                assert!(
                    (sin[i] as f64 - ws[i]).abs() < 2e-3,
                    "hd {hd} pos {p} sin[{i}]"
                );
            }
        }
    }
}

#[test]
fn gguf_rope_freqs_factors_match_llama3_scaling() {
    let Some(p) = common::tiny("llama31-tiny-bf16.gguf") else {
        return;
    };
    let g = llama31_formats::GgufFile::open(&p).unwrap();
    let t = g.tensor("rope_freqs.weight").unwrap();
    let factors: Vec<f32> = t
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let base = base_inv_freqs(16, 500000.0);
    let scaled = llama3_scale(&base, &Llama3RopeScaling::META.to_kernel());
    assert_eq!(factors.len(), 8);
    for i in 0..8 {
        let via_factor = base[i] / factors[i];
        assert!(
            rel(via_factor as f64, scaled[i] as f64) < 1e-5,
            "{i}: {via_factor} vs {}",
            scaled[i]
        );
    }
}
