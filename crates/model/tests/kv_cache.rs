//! The KV cache's length, rollback and prefix copy, through the forward pass of the tiny Llama 3.1.

mod common;

use llama31_model::{LoadOptions, LogitsMode, Model, ModelError};

fn tiny() -> Model {
    let dir = common::tiny("hf-untied").unwrap();
    let opts = LoadOptions {
        max_seq_len: Some(64),
        ..Default::default()
    };
    Model::load(&dir, opts).unwrap()
}

const PROMPT: [u32; 10] = [
    128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679,
];

#[test]
fn truncate_rolls_back_to_the_same_bits() {
    let model = tiny();
    let vocab = model.config().vocab_size;
    let mut cache = model.new_cache(32).unwrap();
    assert_eq!(cache.len(), 0);
    let all = model
        .forward(&PROMPT, 0, &mut cache, LogitsMode::All)
        .unwrap();
    assert_eq!(cache.len(), PROMPT.len());

    // A rejected tail (as speculative decoding rolls back): drop it and run other tokens there.
    cache.truncate(6);
    assert_eq!(cache.len(), 6);
    model
        .forward(&[13, 14, 15], 6, &mut cache, LogitsMode::None)
        .unwrap();
    assert_eq!(cache.len(), 9);
    // Rolled back again to 6, the original tokens give the original logits, bit for bit.
    cache.truncate(6);
    let again = model
        .forward(&PROMPT[6..], 6, &mut cache, LogitsMode::All)
        .unwrap();
    assert_eq!(again.len(), 4 * vocab);
    let same = again
        .iter()
        .zip(&all[6 * vocab..])
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "logits after a rollback differ from the first run");

    // A step at position 5 of a 10-position cache drops positions 5.. first.
    model
        .forward(&PROMPT[5..6], 5, &mut cache, LogitsMode::Last)
        .unwrap();
    assert_eq!(cache.len(), 6);
    // Truncating past the end changes nothing.
    cache.truncate(100);
    assert_eq!(cache.len(), 6);
}

#[test]
fn a_step_past_the_cached_positions_is_an_error() {
    let model = tiny();
    let mut cache = model.new_cache(32).unwrap();
    model
        .forward(&PROMPT[..4], 0, &mut cache, LogitsMode::None)
        .unwrap();
    let err = model
        .forward(&PROMPT[4..6], 5, &mut cache, LogitsMode::Last)
        .unwrap_err();
    assert!(matches!(err, ModelError::Cache(_)), "{err}");
    assert_eq!(cache.len(), 4, "a refused step leaves the cache as it was");
    let err = model
        .forward(&PROMPT, 30, &mut cache, LogitsMode::Last)
        .unwrap_err();
    assert!(matches!(err, ModelError::Cache(_)), "{err}");
}

#[test]
fn a_copied_prefix_continues_like_the_original() {
    let model = tiny();
    let vocab = model.config().vocab_size;
    let mut a = model.new_cache(32).unwrap();
    let whole = model.forward(&PROMPT, 0, &mut a, LogitsMode::Last).unwrap();
    let mut b = model.new_cache(32).unwrap();
    b.copy_prefix_from(&a, 7).unwrap();
    assert_eq!(b.len(), 7);
    let tail = model
        .forward(&PROMPT[7..], 7, &mut b, LogitsMode::Last)
        .unwrap();
    assert_eq!(tail.len(), vocab);
    assert!(tail
        .iter()
        .zip(&whole)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    // More positions than the source holds: refused.
    let mut c = model.new_cache(32).unwrap();
    let err = c.copy_prefix_from(&a, 11).unwrap_err();
    assert!(matches!(err, ModelError::Context { .. }), "{err}");
    assert_eq!(c.len(), 0);
}
