//! The seam between the model and the hardware it runs on.
//!
//! [`crate::Model::forward`] is written once over a [`Backend`]: it names activation buffers
//! ([`Act`]) and asks the backend for the operations of a Llama step — embed, RMSNorm, linear
//! products, RoPE, KV append, attention, SwiGLU, residual add, logits. A backend owns how its
//! weights, KV cache and activations are stored (host memory for [`Cpu`]; device memory for a GPU
//! backend) and which kernels compute each operation; the forward never sees a kernel or a buffer
//! offset.
//!
//! Why a trait with associated types rather than an enum of backends: each backend's buffers are
//! different types (host `Vec<f32>`s, device pointers), so an enum would put a `match` and a
//! conversion behind every operation and force every backend into every build. With a trait the
//! forward is monomorphized per backend — the CPU path compiles to the same kernel calls as before,
//! with nothing in between — and a model runs on the backend its type names (`Model<Cpu>`, the
//! default). Choosing a backend at run time happens once, where a model is loaded.

pub mod cpu;

use std::ops::Range;

use crate::error::Result;
use crate::weights::Matrix;
pub use llama31_kernels::KvType;

pub use cpu::{Cpu, CpuKv, CpuScratch, Factor};
pub use llama31_kernels::rope::{RopeLayout, RopeTable};
pub use llama31_kernels::AttentionShape;

/// An activation buffer of a forward step: `n` rows (one per token of the step) of the width
/// given in [`StepShape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The residual stream, `dim` wide.
    X,
    /// Normalized input of a block, `dim` wide.
    Xb,
    /// A block's output before the residual add (and the rows gathered for the logits), `dim` wide.
    Xb2,
    /// Queries, `q_dim` wide.
    Q,
    /// Attention output, `q_dim` wide.
    Att,
    /// SwiGLU gate, `ffn_dim` wide.
    Hb,
    /// SwiGLU up projection, `ffn_dim` wide.
    Hb2,
    /// New keys, `kv_dim` wide.
    K,
    /// New values, `kv_dim` wide.
    V,
}

/// Rows and widths of one forward step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    /// Tokens in the step (all sequences together).
    pub n: usize,
    pub dim: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub ffn_dim: usize,
}

/// The keys and values a sequence has cached in one layer, for [`Backend::attention`].
#[derive(Debug)]
pub struct KvView<'a, B: Backend> {
    pub(crate) store: &'a B::KvStore,
    pub(crate) layer: usize,
    /// Positions `0..len` are valid.
    pub(crate) len: usize,
}

impl<B: Backend> KvView<'_, B> {
    /// Positions in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view holds no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The layer this view reads.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The backend's storage of the whole cache.
    pub fn store(&self) -> &B::KvStore {
        self.store
    }
}

