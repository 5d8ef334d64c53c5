//! Reading and writing the files of artifacts, with errors that name the file.

use std::path::{Path, PathBuf};

use super::StageFailure;

/// The folder holding a model, for an input produced by `import`, `hf_model`, `resize` or `train`.
pub fn model_dir(artifact: &Path) -> Result<PathBuf, StageFailure> {
    let inside = artifact.join("model");
    if inside.join("config.json").is_file() {
        return Ok(inside);
    }
    Err(StageFailure::internal(format!("{} holds no model (no model/config.json)", artifact.display())))
}

/// The `tokenizer.json` an artifact provides: a vocab stage's own, or its model's.
pub fn tokenizer_path(artifact: &Path) -> Result<PathBuf, StageFailure> {
    let own = artifact.join("tokenizer.json");
    if own.is_file() {
        return Ok(own);
    }
    Ok(model_dir(artifact)?.join("tokenizer.json"))
}

/// Reads a JSON file of an artifact; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StageFailure> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| StageFailure::internal(format!("{}: {e}", path.display())))
}

/// Writes a JSON file of an artifact; errors name the file.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), StageFailure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| StageFailure::internal(e.to_string()))?;
    fs_err::write(path, text + "\n")?;
    Ok(())
}
