//! Conversion of foreign checkpoints into the Hugging Face layout cptc works with (GGUF import).
//!
//! `import_gguf` reads a llama.cpp GGUF v3 file, dequantizes its tensors, undoes llama.cpp's Q/K
//! row permutation, and writes a directory that `transformers` loads as `LlamaForCausalLM`:
//! `config.json`, `generation_config.json`, `model.safetensors`, `tokenizer.json` and
//! `tokenizer_config.json`.

mod dequant;
mod error;
mod gguf;
mod llama;
mod tokenizer;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::Value as Json;

pub use dequant::{dequantize, dequantize_block, encode};
pub use error::ConvertError;
pub use gguf::{
    DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgmlType, Gguf, GgufHeader, MAX_DIMS, QK, TensorInfo, Value,
    ggml_type_name, parse_gguf, read_gguf_header,
};
pub use llama::{
    HfTensor, LlamaHparams, Permutation, SpecialIds, config_json, expected_shapes, generation_config_json, hf_name,
    permute_rows, unpermute_rows,
};
pub use tokenizer::{GgufVocab, tokenizer_config_json, tokenizer_json};

/// Element type of the written `model.safetensors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    F16,
    Bf16,
    F32,
}

impl OutDtype {
    /// The name `config.json`'s `torch_dtype` uses.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
            Self::F32 => "float32",
        }
    }

    fn safetensors(self) -> safetensors::Dtype {
        match self {
            Self::F16 => safetensors::Dtype::F16,
            Self::Bf16 => safetensors::Dtype::BF16,
            Self::F32 => safetensors::Dtype::F32,
        }
    }
}

/// What an import produced.
#[derive(Clone, Debug)]
pub struct ImportReport {
    pub n_tensors: usize,
    pub n_params: u64,
    pub vocab_size: usize,
    pub out_dir: PathBuf,
    pub dtype: OutDtype,
    pub n_layers: u64,
    /// True when the GGUF has no `output.weight` (the LM head reuses the embedding).
    pub tied_embeddings: bool,
    pub n_merges: usize,
    /// Control tokens, written as special added tokens.
    pub n_special_tokens: usize,
    /// How many source tensors had each ggml type, e.g. `{"F32": 61, "Q4_1": 210, "Q8_0": 1}`.
    pub source_types: BTreeMap<String, usize>,
    /// Size of `model.safetensors`.
    pub safetensors_bytes: u64,
    pub elapsed: Duration,
}

