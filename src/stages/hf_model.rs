//! The hf_model stage: a user's Hugging Face folder as an artifact of its own.
//!
//! The artifact records no path of this machine and outlives the folder moving; the files'
//! content is already part of the key (the stage's files). Weights are hard-linked (copied
//! across file systems), small files copied, so an editor rewriting `config.json` in place
//! cannot change a published artifact. Symlinks (the Hugging Face cache is made of them) are
//! followed.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{StageCtx, StageFailure};

/// v2: the folder's files linked into the artifact, not its path recorded.
pub const VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {}

pub fn run(_: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    const LINK_FROM: u64 = 16 << 20;
    let model = ctx.out.join("model");
    fs_err::create_dir_all(&model)?;
    for file in ctx.files {
        let Some(name) = file.file_name() else { continue };
        let real = fs_err::canonicalize(file)?;
        let big = std::fs::metadata(&real).is_ok_and(|m| m.len() >= LINK_FROM);
        let to = model.join(name);
        if !(big && std::fs::hard_link(&real, &to).is_ok()) {
            fs_err::copy(&real, &to)?;
        }
    }
    if !model.join("config.json").is_file() {
        return Err(StageFailure::input(
            format!(
                "{} has no config.json",
                ctx.files.first().and_then(|f| f.parent()).unwrap_or(Path::new("?")).display()
            ),
            Some("a `model` block's `hf` must be a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)".into()),
        ));
    }
    Ok(Value::Null)
}
