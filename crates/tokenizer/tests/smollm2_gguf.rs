//! SmolLM2's GGUF vocabulary (pre "smollm") equals llama.cpp's tokenization
//! (`goldens/tokenizer/smollm2_ids.jsonl`, made with llama-cpp-python `Llama.tokenize(text,
//! add_bos=False, special=False)`) on the whole corpus.
//!
//! The test reads the `tokenizer.ggml.*` keys with a minimal GGUF key/value reader of its own
//! (the formats crate owns the real reader; this keeps the tokenizer tests self-contained).

mod common;

use std::collections::HashMap;

use llama31_tokenizer::{GgufVocab, Tokenizer};

#[derive(Debug, Clone)]
enum Val {
    Int(i64),
    Bool(bool),
    Str(String),
    Arr(Vec<Val>),
    Other,
}

struct Rd<'a>(&'a [u8], usize);
impl Rd<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.0[self.1..self.1 + n];
        self.1 += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    fn val(&mut self, ty: u32) -> Val {
        match ty {
            0 => Val::Int(i64::from(self.take(1)[0])),
            1 => Val::Int(i64::from(self.take(1)[0] as i8)),
            2 | 3 => Val::Int(i64::from(u16::from_le_bytes(
                self.take(2).try_into().unwrap(),
            ))),
            4 => Val::Int(i64::from(self.u32())),
            5 => Val::Int(i64::from(self.u32() as i32)),
            6 => {
                self.take(4);
                Val::Other
            }
            7 => Val::Bool(self.take(1)[0] != 0),
            8 => Val::Str(self.string()),
            9 => {
                let t = self.u32();
                let n = self.u64() as usize;
                Val::Arr((0..n).map(|_| self.val(t)).collect())
            }
            10 | 11 => Val::Int(self.u64() as i64),
            12 => {
                self.take(8);
                Val::Other
            }
            t => panic!("unknown GGUF type {t}"),
        }
    }
}

fn read_gguf_kv(path: &std::path::Path) -> HashMap<String, Val> {
    let data = std::fs::read(path).unwrap();
    let mut r = Rd(&data, 0);
    assert_eq!(r.take(4), b"GGUF");
    let _version = r.u32();
    let _n_tensors = r.u64();
    let n_kv = r.u64();
    let mut kv = HashMap::new();
    for _ in 0..n_kv {
        let k = r.string();
        let t = r.u32();
        let v = r.val(t);
        kv.insert(k, v);
    }
    kv
}

fn gguf_vocab(kv: &HashMap<String, Val>) -> GgufVocab {
    let s = |k: &str| match kv.get(k) {
        Some(Val::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let strs = |k: &str| match kv.get(k) {
        Some(Val::Arr(a)) => a
            .iter()
            .map(|v| match v {
                Val::Str(s) => s.clone(),
                _ => panic!("{k}"),
            })
            .collect(),
        _ => Vec::new(),
    };
    let id = |k: &str| match kv.get(k) {
        Some(Val::Int(i)) => Some(*i as u32),
        _ => None,
    };
    GgufVocab {
        model: s("tokenizer.ggml.model").unwrap(),
        pre: s("tokenizer.ggml.pre"),
        tokens: strs("tokenizer.ggml.tokens"),
        token_types: match kv.get("tokenizer.ggml.token_type") {
            Some(Val::Arr(a)) => a
                .iter()
                .map(|v| match v {
                    Val::Int(i) => *i as i32,
                    _ => panic!("token_type"),
                })
                .collect(),
            _ => Vec::new(),
        },
        merges: strs("tokenizer.ggml.merges"),
        bos_id: id("tokenizer.ggml.bos_token_id"),
        eos_id: id("tokenizer.ggml.eos_token_id"),
        eot_id: id("tokenizer.ggml.eot_token_id"),
        eom_id: id("tokenizer.ggml.eom_token_id"),
        pad_id: id("tokenizer.ggml.padding_token_id"),
        add_bos: match kv.get("tokenizer.ggml.add_bos_token") {
            Some(Val::Bool(b)) => Some(*b),
            _ => None,
        },
        add_eos: None,
    }
}

#[test]
fn smollm2_gguf_matches_llama_cpp_on_corpus() {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "missing {} (run scripts/fetch-fixtures.sh)",
        path.display()
    );
    let vocab = gguf_vocab(&read_gguf_kv(&path));
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