/// One converted tensor, in HF name, shape and output dtype.
#[derive(Clone, Debug)]
pub struct HfTensorData {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// A fully converted model, still in memory.
#[derive(Clone, Debug)]
pub struct Converted {
    pub hparams: LlamaHparams,
    pub vocab: GgufVocab,
    pub tied: bool,
    pub dtype: OutDtype,
    pub tensors: Vec<HfTensorData>,
    pub config: Json,
    pub generation_config: Json,
    pub tokenizer: Json,
    pub tokenizer_config: Json,
    pub source_types: BTreeMap<String, usize>,
}

impl Converted {
    pub fn n_params(&self) -> u64 {
        self.tensors.iter().map(|t| t.shape.iter().product::<usize>() as u64).sum()
    }
}

/// Imports a GGUF file into a new Hugging Face model directory `out_dir`.
///
/// `out_dir` must not exist (or be an empty directory); it appears only once complete.
pub fn import_gguf(file: &Path, out_dir: &Path, dtype: OutDtype) -> Result<ImportReport, ConvertError> {
    let start = Instant::now();
    // Fail before the expensive part when the destination is taken.
    ensure_free(out_dir)?;
    let bytes = fs::read(file).map_err(|e| ConvertError::io("read", file, e))?;
    let gguf = parse_gguf(&bytes)?;
    let converted = convert_gguf(&gguf, dtype)?;
    drop(bytes);
    let safetensors_bytes = write_model_dir(&converted, out_dir)?;
    Ok(ImportReport {
        n_tensors: converted.tensors.len(),
        n_params: converted.n_params(),
        vocab_size: usize::try_from(converted.hparams.vocab_size).unwrap_or(usize::MAX),
        out_dir: out_dir.to_path_buf(),
        dtype,
        n_layers: converted.hparams.num_hidden_layers,
        tied_embeddings: converted.tied,
        n_merges: converted.vocab.merges.len(),
        n_special_tokens: converted.vocab.n_special(),
        source_types: converted.source_types,
        safetensors_bytes,
        elapsed: start.elapsed(),
    })
}

/// Converts a parsed GGUF file in memory: tensors, config and tokenizer documents.
pub fn convert_gguf(g: &Gguf<'_>, dtype: OutDtype) -> Result<Converted, ConvertError> {
    let vocab = GgufVocab::from_gguf(g)?;
    let hparams = LlamaHparams::from_gguf(g, vocab.tokens.len())?;
    if vocab.tokens.len() as u64 > hparams.vocab_size {
        return Err(ConvertError::hparams(format!(
            "{} tokens do not fit llama.vocab_size = {}",
            vocab.tokens.len(),
            hparams.vocab_size
        )));
    }

    // Every layer has 9 tensors: a larger block count is corrupt, and must be refused before
    // `expected_shapes` allocates per layer.
    if hparams.num_hidden_layers.saturating_mul(9) > g.tensors.len() as u64 {
        return Err(ConvertError::hparams(format!(
            "llama.block_count is {} but the file has only {} tensors",
            hparams.num_hidden_layers,
            g.tensors.len()
        )));
    }
    // Validate names and shapes before dequantizing anything, so errors come fast.
    let mut plan = Vec::with_capacity(g.tensors.len());
    let mut source_types = BTreeMap::new();
    for t in &g.tensors {
        let hf = hf_name(&t.name).ok_or_else(|| ConvertError::UnknownTensor { tensor: t.name.clone() })?;
        plan.push((t, hf));
        *source_types.entry(t.ty.name().to_owned()).or_insert(0) += 1;
    }
    let tied = !plan.iter().any(|(_, hf)| hf.name == "lm_head.weight");
    let expected: HashMap<String, Vec<u64>> = expected_shapes(&hparams, tied).into_iter().collect();
    for (t, hf) in &plan {
        let want = expected.get(&hf.name).ok_or_else(|| ConvertError::UnknownTensor { tensor: t.name.clone() })?;
        let found = t.hf_shape();
        if &found != want {
            return Err(ConvertError::ShapeMismatch { tensor: t.name.clone(), expected: want.clone(), found });
        }
    }
    if plan.len() != expected.len() {
        let have: std::collections::HashSet<&str> = plan.iter().map(|(_, hf)| hf.name.as_str()).collect();
        let mut missing: Vec<&String> = expected.keys().filter(|k| !have.contains(k.as_str())).collect();
        missing.sort();
        if let Some(m) = missing.first() {
            return Err(ConvertError::MissingTensor { tensor: (*m).clone() });
        }
    }

    let q_heads = usize::try_from(hparams.num_attention_heads).unwrap_or(usize::MAX);
    let kv_heads = usize::try_from(hparams.num_key_value_heads).unwrap_or(usize::MAX);
    let tensors = plan
        .par_iter()
        .map(|(t, hf)| {
            let raw = g.tensor_data(t)?;
            let mut values = dequantize(t.ty, raw).ok_or_else(|| {
                ConvertError::malformed(0, format!("tensor `{}` is not a whole number of blocks", t.name))
            })?;
            let shape: Vec<usize> = t.hf_shape().iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
            let heads = match hf.permutation {
                Permutation::None => None,
                Permutation::Query => Some(q_heads),
                Permutation::Key => Some(kv_heads),
            };
            if let (Some(n_head), [rows, cols]) = (heads, shape.as_slice()) {
                values = unpermute_rows(&values, *rows, *cols, n_head).ok_or_else(|| {
                    ConvertError::hparams(format!(
                        "tensor `{}` ({rows} rows) does not split into {n_head} heads",
                        t.name
                    ))
                })?;
            }
            Ok(HfTensorData { name: hf.name.clone(), shape, data: encode(&values, dtype) })
        })
        .collect::<Result<Vec<_>, ConvertError>>()?;

    let config = config_json(&hparams, &vocab.ids, tied, dtype);
    let generation_config = generation_config_json(&vocab.ids);
    let tokenizer = tokenizer_json(&vocab)?;
    let tokenizer_config = tokenizer_config_json(&vocab, hparams.max_position_embeddings);
    Ok(Converted {
        hparams,
        vocab,
        tied,
        dtype,
        tensors,
        config,
        generation_config,
        tokenizer,
        tokenizer_config,
        source_types,
    })
}

/// Writes the model directory atomically: everything goes to `<out_dir>.tmp-<pid>` first, which
/// is renamed into place only when complete and verified. Returns the safetensors size.
pub fn write_model_dir(c: &Converted, out_dir: &Path) -> Result<u64, ConvertError> {
    ensure_free(out_dir)?;
    let name = out_dir.file_name().ok_or_else(|| {
        ConvertError::io(
            "use as output directory",
            out_dir,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no final component"),
        )
    })?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| ConvertError::io("create", &parent, e))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = TmpDir::create(parent.join(tmp_name))?;

