//! Unit tests of the sampler chain on synthetic logits.

use super::*;

fn ln_probs(p: &[f64]) -> Vec<f32> {
    p.iter().map(|x| x.ln() as f32).collect()
}

fn field_of(err: SamplingError) -> &'static str {
    match err {
        SamplingError::InvalidParam { field, .. } => field,
        other => panic!("expected InvalidParam, got {other:?}"),
    }
}

#[test]
fn validation_names_the_field() {
    let base = SamplingParams::default();
    let cases: Vec<(SamplingParams, &str)> = vec![
        (
            SamplingParams {
                temperature: f32::NAN,
                ..base.clone()
            },
            "temperature",
        ),
        (
            SamplingParams {
                temperature: -0.1,
                ..base.clone()
            },
            "temperature",
        ),
        (
            SamplingParams {
                top_k: -1,
                ..base.clone()
            },
            "top_k",
        ),
        (
            SamplingParams {
                top_p: 0.0,
                ..base.clone()
            },
            "top_p",
        ),
        (
            SamplingParams {
                top_p: 1.01,
                ..base.clone()
            },
            "top_p",
        ),
        (
            SamplingParams {
                top_p: f32::NAN,
                ..base.clone()
            },
            "top_p",
        ),
        (
            SamplingParams {
                min_p: 1.5,
                ..base.clone()
            },
            "min_p",
        ),
        (
            SamplingParams {
                min_p: -0.01,
                ..base.clone()
            },
            "min_p",
        ),
        (
            SamplingParams {
                repeat_penalty: 0.0,
                ..base.clone()
            },
            "repeat_penalty",
        ),
        (
            SamplingParams {
                presence_penalty: f32::NAN,
                ..base.clone()
            },
            "presence_penalty",
        ),
        (
            SamplingParams {
                frequency_penalty: f32::INFINITY,
                ..base.clone()
            },
            "frequency_penalty",
        ),
        (
            SamplingParams {
                logit_bias: BTreeMap::from([(3, f32::NAN)]),
                ..base.clone()
            },
            "logit_bias",
        ),
    ];
    for (params, field) in cases {
        let err = params.validate().expect_err(field);
        assert_eq!(field_of(err.clone()), field);
        assert!(err.to_string().contains(field), "{err}");
        // Sampler::new validates too.
        assert!(Sampler::new(&params, 10).is_err());
    }
    assert!(base.validate().is_ok());
    assert!(SamplingParams::greedy().validate().is_ok());
    let ok_edge = SamplingParams {
        top_p: 1.0,
        min_p: 1.0,
        top_k: 0,
        logit_bias: BTreeMap::from([(0, f32::NEG_INFINITY)]),
        ..base
    };
    assert!(ok_edge.validate().is_ok());
}

#[test]
fn logit_bias_outside_vocab_is_typed_error() {
    let params = SamplingParams {
        logit_bias: BTreeMap::from([(10, 1.0)]),
        ..SamplingParams::greedy()
    };
    assert_eq!(
        Sampler::new(&params, 10).unwrap_err(),
        SamplingError::LogitBiasOutOfVocab {
            id: 10,
            vocab_size: 10
        }
    );
    assert!(Sampler::new(&params, 11).is_ok());
}

#[test]
fn wrong_logits_length_is_error() {
    let mut s = Sampler::new(&SamplingParams::greedy(), 4).unwrap();
    assert_eq!(
        s.sample(&[0.0; 3]).unwrap_err(),
        SamplingError::LogitsLength {
            expected: 4,
            got: 3
        }
    );
}

#[test]
fn greedy_is_argmax_with_ties_to_lowest_id() {
    let mut s = Sampler::new(&SamplingParams::greedy(), 6).unwrap();
    assert_eq!(s.sample(&[0.1, 2.0, -1.0, 1.9, 0.0, 1.0]).unwrap(), 1);
    assert_eq!(s.sample(&[0.1, 2.0, -1.0, 2.0, 0.0, 2.0]).unwrap(), 1);
    assert_eq!(s.sample(&[3.0, 3.0, 3.0, 3.0, 3.0, 3.0]).unwrap(), 0);
    // NaN is skipped, not chosen.
    assert_eq!(
        s.sample(&[f32::NAN, 0.5, f32::NAN, 0.7, 0.0, 0.1]).unwrap(),
        3
    );
    let ninf = f32::NEG_INFINITY;
    assert_eq!(
        s.sample(&[ninf, ninf, f32::NAN, ninf, ninf, ninf])
            .unwrap_err(),
        SamplingError::NoCandidates
    );
}

