//! A micro Llama written as GGUF in a temp dir: a naive scalar reference forward (independent,
//! f64, written from Meta's model.py) vs `Model::forward`; batched prefill vs token-by-token
//! decode through the KV cache; and the typed errors for bad checkpoints and inputs.

use llama31_formats::{DType, GgufWriter};
use llama31_model::{LoadOptions, LogitsMode, Model, ModelError};

const DIM: usize = 8;
const NH: usize = 2;
const NKV: usize = 1;
const HD: usize = 4;
const FFN: usize = 12;
const VOCAB: usize = 11;
const LAYERS: usize = 2;
const THETA: f64 = 10000.0;
const EPS: f64 = 1e-5;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (((self.0 >> 40) as f32) / (1u64 << 24) as f32 - 0.5) * 1.6
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

fn tensors(seed: u64) -> Tensors {
    let mut r = Lcg(seed);
    let mut t: Tensors = vec![(
        "token_embd.weight".into(),
        vec![VOCAB, DIM],
        r.vec(VOCAB * DIM),
    )];
    for l in 0..LAYERS {
        let p = |s: &str| format!("blk.{l}.{s}.weight");
        t.push((
            p("attn_norm"),
            vec![DIM],
            r.vec(DIM).iter().map(|v| 1.0 + v * 0.2).collect(),
        ));
        t.push((p("attn_q"), vec![NH * HD, DIM], r.vec(NH * HD * DIM)));
        t.push((p("attn_k"), vec![NKV * HD, DIM], r.vec(NKV * HD * DIM)));
        t.push((p("attn_v"), vec![NKV * HD, DIM], r.vec(NKV * HD * DIM)));
        t.push((p("attn_output"), vec![DIM, NH * HD], r.vec(DIM * NH * HD)));
        t.push((
            p("ffn_norm"),
            vec![DIM],
            r.vec(DIM).iter().map(|v| 1.0 + v * 0.2).collect(),
        ));
        t.push((p("ffn_gate"), vec![FFN, DIM], r.vec(FFN * DIM)));
        t.push((p("ffn_up"), vec![FFN, DIM], r.vec(FFN * DIM)));
        t.push((p("ffn_down"), vec![DIM, FFN], r.vec(DIM * FFN)));
    }
    t.push((
        "output_norm.weight".into(),
        vec![DIM],
        r.vec(DIM).iter().map(|v| 1.0 + v * 0.2).collect(),
    ));
    t.push(("output.weight".into(), vec![VOCAB, DIM], r.vec(VOCAB * DIM)));
    t
}

fn write_gguf(
    t: &Tensors,
    name: &str,
    skip: Option<&str>,
    reshape: Option<(&str, Vec<usize>)>,
) -> tempfile::TempPath {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("llama.embedding_length", DIM as u32)
        .add_metadata("llama.block_count", LAYERS as u32)
        .add_metadata("llama.attention.head_count", NH as u32)
        .add_metadata("llama.attention.head_count_kv", NKV as u32)
        .add_metadata("llama.feed_forward_length", FFN as u32)
        .add_metadata("llama.context_length", 64u32)
        .add_metadata("llama.rope.freq_base", THETA as f32)
        .add_metadata("llama.attention.layer_norm_rms_epsilon", EPS as f32);
    let bytes: Vec<Vec<u8>> = t
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    for ((n, shape, _), b) in t.iter().zip(&bytes) {
        if Some(n.as_str()) == skip {
            continue;
        }
        let shape = match &reshape {
            Some((rn, s)) if rn == n => s.clone(),
            _ => shape.clone(),
        };
        w.add_tensor(n.clone(), DType::F32, &shape, b.as_slice());
    }
    // Deleted when the returned path is dropped.
    let p = tempfile::Builder::new()
        .prefix("llama31-model-test-")
        .suffix(name)
        .tempfile()
        .unwrap()
        .into_temp_path();
    w.write_file(&p).unwrap();
    p
}

fn get<'a>(t: &'a Tensors, name: &str) -> &'a [f32] {
    &t.iter().find(|(n, _, _)| n == name).unwrap().2
}

