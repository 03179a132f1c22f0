//! Scalar helpers shared by several block types: reading and writing the little-endian fields
//! of a block, ggml's rounding, the scale searches of the reference quantizers and the k-quants'
//! scale unpacking.

use super::f16::{f16_to_f32, f16_to_f32_fast};
use super::{BlockFormat, BlockType, QK, QK_K};

/// The f16 at `b[off..off + 2]` as f32 (exact; inlined branch-free bit arithmetic, so that a
/// SIMD kernel reading a block's scale makes no call).
#[inline(always)]
pub(crate) fn rd_f16(b: &[u8], off: usize) -> f32 {
    f16_to_f32_fast(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// The f32 at `b[off..off + 4]`.
#[inline]
pub(crate) fn rd_f32(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// f32 → IEEE binary16 bits (round to nearest even).
#[inline]
pub(crate) fn fp16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Writes `x` as f16 at `b[off..off + 2]` and returns the stored value as f32.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], off: usize, x: f32) -> f32 {
    let h = fp16(x);
    b[off..off + 2].copy_from_slice(&h.to_le_bytes());
    f16_to_f32(h)
}

/// The 5th bits of a Q5 block as `u32` (bit `j` belongs to element `j`).
#[inline]
pub(crate) fn qh32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The bytes of `b` as signed values.
#[inline]
pub(crate) fn i8s(b: &[u8]) -> impl Iterator<Item = i32> + '_ {
    b.iter().map(|&v| i32::from(v as i8))
}

/// The matching blocks of weights `w` (type `T`) and activations `a` (its `VecDotType`).
#[inline]
pub(crate) fn blocks<'a, T: BlockType>(
    w: &'a [u8],
    a: &'a [u8],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    w.chunks_exact(T::BLCK_BYTES)
        .zip(a.chunks_exact(<T::VecDotType as BlockFormat>::BLCK_BYTES))
}

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below this quantize to zero.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest, ties to even, valid for |x| ≤ 4194303.
#[inline]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

/// `(max, amax)`: the value with the largest magnitude (first one wins) and that magnitude.
#[inline]
pub(crate) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

