//! llama31 quantize: writes a GGUF file that llama.cpp loads, from a GGUF (F32/F16/BF16, or
//! quantized with `allow_requantize`), a Hugging Face directory or a Meta directory.
//!
//! It does what llama.cpp's `convert_hf_to_gguf.py` followed by `llama-quantize` does, without an
//! importance matrix: the same tensor names, layouts and metadata, the same per-tensor type mix
//! (`llama_tensor_get_type`, see [`plan`]) and the same quantized bytes (ggml's reference
//! quantizers, `llama31_kernels::quantize`). Tensors are written in llama.cpp's order.
//!
//! ```text
//! let report = quantize(input, output, &QuantizeOptions::new(FileType::Q4_K_M), &mut |p| ...)?;
//! ```

mod convert;
pub mod error;
pub mod ftype;
pub mod plan;
mod source;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use llama31_formats::{DType, GgufValue, GgufWriter};
use llama31_model::lora::LoraTerm;
use llama31_model::{LoraAdapter, RopeLayout};

pub use error::{QuantizeError, Result};
pub use ftype::FileType;

use crate::source::Origin;

/// ggml's `GGML_QNT_VERSION`, written to `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

/// What to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizeOptions {
    pub ftype: FileType,
    /// Accept quantized input tensors (dequantized, then quantized again), as llama-quantize's
    /// `--allow-requantize`.
    pub allow_requantize: bool,
}

impl QuantizeOptions {
    /// `ftype` without requantization.
    pub fn new(ftype: FileType) -> Self {
        Self {
            ftype,
            allow_requantize: false,
        }
    }
}

/// One tensor of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorReport {
    pub name: String,
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    /// Type in the input GGUF (as converted, for HF and Meta checkpoints).
    pub from: DType,
    pub to: DType,
    /// Bytes written.
    pub bytes: usize,
}

/// Progress after each tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// Tensors done (1-based index of the tensor just written).
    pub done: usize,
    pub total: usize,
    pub tensor: &'a TensorReport,
}

/// The result of [`quantize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeReport {
    pub tensors: Vec<TensorReport>,
    /// Tensors whose row length forced a fallback type.
    pub n_fallback: usize,
    /// Size of the output file in bytes.
    pub file_bytes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> QuantizeError + '_ {
    move |source| QuantizeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `output` names the same file as `input` (or lies inside an input directory).
fn overlaps(input: &Path, output: &Path) -> bool {
    let Ok(inp) = input.canonicalize() else {
        return false;
    };
    if let Ok(out) = output.canonicalize() {
        return out == inp || (inp.is_dir() && out.starts_with(&inp));
    }
    let out = match (output.parent(), output.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            match dir.canonicalize() {
                Ok(d) => d.join(name),
                Err(_) => return false,
            }
        }
        _ => return false,
    };
    out == inp || (inp.is_dir() && out.starts_with(&inp))
}

