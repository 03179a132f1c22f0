//! The bf16-activation products: the scalar twin against the definition (activations rounded to
//! bf16, weights dequantized by ggml, f32 products) for every weight type; the AVX512-BF16
//! kernels against the twin bit for bit (where the CPU has them); whole products for every batch
//! size against one row at a time, bit for bit.

use super::units::{dispatch_units, UNIT};
use super::*;
use crate::quant::dequantize_to_vec;
use crate::quants::WEIGHT_TYPES;

fn values(seed: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let u = ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            if (*seed >> 8).is_multiple_of(29) {
                u * 25.0
            } else {
                u
            }
        })
        .collect()
}

fn quantized(ty: DType, seed: &mut u64, rows: usize, cols: usize) -> Vec<u8> {
    crate::quantize::quantize_to_vec(ty, &values(seed, rows * cols)).expect("quantize")
}

/// Σ |w_i · bf16(x_i)|: the scale of the rounding tolerance.
fn magnitude(ty: DType, w: &[u8], x: &[f32]) -> f32 {
    let wd = dequantize_to_vec(ty, w, x.len()).expect("dequantize");
    wd.iter()
        .zip(x)
        .map(|(a, b)| (a * round_bf16(*b)).abs())
        .sum()
}

/// Σ (|scale · level| + |offset|) · |x_i| over the weights as units: the scale of the rounding
/// tolerance of the f32 products, whose scaled sums and offset sums may cancel.
fn magnitude_f32(ty: DType, w: &[u8], x: &[f32]) -> f32 {
    fn go<T: super::units::Units>(w: &[u8], x: &[f32]) -> f32 {
        let mut p = super::units::Params::default();
        let mut q = [0i8; UNIT];
        let mut m = 0.0f32;
        for (bi, b) in w.chunks_exact(T::BLCK_BYTES).enumerate() {
            T::params(b, &mut p);
            for u in 0..T::UNITS {
                T::levels(b, u, &mut q);
                for (e, &l) in q.iter().enumerate() {
                    let (s, o) = (p.scales[u][e / 16], p.offsets[u][e / 16]);
                    m += ((s * l as f32).abs() + o.abs()) * x[(bi * T::UNITS + u) * UNIT + e].abs();
                }
            }
        }
        m
    }
    dispatch_units!(ty, T => go::<T>(w, x), other => panic!("{other}"))
}

#[test]
fn twin_agrees_with_the_definition_for_every_type() {
    let mut seed = 0x51ed_2701_a3c9_44f1u64;
    for ty in WEIGHT_TYPES {
        for blocks in [1usize, 3, 9] {
            let cols = blocks * ty.block_size();
            let w = quantized(ty, &mut seed, 1, cols);
            let x = values(&mut seed, cols);
            let wr = WeightRef::new(ty, &w, 1, cols).expect("view");
            let mut want = [0.0f32];
            matmul_bf16_reference(&mut want, &x, 1, &wr, &mut Vec::new()).expect("reference");
            let got = dot_row_twin(ty, &w, &x, 1);
            let tol = 2e-6 * magnitude(ty, &w, &x).max(1.0);
            assert!(
                (got - want[0]).abs() <= tol,
                "{ty} {blocks} blocks: twin {got} vs definition {} (tol {tol})",
                want[0]
            );
            // Three terms: the f32 product with the dequantized weights.
            crate::matmul::matmul(&mut want, &x, 1, &wr).expect("f32");
            let got = dot_row_twin(ty, &w, &x, 3);
            let tol = 2e-6 * magnitude_f32(ty, &w, &x).max(1.0);
            assert!(
                (got - want[0]).abs() <= tol,
                "{ty} {blocks} blocks: three-term twin {got} vs f32 {} (tol {tol})",
                want[0]
            );
        }
    }
}

#[test]
fn three_terms_add_up_to_the_value() {
    let mut seed = 0x7777_1234_abcd_0001u64;
    for v in values(&mut seed, 10_000).into_iter().chain([
        0.0,
        -0.0,
        1.0,
        f32::MIN_POSITIVE * 4e6,
        3.0e38,
        -1.2345678e-20,
    ]) {
        let t = terms::<3>(v);
        assert_eq!(value(&t), v, "{v:e} = {t:x?}");
    }
}

