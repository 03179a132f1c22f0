//! `pre_tokenizer_name`: the name llama.cpp's `convert_hf_to_gguf.py` derives from a tokenizer's ids
//! on its probe text must be the `tokenizer.ggml.pre` that llama.cpp's converter wrote into real GGUF
//! files: "smollm" for SmolLM2 (whose tokenization is checked against llama.cpp in smollm2_gguf.rs)
//! and "llama-bpe" for the Llama 3 vocabulary (Meta's tokenizer.model and the HF tokenizer.json).

mod common;

use llama31_formats::GgufFile;
use llama31_tokenizer::{pre_tokenizer_name, GgufVocab, Tokenizer};

#[test]
fn probe_hash_names_the_pre_tokenizer() {
    let smollm2 = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let g = GgufFile::open(&smollm2).unwrap();
    let tok = Tokenizer::from_gguf_vocab(GgufVocab::from_gguf(&g).unwrap()).unwrap();
    assert_eq!(
        pre_tokenizer_name(&tok).unwrap(),
        g.get_str("tokenizer.ggml.pre").unwrap()
    );

    let meta = Tokenizer::from_tiktoken_file(&common::cache_dir().join("tokenizer.model")).unwrap();
    assert_eq!(pre_tokenizer_name(&meta).unwrap(), "llama-bpe");
    let hf = Tokenizer::from_hf_json_file(&common::cache_dir().join("tokenizer.json")).unwrap();
    assert_eq!(pre_tokenizer_name(&hf).unwrap(), "llama-bpe");
}