/// Naive f64 transcription of Meta's Transformer.forward (interleaved RoPE, GQA repeat_kv).
fn reference_logits(t: &Tensors, tokens: &[u32]) -> Vec<Vec<f64>> {
    let n = tokens.len();
    let matvec = |w: &[f32], x: &[f64], rows: usize| -> Vec<f64> {
        let cols = x.len();
        (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * x[c]).sum())
            .collect()
    };
    let norm = |x: &[f64], w: &[f32]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + EPS).sqrt();
        x.iter().zip(w).map(|(v, w)| v * r * *w as f64).collect()
    };
    let rope = |v: &mut [f64], pos: usize| {
        for h in 0..v.len() / HD {
            for i in 0..HD / 2 {
                let f = 1.0 / THETA.powf((2 * i) as f64 / HD as f64);
                let (c, s) = ((pos as f64 * f).cos(), (pos as f64 * f).sin());
                let (a, b) = (v[h * HD + 2 * i], v[h * HD + 2 * i + 1]);
                v[h * HD + 2 * i] = a * c - b * s;
                v[h * HD + 2 * i + 1] = a * s + b * c;
            }
        }
    };
    let emb = get(t, "token_embd.weight");
    let mut h: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tok| {
            emb[tok as usize * DIM..(tok as usize + 1) * DIM]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    for l in 0..LAYERS {
        let w = |s: &str| get(t, &format!("blk.{l}.{s}.weight"));
        let xs: Vec<Vec<f64>> = h.iter().map(|x| norm(x, w("attn_norm"))).collect();
        let mut q: Vec<Vec<f64>> = xs.iter().map(|x| matvec(w("attn_q"), x, NH * HD)).collect();
        let mut k: Vec<Vec<f64>> = xs
            .iter()
            .map(|x| matvec(w("attn_k"), x, NKV * HD))
            .collect();
        let v: Vec<Vec<f64>> = xs
            .iter()
            .map(|x| matvec(w("attn_v"), x, NKV * HD))
            .collect();
        for p in 0..n {
            rope(&mut q[p], p);
            rope(&mut k[p], p);
        }
        for i in 0..n {
            let mut att = vec![0.0; NH * HD];
            for hh in 0..NH {
                let g = hh / (NH / NKV);
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..HD)
                            .map(|d| q[i][hh * HD + d] * k[j][g * HD + d])
                            .sum::<f64>()
                            / (HD as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..HD {
                    att[hh * HD + d] = (0..=i).map(|j| e[j] / z * v[j][g * HD + d]).sum();
                }
            }
            let o = matvec(w("attn_output"), &att, DIM);
            for d in 0..DIM {
                h[i][d] += o[d];
            }
            let x = norm(&h[i], w("ffn_norm"));
            let gate = matvec(w("ffn_gate"), &x, FFN);
            let up = matvec(w("ffn_up"), &x, FFN);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let dn = matvec(w("ffn_down"), &act, DIM);
            for d in 0..DIM {
                h[i][d] += dn[d];
            }
        }
    }
    h.iter()
        .map(|x| {
            matvec(
                get(t, "output.weight"),
                &norm(x, get(t, "output_norm.weight")),
                VOCAB,
            )
        })
        .collect()
}

#[test]
fn forward_matches_naive_reference_and_cache_paths_agree() {
    let t = tensors(42);
    let p = write_gguf(&t, "ok.gguf", None, None);
    let m = Model::load(&p, LoadOptions::default()).unwrap();
    assert_eq!(m.max_seq_len(), 64);
    let tokens = [1u32, 5, 9, 2, 2, 7, 10, 0, 3];
    let want = reference_logits(&t, &tokens);

    // One batched prefill.
    let mut cache = m.new_cache(32).unwrap();
    let all = m.forward(&tokens, 0, &mut cache, LogitsMode::All).unwrap();
    assert_eq!(all.len(), tokens.len() * VOCAB);
    let mut max = 0.0f64;
    for (i, row) in want.iter().enumerate() {
        for (a, b) in all[i * VOCAB..(i + 1) * VOCAB].iter().zip(row) {
            max = max.max((*a as f64 - b).abs());
        }
    }
    assert!(max < 1e-4, "batched prefill vs reference: {max}");

    // Prefill of 4, then decode one token at a time (uses the cache).
    let mut cache = m.new_cache(32).unwrap();
    let last = m
        .forward(&tokens[..4], 0, &mut cache, LogitsMode::Last)
        .unwrap();
    assert_eq!(last.len(), VOCAB);
    for (a, b) in last.iter().zip(&want[3]) {
        assert!((*a as f64 - b).abs() < 1e-4);
    }
    for pos in 4..tokens.len() {
        let l = m
            .forward(&tokens[pos..pos + 1], pos, &mut cache, LogitsMode::Last)
            .unwrap();
        for (a, b) in l.iter().zip(&want[pos]) {
            assert!((*a as f64 - b).abs() < 1e-4, "decode at {pos}");
        }
    }

    // Input errors.
    let mut cache = m.new_cache(8).unwrap();
    assert!(matches!(
        m.forward(&[VOCAB as u32], 0, &mut cache, LogitsMode::Last),
        Err(ModelError::Token { .. })
    ));
    assert!(matches!(
        m.forward(&tokens, 0, &mut cache, LogitsMode::Last),
        Err(ModelError::Context { end: 9, max: 8 })
    ));
    assert!(m
        .forward(&[], 0, &mut cache, LogitsMode::Last)
        .unwrap()
        .is_empty());
}

#[test]
fn bad_checkpoints_give_typed_errors() {
    let t = tensors(7);
    let p = write_gguf(&t, "missing.gguf", Some("blk.1.ffn_up.weight"), None);
    match Model::load(&p, LoadOptions::default()) {
        Err(ModelError::MissingTensor(n)) => assert_eq!(n, "blk.1.ffn_up.weight"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    let p = write_gguf(
        &t,
        "shape.gguf",
        None,
        Some(("blk.0.attn_k.weight", vec![DIM, HD])),
    );
    match Model::load(&p, LoadOptions::default()) {
        Err(ModelError::Shape {
            name,
            expected,
            got,
        }) => {
            assert_eq!(name, "blk.0.attn_k.weight");
            assert_eq!(expected, vec![NKV * HD, DIM]);
            assert_eq!(got, vec![DIM, HD]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    // No output.weight → tied to the embeddings.
    let p = write_gguf(&t, "tied.gguf", Some("output.weight"), None);
    let m = Model::load(&p, LoadOptions::default()).unwrap();
    assert!(m.config().tie_embeddings);
    assert!(m.weights().output.is_none());
    assert!(!m.tensor_summary().is_empty());
    // Progress is reported for every tensor.
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    let p = write_gguf(&t, "ok2.gguf", None, None);
    Model::load(
        &p,
        LoadOptions {
            max_seq_len: Some(16),
            progress: Some(Box::new(move |done, total| {
                assert!(done <= total);
                c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        count.load(std::sync::atomic::Ordering::Relaxed),
        3 + 9 * LAYERS
    );
}
