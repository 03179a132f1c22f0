//! `out = x · Wᵀ` for block-quantized weights, as ggml computes it: activation rows quantized
//! once, then integer block dot products — row by row for decode, in tiles ([`crate::qgemm`]) or
//! over weight rows repacked eight at a time ([`crate::qgemm_x8`]) for prompts.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::matmul::SendPtr;
use crate::{check_len, mul, Result};

/// `out[t, o] = Σ_i x[t, i] · w[o, i]` for a block-quantized weight `w` (`rows × cols` of type
/// `ty`, row-major, whole blocks per row), as ggml computes it: each activation row is quantized
/// once to [`crate::qdot::vec_dot_type`]`(ty)` into `act` (grown on demand and reused, so a warm
/// decode step does not allocate), then every output is one [`crate::qdot::vec_dot`]. Parallel
/// over output rows.
#[allow(clippy::too_many_arguments)]
pub fn matmul_quantized(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    ty: crate::DType,
    w: &[u8],
    rows: usize,
    cols: usize,
    act: &mut Vec<u8>,
) -> Result<()> {
    use crate::qdot::{quantize_activations_into, vec_dot_fn, vec_dot_type};
    use crate::quants::bytes_for;
    let at = vec_dot_type(ty)?;
    check_len("matmul input", mul("matmul input", n, cols)?, x.len())?;
    check_len("matmul output", mul("matmul output", n, rows)?, out.len())?;
    let wrb = bytes_for(ty, cols)?;
    check_len(
        "quantized matmul weight bytes",
        mul("quantized matmul weight", rows, wrb)?,
        w.len(),
    )?;
    if n == 0 || rows == 0 {
        return Ok(());
    }
    let arb = bytes_for(at, cols)?;
    let need = mul("quantized activations", n, arb)?;
    if act.len() < need {
        act.resize(need, 0);
    }
    let act = &mut act[..need];
    for (src, dst) in x.chunks_exact(cols).zip(act.chunks_exact_mut(arb)) {
        quantize_activations_into(at, src, dst)?;
    }
    let act = &*act;
    #[cfg(target_arch = "x86_64")]
    if crate::qgemm::available(ty) {
        return QSCALES.with(|sc| {
            let mut sc = sc.borrow_mut();
            sc.clear();
            for row in act.chunks_exact(arb) {
                crate::qgemm::act_scales(ty, row, &mut sc);
            }
            tiled_quantized(out, ty, w, wrb, act, arb, &sc, rows, n);
            Ok(())
        });
    }
    // Sizes are checked above: every weight row is `wrb` bytes of whole blocks, every activation
    // row `arb` bytes for the same `cols`.
    let dotf = vec_dot_fn(ty)?;
    let dotq = |wr: &[u8], a: &[u8]| dotf(wr, a);
    let threads = rayon::current_num_threads().max(1);
    if n == 1 {
        let min_len = (rows / (threads * 8)).max(16);
        out.par_iter_mut()
            .with_min_len(min_len)
            .zip(w.par_chunks_exact(wrb))
            .for_each(|(o, wr)| *o = dotq(wr, act));
        return Ok(());
    }
    // Batched: tasks own blocks of QROW_BLOCK weight rows (kept in L1) and stream every
    // activation row past them.
    let n_blocks = rows.div_ceil(QROW_BLOCK);
    let min_len = (n_blocks / (threads * 4)).max(1);
    let optr = SendPtr::new(out);
    (0..n_blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|b| {
            let optr = &optr;
            let r0 = b * QROW_BLOCK;
            let r1 = (r0 + QROW_BLOCK).min(rows);
            for (t, a) in act.chunks_exact(arb).enumerate() {
                for r in r0..r1 {
                    let v = dotq(&w[r * wrb..(r + 1) * wrb], a);
                    // SAFETY: t < n and r < rows, so t * rows + r < n * rows == out.len()
                    // (checked above); each index is written only by the task that owns row
                    // block b; `out` is mutably borrowed for the whole call (`at` checks the
                    // index in debug builds).
                    unsafe { *optr.at(t * rows + r, 1) = v };
                }
            }
        });
    Ok(())
}

