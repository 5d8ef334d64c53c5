//! Embedding resize for an expanded tokenizer, directly on `model.safetensors`: old rows copied
//! byte for byte, new rows initialised from the base pieces, all rows, or a seeded normal; the
//! untied output head (`lm_head.weight`) likewise; `config.json`'s `vocab_size` updated.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use half::slice::HalfFloatSliceExt as _;
use half::vec::HalfFloatVecExt as _;
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::Serialize;
use serde_json::Value as Json;

use super::base::{BaseTokenizer, new_tokens};
use super::error::VocabError;
use crate::recipe::EmbedInit;

const EMBED: &str = "model.embed_tokens.weight";
const HEAD: &str = "lm_head.weight";

/// What [`resize_embeddings`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Resized {
    pub out_dir: PathBuf,
    pub old_rows: usize,
    pub new_rows: usize,
    /// Tokens the new tokenizer adds; rows between them and the old rows (if any) are padding.
    pub n_new_tokens: usize,
    pub init: EmbedInit,
    /// The tensors that grew: the input embedding, and the output head when untied.
    pub resized: Vec<String>,
    /// New tokens whose base pieces could not be found (initialised with the mean of all rows).
    pub n_without_pieces: usize,
    #[serde(serialize_with = "super::report::secs")]
    pub elapsed: Duration,
}

