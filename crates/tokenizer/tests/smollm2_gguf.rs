//! SmolLM2's GGUF vocabulary (pre "smollm") equals llama.cpp's tokenization
//! (`goldens/tokenizer/smollm2_ids.jsonl`, made with llama-cpp-python `Llama.tokenize(text,
//! add_bos=False, special=False)`) on the whole corpus.

mod common;

use llama31_formats::GgufFile;
use llama31_tokenizer::{GgufVocab, Tokenizer};

#[test]
fn smollm2_gguf_matches_llama_cpp_on_corpus() {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "missing {} (run scripts/fetch-fixtures.sh)",
        path.display()
    );
    let vocab = GgufVocab::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(vocab.pre.as_deref(), Some("smollm"));
    let tok = Tokenizer::from_gguf_vocab(vocab).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert!(!tok.add_bos());
    assert_eq!(tok.bos_id(), Some(1));
    assert!(tok.eos_ids().contains(&2) && tok.eos_ids().contains(&0));

    // llama.cpp probes recorded with the goldens.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::golden("smollm2_meta.json")).unwrap())
            .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let probe = meta["probe_special"].as_str().unwrap();
    assert_eq!(tok.encode(probe, true), ids(&meta["probe_special_true"]));
    assert_eq!(tok.encode(probe, false), ids(&meta["probe_special_false"]));
    assert_eq!(
        tok.encode(meta["probe"].as_str().unwrap(), false),
        ids(&meta["probe_add_bos_false"])
    );

    let corpus: Vec<String> = common::read_jsonl("corpus.jsonl");
    let want: Vec<Vec<u32>> = common::read_jsonl("smollm2_ids.jsonl");
    assert_eq!(corpus.len(), want.len());
    for (i, (s, w)) in corpus.iter().zip(&want).enumerate() {
        let got = tok.encode(s, false);
        assert!(
            &got == w,
            "SmolLM2 GGUF: corpus line {i} differs from llama.cpp: {}\n got: {:?}\nwant: {:?}",
            common::shorten(s),
            &got[..got.len().min(20)],
            &w[..w.len().min(20)]
        );
    }
}