#[test]
fn top_k_one_is_argmax() {
    let logits = [0.3, 1.2, 1.19, -0.5, 0.9, 1.2];
    for seed in 0..50 {
        let params = SamplingParams {
            temperature: 1.5,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
            seed: Some(seed),
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(&params, logits.len()).unwrap();
        for _ in 0..20 {
            // Tie between ids 1 and 5: the lower id wins.
            assert_eq!(s.sample(&logits).unwrap(), 1);
        }
    }
}

fn kept_ids(params: &SamplingParams, logits: &[f32]) -> Vec<u32> {
    let s = Sampler::new(params, logits.len()).unwrap();
    let mut cands: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l))
        .collect();
    s.filter(&mut cands);
    let mut ids: Vec<u32> = cands.iter().map(|c| c.0).collect();
    ids.sort_unstable();
    ids
}

fn filters(top_k: i32, top_p: f32, min_p: f32) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_k,
        top_p,
        min_p,
        seed: Some(1),
        ..SamplingParams::default()
    }
}

#[test]
fn top_k_keeps_k_largest() {
    // Ids in shuffled order of probability.
    let logits = ln_probs(&[0.05, 0.3, 0.15, 0.5]);
    assert_eq!(kept_ids(&filters(2, 1.0, 0.0), &logits), vec![1, 3]);
    assert_eq!(kept_ids(&filters(3, 1.0, 0.0), &logits), vec![1, 2, 3]);
    assert_eq!(kept_ids(&filters(0, 1.0, 0.0), &logits), vec![0, 1, 2, 3]);
    assert_eq!(kept_ids(&filters(9, 1.0, 0.0), &logits), vec![0, 1, 2, 3]);
}

#[test]
fn top_p_keeps_minimal_nucleus() {
    let logits = ln_probs(&[0.05, 0.3, 0.15, 0.5]);
    assert_eq!(kept_ids(&filters(0, 0.4, 0.0), &logits), vec![3]);
    assert_eq!(kept_ids(&filters(0, 0.75, 0.0), &logits), vec![1, 3]);
    assert_eq!(kept_ids(&filters(0, 0.85, 0.0), &logits), vec![1, 2, 3]);
    assert_eq!(kept_ids(&filters(0, 0.97, 0.0), &logits), vec![0, 1, 2, 3]);
    // top-p after top-k renormalizes over the top-k survivors: {0.5, 0.3} → 0.625, 0.375.
    assert_eq!(kept_ids(&filters(2, 0.6, 0.0), &logits), vec![3]);
    assert_eq!(kept_ids(&filters(2, 0.7, 0.0), &logits), vec![1, 3]);
}

#[test]
fn top_p_on_large_vocab_beyond_sorted_prefix() {
    // 1000 equal logits: the nucleus for p = 0.9 is 900 tokens, more than the sorted prefix,
    // and ties go to the lowest ids.
    let logits = vec![0.0f32; 1000];
    let kept = kept_ids(&filters(0, 0.9, 0.0), &logits);
    assert_eq!(kept.len(), 900);
    assert_eq!(kept, (0..900).collect::<Vec<u32>>());
    // A peaked large vocab: the nucleus is found within the prefix.
    let mut logits = vec![-10.0f32; 5000];
    logits[4321] = 10.0;
    logits[17] = 9.0;
    assert_eq!(kept_ids(&filters(0, 0.5, 0.0), &logits), vec![4321]);
    assert_eq!(kept_ids(&filters(0, 0.99, 0.0), &logits), vec![17, 4321]);
}

