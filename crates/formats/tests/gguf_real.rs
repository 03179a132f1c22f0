//! The real SmolLM2-135M-Instruct Q4_1 GGUF fixture.
mod common;

use llama31_formats::{DType, GgufFile, WeightFile};

#[test]
fn smollm2_q4_1_gguf() {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let g = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.version(), 3);
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    // SmolLM2-135M: 30 layers, 576 hidden, 9 heads, 3 kv heads, 1536 ffn, 49152 vocab.
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(g.get_u32("llama.feed_forward_length").unwrap(), 1536);
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens[0], "<|endoftext|>");
    let eps = g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap();
    assert!(eps > 0.0 && eps < 1e-3, "{eps}");
    let keys: Vec<&str> = g.keys().collect();
    assert!(keys.contains(&"tokenizer.chat_template"), "{keys:?}");
    assert!(g
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("<|im_start|>"));

    // 30 layers × 9 tensors + token_embd + output_norm (tied embeddings: no output.weight).
    assert_eq!(g.tensor_infos().len(), 30 * 9 + 2);
    let emb = g.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.shape, vec![49152, 576]);
    let info = g.tensor_info("token_embd.weight").unwrap();
    assert_eq!(info.ne, vec![576, 49152]);
    let q = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.shape, vec![576, 576]);
    assert_eq!(q.dtype, DType::Q4_1);
    assert_eq!(q.data.len(), 576 * 576 / 32 * 20);
    let norm = g.tensor("output_norm.weight").unwrap();
    assert_eq!(norm.dtype, DType::F32);
    assert_eq!(norm.shape, vec![576]);
    let mut counts = std::collections::BTreeMap::new();
    for t in g.tensors() {
        let t = t.unwrap();
        *counts.entry(t.dtype.to_string()).or_insert(0) += 1;
        assert_eq!(Some(t.data.len()), t.dtype.bytes_for_shape(&t.shape));
    }
    assert_eq!(counts.get("F32"), Some(&(30 * 2 + 1)), "{counts:?}");

    let w = WeightFile::open(&path).unwrap();
    assert_eq!(w.names().len(), 272);
    assert_eq!(
        w.tensor("blk.29.ffn_down.weight").unwrap().shape,
        vec![576, 1536]
    );
}