/// Writes `model_out`, a copy of the HF directory `model_in` whose embedding (and untied output
/// head) has a row for every token `new_tok` adds to `base_tok`, and whose `tokenizer.json` is
/// `new_tok`. `seed` drives `EmbedInit::Random` only. `model_out` must not exist; it appears
/// complete or not at all.
pub fn resize_embeddings(
    model_in: &Path,
    model_out: &Path,
    base_tok: &Path,
    new_tok: &Path,
    init: EmbedInit,
    seed: u64,
) -> Result<Resized, VocabError> {
    let start = Instant::now();
    if model_out.exists() {
        return Err(VocabError::OutputExists { path: model_out.to_path_buf() });
    }
    let base = BaseTokenizer::load(base_tok)?;
    let new = BaseTokenizer::load(new_tok)?;
    let added = new_tokens(&base, &new)?;

    let config_path = model_in.join("config.json");
    let weights_path = model_in.join("model.safetensors");
    if !weights_path.exists() && model_in.join("model.safetensors.index.json").exists() {
        return Err(VocabError::bad_model(
            model_in,
            "sharded checkpoints (model.safetensors.index.json) are not supported yet",
        ));
    }
    let config_text = fs::read_to_string(&config_path).map_err(|e| VocabError::io("read", &config_path, e))?;
    let mut config: Json =
        serde_json::from_str(&config_text).map_err(|e| VocabError::bad_model(model_in, format!("config.json: {e}")))?;
    let bytes = fs::read(&weights_path).map_err(|e| VocabError::io("read", &weights_path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| VocabError::bad_model(model_in, format!("model.safetensors: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| VocabError::bad_model(model_in, format!("model.safetensors: {e}")))?;

    let embed = st.tensor(EMBED).map_err(|_| VocabError::bad_model(model_in, format!("no `{EMBED}` tensor")))?;
    let Some((old_rows, dim)) = matrix_shape(embed.shape()) else {
        return Err(VocabError::bad_model(
            model_in,
            format!("`{EMBED}` has shape {:?}, not [rows, dim]", embed.shape()),
        ));
    };
    if let Some(&(id, _)) = added.iter().find(|(id, _)| (*id as usize) < old_rows) {
        return Err(VocabError::IdInsideEmbedding { dir: model_in.to_path_buf(), id, rows: old_rows });
    }
    let new_rows = added.last().map_or(old_rows, |(id, _)| old_rows.max(*id as usize + 1));

    // Base piece ids of each new row; `None` for padding rows and tokens without pieces.
    let mut pieces: Vec<Option<Vec<u32>>> = vec![None; new_rows - old_rows];
    let mut n_without_pieces = 0;
    for (id, token) in &added {
        let p = base
            .pieces(token)
            .map(|p| p.into_iter().map(|(_, id)| id).collect::<Vec<_>>())
            .filter(|p| p.iter().all(|&i| (i as usize) < old_rows));
        n_without_pieces += usize::from(p.is_none());
        pieces[*id as usize - old_rows] = p;
    }

    let mut grown: HashMap<String, Vec<u8>> = HashMap::new();
    let mut resized = Vec::new();
    for (name, stream) in [(EMBED, 0u64), (HEAD, 1)] {
        let Ok(view) = st.tensor(name) else { continue };
        if matrix_shape(view.shape()) != Some((old_rows, dim)) {
            return Err(VocabError::bad_model(
                model_in,
                format!("`{name}` has shape {:?}, not [{old_rows}, {dim}]", view.shape()),
            ));
        }
        let old = decode(view.dtype(), view.data()).ok_or_else(|| {
            VocabError::bad_model(model_in, format!("`{name}` has dtype {:?}, not F32, F16 or BF16", view.dtype()))
        })?;
        // Separate streams, so the input rows do not depend on whether the head is tied.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rows = new_rows_for(&old, dim, &pieces, init, &mut rng);
        let mut data = view.data().to_vec();
        data.extend(encode(view.dtype(), &rows));
        grown.insert(name.to_string(), data);
        resized.push(name.to_string());
    }

    let mut tensors: Vec<(String, OutTensor<'_>)> = Vec::new();
    for (name, view) in st.tensors() {
        let (shape, data) = match grown.remove(&name) {
            Some(data) => (vec![new_rows, dim], Cow::Owned(data)),
            None => (view.shape().to_vec(), Cow::Borrowed(view.data())),
        };
        let tensor = OutTensor { dtype: view.dtype(), shape, data };
        tensors.push((name, tensor));
    }
    if let Some(obj) = config.as_object_mut() {
        obj.insert("vocab_size".to_string(), Json::from(new_rows));
    }
    let config_text =
        serde_json::to_string_pretty(&config).map_err(|e| VocabError::bad_model(model_in, e.to_string()))?;
    let new_tok_text = fs::read(new_tok).map_err(|e| VocabError::io("read", new_tok, e))?;

    write_dir_atomic(model_out, |tmp| {
        let weights = tmp.join("model.safetensors");
        safetensors::serialize_to_file(tensors, header.metadata().clone(), &weights)
            .map_err(|e| VocabError::io("write", &weights, std::io::Error::other(e)))?;
        write(&tmp.join("config.json"), config_text.as_bytes())?;
        write(&tmp.join("tokenizer.json"), &new_tok_text)?;
        // Everything else (generation config, tokenizer config, ...) comes along unchanged.
        let entries = fs::read_dir(model_in).map_err(|e| VocabError::io("list", model_in, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| VocabError::io("list", model_in, e))?;
            let name = entry.file_name();
            let skip = ["model.safetensors", "config.json", "tokenizer.json"].iter().any(|s| name == *s);
            if skip || !entry.path().is_file() {
                continue;
            }
            fs::copy(entry.path(), tmp.join(&name)).map_err(|e| VocabError::io("copy", &entry.path(), e))?;
        }
        Ok(())
    })?;
    Ok(Resized {
        out_dir: model_out.to_path_buf(),
        old_rows,
        new_rows,
        n_new_tokens: added.len(),
        init,
        resized,
        n_without_pieces,
        elapsed: start.elapsed(),
    })
}

/// Rows of the model's input embedding, from `config.json`'s `vocab_size`: pass it as
/// [`merge`](super::merge)'s `first_id` so new ids never land on padding rows.
pub fn embedding_rows(model_dir: &Path) -> Result<u32, VocabError> {
    let path = model_dir.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| VocabError::io("read", &path, e))?;
    let config: Json =
        serde_json::from_str(&text).map_err(|e| VocabError::bad_model(model_dir, format!("config.json: {e}")))?;
    config
        .get("vocab_size")
        .and_then(Json::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| VocabError::bad_model(model_dir, "config.json has no integer `vocab_size`"))
}

fn matrix_shape(shape: &[usize]) -> Option<(usize, usize)> {
    match shape {
        [rows, dim] => Some((*rows, *dim)),
        _ => None,
    }
}

/// The new rows (row-major, `pieces.len()` rows of `dim`), given the old matrix.
fn new_rows_for(
    old: &[f32],
    dim: usize,
    pieces: &[Option<Vec<u32>>],
    init: EmbedInit,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n_old = old.len() / dim.max(1);
    let mean_of = |ids: &mut dyn Iterator<Item = usize>| {
        let mut sum = vec![0f64; dim];
        let mut n = 0usize;
        for i in ids {
            for (s, &x) in sum.iter_mut().zip(&old[i * dim..(i + 1) * dim]) {
                *s += f64::from(x);
            }
            n += 1;
        }
        sum.into_iter().map(|s| if n == 0 { 0.0 } else { (s / n as f64) as f32 }).collect::<Vec<f32>>()
    };
    let mean_all = mean_of(&mut (0..n_old));
    let mut out = Vec::with_capacity(pieces.len() * dim);
    match init {
        EmbedInit::MeanOfAll => {
            for _ in pieces {
                out.extend_from_slice(&mean_all);
            }
        }
        EmbedInit::MeanOfPieces => {
            for p in pieces {
                match p {
                    Some(ids) => out.extend(mean_of(&mut ids.iter().map(|&i| i as usize))),
                    None => out.extend_from_slice(&mean_all),
                }
            }
        }
        EmbedInit::Random => {
            let n = old.len().max(1) as f64;
            let mean = old.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let var = old.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
            let std = var.sqrt();
            for _ in 0..pieces.len() * dim {
                out.push((std * crate::random::standard_normal(rng)) as f32);
            }
        }
    }
    out
}

fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    // Bulk copies and `half`'s slice conversions: this runs over whole embedding matrices.
    Some(match dtype {
        Dtype::F32 => pod_vec::<f32>(data),
        Dtype::F16 => {
            let halves = pod_vec::<half::f16>(data);
            let mut out = vec![0f32; halves.len()];
            halves.convert_to_f32_slice(&mut out);
            out
        }
        Dtype::BF16 => {
            let halves = pod_vec::<half::bf16>(data);
            let mut out = vec![0f32; halves.len()];
            halves.convert_to_f32_slice(&mut out);
            out
        }
        _ => return None,
    })
}

/// Copies little-endian bytes into a vector of `T` (any alignment; the hosts cptc runs on are
/// little-endian, like safetensors).
fn pod_vec<T: bytemuck::Pod>(data: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    let n = data.len() / size;
    let mut out = vec![T::zeroed(); n];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&data[..n * size]);
    out
}

/// Encodes values in `dtype`, which [`decode`] accepted (little-endian, as safetensors).
fn encode(dtype: Dtype, values: &[f32]) -> Vec<u8> {
    match dtype {
        Dtype::F16 => bytemuck::cast_slice(&Vec::<half::f16>::from_f32_slice(values)).to_vec(),
        Dtype::BF16 => bytemuck::cast_slice(&Vec::<half::bf16>::from_f32_slice(values)).to_vec(),
        _ => bytemuck::cast_slice(values).to_vec(),
    }
}

struct OutTensor<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl View for OutTensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), VocabError> {
    fs::write(path, bytes).map_err(|e| VocabError::io("write", path, e))
}

/// Fills a fresh directory beside `out` and renames it to `out`; removes it on any failure.
fn write_dir_atomic(out: &Path, fill: impl FnOnce(&Path) -> Result<(), VocabError>) -> Result<(), VocabError> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| VocabError::io("create", &tmp, e))?;
    let result = fill(&tmp).and_then(|()| {
        if out.exists() {
            return Err(VocabError::OutputExists { path: out.to_path_buf() });
        }
        fs::rename(&tmp, out).map_err(|e| VocabError::io("rename into", out, e))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}