/// Products of one activation row `x` (`cols` values) with up to four quantized matrices of the
/// same type and width (`ws[i]` holds `outs[i].len()` rows): the decode step's q/k/v or gate/up.
/// The activations are quantized once and all rows run in one parallel loop, one hand-over
/// between threads instead of one per matrix. Every output equals that of [`matmul_quantized`]
/// with `n = 1`, bit for bit.
pub fn matvec_quantized_many(
    outs: &mut [&mut [f32]],
    ws: &[&[u8]],
    x: &[f32],
    ty: crate::DType,
    cols: usize,
    act: &mut Vec<u8>,
) -> Result<()> {
    use crate::qdot::{quantize_activations_into, vec_dot_type};
    use crate::quants::bytes_for;
    const MAX: usize = 4;
    let at = vec_dot_type(ty)?;
    if outs.len() != ws.len() || outs.len() > MAX {
        return Err(crate::KernelError::Invalid(format!(
            "{} outputs for {} matrices (at most {MAX})",
            outs.len(),
            ws.len()
        )));
    }
    check_len("matvec input", cols, x.len())?;
    let wrb = bytes_for(ty, cols)?;
    for (o, w) in outs.iter().zip(ws) {
        check_len(
            "quantized matvec weight bytes",
            mul("quantized matvec weight", o.len(), wrb)?,
            w.len(),
        )?;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::qgemm::available(ty) {
        let arb = bytes_for(at, cols)?;
        if act.len() < arb {
            act.resize(arb, 0);
        }
        let act = &mut act[..arb];
        quantize_activations_into(at, x, act)?;
        let act = &*act;
        return QSCALES.with(|sc| {
            let mut sc = sc.borrow_mut();
            sc.clear();
            crate::qgemm::act_scales(ty, act, &mut sc);
            let scales = &sc[..];
            // Global row g belongs to matrix i where starts[i] <= g < starts[i + 1].
            let mut starts = [0usize; MAX + 1];
            let mut ptrs = [SendPtr::null(); MAX];
            for (i, o) in outs.iter_mut().enumerate() {
                starts[i + 1] = starts[i] + o.len();
                ptrs[i] = SendPtr::new(o);
            }
            let k = outs.len();
            let total = starts[k];
            let threads = rayon::current_num_threads().max(1);
            let chunk = (total / (threads * 8)).max(16);
            let (starts, ptrs) = (&starts, &ptrs);
            // Chunks of global rows, split where a matrix ends.
            (0..total.div_ceil(chunk)).into_par_iter().for_each(|c| {
                let (mut g, g1) = (c * chunk, ((c + 1) * chunk).min(total));
                while g < g1 {
                    let i = (1..k).take_while(|&i| starts[i] <= g).count();
                    let end = g1.min(starts[i + 1]);
                    let (r0, r1) = (g - starts[i], end - starts[i]);
                    // SAFETY: r0 < r1 <= outs[i].len() (starts are prefix sums of the lengths);
                    // these rows are written by this task alone, and `outs` is mutably borrowed
                    // throughout (`at` checks the range in debug builds).
                    let o =
                        unsafe { std::slice::from_raw_parts_mut(ptrs[i].at(r0, r1 - r0), r1 - r0) };
                    let wr = &ws[i][r0 * wrb..r1 * wrb];
                    crate::qgemm::dot_rows(ty, wr, wrb, act, scales, o);
                    g = end;
                }
            });
            Ok(())
        });
    }
    for (o, w) in outs.iter_mut().zip(ws) {
        let rows = o.len();
        matmul_quantized(o, x, 1, ty, w, rows, cols, act)?;
    }
    Ok(())
}

thread_local! {
    /// f32 scales of the activation rows of the current quantized product.
    static QSCALES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The tiled quantized product ([`crate::qgemm`]): decode (one row) in parallel over weight
/// rows; batches in tasks of QROW_BLOCK weight rows, each pair of weight rows multiplied with
/// four activation rows at a time. Sizes were checked by [`matmul_quantized`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn tiled_quantized(
    out: &mut [f32],
    ty: crate::DType,
    w: &[u8],
    wrb: usize,
    act: &[u8],
    arb: usize,
    scales: &[f32],
    rows: usize,
    n: usize,
) {
    use crate::qgemm::dot_tile;
    let spr = scales.len() / n.max(1); // scales per activation row
    let threads = rayon::current_num_threads().max(1);
    if n == 1 {
        // Decode: one weight row per product (tiles of several weight rows interleave their
        // streams and measured slower on Q4_1, Q4_K and Q6_K), in chunks of rows with one
        // dispatch each.
        let chunk = (rows / (threads * 8)).max(16);
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
            let r0 = c * chunk;
            let wr = &w[r0 * wrb..(r0 + o.len()) * wrb];
            crate::qgemm::dot_rows(ty, wr, wrb, act, scales, o);
        });
        return;
    }
    let n_blocks = rows.div_ceil(QROW_BLOCK);
    let min_len = (n_blocks / (threads * 4)).max(1);
    let optr = SendPtr::new(out);
    // Tiles of four weight rows where the kernel has the registers for them.
    let wide = crate::qgemm::wide_tiles(ty);
    // Batches of Q4_1, Q4_K, Q6_K and Q8_0: weights repacked eight rows at a time
    // ([`crate::qgemm_x8`]), with the activation blocks' sums where the kernel reads them.
    let x8 = crate::qgemm_x8::repacks(ty) && n >= 4;
    let sums_guard = QSUMS.with(|c| {
        let mut v = std::mem::take(&mut *c.borrow_mut());
        v.clear();
        if x8 && crate::qgemm::isa().is_some_and(|isa| crate::qgemm_x8::needs_sums(ty, isa)) {
            for t in 0..n {
                crate::qgemm_x8::act_sums(&act[t * arb..(t + 1) * arb], &mut v);
            }
        }
        v
    });
    let sums = &sums_guard[..];
    let spr_sums = sums.len() / n;
    let crow = |t: usize| &sums[t * spr_sums..(t + 1) * spr_sums];
    let arow = |t: usize| &act[t * arb..(t + 1) * arb];
    let srow = |t: usize| &scales[t * spr..(t + 1) * spr];
    (0..n_blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|b| {
            let optr = &optr;
            let r0 = b * QROW_BLOCK;
            let r1 = (r0 + QROW_BLOCK).min(rows);
            // Whole groups of eight rows repacked (the rest below).
            let r_rest = if x8 {
                // SAFETY: r1 <= rows, `out` holds n * rows values (checked by
                // `matmul_quantized`), and only this task writes rows r0..r1.
                unsafe { x8_rows(ty, w, wrb, (r0, r1), n, (&arow, &srow, &crow), optr, rows) }
            } else {
                r0
            };
            let mut t = 0;
            while t < n {
                let k = if t + 4 <= n { 4 } else { 1 };
                // Tiles of four (where `wide`) or two weight rows × four activation rows, then
                // the odd row alone.
                let mut r = r_rest;
                if k == 4 {
                    let acts = [arow(t), arow(t + 1), arow(t + 2), arow(t + 3)];
                    let scs = [srow(t), srow(t + 1), srow(t + 2), srow(t + 3)];
                    let tiles = QuadTiles {
                        ty,
                        w,
                        wrb,
                        acts,
                        scs,
                        out: optr,
                        rows,
                        t,
                    };
                    // SAFETY: t + 4 <= n and r1 <= rows, `out` holds n * rows values
                    // (checked by `matmul_quantized`), and only this task writes rows r0..r1.
                    unsafe {
                        if wide {
                            r = tiles.run::<4>(r, r1);
                        }
                        r = tiles.run::<2>(r, r1);
                    }
                }
                for r in r..r1 {
                    let wr = &w[r * wrb..(r + 1) * wrb];
                    let mut v = [0.0f32; 4];
                    if k == 4 {
                        let mut o = [[0.0f32; 4]];
                        dot_tile::<1, 4>(
                            ty,
                            [wr],
                            [arow(t), arow(t + 1), arow(t + 2), arow(t + 3)],
                            [srow(t), srow(t + 1), srow(t + 2), srow(t + 3)],
                            &mut o,
                        );
                        v = o[0];
                    } else {
                        let mut one = [[0.0f32]];
                        dot_tile::<1, 1>(ty, [wr], [arow(t)], [srow(t)], &mut one);
                        v[0] = one[0][0];
                    }
                    for (j, val) in v.iter().take(k).enumerate() {
                        // SAFETY: t + j < n and r < rows, so (t + j) * rows + r < n * rows ==
                        // out.len() (checked by `matmul_quantized`); each index is written only by
                        // the task that owns row block b; `out` is mutably borrowed throughout
                        // (`at` checks the index in debug builds).
                        unsafe { *optr.at((t + j) * rows + r, 1) = *val };
                    }
                }
                t += k;
            }
        });
    QSUMS.with(|c| *c.borrow_mut() = sums_guard);
}

