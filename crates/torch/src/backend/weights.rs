//! Hugging Face checkpoints: load safetensors (fp32/fp16/bf16, one file or sharded with
//! `model.safetensors.index.json`) into a [`Llama`], and save one in the layout transformers loads.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{Device, Kind, Tensor};

use cptc::backend::LlamaConfig;
use cptc::backend::hf_files::{copy_side_files, safetensors_files};
use cptc::backend::{BackendError, Result};

use super::model::{Llama, param_shapes};
use super::tch_error::TchContext;

/// Element type of saved weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    Bf16,
    F16,
}

impl SaveDtype {
    fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::Bf16 => Kind::BFloat16,
            Self::F16 => Kind::Half,
        }
    }

    fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }
}

impl Llama {
    /// Loads a Hugging Face model directory (`config.json` + safetensors) onto `device`, with
    /// float32 parameters.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let files = safetensors_files(dir)?;
        let buffers = files
            .iter()
            .map(|f| fs::read(f).map_err(|e| BackendError::io("read", f, e)))
            .collect::<Result<Vec<_>>>()?;
        let parsed = buffers
            .iter()
            .zip(&files)
            .map(|(b, f)| {
                SafeTensors::deserialize(b)
                    .map_err(|e| BackendError::Safetensors { path: f.clone(), reason: e.to_string() })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, st) in parsed.iter().enumerate() {
            for name in st.names() {
                index.insert(name.to_owned(), i);
            }
        }
        check_unexpected(&config, index.keys(), dir)?;
        let mut model = Self::from_tensors(config, device, |name, _| {
            let Some(&i) = index.get(name) else {
                return Err(BackendError::MissingTensor { name: name.to_owned(), dir: dir.to_owned() });
            };
            let view = parsed[i]
                .tensor(name)
                .map_err(|e| BackendError::Safetensors { path: files[i].clone(), reason: e.to_string() })?;
            view_to_tensor(name, &view)
        })?;
        model.source_dir = Some(dir.to_owned());
        Ok(model)
    }

    /// Saves the model as a Hugging Face directory: `config.json`, `model.safetensors` and the
    /// tokenizer files of the directory it was loaded from (or of `tokenizer_from`).
    pub fn save(&self, dir: &Path, dtype: SaveDtype, tokenizer_from: Option<&Path>) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| BackendError::io("create", dir, e))?;
        let config = self.config().to_json(dtype.torch_name());
        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
        let cfg_path = dir.join("config.json");
        fs::write(&cfg_path, text + "\n").map_err(|e| BackendError::io("write", &cfg_path, e))?;
        write_safetensors(&dir.join("model.safetensors"), self.parameters(), dtype.kind())?;
        // A folder named explicitly must hold the tokenizer: a model saved without one cannot be
        // used (and `tokenizer_from` naming the file itself was once a silent no-op).
        if let Some(src) = tokenizer_from
            && !src.join("tokenizer.json").is_file()
        {
            return Err(BackendError::io(
                "find the tokenizer in",
                src,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer.json in this folder"),
            ));
        }
        match tokenizer_from.or(self.source_dir.as_deref()) {
            Some(src) => copy_side_files(src, dir),
            None => Ok(()),
        }
    }
}

/// Rejects tensors the config does not explain (a sign of the wrong architecture).
fn check_unexpected<'a>(cfg: &LlamaConfig, names: impl Iterator<Item = &'a String>, dir: &Path) -> Result<()> {
    let expected: BTreeSet<String> = param_shapes(cfg).into_iter().map(|(n, _, _)| n).collect();
    for name in names {
        // Buffers some exporters save, and a duplicate of a tied head.
        let harmless = name.ends_with("rotary_emb.inv_freq") || (cfg.tie_word_embeddings && name == "lm_head.weight");
        if !expected.contains(name) && !harmless {
            return Err(BackendError::UnexpectedTensor {
                name: name.clone(),
                model_type: cfg.model_type.clone(),
                dir: dir.to_owned(),
            });
        }
    }
    Ok(())
}

/// Copies a safetensors view into a CPU tensor of its own element type.
pub(crate) fn view_to_tensor(name: &str, view: &TensorView<'_>) -> Result<Tensor> {
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        other => {
            return Err(BackendError::UnsupportedDtype { name: name.to_owned(), dtype: format!("{other:?}") });
        }
    };
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(view.data(), &shape, kind).ctx(&format!("reading `{name}`"))
}

/// Writes named tensors to one safetensors file (metadata `format = pt`, which transformers
/// expects), converted to `kind`.
pub(crate) fn write_safetensors(path: &Path, tensors: &[(String, Tensor)], kind: Kind) -> Result<()> {
    let dtype = match kind {
        Kind::Float => Dtype::F32,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Int64 => Dtype::I64,
        Kind::Double => Dtype::F64,
        other => {
            return Err(BackendError::UnsupportedDtype {
                name: path.display().to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let c = t
            .f_detach()
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_to_kind(kind))
            .and_then(|t| t.f_contiguous())
            .ctx(&format!("preparing `{name}` for saving"))?;
        let numel = c.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        c.f_copy_data_u8(&mut bytes, numel).ctx(&format!("copying `{name}`"))?;
        let shape = c.size().iter().map(|&d| d as usize).collect();
        owned.push((name.clone(), shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(dtype, s.clone(), b)
                .map(|v| (n.as_str(), v))
                .map_err(|e| BackendError::Safetensors { path: path.to_owned(), reason: e.to_string() })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| match e {
        // A full disk is the machine's fault, and names what was being written.
        safetensors::SafeTensorError::IoError(io) => BackendError::io("write", path, io),
        other => BackendError::Safetensors { path: path.to_owned(), reason: other.to_string() },
    })
}

/// Reads every tensor of one safetensors file (CPU, element types kept).
pub(crate) fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = fs::read(path).map_err(|e| BackendError::io("read", path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| BackendError::Safetensors { path: path.to_owned(), reason: e.to_string() })?;
    let mut out = Vec::new();
    for (name, view) in st.iter() {
        out.push((name.to_owned(), view_to_tensor(name, &view)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