/// Converts and quantizes `input` into a new GGUF file at `output` (written to a new temporary
/// file `.NAME.XXXXXX.partial` beside it, synced, then renamed). `on_tensor` is called after each tensor.
pub fn quantize(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    on_tensor: &mut dyn FnMut(&Progress<'_>),
) -> Result<QuantizeReport> {
    quantize_merged(input, output, opts, &[], on_tensor)
}

/// [`quantize`] with LoRA adapters (each with a user's scale) merged into the weights first: each
/// adapted projection is decoded to f32, `scale · B · A` is added exactly as
/// `llama31_model::Model::merge_lora` adds it, and the sum is encoded as the plan says.
pub fn quantize_merged(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    adapters: &[(&LoraAdapter, f32)],
    on_tensor: &mut dyn FnMut(&Progress<'_>),
) -> Result<QuantizeReport> {
    if overlaps(input, output) {
        return Err(QuantizeError::SameFile(output.to_path_buf()));
    }
    let inp = source::open(input)?;
    // Terms by GGUF tensor name, q/k rows in GGUF's (interleaved) order.
    let mut merges: HashMap<String, Vec<(LoraTerm, f32)>> = HashMap::new();
    for &(adapter, scale) in adapters {
        if !scale.is_finite() {
            return Err(QuantizeError::Lora(format!(
                "scale {scale} for adapter {:?} is not finite",
                adapter.name
            )));
        }
        adapter
            .check(&inp.config)
            .map_err(|e| QuantizeError::Lora(e.to_string()))?;
        for t in adapter.terms_for(&inp.config, RopeLayout::Interleaved) {
            let name = format!("blk.{}.{}.weight", t.layer, t.module.gguf_name());
            let want = vec![t.out_features, t.in_features];
            match inp.tensors.iter().find(|x| x.name == name) {
                Some(x) if x.shape == want => {}
                Some(x) => {
                    return Err(QuantizeError::Lora(format!(
                        "{name} is {:?}, the adapter's term {want:?}",
                        x.shape
                    )))
                }
                None => return Err(QuantizeError::Lora(format!("{name} is not in the model"))),
            }
            let s = t.scale * scale;
            merges.entry(name).or_default().push((t, s));
        }
    }
    let plan_in: Vec<_> = inp.tensors.iter().map(|t| t.plan_tensor()).collect();
    let planned = plan::plan(&plan_in, inp.model, opts.ftype)?;
    for (t, &to) in inp.tensors.iter().zip(&planned.types) {
        if t.input_type != to && t.input_type.is_quantized() && !opts.allow_requantize {
            return Err(QuantizeError::InputType {
                tensor: t.name.clone(),
                dtype: t.input_type.to_string(),
                requantize_possible: true,
            });
        }
    }
    if planned.n_fallback > 0 {
        tracing::warn!(
            "{} of {} tensors required fallback quantization (row length not a multiple of the block size)",
            planned.n_fallback,
            inp.tensors.len()
        );
    }
    tracing::info!(
        input = %input.display(),
        output = %output.display(),
        ftype = %opts.ftype,
        tensors = inp.tensors.len(),
        fallbacks = planned.n_fallback,
        "quantizing"
    );

    let mut writer = GgufWriter::new();
    for (k, v) in &inp.metadata {
        if k != "general.quantization_version" && k != "general.file_type" {
            writer.add_metadata(k.clone(), v.clone());
        }
    }
    writer.add_metadata(
        "general.quantization_version",
        GgufValue::U32(QUANTIZATION_VERSION),
    );
    writer.add_metadata("general.file_type", GgufValue::U32(opts.ftype.id()));
    for (t, &to) in inp.tensors.iter().zip(&planned.types) {
        writer.add_tensor_info(t.name.clone(), to, &t.shape);
    }

    // A new file of its own next to the output (created exclusively: never an existing file or
    // link), synced, then renamed over the output: an interrupted or failed write (a full disk)
    // never leaves a file under the output's name, and the temporary file is removed on error.
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        // rw-r--r-- like a file written with `File::create`, not the temporary file's 0600.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut partial = builder.tempfile_in(&dir).map_err(io_err(output))?;
    let partial_path = partial.path().to_path_buf();
    let tensors = write_all(
        &inp,
        &planned.types,
        &merges,
        &writer,
        partial.as_file_mut(),
        &partial_path,
        on_tensor,
    )?;
    partial
        .persist(output)
        .map_err(|e| io_err(output)(e.error))?;
    let file_bytes = std::fs::metadata(output).map_err(io_err(output))?.len();
    Ok(QuantizeReport {
        tensors,
        n_fallback: planned.n_fallback,
        file_bytes,
    })
}

fn write_all(
    inp: &source::Input,
    types: &[DType],
    merges: &HashMap<String, Vec<(LoraTerm, f32)>>,
    writer: &GgufWriter<'_>,
    file: &mut std::fs::File,
    path: &Path,
    on_tensor: &mut dyn FnMut(&Progress<'_>),
) -> Result<Vec<TensorReport>> {
    let mut w = std::io::BufWriter::with_capacity(8 << 20, &mut *file);
    writer.write_header_to(&mut w)?;
    let total = inp.tensors.len();
    let mut reports = Vec::with_capacity(total);
    for (i, (t, &to)) in inp.tensors.iter().zip(types).enumerate() {
        let bytes = match &t.origin {
            Origin::Values(v) => convert::encode_values(&t.name, v, to)?,
            Origin::File { name, heads } => {
                let data = inp.file.get(name)?;
                let cols = data.shape.last().copied().unwrap_or(0);
                let rows = data
                    .shape
                    .iter()
                    .product::<usize>()
                    .checked_div(cols)
                    .unwrap_or(0);
                convert::convert(
                    &convert::Src {
                        name: &t.name,
                        dtype: data.dtype,
                        rows,
                        cols,
                        bytes: &data.data,
                        heads: *heads,
                        lora: merges
                            .get(&t.name)
                            .map(|v| v.iter().map(|(t, s)| (t, *s)).collect())
                            .unwrap_or_default(),
                    },
                    to,
                )?
            }
        };
        writer.write_tensor_data(&mut w, i, &bytes)?;
        tracing::debug!(
            tensor = t.name.as_str(),
            from = %t.input_type,
            to = %to,
            bytes = bytes.len(),
            "written"
        );
        reports.push(TensorReport {
            name: t.name.clone(),
            shape: t.shape.clone(),
            from: t.input_type,
            to,
            bytes: bytes.len(),
        });
        if let Some(r) = reports.last() {
            on_tensor(&Progress {
                done: i + 1,
                total,
                tensor: r,
            });
        }
    }
    w.flush().map_err(io_err(path))?;
    drop(w);
    // On disk before the rename makes it visible under the output's name.
    file.sync_all().map_err(io_err(path))?;
    Ok(reports)
}