const QROW_BLOCK: usize = 32;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Repacked rows of the current task ([`x8_rows`]).
    static X8: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Sums of the activation blocks of the current product ([`crate::qgemm_x8::act_sums`]).
    static QSUMS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// The quantized activation row `t`, its block scales and its block sums (empty where unused).
#[cfg(target_arch = "x86_64")]
type ActRows<'f, 'a> = (
    &'f dyn Fn(usize) -> &'a [u8],
    &'f dyn Fn(usize) -> &'a [f32],
    &'f dyn Fn(usize) -> &'a [i32],
);

/// The products of weight rows `r0..` of `ty` (one of [`crate::qgemm_x8::repacks`]) in whole
/// groups of eight, repacked once into scratch memory, with all `n` activation rows (four at a
/// time, then one by one), written into the `[n × rows]` output; returns the first row left (`r1`
/// when `r1 - r0` is a multiple of eight).
///
/// # Safety
/// `out` points to `n * rows` values, `r1 <= rows`, and no other thread writes rows `r0..r1`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn x8_rows<'a>(
    ty: crate::DType,
    w: &[u8],
    wrb: usize,
    (r0, r1): (usize, usize),
    n: usize,
    (arow, srow, crow): ActRows<'_, 'a>,
    out: &SendPtr,
    rows: usize,
) -> usize {
    use crate::qgemm_x8::{group_bytes, repack, tile, ROWS};
    let groups = (r1 - r0) / ROWS;
    if groups == 0 {
        return r0;
    }
    let Some(isa) = crate::qgemm::isa() else {
        return r0;
    };
    let nb = wrb / ty.type_size();
    let gb = group_bytes(ty, nb);
    X8.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < groups * gb {
            buf.resize(groups * gb, 0);
        }
        for g in 0..groups {
            let rg = r0 + g * ROWS;
            let rows8 = std::array::from_fn(|i| &w[(rg + i) * wrb..(rg + i + 1) * wrb]);
            repack(ty, rows8, nb, &mut buf[g * gb..(g + 1) * gb]);
        }
        let put = |t: usize, rg: usize, v: &[f32; ROWS]| {
            for (i, val) in v.iter().enumerate() {
                // SAFETY: t < n and rg + i < r1 <= rows, so the index is below n * rows, the
                // length of `out` (the caller's contract, checked by `at` in debug builds); only
                // this task writes these rows.
                unsafe { *out.at(t * rows + rg + i, 1) = *val };
            }
        };
        let mut t = 0;
        while t + 4 <= n {
            let acts = [arow(t), arow(t + 1), arow(t + 2), arow(t + 3)];
            let scs = [srow(t), srow(t + 1), srow(t + 2), srow(t + 3)];
            let cs = [crow(t), crow(t + 1), crow(t + 2), crow(t + 3)];
            for g in 0..groups {
                let mut o = [[0.0f32; ROWS]; 4];
                // SAFETY: `isa` is the CPU's ([`crate::qgemm::isa`]).
                unsafe { tile::<4>(isa, ty, &buf[g * gb..], nb, acts, scs, cs, &mut o) };
                for (j, v) in o.iter().enumerate() {
                    put(t + j, r0 + g * ROWS, v);
                }
            }
            t += 4;
        }
        for t in t..n {
            for g in 0..groups {
                let mut o = [[0.0f32; ROWS]; 1];
                let (a, sc, c) = ([arow(t)], [srow(t)], [crow(t)]);
                // SAFETY: as above.
                unsafe { tile::<1>(isa, ty, &buf[g * gb..], nb, a, sc, c, &mut o) };
                put(t, r0 + g * ROWS, &o[0]);
            }
        }
    });
    r0 + groups * ROWS
}

