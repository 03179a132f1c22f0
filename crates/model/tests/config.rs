//! Config parsing: Meta params.json (FFN rule vs the published Llama 3.1 sizes), HF config.json,
//! and error cases.

use llama31_model::{meta_ffn_dim, Config, Llama3RopeScaling, ModelError};

/// The published `params.json` of Llama 3.1 8B / 70B / 405B and their published FFN sizes
/// (HF `intermediate_size`: 14336, 28672, 53248). Note 405B uses `multiple_of: 4096` (with 256
/// the rule gives 52480, not the published 53248).
#[test]
fn meta_params_ffn_rule_matches_published_sizes() {
    let cases = [
        (
            r#"{"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "ffn_dim_multiplier": 1.3, "multiple_of": 1024, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": true}"#,
            14336,
            32,
            8,
            128,
        ),
        (
            r#"{"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "vocab_size": 128256, "ffn_dim_multiplier": 1.3, "multiple_of": 4096, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": true}"#,
            28672,
            80,
            8,
            128,
        ),
        (
            r#"{"dim": 16384, "n_layers": 126, "n_heads": 128, "n_kv_heads": 8, "vocab_size": 128256, "ffn_dim_multiplier": 1.2, "multiple_of": 4096, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": true}"#,
            53248,
            126,
            8,
            128,
        ),
    ];
    for (json, ffn, layers, kv, hd) in cases {
        let c = Config::from_meta_params(json).unwrap();
        assert_eq!(c.ffn_dim, ffn);
        assert_eq!(c.n_layers, layers);
        assert_eq!(c.n_kv_heads, kv);
        assert_eq!(c.head_dim, hd);
        assert_eq!(c.rope_scaling, Some(Llama3RopeScaling::META));
        assert_eq!(c.rope_theta, 500000.0);
        assert!(!c.tie_embeddings);
    }
    // Llama 2 7B: no multiplier, multiple_of 256 → 11008 (published).
    assert_eq!(meta_ffn_dim(4096, 256, None).unwrap(), 11008);
    // Llama 3.2 1B: dim 2048, multiple_of 256, multiplier 1.5 → 8192 (published).
    assert_eq!(meta_ffn_dim(2048, 256, Some(1.5)).unwrap(), 8192);
}

#[test]
fn meta_params_without_scaled_rope() {
    let c = Config::from_meta_params(
        r#"{"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 100, "multiple_of": 32}"#,
    )
    .unwrap();
    assert_eq!(c.rope_scaling, None);
    assert_eq!(c.n_kv_heads, 4, "n_kv_heads defaults to n_heads");
    assert_eq!(c.head_dim, 16);
}

const HF_8B: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
  "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256}"#;

#[test]
fn hf_config_llama31_8b() {
    let c = Config::from_hf_config(HF_8B).unwrap();
    assert_eq!(
        (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim),
        (4096, 32, 32, 8, 128)
    );
    assert_eq!(c.ffn_dim, 14336);
    assert_eq!(c.max_seq_len, 131072);
    assert_eq!(c.bos_token_id, Some(128000));
    assert_eq!(c.eos_token_ids, vec![128001, 128008, 128009]);
    assert_eq!(c.rope_scaling, Some(Llama3RopeScaling::META));
    assert!(!c.tie_embeddings);
}

#[test]
fn hf_config_rope_type_alias_and_unknown_types() {
    let legacy = HF_8B.replace("\"rope_type\": \"llama3\"", "\"type\": \"llama3\"");
    assert!(Config::from_hf_config(&legacy)
        .unwrap()
        .rope_scaling
        .is_some());
    for ty in ["yarn", "dynamic", "linear", "longrope"] {
        let j = HF_8B.replace(
            "\"rope_type\": \"llama3\"",
            &format!("\"rope_type\": \"{ty}\""),
        );
        match Config::from_hf_config(&j) {
            Err(ModelError::UnsupportedRope(t)) => assert_eq!(t, ty),
            other => panic!("{ty}: expected UnsupportedRope, got {other:?}"),
        }
    }
    let none = HF_8B.replace(
        r#""rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
  "original_max_position_embeddings": 8192, "rope_type": "llama3"}"#,
        r#""rope_scaling": null"#,
    );
    assert_eq!(Config::from_hf_config(&none).unwrap().rope_scaling, None);
}

#[test]
fn invalid_configs_are_rejected_with_clear_errors() {
    let bad = [
        (
            HF_8B.replace("\"num_attention_heads\": 32", "\"num_attention_heads\": 0"),
            "positive",
        ),
        (
            HF_8B.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"),
            "must divide",
        ),
        (
            HF_8B.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 0"),
            "positive",
        ),
        (
            HF_8B.replace("\"hidden_size\": 4096", "\"hidden_size\": 4095"),
            "not divisible",
        ),
        (
            HF_8B.replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""),
            "hidden_act",
        ),
        (
            HF_8B.replace("\"vocab_size\": 128256", "\"vocab_size\": -3"),
            "vocab_size",
        ),
        ("[1, 2]".to_string(), "JSON object"),
        ("{not json".to_string(), "config.json"),
    ];
    for (json, needle) in bad {
        let e = Config::from_hf_config(&json).expect_err(needle);
        let msg = e.to_string();
        assert!(
            msg.contains(needle),
            "error {msg:?} should mention {needle:?}"
        );
    }
    let meta_bad = [
        (
            r#"{"dim": 64, "n_layers": 2, "n_heads": 0, "vocab_size": 100}"#,
            "n_heads",
        ),
        (
            r#"{"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 3, "vocab_size": 100}"#,
            "must divide",
        ),
        (
            r#"{"dim": 66, "n_layers": 2, "n_heads": 4, "vocab_size": 100}"#,
            "not divisible",
        ),
        (
            r#"{"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": -1}"#,
            "vocab_size",
        ),
        (r#"{"dim": 64, "n_heads": 4, "vocab_size": 10}"#, "n_layers"),
    ];
    for (json, needle) in meta_bad {
        let msg = Config::from_meta_params(json)
            .expect_err(needle)
            .to_string();
        assert!(
            msg.contains(needle),
            "error {msg:?} should mention {needle:?}"
        );
    }
}
