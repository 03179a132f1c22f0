//! The CPU backend: weights in host memory as stored (mapped, read or converted at load), the
//! kernels of `llama31-kernels`, activations in `Vec<f32>`s, KV caches as f32 or encoded rows.

use std::ops::Range;

use llama31_kernels::convert::WeightRef;
use llama31_kernels::kv::encode_rows;
use llama31_kernels::low_rank::low_rank_add;
use llama31_kernels::matmul::{matmul, matmul_quantized, matvec_quantized_many};
use llama31_kernels::qbf16::{matmul_bf16, matmul_f32_split, Bf16Scratch};
use llama31_kernels::quant::dequantize;
use llama31_kernels::rope::{RopeLayout, RopeTable};
use llama31_kernels::{add_assign, attention, rmsnorm, swiglu, AttentionShape, KvRows, KvType};

use super::{Act, Backend, KvView, StepShape};
use crate::error::{ModelError, Result};
use crate::weights::{Activations, Matrix};

/// The CPU: every operation runs on rayon's pool with the SIMD kernels the CPU has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu;

const N_ACT: usize = 9;

fn index(a: Act) -> usize {
    match a {
        Act::X => 0,
        Act::Xb => 1,
        Act::Xb2 => 2,
        Act::Q => 3,
        Act::Att => 4,
        Act::Hb => 5,
        Act::Hb2 => 6,
        Act::K => 7,
        Act::V => 8,
    }
}

/// Activation buffers of a CPU forward step, grown on demand and reused (no allocation in the
/// decode step once warm).
#[derive(Debug, Default)]
pub struct CpuScratch {
    bufs: [Vec<f32>; N_ACT],
    /// Row width of each buffer in the current step.
    widths: [usize; N_ACT],
    /// Rows of the current step.
    n: usize,
    /// Activation rows quantized or rounded for the quantized weights.
    qact: ActScratch,
}

/// Scratch of the products with quantized weights: the activations quantized to 8-bit blocks or
/// rounded to bf16 (grown on demand and reused, so a warm decode step does not allocate).
#[derive(Debug, Default)]
pub struct ActScratch {
    q: Vec<u8>,
    b: Bf16Scratch,
    /// `x · Aᵀ` of a LoRA term.
    lora_t: Vec<f32>,
}

impl CpuScratch {
    fn check(&self, a: Act, rows: usize) -> Result<usize> {
        let i = index(a);
        if rows > self.n {
            return Err(ModelError::Config(format!(
                "{rows} rows of {a:?} in a step of {} tokens",
                self.n
            )));
        }
        Ok(rows * self.widths[i])
    }

    fn rows(&self, a: Act, rows: usize) -> Result<&[f32]> {
        let len = self.check(a, rows)?;
        Ok(&self.bufs[index(a)][..len])
    }

    fn rows_mut(&mut self, a: Act, rows: usize) -> Result<&mut [f32]> {
        let len = self.check(a, rows)?;
        Ok(&mut self.bufs[index(a)][..len])
    }

    /// The first `rows` rows of `dst` (mutable), of `src`, and the activation scratch.
    fn pair(
        &mut self,
        dst: Act,
        src: Act,
        rows: usize,
    ) -> Result<(&mut [f32], &[f32], &mut ActScratch)> {
        let (dl, sl) = (self.check(dst, rows)?, self.check(src, rows)?);
        let (d, s) = (index(dst), index(src));
        if d == s {
            return Err(ModelError::Config(format!(
                "{dst:?} is both input and output"
            )));
        }
        let (lo, hi) = self.bufs.split_at_mut(d.max(s));
        let (dst_buf, src_buf) = if d < s {
            (&mut lo[d], &hi[0])
        } else {
            (&mut hi[0], &lo[s])
        };
        Ok((&mut dst_buf[..dl], &src_buf[..sl], &mut self.qact))
    }
}

