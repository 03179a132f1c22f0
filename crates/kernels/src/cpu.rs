//! The CPU features the kernels use, detected once per process into a table that every kernel
//! choice reads ([`cpu`]).
//!
//! The environment variable `LLAMA31_KERNELS` selects the quantized kernels' instruction set:
//! `avx2` keeps the AVX2 kernels on a CPU that has AVX-512 VNNI (to compare the two on one
//! machine) and computes bf16 activations' products in f32 instead of with AVX512-BF16, `best`
//! (or unset, or empty) takes the best the CPU runs; another value is logged and ignored. It
//! changes nothing else.

use std::sync::OnceLock;

/// The instruction sets the tiled quantized kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX2 + FMA + F16C.
    Avx2,
    /// The same plus AVX-512 VNNI and VL on 256-bit vectors: `vpdpbusd` for the 8-bit products
    /// of Q4_1 and Q8_0; the K-quants keep their AVX2 arithmetic (VNNI cannot fold in their 16-bit
    /// scale products) but get AVX-512VL's 32 registers.
    Vnni,
}

/// What this CPU runs, as detected at start-up, and the quantized kernels' instruction set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512vnni: bool,
    pub avx512bf16: bool,
    /// The instruction set of the tiled quantized kernels: the best of [`CpuFeatures::isas`],
    /// or AVX2 when `LLAMA31_KERNELS=avx2`; `None` without AVX2/FMA/F16C.
    pub quant_isa: Option<Isa>,
}

impl CpuFeatures {
    /// AVX2, FMA and F16C: what every AVX2 kernel of the crate needs.
    #[inline]
    pub fn avx2_fma_f16c(&self) -> bool {
        self.avx2 && self.fma && self.f16c
    }

    /// AVX512F, AVX512BW and AVX512-BF16 (the bf16-activation kernels), unless
    /// `LLAMA31_KERNELS=avx2` chose the AVX2 kernels.
    #[inline]
    pub fn bf16_dot(&self) -> bool {
        self.avx512f && self.avx512bw && self.avx512bf16 && self.quant_isa != Some(Isa::Avx2)
    }

    /// AVX2 and FMA (the f32 dot products and attention).
    #[inline]
    pub fn avx2_fma(&self) -> bool {
        self.avx2 && self.fma
    }

    /// Every instruction set of [`Isa`] this CPU runs, worst first (empty without
    /// AVX2/FMA/F16C), whatever `LLAMA31_KERNELS` says.
    pub fn isas(&self) -> Vec<Isa> {
        let mut v = Vec::new();
        if self.avx2_fma_f16c() {
            v.push(Isa::Avx2);
            if self.avx512vnni && self.avx512vl {
                v.push(Isa::Vnni);
            }
        }
        v
    }

    /// The table for the detected features `raw` (whose `quant_isa` is ignored) and the value
    /// of `LLAMA31_KERNELS`.
    pub fn with_kernels_env(raw: CpuFeatures, env: Option<&str>) -> CpuFeatures {
        CpuFeatures {
            quant_isa: select_isa(&raw.isas(), env),
            ..raw
        }
    }
}

/// The quantized kernels' instruction set among `all` (worst first) for the value of
/// `LLAMA31_KERNELS`: the first for `avx2`, else the last (another value than `avx2` or `best`
/// is logged).
fn select_isa(all: &[Isa], env: Option<&str>) -> Option<Isa> {
    match env {
        Some("avx2") => all.first().copied(),
        None | Some("") | Some("best") => all.last().copied(),
        Some(other) => {
            tracing::warn!(
                value = other,
                "LLAMA31_KERNELS is `avx2` or `best`; using the best"
            );
            all.last().copied()
        }
    }
}

/// The features of this CPU, without the `LLAMA31_KERNELS` choice. The only place the crate
/// asks the CPU.
fn detect() -> CpuFeatures {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        CpuFeatures {
            avx2: has!("avx2"),
            fma: has!("fma"),
            f16c: has!("f16c"),
            avx512f: has!("avx512f"),
            avx512bw: has!("avx512bw"),
            avx512vl: has!("avx512vl"),
            avx512vnni: has!("avx512vnni"),
            avx512bf16: has!("avx512bf16"),
            quant_isa: None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        CpuFeatures::default()
    }
}

/// The table for this process, detected on first use.
#[inline]
pub fn cpu() -> &'static CpuFeatures {
    static CPU: OnceLock<CpuFeatures> = OnceLock::new();
    CPU.get_or_init(|| {
        let env = std::env::var("LLAMA31_KERNELS").ok();
        let t = CpuFeatures::with_kernels_env(detect(), env.as_deref());
        tracing::debug!(features = ?t, "kernels: CPU features");
        tracing::debug!(best = ?t.quant_isa, "quantized kernels");
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vnni_cpu() -> CpuFeatures {
        CpuFeatures {
            avx2: true,
            fma: true,
            f16c: true,
            avx512f: true,
            avx512bw: true,
            avx512vl: true,
            avx512vnni: true,
            avx512bf16: false,
            quant_isa: None,
        }
    }

    #[test]
    fn kernels_env_selects_the_quantized_isa() {
        let raw = vnni_cpu();
        let isa = |env| CpuFeatures::with_kernels_env(raw, env).quant_isa;
        assert_eq!(isa(None), Some(Isa::Vnni));
        assert_eq!(isa(Some("")), Some(Isa::Vnni));
        assert_eq!(isa(Some("best")), Some(Isa::Vnni));
        assert_eq!(isa(Some("avx2")), Some(Isa::Avx2));
        assert_eq!(isa(Some("sse")), Some(Isa::Vnni));
        // The override changes nothing but the instruction set.
        let t = CpuFeatures::with_kernels_env(raw, Some("avx2"));
        assert_eq!(
            CpuFeatures {
                quant_isa: None,
                ..t
            },
            raw
        );
        // Without VNNI both choices are AVX2; without AVX2/FMA/F16C there is none.
        let avx2 = CpuFeatures {
            avx512vnni: false,
            ..raw
        };
        assert_eq!(avx2.isas(), [Isa::Avx2]);
        assert_eq!(
            CpuFeatures::with_kernels_env(avx2, None).quant_isa,
            Some(Isa::Avx2)
        );
        let old = CpuFeatures { f16c: false, ..raw };
        assert!(old.isas().is_empty());
        assert_eq!(
            CpuFeatures::with_kernels_env(old, Some("best")).quant_isa,
            None
        );
    }

    #[test]
    fn process_table_follows_the_environment() {
        let t = cpu();
        let env = std::env::var("LLAMA31_KERNELS").ok();
        assert_eq!(t.quant_isa, select_isa(&t.isas(), env.as_deref()));
        assert_eq!(*t, CpuFeatures::with_kernels_env(detect(), env.as_deref()));
    }
}
