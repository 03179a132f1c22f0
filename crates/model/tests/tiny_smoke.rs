//! Every tiny checkpoint format (same weights) gives the same logits.

mod common;

use llama31_model::{LoadOptions, LogitsMode, Model};

fn logits(name: &str, tokens: &[u32]) -> Option<Vec<f32>> {
    let p = common::tiny(name)?;
    let m = Model::load(
        &p,
        LoadOptions {
            max_seq_len: Some(256),
            progress: None,
            ..Default::default()
        },
    )
    .unwrap();
    let mut cache = m.new_cache(256).unwrap();
    Some(m.forward(tokens, 0, &mut cache, LogitsMode::All).unwrap())
}

#[test]
fn formats_agree() {
    let tokens: Vec<u32> = vec![
        128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 128009, 5,
    ];
    let Some(reference) = logits("hf-untied", &tokens) else {
        return;
    };
    for name in ["meta", "meta-mp2", "llama31-tiny-bf16.gguf"] {
        let Some(l) = logits(name, &tokens) else {
            continue;
        };
        let max = reference
            .iter()
            .zip(&l)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{name}: max |Δlogit| vs hf-untied = {max:e}");
        assert!(max < 1e-3, "{name}: {max}");
    }
}

/// `LoadOptions::max_seq_len` past the trained context: refused, or cut to it with
/// `clamp_max_seq_len`.
#[test]
fn max_seq_len_past_the_trained_context() {
    use llama31_model::{LoadOptions, Model, ModelError};
    let Some(path) = common::tiny("hf-untied") else {
        return;
    };
    let e = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(200_000_000),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::ContextTooLong {
                requested: 200_000_000,
                trained: 131_072
            }
        ),
        "{e}"
    );
    let m = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(200_000),
            clamp_max_seq_len: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m.max_seq_len(), 131_072);
}
