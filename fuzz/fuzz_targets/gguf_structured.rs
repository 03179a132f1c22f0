//! GGUF files that are well formed up to the values: an `arbitrary` builder writes the magic,
//! version, counts, typed metadata (the keys the loaders read included) and tensor infos with
//! arbitrary types, shapes and offsets, so the fuzzer reaches the model-config, tokenizer and
//! tensor-data checks that random bytes rarely pass.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use llama31_formats::GgufFile;

const KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "general.type",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base",
    "llama.rope.dimension_count",
    "llama.vocab_size",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.chat_template",
];

#[derive(Arbitrary, Debug)]
enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(u8),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
    U32Array(Vec<u32>),
    F32Array(Vec<f32>),
    /// An array whose declared length is not its real one.
    LyingArray {
        elem: u32,
        declared: u64,
        bytes: Vec<u8>,
    },
    /// A type id the format does not have.
    BadType {
        ty: u32,
        bytes: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Kv {
    /// An index into KEYS, or an arbitrary key.
    known: Option<u8>,
    key: String,
    value: Value,
}

#[derive(Arbitrary, Debug)]
struct Tensor {
    name: String,
    dims: Vec<u64>,
    ty: u32,
    offset: u64,
}

#[derive(Arbitrary, Debug)]
struct File {
    version: u8,
    kvs: Vec<Kv>,
    tensors: Vec<Tensor>,
    /// Lie about the counts (0 = truthful).
    extra_kv_count: u8,
    extra_tensor_count: u8,
    data: Vec<u8>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let ty = |t: u32, out: &mut Vec<u8>| out.extend_from_slice(&t.to_le_bytes());
    match v {
        Value::U8(x) => {
            ty(0, out);
            out.push(*x)
        }
        Value::I8(x) => {
            ty(1, out);
            out.push(*x as u8)
        }
        Value::U16(x) => {
            ty(2, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::I16(x) => {
            ty(3, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::U32(x) => {
            ty(4, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::I32(x) => {
            ty(5, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::F32(x) => {
            ty(6, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::Bool(x) => {
            ty(7, out);
            out.push(*x)
        }
        Value::Str(s) => {
            ty(8, out);
            put_str(out, s)
        }
        Value::U64(x) => {
            ty(10, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::I64(x) => {
            ty(11, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::F64(x) => {
            ty(12, out);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::StrArray(a) => {
            ty(9, out);
            out.extend_from_slice(&8u32.to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for s in a {
                put_str(out, s);
            }
        }
        Value::I32Array(a) => {
            ty(9, out);
            out.extend_from_slice(&5u32.to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            a.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        Value::U32Array(a) => {
            ty(9, out);
            out.extend_from_slice(&4u32.to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            a.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        Value::F32Array(a) => {
            ty(9, out);
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            a.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        Value::LyingArray {
            elem,
            declared,
            bytes,
        } => {
            ty(9, out);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&declared.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        Value::BadType { ty: t, bytes } => {
            ty(*t, out);
            out.extend_from_slice(bytes);
        }
    }
}

fn build(f: &File) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&u32::from(f.version % 5).to_le_bytes());
    let n_t = f.tensors.len() as u64 + u64::from(f.extra_tensor_count);
    let n_kv = f.kvs.len() as u64 + u64::from(f.extra_kv_count);
    out.extend_from_slice(&n_t.to_le_bytes());
    out.extend_from_slice(&n_kv.to_le_bytes());
    for kv in &f.kvs {
        let key = match kv.known {
            Some(i) => KEYS[usize::from(i) % KEYS.len()],
            None => kv.key.as_str(),
        };
        put_str(&mut out, key);
        put_value(&mut out, &kv.value);
    }
    for t in &f.tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ty.to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
    // Pad to the default alignment, then the data section.
    while out.len() % 32 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&f.data);
    out
}

fuzz_target!(|f: File| {
    let bytes = build(&f);
    if let Ok(g) = GgufFile::from_bytes("fuzz.gguf", bytes) {
        llama31_fuzz::exercise_gguf(&g);
    }
});