/// Where and how a model's tensors live and its operations run.
///
/// Operations work on the activation buffers of a `Scratch` sized by [`Backend::begin`]; rows
/// are counted from the first token of the step. Every operation checks what it is given and
/// returns an error rather than panicking.
pub trait Backend: Send + Sync + Sized + 'static {
    /// A weight matrix `[rows, cols]` as this backend keeps it.
    type Weight: Send + Sync + std::fmt::Debug;
    /// A 1-D f32 weight (a norm's scale).
    type Vector: Send + Sync + std::fmt::Debug;
    /// A small f32 matrix: a factor (`A` or `B`) of an unmerged LoRA term.
    type Factor: Send + Sync + std::fmt::Debug;
    /// RoPE angles for every position the model supports.
    type Rope: Send + Sync + std::fmt::Debug;
    /// Keys and values of one sequence, every layer, `max_seq` positions.
    type KvStore: Send + Sync + std::fmt::Debug;
    /// Activation buffers of a step, reused across steps.
    type Scratch: Send + std::fmt::Debug;

    /// A short name for logs and errors ("cpu", "cuda:0").
    fn name(&self) -> String;

    /// Takes a weight loaded into host memory (as stored in the file, or converted at load).
    fn upload_matrix(&self, m: Matrix) -> Result<Self::Weight>;
    /// Takes a 1-D weight.
    fn upload_vector(&self, v: Vec<f32>) -> Result<Self::Vector>;
    /// Takes a `[rows, cols]` f32 matrix (row-major `values`) as a LoRA factor.
    fn upload_factor(&self, rows: usize, cols: usize, values: Vec<f32>) -> Result<Self::Factor>;
    /// Takes the RoPE table.
    fn upload_rope(&self, t: RopeTable) -> Result<Self::Rope>;
    /// Positions the RoPE table covers.
    fn rope_positions(&self, rope: &Self::Rope) -> usize;
    /// Fresh, empty activation buffers.
    fn new_scratch(&self) -> Self::Scratch;

    /// Storage for `max_seq` positions of `kv_dim` keys and values of type `kv_type` in each of
    /// `n_layers` layers.
    fn alloc_kv(
        &self,
        n_layers: usize,
        max_seq: usize,
        kv_dim: usize,
        kv_type: KvType,
    ) -> Result<Self::KvStore>;
    /// Makes all of a KV store's memory resident (backends that allocate up front: nothing).
    fn commit_kv(&self, _kv: &mut Self::KvStore) -> Result<()> {
        Ok(())
    }
    /// Bytes held by a KV store.
    fn kv_bytes(&self, kv: &Self::KvStore) -> usize;
    /// Copies positions `0..n` of every layer from `src` into `dst` (stores of the same shape).
    fn copy_kv_prefix(&self, dst: &mut Self::KvStore, src: &Self::KvStore, n: usize) -> Result<()>;
    /// Writes rows `rows` of [`Act::K`] and [`Act::V`] at positions `pos..pos + rows.len()` of
    /// `layer`.
    fn kv_write(
        &self,
        s: &mut Self::Scratch,
        kv: &mut Self::KvStore,
        layer: usize,
        pos: usize,
        rows: Range<usize>,
    ) -> Result<()>;

    /// Sizes the activation buffers for a step.
    fn begin(&self, s: &mut Self::Scratch, shape: StepShape) -> Result<()>;
    /// Rows `row..row + tokens.len()` of `dst` = rows `tokens` of `table`.
    fn embed(
        &self,
        s: &mut Self::Scratch,
        dst: Act,
        row: usize,
        table: &Self::Weight,
        tokens: &[u32],
    ) -> Result<()>;
    /// The first `rows` rows of `dst` = RMSNorm of those of `src`, scaled by `w`.
    fn rmsnorm(
        &self,
        s: &mut Self::Scratch,
        dst: Act,
        src: Act,
        rows: usize,
        w: &Self::Vector,
        eps: f32,
    ) -> Result<()>;
    /// The first `n` rows of `dst` = those of `src` times `w` transposed.
    fn matmul(
        &self,
        s: &mut Self::Scratch,
        dst: Act,
        src: Act,
        n: usize,
        w: &Self::Weight,
    ) -> Result<()>;
    /// Several products of the same input (q, k, v; gate, up). Results equal one
    /// [`Backend::matmul`] per output, bit for bit; a backend may fuse them (the CPU does for
    /// one token).
    fn matmul_many(
        &self,
        s: &mut Self::Scratch,
        src: Act,
        n: usize,
        outs: &[(&Self::Weight, Act)],
    ) -> Result<()> {
        for &(w, dst) in outs {
            self.matmul(s, dst, src, n, w)?;
        }
        Ok(())
    }
    /// Rows `rows` of `dst` += `scale · (src · aᵀ) · bᵀ`: one unmerged LoRA term (`a`:
    /// `[r, in]`, `b`: `[out, r]`, both f32), computed in f32 after the base product. Each row's
    /// result must not depend on the other rows.
    #[allow(clippy::too_many_arguments)]
    fn lora(
        &self,
        s: &mut Self::Scratch,
        dst: Act,
        src: Act,
        rows: Range<usize>,
        a: &Self::Factor,
        b: &Self::Factor,
        scale: f32,
    ) -> Result<()>;
    /// Rotates rows `rows` of `buf` (`n_heads` heads each) for positions `start..`.
    #[allow(clippy::too_many_arguments)]
    fn rope(
        &self,
        s: &mut Self::Scratch,
        buf: Act,
        rows: Range<usize>,
        n_heads: usize,
        start: usize,
        rope: &Self::Rope,
        layout: RopeLayout,
    ) -> Result<()>;
    /// Causal grouped-query attention of query rows `rows` of `q` (at the last `rows.len()`
    /// positions of `kv`) into the same rows of `dst`.
    fn attention(
        &self,
        s: &mut Self::Scratch,
        dst: Act,
        q: Act,
        rows: Range<usize>,
        kv: KvView<'_, Self>,
        shape: AttentionShape,
    ) -> Result<()>;
    /// `gate = silu(gate) · up` on the first `n` rows.
    fn swiglu(&self, s: &mut Self::Scratch, gate: Act, up: Act, n: usize) -> Result<()>;
    /// `dst += src` on the first `n` rows.
    fn add(&self, s: &mut Self::Scratch, dst: Act, src: Act, n: usize) -> Result<()>;
    /// Rows `dst_row..dst_row + count` of `dst` = rows `src_row..` of `src`.
    fn copy_rows(
        &self,
        s: &mut Self::Scratch,
        dst: Act,
        dst_row: usize,
        src: Act,
        src_row: usize,
        count: usize,
    ) -> Result<()>;
    /// `out` (host memory, resized to `rows × head rows`) = the first `rows` rows of `src` times
    /// `head` transposed.
    fn logits(
        &self,
        s: &mut Self::Scratch,
        src: Act,
        rows: usize,
        head: &Self::Weight,
        out: &mut Vec<f32>,
    ) -> Result<()>;
}
