//! Every type's SIMD kernels against its scalar twin, through [`BlockType`] (the idea of candle's
//! `quantized_tests.rs`): the AVX2 row dot, every instruction set's tiles and the eight-row
//! repacked kernels. The k-quant row dots and all tiles compute the scalar code's integer sums
//! and f32 formula and must give its bits or (legacy quants, tiles) agree within an f32
//! reordering; the tiles of every instruction set and shape, and the repacked kernels, must give
//! the same bits as each other.

use super::{ActFormat, BlockFormat, BlockType, QK_K};
use crate::DType;

/// xorshift values in −1..1, with occasional outliers.
fn values(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let u = ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            if (*seed >> 8).is_multiple_of(47) {
                u * 30.0 * scale
            } else {
                u * scale
            }
        })
        .collect()
}

fn quantize<F: BlockFormat>(x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; x.len() / F::BLCK_SIZE * F::BLCK_BYTES];
    for (v, b) in x
        .chunks_exact(F::BLCK_SIZE)
        .zip(out.chunks_exact_mut(F::BLCK_BYTES))
    {
        F::from_float(v, b);
    }
    out
}

/// `Σ |w_i a_i|` of the dequantized operands: the scale of the reordering tolerance.
fn abs_scale<T: BlockType>(w: &[u8], a: &[u8], n: usize) -> f32 {
    let mut wd = vec![0.0f32; n];
    let mut ad = vec![0.0f32; n];
    for (b, y) in w
        .chunks_exact(T::BLCK_BYTES)
        .zip(wd.chunks_exact_mut(T::BLCK_SIZE))
    {
        T::to_float(b, y);
    }
    type A<T> = <T as BlockType>::VecDotType;
    for (b, y) in a
        .chunks_exact(A::<T>::BLCK_BYTES)
        .zip(ad.chunks_exact_mut(A::<T>::BLCK_SIZE))
    {
        A::<T>::to_float(b, y);
    }
    wd.iter().zip(&ad).map(|(x, y)| (x * y).abs()).sum()
}

fn check<T: BlockType>() {
    let k = T::BLCK_SIZE == QK_K;
    let mut seed = 0x243f_6a88_85a3_08d3u64 ^ u64::from(T::DTYPE.ggml_id().unwrap());
    let lens: &[usize] = if k {
        &[256, 768, 2048]
    } else {
        &[32, 96, 1024]
    };
    for &n in lens {
        let ws: Vec<Vec<u8>> = (0..4)
            .map(|r| quantize::<T>(&values(&mut seed, n, [1.0, 0.01, 50.0, 3.0][r])))
            .collect();
        let acts: Vec<Vec<u8>> = (0..4)
            .map(|j| quantize::<T::VecDotType>(&values(&mut seed, n, [1.0, 100.0, 0.001, 5.0][j])))
            .collect();
        for w in &ws {
            for a in &acts {
                let want = T::vec_dot_unopt(w, a);
                let tol = 1e-5 * (1.0 + abs_scale::<T>(w, a, n));
                // The dot `vec_dot` picks is the AVX2 one where there is one.
                if let Some(got) = T::vec_dot_avx2(w, a) {
                    assert!(T::HAS_AVX2_DOT);
                    if k {
                        assert_eq!(got.to_bits(), want.to_bits(), "{:?} n={n}", T::DTYPE);
                    } else {
                        assert!((got - want).abs() <= tol, "{:?} n={n}", T::DTYPE);
                    }
                    assert_eq!(T::vec_dot(w, a).to_bits(), got.to_bits());
                } else {
                    assert_eq!(T::vec_dot(w, a).to_bits(), want.to_bits());
                }
                #[cfg(target_arch = "x86_64")]
                check_tiles::<T>(w, a, want, tol);
            }
        }
        #[cfg(target_arch = "x86_64")]
        check_x8::<T>(&ws, &acts);
    }
}