fn fit(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// A LoRA factor in host memory: `[rows, cols]` f32, row-major, and transposed (the low-rank
/// kernel reads `A` by rows and `B` by columns).
#[derive(Debug)]
pub struct Factor {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    transposed: Vec<f32>,
}

/// The keys and values of one sequence: `[n_layers, max_seq, kv_dim]` each, as f32 or encoded
/// rows of another [`KvType`].
#[derive(Debug)]
pub struct CpuKv {
    n_layers: usize,
    max_seq: usize,
    kv_dim: usize,
    k: KvBuf,
    v: KvBuf,
}

/// One of a cache's two buffers.
#[derive(Debug)]
enum KvBuf {
    F32(Vec<f32>),
    /// Rows of `ty.row_bytes(kv_dim)` bytes.
    Encoded(KvType, Vec<u8>),
}

impl KvBuf {
    fn zeroed(ty: KvType, rows: usize, kv_dim: usize) -> Result<KvBuf> {
        let too_big = || ModelError::Cache(format!("{rows} cache rows overflow usize"));
        Ok(match ty {
            KvType::F32 => KvBuf::F32(vec![0.0; rows.checked_mul(kv_dim).ok_or_else(too_big)?]),
            ty => {
                let rb = ty
                    .row_bytes(kv_dim)
                    .map_err(|e| ModelError::Cache(e.to_string()))?;
                KvBuf::Encoded(ty, vec![0; rows.checked_mul(rb).ok_or_else(too_big)?])
            }
        })
    }

    fn kv_type(&self) -> KvType {
        match self {
            KvBuf::F32(_) => KvType::F32,
            KvBuf::Encoded(t, _) => *t,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            KvBuf::F32(v) => v.len() * 4,
            KvBuf::Encoded(_, b) => b.len(),
        }
    }

    /// Writes a zero into every page, so that the zeroed allocation (mapped lazily by the OS)
    /// becomes resident.
    fn commit(&mut self) {
        fn touch<T: Copy>(values: &mut [T], per_page: usize, zero: T) {
            for page in values.chunks_mut(per_page) {
                // SAFETY: `page` is a non-empty, exclusively borrowed slice; the volatile write
                // keeps the compiler from dropping a store of the value the memory holds.
                unsafe { std::ptr::write_volatile(page.as_mut_ptr(), zero) };
            }
        }
        match self {
            KvBuf::F32(v) => touch(v, 1024, 0.0),
            KvBuf::Encoded(_, b) => touch(b, 4096, 0),
        }
    }

    /// Rows `rows` (of `kv_dim` values) as [`KvRows`].
    fn rows(&self, rows: Range<usize>, kv_dim: usize) -> Result<KvRows<'_>> {
        let bad = || ModelError::Cache(format!("cache rows {rows:?} out of range"));
        Ok(match self {
            KvBuf::F32(v) => KvRows::F32(
                v.get(rows.start * kv_dim..rows.end * kv_dim)
                    .ok_or_else(bad)?,
            ),
            KvBuf::Encoded(t, b) => {
                let rb = t
                    .row_bytes(kv_dim)
                    .map_err(|e| ModelError::Cache(e.to_string()))?;
                KvRows::Encoded(*t, b.get(rows.start * rb..rows.end * rb).ok_or_else(bad)?)
            }
        })
    }

    /// Writes `src` (whole rows of `kv_dim` f32 values) at row `at`, encoded.
    fn write(&mut self, at: usize, kv_dim: usize, src: &[f32]) -> Result<()> {
        let n = src.len() / kv_dim.max(1);
        let bad = || ModelError::Cache(format!("cache rows {at}..{} out of range", at + n));
        match self {
            KvBuf::F32(v) => v
                .get_mut(at * kv_dim..(at + n) * kv_dim)
                .ok_or_else(bad)?
                .copy_from_slice(src),
            KvBuf::Encoded(t, b) => {
                let rb = t
                    .row_bytes(kv_dim)
                    .map_err(|e| ModelError::Cache(e.to_string()))?;
                let dst = b.get_mut(at * rb..(at + n) * rb).ok_or_else(bad)?;
                encode_rows(*t, kv_dim, src, dst).map_err(|e| ModelError::Cache(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Copies rows `src_rows` of `src` (same type) to row `at`.
    fn copy_rows(
        &mut self,
        at: usize,
        src: &KvBuf,
        src_rows: Range<usize>,
        kv_dim: usize,
    ) -> Result<()> {
        let n = src_rows.len();
        let bad = || ModelError::Cache("cache rows out of range".into());
        match (self, src) {
            (KvBuf::F32(d), KvBuf::F32(s)) => d
                .get_mut(at * kv_dim..(at + n) * kv_dim)
                .ok_or_else(bad)?
                .copy_from_slice(
                    s.get(src_rows.start * kv_dim..src_rows.end * kv_dim)
                        .ok_or_else(bad)?,
                ),
            (KvBuf::Encoded(t, d), KvBuf::Encoded(u, s)) if t == u => {
                let rb = t
                    .row_bytes(kv_dim)
                    .map_err(|e| ModelError::Cache(e.to_string()))?;
                d.get_mut(at * rb..(at + n) * rb)
                    .ok_or_else(bad)?
                    .copy_from_slice(
                        s.get(src_rows.start * rb..src_rows.end * rb)
                            .ok_or_else(bad)?,
                    )
            }
            (d, s) => {
                return Err(ModelError::Cache(format!(
                    "cannot copy a {} cache into a {} cache",
                    s.kv_type(),
                    d.kv_type()
                )))
            }
        }
        Ok(())
    }
}

impl CpuKv {
    /// Rows `0..len` of `layer` within the layer-major buffers.
    fn layer_rows(&self, layer: usize, len: usize) -> Result<Range<usize>> {
        if layer >= self.n_layers || len > self.max_seq {
            return Err(ModelError::Cache(format!(
                "layer {layer}, {len} positions in a cache of {} layers × {} positions",
                self.n_layers, self.max_seq
            )));
        }
        let start = layer * self.max_seq;
        Ok(start..start + len)
    }
}

impl Matrix {
    fn weight_ref(&self) -> WeightRef<'_> {
        WeightRef {
            dtype: self.dtype,
            bytes: self.bytes(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// `out[t, o] = Σ_i x[t, i] · self[o, i]` for `t < n` (`x`: `n × cols`, `out`: `n × rows`).
    /// `act` is scratch for the quantized activations of a quantized matrix (reused across calls).
    pub fn matmul(&self, out: &mut [f32], x: &[f32], n: usize, act: &mut ActScratch) -> Result<()> {
        if self.dtype.is_quantized() && self.activations == Activations::F32 {
            matmul_f32_split(out, x, n, &self.weight_ref(), &mut act.b)?
        } else if self.dtype.is_quantized() && self.activations == Activations::Bf16 {
            matmul_bf16(out, x, n, &self.weight_ref(), &mut act.b)?
        } else if self.dtype.is_quantized() {
            let qt = self.dtype;
            matmul_quantized(
                out,
                x,
                n,
                qt,
                self.bytes(),
                self.rows,
                self.cols,
                &mut act.q,
            )?
        } else {
            matmul(out, x, n, &self.weight_ref())?
        }
        Ok(())
    }

    /// `outs[i] = mats[i] · x` for one activation row (`n = 1`): matrices kept quantized with the
    /// same type and width share one quantization of `x` and one parallel loop; anything else
    /// runs matrix by matrix. Results equal [`Matrix::matmul`]'s bit for bit.
    pub fn matvec_many(
        mats: &[&Matrix],
        outs: &mut [&mut [f32]],
        x: &[f32],
        act: &mut ActScratch,
    ) -> Result<()> {
        let fused = match mats.first().map(|m| (m.dtype, m.cols)) {
            Some((qt, cols)) if qt.is_quantized() && mats.len() <= 4 => mats
                .iter()
                .all(|m| m.dtype == qt && m.cols == cols && m.activations == Activations::Q8)
                .then_some((qt, cols)),
            _ => None,
        };
        if let Some((qt, cols)) = fused {
            let mut ws: [&[u8]; 4] = [&[]; 4];
            for (w, m) in ws.iter_mut().zip(mats) {
                *w = m.bytes();
            }
            matvec_quantized_many(outs, &ws[..mats.len()], x, qt, cols, &mut act.q)?;
            return Ok(());
        }
        for (m, o) in mats.iter().zip(outs.iter_mut()) {
            m.matmul(o, x, 1, act)?;
        }
        Ok(())
    }

    /// Decodes row `row` into `out` (`cols` values): the embedding lookup.
    pub fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        match self.dtype {
            qt if qt.is_quantized() => {
                let bad = || {
                    ModelError::Config(format!(
                        "row {row} of a {}×{} matrix into {} values",
                        self.rows,
                        self.cols,
                        out.len()
                    ))
                };
                if row >= self.rows || out.len() != self.cols {
                    return Err(bad());
                }
                let rb = llama31_kernels::quants::bytes_for(qt, self.cols)?;
                let start = row.checked_mul(rb).ok_or_else(bad)?;
                let bytes = self.bytes().get(start..start + rb).ok_or_else(bad)?;
                dequantize(qt, bytes, out)?;
            }
            _ => self.weight_ref().decode_rows(row, out)?,
        }
        Ok(())
    }
}

impl Backend for Cpu {
    type Weight = Matrix;
    type Vector = Vec<f32>;
    type Factor = Factor;
    type Rope = RopeTable;
    type KvStore = CpuKv;
    type Scratch = CpuScratch;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload_matrix(&self, m: Matrix) -> Result<Matrix> {
        Ok(m)
    }

    fn upload_factor(&self, rows: usize, cols: usize, values: Vec<f32>) -> Result<Factor> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(ModelError::Adapter(format!(
                "a {rows}×{cols} factor of {} values",
                values.len()
            )));
        }
        let transposed = (0..rows * cols)
            .map(|i| values[(i % rows) * cols + i / rows])
            .collect();
        Ok(Factor {
            rows,
            cols,
            values,
            transposed,
        })
    }

    fn upload_vector(&self, v: Vec<f32>) -> Result<Vec<f32>> {
        Ok(v)
    }

    fn upload_rope(&self, t: RopeTable) -> Result<RopeTable> {
        Ok(t)
    }

    fn rope_positions(&self, rope: &RopeTable) -> usize {
        rope.max_pos()
    }

    fn new_scratch(&self) -> CpuScratch {
        CpuScratch::default()
    }

    fn alloc_kv(
        &self,
        n_layers: usize,
        max_seq: usize,
        kv_dim: usize,
        kv_type: KvType,
    ) -> Result<CpuKv> {
        let rows = n_layers
            .checked_mul(max_seq)
            .ok_or_else(|| ModelError::Cache(format!("{max_seq} positions overflow usize")))?;
        Ok(CpuKv {
            n_layers,
            max_seq,
            kv_dim,
            k: KvBuf::zeroed(kv_type, rows, kv_dim)?,
            v: KvBuf::zeroed(kv_type, rows, kv_dim)?,
        })
    }

    fn commit_kv(&self, kv: &mut CpuKv) -> Result<()> {
        kv.k.commit();
        kv.v.commit();
        Ok(())
    }

    fn kv_bytes(&self, kv: &CpuKv) -> usize {
        kv.k.bytes() + kv.v.bytes()
    }

    fn copy_kv_prefix(&self, dst: &mut CpuKv, src: &CpuKv, n: usize) -> Result<()> {
        if dst.n_layers != src.n_layers || dst.kv_dim != src.kv_dim {
            return Err(ModelError::Cache(format!(
                "cannot copy from a cache of {} layers × {} kv width into {} × {}",
                src.n_layers, src.kv_dim, dst.n_layers, dst.kv_dim
            )));
        }
        for l in 0..dst.n_layers {
            let d = dst.layer_rows(l, n)?;
            let s = src.layer_rows(l, n)?;
            dst.k.copy_rows(d.start, &src.k, s.clone(), src.kv_dim)?;
            dst.v.copy_rows(d.start, &src.v, s, src.kv_dim)?;
        }
        Ok(())
    }

    fn kv_write(
        &self,
        s: &mut CpuScratch,
        kv: &mut CpuKv,
        layer: usize,
        pos: usize,
        rows: Range<usize>,
    ) -> Result<()> {
        let end = pos.checked_add(rows.len()).ok_or(ModelError::Context {
            end: usize::MAX,
            max: kv.max_seq,
        })?;
        let w = kv.kv_dim;
        if s.widths[index(Act::K)] != w || s.widths[index(Act::V)] != w {
            return Err(ModelError::Cache(format!(
                "keys of width {} into a cache of width {w}",
                s.widths[index(Act::K)]
            )));
        }
        let all = kv.layer_rows(layer, end)?;
        let at = all.start + pos;
        let k = s.rows(Act::K, rows.end)?;
        kv.k.write(at, w, &k[rows.start * w..])?;
        let v = s.rows(Act::V, rows.end)?;
        kv.v.write(at, w, &v[rows.start * w..])?;
        Ok(())
    }

    fn begin(&self, s: &mut CpuScratch, shape: StepShape) -> Result<()> {
        let StepShape {
            n,
            dim,
            q_dim,
            kv_dim,
            ffn_dim,
        } = shape;
        s.n = n;
        for a in [
            Act::X,
            Act::Xb,
            Act::Xb2,
            Act::Q,
            Act::Att,
            Act::Hb,
            Act::Hb2,
            Act::K,
            Act::V,
        ] {
            let width = match a {
                Act::X | Act::Xb | Act::Xb2 => dim,
                Act::Q | Act::Att => q_dim,
                Act::Hb | Act::Hb2 => ffn_dim,
                Act::K | Act::V => kv_dim,
            };
            let len = n.checked_mul(width).ok_or_else(|| {
                ModelError::Config(format!("{n} tokens × {width} overflow usize"))
            })?;
            s.widths[index(a)] = width;
            fit(&mut s.bufs[index(a)], len);
        }
        Ok(())
    }

    fn embed(
        &self,
        s: &mut CpuScratch,
        dst: Act,
        row: usize,
        table: &Matrix,
        tokens: &[u32],
    ) -> Result<()> {
        let width = s.widths[index(dst)];
        let out = s.rows_mut(dst, row + tokens.len())?;
        for (t, &tok) in tokens.iter().enumerate() {
            let r = row + t;
            table.decode_row(tok as usize, &mut out[r * width..(r + 1) * width])?;
        }
        Ok(())
    }

    fn rmsnorm(
        &self,
        s: &mut CpuScratch,
        dst: Act,
        src: Act,
        rows: usize,
        w: &Vec<f32>,
        eps: f32,
    ) -> Result<()> {
        let (out, x, _) = s.pair(dst, src, rows)?;
        rmsnorm(out, x, w, eps)?;
        Ok(())
    }

    fn matmul(&self, s: &mut CpuScratch, dst: Act, src: Act, n: usize, w: &Matrix) -> Result<()> {
        let (out, x, act) = s.pair(dst, src, n)?;
        w.matmul(out, x, n, act)
    }

    fn matmul_many(
        &self,
        s: &mut CpuScratch,
        src: Act,
        n: usize,
        outs: &[(&Matrix, Act)],
    ) -> Result<()> {
        if n != 1 || outs.len() > 4 {
            for &(w, dst) in outs {
                self.matmul(s, dst, src, n, w)?;
            }
            return Ok(());
        }
        // One token: quantized matrices of one type share one quantization of the input.
        let mut lens = [0usize; 4];
        for (l, &(_, dst)) in lens.iter_mut().zip(outs) {
            *l = s.check(dst, 1)?;
        }
        let x_len = s.check(src, 1)?;
        let mut x: Option<&[f32]> = None;
        let mut slots: [Option<&mut [f32]>; 4] = [None, None, None, None];
        for (i, buf) in s.bufs.iter_mut().enumerate() {
            if i == index(src) {
                x = Some(&buf[..x_len]);
                continue;
            }
            if let Some(k) = outs.iter().position(|&(_, d)| index(d) == i) {
                slots[k] = Some(&mut buf[..lens[k]]);
            }
        }
        let x = x.ok_or_else(|| ModelError::Config("matmul input missing".into()))?;
        // A fixed array, not a Vec: this runs twice per layer of every decoded token.
        let mut dsts: [&mut [f32]; 4] = [&mut [], &mut [], &mut [], &mut []];
        for (d, slot) in dsts.iter_mut().zip(slots.iter_mut()).take(outs.len()) {
            *d = slot.take().ok_or_else(|| {
                ModelError::Config("matmul outputs must be distinct from the input".into())
            })?;
        }
        let mut mats: [&Matrix; 4] = [outs[0].0; 4];
        for (m, &(w, _)) in mats.iter_mut().zip(outs) {
            *m = w;
        }
        Matrix::matvec_many(&mats[..outs.len()], &mut dsts[..outs.len()], x, &mut s.qact)
    }

    fn lora(
        &self,
        s: &mut CpuScratch,
        dst: Act,
        src: Act,
        rows: Range<usize>,
        a: &Factor,
        b: &Factor,
        scale: f32,
    ) -> Result<()> {
        let (d, x, act) = s.pair(dst, src, rows.end)?;
        let (dw, xw) = (d.len() / rows.end.max(1), x.len() / rows.end.max(1));
        let rank = a.rows;
        if a.cols != xw || b.rows != dw || b.cols != rank {
            return Err(ModelError::Adapter(format!(
                "LoRA term A {}×{}, B {}×{} on {xw} → {dw} features",
                a.rows, a.cols, b.rows, b.cols
            )));
        }
        low_rank_add(
            &mut d[rows.start * dw..rows.end * dw],
            &x[rows.start * xw..rows.end * xw],
            rows.len(),
            &a.values,
            &b.transposed,
            rank,
            scale,
            &mut act.lora_t,
        )?;
        Ok(())
    }

    fn rope(
        &self,
        s: &mut CpuScratch,
        buf: Act,
        rows: Range<usize>,
        n_heads: usize,
        start: usize,
        rope: &RopeTable,
        layout: RopeLayout,
    ) -> Result<()> {
        let width = s.widths[index(buf)];
        let x = s.rows_mut(buf, rows.end)?;
        rope.apply(&mut x[rows.start * width..], n_heads, start, layout)?;
        Ok(())
    }

    fn attention(
        &self,
        s: &mut CpuScratch,
        dst: Act,
        q: Act,
        rows: Range<usize>,
        kv: KvView<'_, Cpu>,
        shape: AttentionShape,
    ) -> Result<()> {
        let m = rows.len();
        let start = kv.len.checked_sub(m).ok_or_else(|| {
            ModelError::Cache(format!("{m} queries over {} cached positions", kv.len))
        })?;
        let width = s.widths[index(q)];
        let (out, qs, _) = s.pair(dst, q, rows.end)?;
        let span = kv.store.layer_rows(kv.layer, kv.len)?;
        let kv_dim = kv.store.kv_dim;
        attention(
            &mut out[rows.start * width..],
            &qs[rows.start * width..],
            kv.store.k.rows(span.clone(), kv_dim)?,
            kv.store.v.rows(span, kv_dim)?,
            m,
            start,
            shape,
        )?;
        Ok(())
    }

    fn swiglu(&self, s: &mut CpuScratch, gate: Act, up: Act, n: usize) -> Result<()> {
        let (g, u, _) = s.pair(gate, up, n)?;
        swiglu(g, u)?;
        Ok(())
    }

    fn add(&self, s: &mut CpuScratch, dst: Act, src: Act, n: usize) -> Result<()> {
        let (x, y, _) = s.pair(dst, src, n)?;
        add_assign(x, y)?;
        Ok(())
    }

    fn copy_rows(
        &self,
        s: &mut CpuScratch,
        dst: Act,
        dst_row: usize,
        src: Act,
        src_row: usize,
        count: usize,
    ) -> Result<()> {
        let rows = (dst_row + count).max(src_row + count);
        let width = s.widths[index(src)];
        if s.widths[index(dst)] != width {
            return Err(ModelError::Config(format!(
                "rows of {src:?} do not fit {dst:?}"
            )));
        }
        let (d, x, _) = s.pair(dst, src, rows)?;
        d[dst_row * width..(dst_row + count) * width]
            .copy_from_slice(&x[src_row * width..(src_row + count) * width]);
        Ok(())
    }

    fn logits(
        &self,
        s: &mut CpuScratch,
        src: Act,
        rows: usize,
        head: &Matrix,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let len = rows
            .checked_mul(head.rows())
            .ok_or_else(|| ModelError::Config("logits size overflows usize".into()))?;
        out.resize(len, 0.0);
        let x_len = s.check(src, rows)?;
        let x = &s.bufs[index(src)][..x_len];
        head.matmul(out, x, rows, &mut s.qact)
    }
}
