//! Reference quantization of f32 rows into ggml blocks, bit-identical with ggml's
//! `quantize_row_*_ref` (what `ggml_quantize_chunk` / llama-quantize run without an importance
//! matrix).
//!
//! The arithmetic follows ggml's operation order in f32 with no fused multiply-add; integer
//! rounding uses the same primitives: C `roundf` (half away from zero, [`f32::round`]), truncating
//! float→int casts, and ggml's `nearest_int` (the 1.5·2²³ trick, half to even). Blocks are written
//! at the `offset_of!` positions of the structs in [`crate::quant`], little-endian.

use std::mem::offset_of;

use rayon::prelude::*;

use crate::convert::f16_to_f32;
use crate::quant::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, QuantType, QK, QK_K,
};
use crate::{check_len, Result};

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below this quantize to zero.
const GROUP_MAX_EPS: f32 = 1e-15;

#[inline]
fn fp16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

#[inline]
fn put_f16(b: &mut [u8], off: usize, x: f32) -> f32 {
    let h = fp16(x);
    b[off..off + 2].copy_from_slice(&h.to_le_bytes());
    f16_to_f32(h)
}

/// ggml's `nearest_int`: round to nearest, ties to even, valid for |x| ≤ 4194303.
#[inline]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

/// `(max, amax)`: the value with the largest magnitude (first one wins) and that magnitude.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
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
fn min_max(x: &[f32]) -> (f32, f32) {
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
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

fn q8_0_block(x: &[f32], b: &mut [u8]) {
    let amax = x
        .iter()
        .fold(0.0f32, |a, v| if a > v.abs() { a } else { v.abs() });
    let d = amax / 127.0;
    let id = inv(d);
    put_f16(b, offset_of!(BlockQ8_0, d), d);
    let qs = &mut b[offset_of!(BlockQ8_0, qs)..][..QK];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = ((v * id).round() as i8) as u8;
    }
}

fn q4_0_block(x: &[f32], b: &mut [u8]) {
    let (max, _) = signed_absmax(x);
    let d = max / -8.0;
    let id = inv(d);
    put_f16(b, offset_of!(BlockQ4_0, d), d);
    let qs = &mut b[offset_of!(BlockQ4_0, qs)..][..QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let xi1 = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
        *q = xi0 | (xi1 << 4);
    }
}

fn q4_1_block(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inv(d);
    put_f16(b, offset_of!(BlockQ4_1, d), d);
    put_f16(b, offset_of!(BlockQ4_1, m), min);
    let qs = &mut b[offset_of!(BlockQ4_1, qs)..][..QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let xi1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
        *q = xi0 | (xi1 << 4);
    }
}