#[cfg(target_arch = "x86_64")]
fn kernels_match_twin<T: super::x86::UnitsAvx512, const K: usize>(seed: &mut u64) {
    use std::arch::x86_64::*;
    let ty = T::DTYPE;
    let cols = 5 * T::BLCK_SIZE;
    let w = quantized(ty, seed, 1, cols);
    // The expanded levels are the scalar levels, converted exactly.
    for b in w.chunks_exact(T::BLCK_BYTES) {
        for u in 0..T::UNITS {
            let mut q = [0i8; UNIT];
            T::levels(b, u, &mut q);
            let mut words = [0u16; UNIT];
            // SAFETY: `fast_available` was checked by the caller; `words` has 64 bytes.
            unsafe {
                _mm512_storeu_si512(words.as_mut_ptr().cast(), T::levels512(b, u));
            }
            let want: Vec<u16> = q
                .iter()
                .map(|&l| ((l as f32).to_bits() >> 16) as u16)
                .collect();
            assert_eq!(&words[..], &want[..], "{ty} unit {u}");
        }
    }
    let x = values(seed, cols);
    let mut s = Bf16Scratch::default();
    let p = prepare::<K>(&mut s, &x, cols, T::OFFSETS);
    let (xb, sums) = p.row(0);
    let per = T::OFFSETS.per_unit();
    let units = cols / UNIT;
    let mut offs = vec![0.0f32; units * per];
    // SAFETY: `fast_available` was checked by the caller; sizes are whole rows.
    let fused = unsafe { super::x86::dot_row::<T, K>(&w, xb, sums, &mut offs) };
    let mut words = vec![0u16; cols];
    let mut scales = vec![[0.0f32; 2]; units];
    let mut offs2 = vec![0.0f32; units * per];
    // SAFETY: as above.
    let expanded = unsafe {
        super::x86::expand_row::<T>(&w, &mut words, &mut scales, &mut offs2);
        super::x86::dot_expanded::<T, K>(&words, &scales, &offs2, xb, sums)
    };
    let twin = dot_row_twin(ty, &w, &x, K);
    assert_eq!(
        fused.to_bits(),
        twin.to_bits(),
        "{ty} K={K}: fused {fused} vs twin {twin}"
    );
    assert_eq!(
        expanded.to_bits(),
        twin.to_bits(),
        "{ty} K={K}: expanded vs twin"
    );
}

#[test]
fn avx512_bf16_kernels_equal_their_twin_bit_for_bit() {
    #[cfg(target_arch = "x86_64")]
    if fast_available() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for ty in WEIGHT_TYPES {
            for _ in 0..4 {
                dispatch_units!(ty, T => {
                    kernels_match_twin::<T, 1>(&mut seed);
                    kernels_match_twin::<T, 3>(&mut seed);
                }, other => panic!("{other}"));
            }
        }
        return;
    }
    eprintln!("skipped: this CPU has no AVX512-BF16");
}

type Product = fn(&mut [f32], &[f32], usize, &WeightRef<'_>, &mut Bf16Scratch) -> Result<()>;

fn batch_invariance(product: Product, three: bool) {
    let mut seed = 0x0123_4567_89ab_cdefu64;
    for ty in WEIGHT_TYPES {
        let (rows, cols) = (21usize, 3 * ty.block_size());
        let w = quantized(ty, &mut seed, rows, cols);
        let wr = WeightRef::new(ty, &w, rows, cols).expect("view");
        let n_max = 5;
        let x = values(&mut seed, n_max * cols);
        let mut s = Bf16Scratch::default();
        let mut one = vec![0.0f32; n_max * rows];
        for t in 0..n_max {
            let o = &mut one[t * rows..(t + 1) * rows];
            product(o, &x[t * cols..(t + 1) * cols], 1, &wr, &mut s).expect("matvec");
        }
        let mut reference = vec![0.0f32; n_max * rows];
        if three {
            crate::matmul::matmul(&mut reference, &x, n_max, &wr).expect("f32");
        } else {
            matmul_bf16_reference(&mut reference, &x, n_max, &wr, &mut Vec::new())
                .expect("reference");
        }
        for n in 2..=n_max {
            let mut o = vec![0.0f32; n * rows];
            product(&mut o, &x[..n * cols], n, &wr, &mut s).expect("matmul");
            for (i, (a, b)) in o.iter().zip(&one).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{ty} n={n} output {i}: {a} vs {b}"
                );
            }
        }
        let rb = wr.row_bytes();
        for (t, (a, b)) in one.chunks(rows).zip(reference.chunks(rows)).enumerate() {
            for (r, (a, b)) in a.iter().zip(b).enumerate() {
                let (wrow, xrow) = (&w[r * rb..][..rb], &x[t * cols..][..cols]);
                let m = if three {
                    magnitude_f32(ty, wrow, xrow)
                } else {
                    magnitude(ty, wrow, xrow)
                };
                assert!(
                    (a - b).abs() <= 2e-6 * m.max(1.0),
                    "{ty} row {r}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn every_batch_size_gives_each_row_the_same_bits() {
    batch_invariance(matmul_bf16, false);
    batch_invariance(matmul_f32_split, true);
}

#[test]
fn rounds_to_nearest_even_and_flushes_subnormals() {
    assert_eq!(round_bf16(1.0), 1.0);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
    assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
    assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
    assert_eq!(round_bf16(1.0 + 1.0 / 200.0), 1.0 + 1.0 / 128.0);
    assert_eq!(round_bf16(-2.5e-3).to_bits() & 0xffff, 0);
    assert!(round_bf16(f32::NAN).is_nan());
    assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
    assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
    assert_eq!(round_bf16(1e-39).to_bits(), 0);
    assert_eq!(round_bf16(-1e-39).to_bits(), 0x8000_0000);
}

#[test]
fn rejects_bad_sizes() {
    let w = [0u8; 18];
    let wr = WeightRef::new(DType::Q4_0, &w, 1, 32).expect("view");
    let mut s = Bf16Scratch::default();
    assert!(matmul_bf16(&mut [0.0; 1], &[0.0; 31], 1, &wr, &mut s).is_err());
    assert!(matmul_bf16(&mut [0.0; 2], &[0.0; 32], 1, &wr, &mut s).is_err());
}
