//! Reference quantization must produce exactly llama.cpp's bytes (`ggml_quantize_chunk`, no
//! importance matrix) on the committed goldens (`goldens/kernels/quantize.json`, made by
//! `scripts/goldens/quantize_goldens.py`), and the quantize→dequantize round trip must stay within
//! ggml's `test-quantize-fns` error budget.

use llama31_kernels::quant::dequantize_to_vec;
use llama31_kernels::quantize::{quantize_row, quantize_to_vec};
use llama31_kernels::DType;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn goldens() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../goldens/kernels/quantize.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn quantize_matches_llama_cpp_bit_exactly() {
    let v = goldens();
    let types = v["types"].as_object().unwrap();
    let mut checked = Vec::new();
    for (name, t) in types {
        let qt = DType::from_ggml_id(t["ggml_type"].as_u64().unwrap() as u32).unwrap();
        for case in t["cases"].as_array().unwrap() {
            let cname = case["name"].as_str().unwrap();
            let x: Vec<f32> = hex(case["f32_hex"].as_str().unwrap())
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(x.len() as u64, case["n"].as_u64().unwrap());
            let want = hex(case["q_hex"].as_str().unwrap());
            let got = quantize_to_vec(qt, &x).unwrap();
            assert_eq!(got.len(), want.len(), "{name}/{cname}: length");
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                let bb = qt.type_size();
                panic!(
                    "{name}/{cname}: first differing byte {i} (block {}, offset {}): ours {:#04x}, llama.cpp {:#04x}",
                    i / bb,
                    i % bb,
                    got[i],
                    want[i]
                );
            }
        }
        checked.push(name.clone());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"]
    );
}

/// ggml's `test-quantize-fns`: `generate_data(0.0, 32·128)` (`0.1 + 2·cosf(i)`, summed in
/// double) and `array_rmse` (sqrt of the summed squared error, divided by n), with budgets
/// `MAX_QUANTIZATION_TOTAL_ERROR` = 0.002, `_2BITS` = 0.0075 (Q2_K) and `_3BITS` = 0.0040 (Q3_K).
#[test]
fn round_trip_error_within_ggml_budget() {
    let n = 32 * 128;
    let x: Vec<f32> = (0..n)
        .map(|i| (0.1f64 + 2.0 * f64::from((i as f32).cos())) as f32)
        .collect();
    for (qt, budget) in [(DType::Q2_K, 0.0075), (DType::Q3_K, 0.0040)]
        .into_iter()
        .chain(
            [
                DType::Q4_0,
                DType::Q4_1,
                DType::Q5_0,
                DType::Q5_1,
                DType::Q8_0,
                DType::Q4_K,
                DType::Q5_K,
                DType::Q6_K,
            ]
            .map(|t| (t, 0.002)),
        )
    {
        let q = quantize_to_vec(qt, &x).unwrap();
        let y = dequantize_to_vec(qt, &q, n).unwrap();
        let sum: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| {
                let d = a as f64 - b as f64;
                d * d
            })
            .sum();
        let err = sum.sqrt() / n as f64;
        assert!(
            err < budget,
            "{qt:?}: total quantization error {err} ≥ {budget}"
        );
    }
}

#[test]
fn rejects_bad_sizes() {
    let x = vec![1.0f32; 48];
    assert!(quantize_to_vec(DType::Q8_0, &x).is_err());
    let x = vec![1.0f32; 64];
    let mut dst = vec![0u8; 10];
    assert!(quantize_row(DType::Q8_0, &x, &mut dst).is_err());
    let x = vec![1.0f32; 300];
    assert!(quantize_to_vec(DType::Q2_K, &x).is_err());
}

/// Non-finite and huge inputs are garbage in, garbage out (as in ggml), but must never panic.
#[test]
fn non_finite_input_does_not_panic() {
    let mut x: Vec<f32> = (0..512).map(|i| (i as f32 * 0.37).sin()).collect();
    x[3] = f32::NAN;
    x[40] = f32::INFINITY;
    x[300] = f32::NEG_INFINITY;
    x[301] = 3.0e38;
    x[302] = -1.0e-40;
    for id in [2, 3, 6, 7, 8, 10, 11, 12, 13, 14] {
        let qt = DType::from_ggml_id(id).unwrap();
        let q = quantize_to_vec(qt, &x).unwrap();
        assert_eq!(
            q.len(),
            llama31_kernels::quants::bytes_for(qt, 512).unwrap()
        );
    }
}
