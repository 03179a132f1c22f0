//! [`Linear`]: a projection of the model, `y = W x` — the place where adapter terms join the base
//! weight.

use crate::backend::{Act, Backend, Cpu};
use crate::error::{ModelError, Result};

/// One of the model's projections (q, k, v, o, gate, up, down, the output head): a base weight
/// `[rows, cols]` in any stored dtype, kept by the backend.
#[derive(Debug)]
pub struct Linear<B: Backend = Cpu> {
    weight: B::Weight,
    rows: usize,
    cols: usize,
}

impl<B: Backend> Linear<B> {
    /// A projection with base weight `weight` of shape `[rows, cols]`.
    pub fn new(weight: B::Weight, rows: usize, cols: usize) -> Linear<B> {
        Linear { weight, rows, cols }
    }

    /// The base weight.
    pub fn weight(&self) -> &B::Weight {
        &self.weight
    }

    /// The base weight, mutable (e.g. to change how it is multiplied).
    pub fn weight_mut(&mut self) -> &mut B::Weight {
        &mut self.weight
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The first `n` rows of `dst` = this projection of those of `src`.
    pub fn forward(
        &self,
        backend: &B,
        s: &mut B::Scratch,
        dst: Act,
        src: Act,
        n: usize,
    ) -> Result<()> {
        backend.matmul(s, dst, src, n, &self.weight)
    }

    /// Several projections of the same input (at most four), equal to one
    /// [`Linear::forward`] each; the backend may fuse them.
    pub fn forward_many(
        backend: &B,
        s: &mut B::Scratch,
        src: Act,
        n: usize,
        outs: &[(&Linear<B>, Act)],
    ) -> Result<()> {
        let Some(&(first, act)) = outs.first() else {
            return Ok(());
        };
        if outs.len() > 4 {
            return Err(ModelError::Config(format!(
                "{} projections of one input (at most 4)",
                outs.len()
            )));
        }
        let mut ws = [(&first.weight, act); 4];
        for (w, &(l, a)) in ws.iter_mut().zip(outs) {
            *w = (&l.weight, a);
        }
        backend.matmul_many(s, src, n, &ws[..outs.len()])
    }

    /// Moves the base weight to `backend`.
    pub(crate) fn upload<C: Backend>(self, backend: &C) -> Result<Linear<C>>
    where
        B: Backend<Weight = crate::weights::Matrix>,
    {
        Ok(Linear {
            weight: backend.upload_matrix(self.weight)?,
            rows: self.rows,
            cols: self.cols,
        })
    }
}
