//! A Hugging Face model folder's files, read without libtorch: which safetensors files hold
//! the weights, the tensors' names and shapes from their headers, and the tokenizer and
//! config files that travel beside saved weights.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{BackendError, Result};

/// Files copied next to saved weights when the source directory has them.
pub const SIDE_FILES: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
];

/// Copies the [`SIDE_FILES`] `src` has into `dst`.
pub fn copy_side_files(src: &Path, dst: &Path) -> Result<()> {
    for f in SIDE_FILES {
        let from = src.join(f);
        if from.is_file() && src != dst {
            fs::copy(&from, dst.join(f)).map_err(|e| BackendError::io("copy", &from, e))?;
        }
    }
    Ok(())
}

/// The safetensors files of a model directory: the shards named by the index, else
/// `model.safetensors`, else every `*.safetensors` file.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = fs::read_to_string(&index).map_err(|e| BackendError::io("read", &index, e))?;
        let bad = |reason: String| BackendError::Safetensors { path: index.clone(), reason };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map =
            v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no `weight_map` object".to_owned()))?;
        let shards: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(shards.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| BackendError::io("list", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(BackendError::MissingTensor { name: "model.safetensors".to_owned(), dir: dir.to_owned() });
    }
    Ok(found)
}

/// Headers above this are not a safetensors file (the format caps them at 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Names and shapes of every tensor in a model directory's safetensors files, read from their
/// headers only (a model of any size costs a few kilobytes of reading), sorted by name.
pub fn tensor_shapes(dir: &Path) -> Result<Vec<(String, Vec<i64>)>> {
    let mut out = Vec::new();
    for path in safetensors_files(dir)? {
        let bad = |reason: String| BackendError::Safetensors { path: path.clone(), reason };
        let mut file = fs::File::open(&path).map_err(|e| BackendError::io("open", &path, e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| bad(format!("no header: {e}")))?;
        let len = u64::from_le_bytes(len);
        if len > MAX_HEADER {
            return Err(bad(format!("a header of {len} bytes")));
        }
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header).map_err(|e| bad(format!("header cut short: {e}")))?;
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        for (name, info) in v {
            if name == "__metadata__" {
                continue;
            }
            let shape = info
                .get("shape")
                .and_then(|s| s.as_array())
                .and_then(|s| s.iter().map(|d| d.as_i64()).collect::<Option<Vec<i64>>>())
                .ok_or_else(|| bad(format!("tensor `{name}` has no shape")))?;
            out.push((name, shape));
        }
    }
    out.sort();
    Ok(out)
}
