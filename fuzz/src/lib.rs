//! What the fuzz targets share: walking everything a parsed file offers (so that a parser bug
//! surfaces as a crash in the target that fed it), and the fixtures some targets need.

use std::path::PathBuf;
use std::sync::OnceLock;

use llama31_formats::{DType, GgufFile};
use llama31_tokenizer::Tokenizer;

/// Tensors bigger than this are checked for their length only, not converted.
const CONVERT_LIMIT: usize = 1 << 20;

/// Converts a tensor's bytes to f32 when the type can be (bounded), checking the length contract.
pub fn exercise_tensor(dtype: DType, shape: &[usize], data: &[u8]) {
    assert_eq!(
        Some(data.len()),
        dtype.bytes_for_shape(shape),
        "a tensor view is exactly as long as its shape says"
    );
    if data.len() <= CONVERT_LIMIT {
        let _ = llama31_kernels::convert::to_f32_vec(dtype, data);
    }
}

/// Reads every metadata value and tensor of a GGUF file, then what the model and tokenizer
/// loaders make of it.
pub fn exercise_gguf(g: &GgufFile) {
    for (key, _) in g.metadata() {
        let _ = g.get_str(key);
        let _ = g.get_u32(key);
        let _ = g.get_f32_array(key);
        let _ = g.get_str_array(key);
    }
    let names: Vec<String> = g.tensor_infos().iter().map(|t| t.name.clone()).collect();
    for name in names {
        if let Ok(t) = g.tensor(&name) {
            exercise_tensor(t.dtype, &t.shape, t.data);
        }
    }
    let _ = llama31_model::Config::from_gguf(g);
    if let Ok(tok) = Tokenizer::from_gguf(g) {
        let ids = tok.encode("Hello <|im_start|> world 123", true);
        let _ = tok.decode(&ids);
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/llama31")
        })
}

/// SmolLM2's tokenizer (GGUF vocabulary, no Meta chunking) from the fixtures.
pub fn smollm2() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let p = cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        Tokenizer::from_gguf_file(&p)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-fixtures.sh)", p.display()))
    })
}

/// Meta's Llama 3 tokenizer (`tokenizer.model`, with Meta's chunking) from the fixtures.
pub fn llama3() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let p = cache_dir().join("tokenizer.model");
        Tokenizer::from_tiktoken_file(&p)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-fixtures.sh)", p.display()))
    })
}

/// Which single bytes the vocabulary has a token for (byte-level BPE drops the others).
pub fn single_bytes(tok: &Tokenizer) -> [bool; 256] {
    let mut present = [false; 256];
    for id in 0..tok.vocab_size() {
        if let Some(&[b]) = tok.token_bytes(id as u32) {
            present[usize::from(b)] = true;
        }
    }
    present
}