/// Packs 5-bit values (`xi[j]`, `xi[j + 16]`) into `qs` nibbles and the `qh` bit mask.
fn pack5(xi: &[u8; QK], b: &mut [u8], qs_off: usize, qh_off: usize) {
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

fn q5_0_block(x: &[f32], b: &mut [u8]) {
    let (max, _) = signed_absmax(x);
    let d = max / -16.0;
    let id = inv(d);
    put_f16(b, offset_of!(BlockQ5_0, d), d);
    let mut xi = [0u8; QK];
    for (q, &v) in xi.iter_mut().zip(x) {
        *q = ((v * id + 16.5) as i8).min(31) as u8;
    }
    pack5(&xi, b, offset_of!(BlockQ5_0, qs), offset_of!(BlockQ5_0, qh));
}

fn q5_1_block(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inv(d);
    put_f16(b, offset_of!(BlockQ5_1, d), d);
    put_f16(b, offset_of!(BlockQ5_1, m), min);
    let mut xi = [0u8; QK];
    for (q, &v) in xi.iter_mut().zip(x) {
        *q = ((v - min) * id + 0.5) as u8;
    }
    pack5(&xi, b, offset_of!(BlockQ5_1, qs), offset_of!(BlockQ5_1, qh));
}

/// ggml's `make_qx_quants` with `rmse_type == 1` and no importance weights: a signed scale for
/// `x` with levels `L[i] + nmax` in `0..2·nmax`, searched over 19 candidate inverse scales.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
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
fn signed_absmax_gt(x: &[f32]) -> (f32, f32) {
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
fn make_qkx2_quants(
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

fn q6_k_block(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for (ib, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        let scale = make_qx_quants(32, xs, ls);
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    b.iter_mut().for_each(|v| *v = 0);
    if max_abs_scale < GROUP_MAX_EPS {
        put_f16(b, offset_of!(BlockQ6K, d), 0.0);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = put_f16(b, offset_of!(BlockQ6K, d), 1.0 / iscale);
    let so = offset_of!(BlockQ6K, scales);
    for (ib, &s) in scales.iter().enumerate() {
        let sc = nearest_int(iscale * s).min(127) as i8;
        b[so + ib] = sc as u8;
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * ib + ii] / dl).clamp(-32, 31);
            l[16 * ib + ii] = (q + 32) as u8;
        }
    }
    let (qlo, qho) = (offset_of!(BlockQ6K, ql), offset_of!(BlockQ6K, qh));
    for (n, j) in (0..QK_K).step_by(128).enumerate() {
        for k in 0..32 {
            let (l0, l1, l2, l3) = (l[j + k], l[j + k + 32], l[j + k + 64], l[j + k + 96]);
            b[qlo + 64 * n + k] = (l0 & 0xf) | ((l2 & 0xf) << 4);
            b[qlo + 64 * n + k + 32] = (l1 & 0xf) | ((l3 & 0xf) << 4);
            b[qho + 32 * n + k] =
                (l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) | ((l3 >> 4) << 6);
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from the packed 12 bytes.
#[inline]
fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
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
fn qk_scales_and_levels(
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

fn q4_k_block(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let offs = (
        offset_of!(BlockQ4K, d),
        offset_of!(BlockQ4K, dmin),
        offset_of!(BlockQ4K, scales),
    );
    qk_scales_and_levels(x, b, offs, 15, (-1.0, 0.1, 20), &mut l);
    let qo = offset_of!(BlockQ4K, qs);
    for (n, j) in (0..QK_K).step_by(64).enumerate() {
        for k in 0..32 {
            b[qo + 32 * n + k] = l[j + k] | (l[j + k + 32] << 4);
        }
    }
}

fn q5_k_block(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let offs = (
        offset_of!(BlockQ5K, d),
        offset_of!(BlockQ5K, dmin),
        offset_of!(BlockQ5K, scales),
    );
    qk_scales_and_levels(x, b, offs, 31, (-0.5, 0.1, 15), &mut l);
    let (qlo, qho) = (offset_of!(BlockQ5K, qs), offset_of!(BlockQ5K, qh));
    let mut qh = [0u8; QK_K / 8];
    let (mut m1, mut m2) = (1u8, 2u8);
    for (n, j0) in (0..QK_K).step_by(64).enumerate() {
        for k in 0..32 {
            let mut l1 = l[j0 + k];
            if l1 > 15 {
                l1 -= 16;
                qh[k] |= m1;
            }
            let mut l2 = l[j0 + k + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[k] |= m2;
            }
            b[qlo + 32 * n + k] = l1 | (l2 << 4);
        }
        m1 = m1.wrapping_shl(2);
        m2 = m2.wrapping_shl(2);
    }
    b[qho..qho + QK_K / 8].copy_from_slice(&qh);
}

/// ggml's `make_q3_quants` with `do_rmse == true`: a signed scale for `x` (16 values) with levels
/// `L[i] + nmax` in `0..2·nmax`, refined by up to five passes of coordinate descent.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
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
fn pack2(l: &[u8; QK_K], qs: &mut [u8]) {
    for (n, j) in (0..QK_K).step_by(128).enumerate() {
        for k in 0..32 {
            qs[32 * n + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

fn q2_k_block(x: &[f32], b: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let mut l = [0u8; QK_K];
    let mut mins = [0.0f32; QK_K / 16];
    let mut scales = [0.0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        let mut weights = [0.0f32; 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (s, m) = make_qkx2_quants(3, xs, &weights, ls, (-0.5, 0.1, 15), true);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let mut sc = [0u8; QK_K / 16];
    let d = if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (o, &s) in sc.iter_mut().zip(&scales) {
            *o = nearest_int(iscale * s) as u8;
        }
        put_f16(b, offset_of!(BlockQ2K, d), max_scale / Q4SCALE)
    } else {
        put_f16(b, offset_of!(BlockQ2K, d), 0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (o, &m) in sc.iter_mut().zip(&mins) {
            *o |= (nearest_int(iscale * m) as u8) << 4;
        }
        put_f16(b, offset_of!(BlockQ2K, dmin), max_min / Q4SCALE)
    } else {
        put_f16(b, offset_of!(BlockQ2K, dmin), 0.0)
    };
    let so = offset_of!(BlockQ2K, scales);
    b[so..so + QK_K / 16].copy_from_slice(&sc);
    for (j, &s) in sc.iter().enumerate() {
        let dl = d * (s & 0xf) as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = dmin * (s >> 4) as f32;
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / dl).clamp(0, 3) as u8;
        }
    }
    pack2(&l, &mut b[offset_of!(BlockQ2K, qs)..][..QK_K / 4]);
}

fn q3_k_block(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        scales[j] = make_q3_quants(4, xs, ls);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    let mut sc = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            let lv = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = lv & 0xf;
            } else {
                sc[j - 8] |= (lv & 0xf) << 4;
            }
            sc[j % 4 + 8] |= (lv >> 4) << (2 * (j / 4));
        }
        put_f16(b, offset_of!(BlockQ3K, d), 1.0 / iscale)
    } else {
        put_f16(b, offset_of!(BlockQ3K, d), 0.0)
    };
    b[offset_of!(BlockQ3K, scales)..][..12].copy_from_slice(&sc);
    for j in 0..QK_K / 16 {
        let low = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 };
        let s = (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
        let dl = d * s as f32;
        if dl == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dl).clamp(-4, 3) + 4) as u8;
        }
    }
    let mut hmask = [0u8; QK_K / 8];
    for (j, v) in l.iter_mut().enumerate() {
        if *v > 3 {
            hmask[j % (QK_K / 8)] |= 1 << (j / (QK_K / 8));
            *v -= 4;
        }
    }
    b[offset_of!(BlockQ3K, hmask)..][..QK_K / 8].copy_from_slice(&hmask);
    pack2(&l, &mut b[offset_of!(BlockQ3K, qs)..][..QK_K / 4]);
}

fn block_fn(ty: QuantType) -> fn(&[f32], &mut [u8]) {
    match ty {
        QuantType::Q4_0 => q4_0_block,
        QuantType::Q4_1 => q4_1_block,
        QuantType::Q5_0 => q5_0_block,
        QuantType::Q5_1 => q5_1_block,
        QuantType::Q8_0 => q8_0_block,
        QuantType::Q4K => q4_k_block,
        QuantType::Q5K => q5_k_block,
        QuantType::Q6K => q6_k_block,
        QuantType::Q2K => q2_k_block,
        QuantType::Q3K => q3_k_block,
    }
}

/// Quantizes `src` (a multiple of `ty`'s block size) into `dst`, which must hold exactly
/// `ty.bytes_for(src.len())` bytes, reproducing ggml's `quantize_row_*_ref` bit for bit.
/// Blocks are independent, so rows of any count may be passed concatenated.
pub fn quantize_row(ty: QuantType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    let f = block_fn(ty);
    check_len("quantized bytes", ty.bytes_for(src.len())?, dst.len())?;
    dst.par_chunks_mut(ty.block_bytes())
        .zip(src.par_chunks(ty.block_elems()))
        .with_min_len(16)
        .for_each(|(b, x)| f(x, b));
    Ok(())
}

/// Quantizes `src` into a new byte vector (see [`quantize_row`]).
pub fn quantize_to_vec(ty: QuantType, src: &[f32]) -> Result<Vec<u8>> {
    let mut dst = vec![0u8; ty.bytes_for(src.len())?];
    quantize_row(ty, src, &mut dst)?;
    Ok(dst)
}

macro_rules! per_type {
    ($($name:ident => $ty:expr),* $(,)?) => {$(
        #[doc = concat!("[`quantize_row`] for `", stringify!($ty), "`.")]
        pub fn $name(src: &[f32], dst: &mut [u8]) -> Result<()> {
            quantize_row($ty, src, dst)
        }
    )*};
}

per_type! {
    quantize_row_q4_0 => QuantType::Q4_0,
    quantize_row_q4_1 => QuantType::Q4_1,
    quantize_row_q5_0 => QuantType::Q5_0,
    quantize_row_q5_1 => QuantType::Q5_1,
    quantize_row_q8_0 => QuantType::Q8_0,
    quantize_row_q2_k => QuantType::Q2K,
    quantize_row_q3_k => QuantType::Q3K,
    quantize_row_q4_k => QuantType::Q4K,
    quantize_row_q5_k => QuantType::Q5K,
    quantize_row_q6_k => QuantType::Q6K,
}