/// Four activation rows `t..t + 4` against weight rows taken `RW` at a time, written into the
/// `[n × rows]` output.
#[cfg(target_arch = "x86_64")]
struct QuadTiles<'a> {
    ty: crate::DType,
    w: &'a [u8],
    wrb: usize,
    acts: [&'a [u8]; 4],
    scs: [&'a [f32]; 4],
    out: &'a SendPtr,
    rows: usize,
    t: usize,
}

#[cfg(target_arch = "x86_64")]
impl QuadTiles<'_> {
    /// Tiles of `RW` weight rows from `r` while they fit below `r1`; returns the first row left.
    ///
    /// # Safety
    /// `out` points to `(t + 4) * rows` or more values, `r1 <= rows`, and no other thread writes
    /// the rows `r..r1` of the four activation rows.
    unsafe fn run<const RW: usize>(&self, mut r: usize, r1: usize) -> usize {
        while r + RW <= r1 {
            let mut o = [[0.0f32; 4]; RW];
            let ws: [&[u8]; RW] =
                std::array::from_fn(|i| &self.w[(r + i) * self.wrb..(r + i + 1) * self.wrb]);
            crate::qgemm::dot_tile::<RW, 4>(self.ty, ws, self.acts, self.scs, &mut o);
            for (i, oi) in o.iter().enumerate() {
                for (j, val) in oi.iter().enumerate() {
                    // SAFETY: (t + j) * rows + r + i < (t + 4) * rows because r + i < r1 <= rows
                    // (the caller's contract, checked by `at` in debug builds), and this thread
                    // alone writes these rows.
                    unsafe { *self.out.at((self.t + j) * self.rows + r + i, 1) = *val };
                }
            }
            r += RW;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::tests::lcg;

    /// The quantized product equals, output by output, the scalar oracle `vec_dot_scalar` on the
    /// activation row quantized by itself (legacy quants may differ by f32 reordering only).
    #[test]
    fn matvec_quantized_many_equals_one_matrix_at_a_time() {
        use crate::quantize::quantize_to_vec;
        use crate::DType;
        let mut seed = 5;
        let cols = 512usize;
        for ty in [
            DType::Q4_1,
            DType::Q8_0,
            DType::Q4_K,
            DType::Q6_K,
            DType::Q5_0,
        ] {
            let rows = [37usize, 8, 21];
            let ws: Vec<Vec<u8>> = rows
                .iter()
                .map(|&r| {
                    let f: Vec<f32> = (0..r * cols).map(|_| lcg(&mut seed)).collect();
                    quantize_to_vec(ty, &f).unwrap()
                })
                .collect();
            let x: Vec<f32> = (0..cols).map(|_| lcg(&mut seed)).collect();
            let mut act = Vec::new();
            let mut outs: Vec<Vec<f32>> = rows.iter().map(|&r| vec![0.0; r]).collect();
            {
                let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                let w: Vec<&[u8]> = ws.iter().map(|v| v.as_slice()).collect();
                matvec_quantized_many(&mut o, &w, &x, ty, cols, &mut act).unwrap();
            }
            for ((w, &r), got) in ws.iter().zip(&rows).zip(&outs) {
                let mut want = vec![0.0f32; r];
                matmul_quantized(&mut want, &x, 1, ty, w, r, cols, &mut act).unwrap();
                let same = want
                    .iter()
                    .zip(got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty:?}: {want:?} vs {got:?}");
            }
            // Mismatched sizes are errors, not panics.
            let mut short = vec![0.0f32; 3];
            let err = matvec_quantized_many(&mut [&mut short], &[&ws[0]], &x, ty, cols, &mut act);
            assert!(err.is_err());
        }
    }

    #[test]
    fn matmul_quantized_matches_scalar_oracle() {
        use crate::qdot::{quantize_activations, vec_dot_scalar, vec_dot_type};
        use crate::quantize::quantize_to_vec;
        use crate::DType;
        let mut seed = 11;
        let (rows, cols) = (37usize, 512usize);
        for ty in [
            DType::Q4_0,
            DType::Q4_1,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q8_0,
            DType::Q4_K,
            DType::Q5_K,
            DType::Q6_K,
        ] {
            let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
            let Ok(wq) = quantize_to_vec(ty, &wf) else {
                continue;
            };
            let wrb = crate::quants::bytes_for(ty, cols).unwrap();
            let mut act = Vec::new();
            let mut single = Vec::new();
            for n in [1usize, 3, 9] {
                let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
                let mut out = vec![0.0f32; n * rows];
                matmul_quantized(&mut out, &x, n, ty, &wq, rows, cols, &mut act).unwrap();
                // Each row alone gives the same bits as inside the batch (tiles of 4 + rest).
                single.clear();
                for t in 0..n {
                    let mut one = vec![0.0f32; rows];
                    let xt = &x[t * cols..(t + 1) * cols];
                    matmul_quantized(&mut one, xt, 1, ty, &wq, rows, cols, &mut act).unwrap();
                    single.extend(one);
                }
                for (i, (a, b)) in out.iter().zip(&single).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{ty:?} n={n} index {i}");
                }
                for t in 0..n {
                    let a = quantize_activations(
                        vec_dot_type(ty).unwrap(),
                        &x[t * cols..(t + 1) * cols],
                    )
                    .unwrap();
                    for r in 0..rows {
                        let want =
                            vec_dot_scalar(ty, &wq[r * wrb..(r + 1) * wrb], &a, cols).unwrap();
                        let got = out[t * rows + r];
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{ty:?} n={n} t={t} r={r}: {got} vs {want}"
                        );
                    }
                }
            }
            let mut out = vec![0.0f32; rows];
            assert!(
                matmul_quantized(&mut out, &[0.0; 5], 1, ty, &wq, rows, cols, &mut act).is_err()
            );
            assert!(matmul_quantized(
                &mut out,
                &vec![0.0; cols],
                1,
                ty,
                &wq[1..],
                rows,
                cols,
                &mut act
            )
            .is_err());
        }
    }
}
