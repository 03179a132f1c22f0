//! [`Checkpoint`]: what an opened weight file is as a Llama model — its format, [`Config`],
//! tensor [`NameScheme`] and RoPE pair layout — decided in one place for
//! [`Model::load`](crate::Model::load) and for the quantizer.

use std::path::{Path, PathBuf};

use llama31_formats::{ModelSource, WeightFile, WeightFormat};
use llama31_kernels::rope::RopeLayout;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::weights::NameScheme;

/// What a checkpoint is, as a Llama model.
///
/// | format | config from | names | RoPE pairs |
/// |---|---|---|---|
/// | GGUF | `llama.*` metadata | llama.cpp | interleaved (the converter permutes q/k) |
/// | safetensors | `config.json` beside the weights | Hugging Face | rotate-half |
/// | Meta `.pth` | `params.json` | Meta | interleaved |
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The format of the weights.
    pub format: WeightFormat,
    /// The hyper-parameters.
    pub config: Config,
    /// How the tensors are named.
    pub scheme: NameScheme,
    /// How q/k rows pair elements for RoPE.
    pub layout: RopeLayout,
    /// The directory that holds the model's side files (`config.json`, `params.json`,
    /// tokenizer files, `generation_config.json`).
    pub dir: PathBuf,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

impl Checkpoint {
    /// Describes `file`, opened from `source`: reads the config from the GGUF metadata,
    /// `config.json` or `params.json`.
    pub fn describe(source: &ModelSource, file: &WeightFile) -> Result<Checkpoint> {
        let dir = source.dir();
        let format = file.format();
        let (config, scheme, layout) = match format {
            WeightFormat::Gguf => {
                let g = file
                    .as_gguf()
                    .ok_or_else(|| ModelError::Config("not a GGUF file".into()))?;
                (
                    Config::from_gguf(g)?,
                    NameScheme::Gguf,
                    RopeLayout::Interleaved,
                )
            }
            WeightFormat::Safetensors => (
                Config::from_hf_config(&read_text(&dir.join("config.json"))?)?,
                NameScheme::Hf,
                RopeLayout::RotateHalf,
            ),
            WeightFormat::MetaPth => (
                Config::from_meta_params(&read_text(&dir.join("params.json"))?)?,
                NameScheme::Meta,
                RopeLayout::Interleaved,
            ),
        };
        Ok(Checkpoint {
            format,
            config,
            scheme,
            layout,
            dir,
        })
    }
}