#[inline]
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
pub(crate) fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Packs 5-bit values (`xi[j]`, `xi[j + 16]`) into `qs` nibbles and the `qh` bit mask.
#[inline]
pub(crate) fn pack5(xi: &[u8; QK], b: &mut [u8], qs_off: usize, qh_off: usize) {
    let mut qh = 0u32;
    let qs = &mut b[qs_off..][..QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let (a, c) = (xi[j], xi[j + QK / 2]);
        *q = (a & 0x0f) | ((c & 0x0f) << 4);
        qh |= (((a & 0x10) >> 4) as u32) << j;
        qh |= (((c & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    b[qh_off..qh_off + 4].copy_from_slice(&qh.to_le_bytes());
}

/// ggml's `make_qx_quants` with `rmse_type == 1` and no importance weights: a signed scale for
/// `x` with levels `L[i] + nmax` in `0..2·nmax`, searched over 19 candidate inverse scales.
#[inline]
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    let (max, amax) = signed_absmax_gt(x);
    if amax < GROUP_MAX_EPS {
        l_out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -nmaxf / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (level(iscale, v) + nmax) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (level(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Like [`signed_absmax`] but with ggml's `ax > amax` comparison (same result, kept literal).
#[inline]
pub(crate) fn signed_absmax_gt(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// ggml's `make_qkx2_quants` (`x.len()` ≤ 32 values): an unsigned scale and a min for `x` with
/// levels in `0..=nmax`, searched over `nstep + 1` candidate scales. Returns `(scale, -min)`.
#[inline]
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    search: (f32, f32, i32),
    use_mad: bool,
) -> (f32, f32) {
    let (rmin, rdelta, nstep) = search;
    let n = x.len().min(weights.len()).min(l_out.len()).min(32);
    if n == 0 {
        return (0.0, 0.0);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let lf = l as f32;
            let w = weights[i];
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from the packed 12 bytes.
#[inline]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Shared part of Q4_K / Q5_K: per-sub-block scales and mins, packed 6-bit scales, `d`, `dmin`
/// and the final levels in `l` (each in `0..=nmax`). Writes `d`, `dmin` and `scales` of `b`.
#[inline]
pub(crate) fn qk_scales_and_levels(
    x: &[f32],
    b: &mut [u8],
    offs: (usize, usize, usize),
    nmax: i32,
    search: (f32, f32, i32),
    l: &mut [u8; QK_K],
) {
    let (d_off, dmin_off, sc_off) = offs;
    let mut mins = [0.0f32; QK_K / 32];
    let mut scales = [0.0f32; QK_K / 32];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, (xa, ls)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let mut sum_x2 = 0.0f32;
        for &v in xa {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xa) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(nmax, xa, &weights, ls, search, false);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 12];
    for j in 0..QK_K / 32 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    b[sc_off..sc_off + 12].copy_from_slice(&sc);
    let d = put_f16(b, d_off, max_scale / 63.0);
    let dmin = put_f16(b, dmin_off, max_min / 63.0);
    for j in 0..QK_K / 32 {
        let (s, m) = get_scale_min_k4(j, &sc);
        let dl = d * s as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dl).clamp(0, nmax) as u8;
        }
    }
}

/// ggml's `make_q3_quants` with `do_rmse == true`: a signed scale for `x` (16 values) with levels
/// `L[i] + nmax` in `0..2·nmax`, refined by up to five passes of coordinate descent.
#[inline]
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    let (max, amax) = signed_absmax_gt(x);
    if amax < GROUP_MAX_EPS {
        l_out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut l = [0i32; 16];
    let n = x.len().min(l_out.len()).min(16);
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let li = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = li;
        let w = x[i] * x[i];
        sumlx += w * x[i] * li as f32;
        suml2 += w * li as f32 * li as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l[i] {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for (o, &li) in l_out.iter_mut().zip(&l[..n]) {
        *o = (li + nmax) as u8;
    }
    sumlx / suml2
}

/// Packs 2-bit levels the way Q2_K and Q3_K store `qs`: byte `32·n + k` of each 128-value half
/// holds values `j + k`, `j + k + 32`, `j + k + 64`, `j + k + 96` in bits 0–1, 2–3, 4–5, 6–7.
#[inline]
pub(crate) fn pack2(l: &[u8; QK_K], qs: &mut [u8]) {
    for (n, j) in (0..QK_K).step_by(128).enumerate() {
        for k in 0..32 {
            qs[32 * n + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

/// Integer sum of a Q5 block (levels 0..31, minus `bias`) against 32 int8 activations.
#[inline]
pub(crate) fn q5_isum(qs: &[u8], qh: u32, yq: &[u8], bias: i32) -> i32 {
    let (mut s0, mut s1) = (0i32, 0i32);
    for (j, ((&q, y0), y1)) in qs
        .iter()
        .zip(i8s(&yq[..16]))
        .zip(i8s(&yq[16..]))
        .enumerate()
    {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        s0 += ((u32::from(q & 0x0f) | h0) as i32 - bias) * y0;
        s1 += ((u32::from(q >> 4) | h1) as i32 - bias) * y1;
    }
    s0 + s1
}

/// `Σ_g scale[g] · Σ_{l in group g} level[l] · q8[l]` with groups of `QK_K / scales.len()`.
#[inline]
pub(crate) fn scaled_isum(levels: &[i8; QK_K], scales: &[i32], q8: &[u8]) -> i32 {
    let group = QK_K / scales.len();
    let mut isum = 0i32;
    for ((lv, q), &sc) in levels
        .chunks_exact(group)
        .zip(q8.chunks_exact(group))
        .zip(scales)
    {
        let s: i32 = lv
            .iter()
            .zip(i8s(q))
            .map(|(&l, qv)| i32::from(l) * qv)
            .sum();
        isum += sc * s;
    }
    isum
}

/// ggml's `get_scale_min_k4` for all eight 32-element groups.
#[inline]
pub(crate) fn scales_mins_k4(q: &[u8]) -> ([i32; 8], [i32; 8]) {
    let mut sc = [0i32; 8];
    let mut mn = [0i32; 8];
    for j in 0..8 {
        let (s, m) = if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        };
        sc[j] = i32::from(s);
        mn[j] = i32::from(m);
    }
    (sc, mn)
}

/// `Σ_j bsums[j] · mins[j / (16 / per)]` — the activation-sum term of the mins.
#[inline]
pub(crate) fn min_term(bsums: &[i32; QK_K / 16], mins: &[i32]) -> i32 {
    let per = QK_K / 16 / mins.len();
    bsums
        .chunks_exact(per)
        .zip(mins)
        .map(|(b, &m)| b.iter().map(|&v| v * m).sum::<i32>())
        .sum()
}
