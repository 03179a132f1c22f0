//! Dequantization must be bit-exact with gguf-py (llama.cpp's reference) on the committed goldens
//! (`goldens/kernels/dequant.json`, made by `scripts/goldens/dequant_goldens.py`).

use llama31_kernels::quant::dequantize_to_vec;
use llama31_kernels::DType;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn dequant_matches_gguf_py_bit_exactly() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../goldens/kernels/dequant.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let types = v["types"].as_object().unwrap();
    assert_eq!(types.len(), 10, "all ten quant types have goldens");
    for (name, t) in types {
        let qt = DType::from_ggml_id(t["ggml_type"].as_u64().unwrap() as u32)
            .unwrap_or_else(|| panic!("{name}: unknown ggml type"));
        assert_eq!(
            qt.type_size() as u64,
            t["block_bytes"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            qt.block_size() as u64,
            t["block_elems"].as_u64().unwrap(),
            "{name}"
        );
        let bytes = hex(t["bytes_hex"].as_str().unwrap());
        let want: Vec<u32> = t["f32_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let got = dequantize_to_vec(qt, &bytes, want.len()).unwrap();
        let mismatches: Vec<usize> = (0..want.len())
            .filter(|&i| got[i].to_bits() != want[i])
            .collect();
        assert!(
            mismatches.is_empty(),
            "{name}: {} of {} values differ, first at {} (got {}, want {})",
            mismatches.len(),
            want.len(),
            mismatches[0],
            got[mismatches[0]],
            f32::from_bits(want[mismatches[0]])
        );
    }
}
