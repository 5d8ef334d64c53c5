//! What lowering needs to know about the machine and the model files, behind a trait so
//! `lower` itself does no IO: the device class (part of training keys) and, for the plan's
//! estimates only, model shapes and corpus sizes.

use std::path::Path;

use crate::recipe::ModelSource;
use crate::stages::DeviceClass;

/// The shape of a base model, for the plan's estimates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelInfo {
    pub params: Option<u64>,
    pub layers: Option<u64>,
    pub hidden: Option<u64>,
}

pub trait Probe {
    /// Where training and evaluation will run.
    fn device(&self) -> DeviceClass;
    /// A base model's shape; all `None` when it cannot be read (estimates only).
    fn model_info(&self, source: &ModelSource) -> ModelInfo;
    /// A corpus file's size in bytes (0 when unreadable), to split estimates by corpus.
    fn file_size(&self, path: &Path) -> u64;
}

/// This machine: CUDA when libtorch sees a device; a GGUF read by its header only.
pub struct RealProbe;

impl Probe for RealProbe {
    fn device(&self) -> DeviceClass {
        if crate::stages::worker::cuda_available() { DeviceClass::Cuda } else { DeviceClass::Cpu }
    }

    fn model_info(&self, source: &ModelSource) -> ModelInfo {
        match source {
            ModelSource::Gguf(path) => gguf_info(path),
            ModelSource::Hf { dir, .. } => hf_info(dir),
        }
    }

    fn file_size(&self, path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

fn gguf_info(path: &Path) -> ModelInfo {
    let Ok(gguf) = crate::convert::read_gguf_header(path) else { return ModelInfo::default() };
    let params = gguf.tensors.iter().map(|t| t.n_elements).sum();
    let arch = gguf.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("llama").to_string();
    ModelInfo {
        params: Some(params),
        layers: gguf.get(&format!("{arch}.block_count")).and_then(|v| v.as_u64()),
        hidden: gguf.get(&format!("{arch}.embedding_length")).and_then(|v| v.as_u64()),
    }
}

/// The backend's own reading of `config.json` (and its parameter count): a model it cannot
/// train gets no estimate.
fn hf_info(dir: &Path) -> ModelInfo {
    let Ok(config) = crate::backend::LlamaConfig::from_file(&dir.join("config.json")) else {
        return ModelInfo::default();
    };
    let count = |x: i64| u64::try_from(x).ok();
    ModelInfo {
        params: count(config.n_params()),
        layers: count(config.num_hidden_layers),
        hidden: count(config.hidden_size),
    }
}