    write_json(&tmp.path.join("config.json"), &c.config)?;
    write_json(&tmp.path.join("generation_config.json"), &c.generation_config)?;
    write_json(&tmp.path.join("tokenizer_config.json"), &c.tokenizer_config)?;
    let tok_path = tmp.path.join("tokenizer.json");
    write_json(&tok_path, &c.tokenizer)?;
    tokenizer::verify(&tok_path, &c.vocab)?;

    let st_path = tmp.path.join("model.safetensors");
    let views = c
        .tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(c.dtype.safetensors(), t.shape.clone(), &t.data)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| ConvertError::Write { path: st_path.clone(), reason: format!("tensor `{}`: {e}", t.name) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(views, Some(metadata), &st_path)
        .map_err(|e| ConvertError::Write { path: st_path.clone(), reason: e.to_string() })?;
    let st_bytes = fs::metadata(&st_path).map_err(|e| ConvertError::io("stat", &st_path, e))?.len();
    sync_file(&st_path)?;

    // An empty directory (e.g. made by a caller's tempdir) may be replaced; anything else was
    // refused by `ensure_free` above.
    if out_dir.is_dir() {
        fs::remove_dir(out_dir).map_err(|e| ConvertError::io("replace the empty directory", out_dir, e))?;
    }
    fs::rename(&tmp.path, out_dir).map_err(|e| ConvertError::io("move the finished model to", out_dir, e))?;
    tmp.keep();
    Ok(st_bytes)
}

/// Refuses an existing non-empty destination (never overwrite a model).
fn ensure_free(out_dir: &Path) -> Result<(), ConvertError> {
    let taken = || ConvertError::OutExists { path: out_dir.to_path_buf() };
    match fs::symlink_metadata(out_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ConvertError::io("inspect", out_dir, e)),
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(out_dir).map_err(|e| ConvertError::io("list", out_dir, e))?;
            if entries.next().is_some() { Err(taken()) } else { Ok(()) }
        }
        Ok(_) => Err(taken()),
    }
}

fn write_json(path: &Path, value: &Json) -> Result<(), ConvertError> {
    let mut text = serde_json::to_vec_pretty(value)
        .map_err(|e| ConvertError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
    text.push(b'\n');
    let mut f = fs::File::create(path).map_err(|e| ConvertError::io("create", path, e))?;
    f.write_all(&text).map_err(|e| ConvertError::io("write", path, e))?;
    f.sync_all().map_err(|e| ConvertError::io("sync", path, e))
}

fn sync_file(path: &Path) -> Result<(), ConvertError> {
    fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| ConvertError::io("sync", path, e))
}

/// The staging directory; removed on drop unless the import completed.
struct TmpDir {
    path: PathBuf,
    done: bool,
}

impl TmpDir {
    fn create(path: PathBuf) -> Result<Self, ConvertError> {
        // A leftover from a crashed run with the same pid is ours to clear.
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| ConvertError::io("remove the stale staging directory", &path, e))?;
        }
        fs::create_dir(&path).map_err(|e| ConvertError::io("create", &path, e))?;
        Ok(Self { path, done: false })
    }

    fn keep(mut self) {
        self.done = true;
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: the error being returned matters more than a failed cleanup.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