#[test]
fn min_p_threshold_is_relative_to_max_prob() {
    let logits = ln_probs(&[0.05, 0.3, 0.15, 0.5]);
    // Relative probabilities: 0.1, 0.6, 0.3, 1.0.
    assert_eq!(kept_ids(&filters(0, 1.0, 0.25), &logits), vec![1, 2, 3]);
    assert_eq!(kept_ids(&filters(0, 1.0, 0.35), &logits), vec![1, 3]);
    assert_eq!(kept_ids(&filters(0, 1.0, 0.7), &logits), vec![3]);
    assert_eq!(kept_ids(&filters(0, 1.0, 0.09), &logits), vec![0, 1, 2, 3]);
    assert_eq!(kept_ids(&filters(0, 1.0, 1.0), &logits), vec![3]);
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative() {
    let params = SamplingParams {
        repeat_penalty: 2.0,
        repeat_last_n: 3,
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(&params, 6).unwrap();
    // Window of the last 3: prompt [5, 0, 1] then generated 3 → window [0, 1, 3]; 5 drops out.
    s.accept_prompt(&[4, 5, 0, 1]);
    s.accept(3);
    let mut logits = vec![2.0, -1.0, 0.5, 3.0, 1.0, 4.0];
    s.adjust_logits(&mut logits).unwrap();
    assert_eq!(logits, vec![1.0, -2.0, 0.5, 1.5, 1.0, 4.0]);
    // Duplicates in the window are penalized once.
    let mut s = Sampler::new(&params, 6).unwrap();
    s.accept_prompt(&[2, 2, 2]);
    let mut logits = vec![2.0, -1.0, 0.5, 3.0, 1.0, 4.0];
    s.adjust_logits(&mut logits).unwrap();
    assert_eq!(logits, vec![2.0, -1.0, 0.25, 3.0, 1.0, 4.0]);
}

#[test]
fn presence_and_frequency_penalties_use_generated_counts() {
    let params = SamplingParams {
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(&params, 5).unwrap();
    s.accept_prompt(&[0, 0, 0]); // prompt tokens do not count
    for t in [2, 2, 3, 2] {
        s.accept(t);
    }
    let mut logits = vec![1.0, 1.0, 1.0, 1.0, -1.0];
    s.adjust_logits(&mut logits).unwrap();
    // id 2: 3 times → 1 - (0.5 + 0.75); id 3: once → 1 - (0.5 + 0.25).
    assert_eq!(logits, vec![1.0, 1.0, -0.25, 0.25, -1.0]);
}

#[test]
fn logit_bias_is_added_and_minus_100_bans() {
    let params = SamplingParams {
        logit_bias: BTreeMap::from([(0, -100.0), (2, 0.5)]),
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(&params, 3).unwrap();
    let mut logits = vec![5.0, 4.9, 1.0];
    s.adjust_logits(&mut logits).unwrap();
    assert_eq!(logits, vec![-95.0, 4.9, 1.5]);
    assert_eq!(s.sample(&[5.0, 4.9, 1.0]).unwrap(), 1);

    let params = SamplingParams {
        logit_bias: BTreeMap::from([(0, -100.0)]),
        ..SamplingParams::plain(1.0, 7)
    };
    let mut s = Sampler::new(&params, 3).unwrap();
    for _ in 0..10_000 {
        assert_ne!(s.sample(&[5.0, 4.9, 1.0]).unwrap(), 0);
    }
}

#[test]
fn same_seed_same_tokens_different_seed_differs() {
    let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    let run = |seed: u64| -> Vec<u32> {
        let params = SamplingParams {
            seed: Some(seed),
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(&params, logits.len()).unwrap();
        (0..2000).map(|_| s.sample(&logits).unwrap()).collect()
    };
    let a = run(1234);
    assert_eq!(a, run(1234));
    let b = run(1235);
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(differing > 500, "only {differing} of 2000 draws differ");
}

#[test]
fn seeded_draws_are_pinned() {
    // Pins the seed → token mapping: xoshiro256** seeded by splitmix64(42), u = top 53 bits,
    // two equally likely tokens → token 0 iff u < 0.5, i.e. iff the top bit of the output is 0.
    let mut rng = Xoshiro256StarStar::seed_from_u64(42);
    let expected: Vec<u32> = (0..64).map(|_| (rng.next_u64() >> 63) as u32).collect();
    let mut s = Sampler::new(&SamplingParams::plain(1.0, 42), 2).unwrap();
    let got: Vec<u32> = (0..64).map(|_| s.sample(&[0.0, 0.0]).unwrap()).collect();
    assert_eq!(got, expected);
    assert!(got.contains(&0) && got.contains(&1));
}

/// Chi-square statistic of `counts` against probabilities `p` (all > 0).
fn chi_square(counts: &[u64], p: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(p)
        .map(|(&c, &pi)| {
            let e = pi * n as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

#[test]
fn frequencies_match_softmax_at_temperature() {
    let logits = [1.0f32, 0.2, -0.5, 2.0, 0.0, 1.5, -2.0, 0.7];
    let t = 0.7f64;
    let p = softmax(&logits.iter().map(|&l| f64::from(l) / t).collect::<Vec<_>>());
    let mut s = Sampler::new(&SamplingParams::plain(0.7, 2024), logits.len()).unwrap();
    let mut counts = vec![0u64; logits.len()];
    for _ in 0..200_000 {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    let chi2 = chi_square(&counts, &p);
    // 7 degrees of freedom: P(chi2 > 24.32) = 0.001.
    assert!(chi2 < 24.32, "chi2 = {chi2}, counts {counts:?}, p {p:?}");
}

#[test]
fn frequencies_match_renormalized_top_k_and_top_p() {
    let logits = [1.0f32, 0.2, -0.5, 2.0, 0.0, 1.5, -2.0, 0.7];
    // top-k 4 keeps ids {3, 5, 0, 7}; then top-p 0.85 on their renormalized untempered
    // probabilities; temperature 1.3 applies to the survivors.
    let kept = [3usize, 5, 0, 7];
    let pk = softmax(
        &kept
            .iter()
            .map(|&i| f64::from(logits[i]))
            .collect::<Vec<_>>(),
    );
    let mut cum = 0.0;
    let mut n_keep = 0;
    for &q in &pk {
        cum += q;
        n_keep += 1;
        if cum >= 0.85 {
            break;
        }
    }
    assert_eq!(n_keep, 3, "test setup: nucleus of 3");
    let survivors = &kept[..n_keep];
    let p = softmax(
        &survivors
            .iter()
            .map(|&i| f64::from(logits[i]) / 1.3)
            .collect::<Vec<_>>(),
    );
    let params = SamplingParams {
        temperature: 1.3,
        top_k: 4,
        top_p: 0.85,
        min_p: 0.0,
        seed: Some(99),
        ..SamplingParams::default()
    };
    let mut s = Sampler::new(&params, logits.len()).unwrap();
    let mut counts = vec![0u64; logits.len()];
    for _ in 0..100_000 {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    for (i, &c) in counts.iter().enumerate() {
        if !survivors.contains(&i) {
            assert_eq!(c, 0, "id {i} should be filtered out");
        }
    }
    let sc: Vec<u64> = survivors.iter().map(|&i| counts[i]).collect();
    let chi2 = chi_square(&sc, &p);
    // 2 degrees of freedom: P(chi2 > 13.82) = 0.001.
    assert!(chi2 < 13.82, "chi2 = {chi2}, counts {sc:?}, p {p:?}");
}

#[test]
fn unseeded_samplers_report_their_seed() {
    let params = SamplingParams::default();
    let s = Sampler::new(&params, 4).unwrap();
    let seed = s.seed();
    let replay = SamplingParams {
        seed: Some(seed),
        ..params
    };
    let logits = [0.1f32, 0.2, 0.3, 0.4];
    let mut a = s.clone();
    let mut b = Sampler::new(&replay, 4).unwrap();
    for _ in 0..100 {
        assert_eq!(a.sample(&logits).unwrap(), b.sample(&logits).unwrap());
    }
}

#[test]
fn logit_bias_comes_before_repetition_penalty() {
    let params = SamplingParams {
        logit_bias: BTreeMap::from([(0, 2.0)]),
        repeat_penalty: 2.0,
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(&params, 2).unwrap();
    s.accept_prompt(&[0]);
    let mut logits = vec![2.0, 1.0];
    s.adjust_logits(&mut logits).unwrap();
    // (2 + 2) / 2 = 2, not 2 / 2 + 2 = 3.
    assert_eq!(logits, vec![2.0, 1.0]);
}

#[test]
fn temperature_applies_after_min_p() {
    // Relative probabilities 0.6 (id 1) and 1.0 (id 3) before temperature; min-p 0.35 keeps both.
    // Were the temperature 0.25 applied first, id 1's relative probability would be
    // 0.6^4 ≈ 0.13 < 0.35 and it would never be drawn. After min-p, it has probability
    // 0.3^4 / (0.3^4 + 0.5^4) ≈ 0.115.
    let logits = ln_probs(&[0.05, 0.3, 0.15, 0.5]);
    let params = SamplingParams {
        temperature: 0.25,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.35,
        seed: Some(5),
        ..SamplingParams::default()
    };
    let mut s = Sampler::new(&params, 4).unwrap();
    let mut counts = [0u32; 4];
    for _ in 0..4000 {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    assert_eq!(counts[0] + counts[2], 0, "{counts:?}");
    // Expected ≈ 460 of 4000 (std ≈ 20).
    assert!((360..560).contains(&counts[1]), "{counts:?}");
}