/// Every instruction set's 1 × 1 tile against the scalar twin, and all against the first.
#[cfg(target_arch = "x86_64")]
fn check_tiles<T: BlockType>(w: &[u8], a: &[u8], want: f32, tol: f32) {
    if T::tile_kernel::<1, 1>(crate::cpu::Isa::Avx2).is_none() {
        return;
    }
    let mut sc = Vec::new();
    T::VecDotType::act_scales(a, &mut sc);
    let mut first: Option<u32> = None;
    for isa in crate::qgemm::isas() {
        let mut out = [[0.0f32]];
        // SAFETY: `isa` comes from `isas()`, what this CPU runs.
        unsafe { crate::qgemm::dot_tile_isa::<1, 1>(isa, T::DTYPE, [w], [a], [&sc], &mut out) };
        let got = out[0][0];
        assert!((got - want).abs() <= tol, "{:?} {isa:?}", T::DTYPE);
        assert_eq!(
            *first.get_or_insert(got.to_bits()),
            got.to_bits(),
            "{isa:?}"
        );
    }
}

/// Eight repacked rows (the four weight rows twice) against the 1 × 1 tiles, bit for bit.
#[cfg(target_arch = "x86_64")]
fn check_x8<T: BlockType>(ws: &[Vec<u8>], acts: &[Vec<u8>]) {
    use crate::qgemm_x8::ROWS;
    let Some(bb) = T::X8_BLOCK_BYTES else {
        return;
    };
    let nb = ws[0].len() / T::BLCK_BYTES;
    let rows: [&[u8]; ROWS] = std::array::from_fn(|r| &ws[r % 4][..]);
    let mut packed = vec![0u8; nb * bb];
    T::x8_repack(rows, nb, &mut packed);
    for isa in crate::qgemm::isas() {
        for a in acts {
            let mut sc = Vec::new();
            T::VecDotType::act_scales(a, &mut sc);
            let mut sums = Vec::new();
            if T::x8_needs_sums(isa) {
                crate::qgemm_x8::act_sums(a, &mut sums);
            }
            let mut out = [[0.0f32; ROWS]];
            // SAFETY: `isa` comes from `isas()`; `packed` holds `nb` repacked blocks, `a` `nb`
            // activation blocks with their scales and sums.
            unsafe {
                T::x8_tile::<1>(
                    isa,
                    packed.as_ptr(),
                    nb,
                    [a.as_ptr()],
                    [sc.as_ptr()],
                    [sums.as_ptr()],
                    &mut out,
                )
            };
            for (r, got) in out[0].iter().enumerate() {
                let mut want = [[0.0f32]];
                // SAFETY: as above.
                unsafe {
                    crate::qgemm::dot_tile_isa::<1, 1>(
                        isa,
                        T::DTYPE,
                        [rows[r]],
                        [a],
                        [&sc],
                        &mut want,
                    )
                };
                assert_eq!(
                    got.to_bits(),
                    want[0][0].to_bits(),
                    "{:?} {isa:?} row {r}",
                    T::DTYPE
                );
            }
        }
    }
}

#[test]
fn every_simd_kernel_matches_its_scalar_twin() {
    for ty in crate::quants::WEIGHT_TYPES {
        dispatch!(ty, T => check::<T>());
    }
}

#[test]
fn trait_constants_match_the_runtime_enums() {
    for ty in crate::quants::WEIGHT_TYPES {
        dispatch!(ty, T => {
            assert_eq!(T::DTYPE, ty);
            assert_eq!((T::BLCK_SIZE, T::BLCK_BYTES), (ty.block_size(), ty.type_size()));
            let act = <<T as BlockType>::VecDotType as BlockFormat>::DTYPE;
            assert_eq!(act, super::vec_dot_type(ty).unwrap());
            assert!(super::ACT_TYPES.contains(&act));
        });
    }
}

#[test]
fn activation_constants_match_the_runtime_enum() {
    for act in super::ACT_TYPES {
        super::dispatch_act!(act, A => {
            assert_eq!(A::DTYPE, act);
            assert_eq!((A::BLCK_SIZE, A::BLCK_BYTES), (act.block_size(), act.type_size()));
        }, other => panic!("{other} has no activation format"));
    }
}

#[test]
fn other_types_are_unsupported() {
    for ty in [
        DType::F32,
        DType::Q8_1,
        DType::Q8_K,
        DType::IQ4_XS,
        DType::Bool,
    ] {
        assert_eq!(
            super::vec_dot_type(ty),
            Err(crate::KernelError::Unsupported(ty))
        );
    }
}
