//! The real stage implementations, one per [`StageKind`], behind the [`Runner`] trait.
//!
//! Each reads its inputs' published folders and writes into `ctx.out`. Kinds whose
//! implementation has not landed yet fail with a clear message naming the stage: never a
//! fake result.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Runner, StageCtx, StageFailure};
use crate::graph::StageKind;

/// The runner `cptc run` uses.
pub struct RealRunner;

impl Runner for RealRunner {
    fn run(&self, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
        match ctx.stage.kind {
            StageKind::Import => import(ctx),
            StageKind::HfModel => hf_model(ctx),
            kind => Err(StageFailure {
                message: format!("cptc cannot run `{}` stages yet", kind.name()),
                help: Some("this build implements import and hf_model stages; `cptc plan` shows the rest".to_string()),
            }),
        }
    }
}

/// The folder holding a model, for an input produced by `import`, `hf_model`, `resize` or `train`.
pub fn model_dir(artifact: &Path) -> Result<PathBuf, StageFailure> {
    let inside = artifact.join("model");
    if inside.join("config.json").is_file() {
        return Ok(inside);
    }
    let source = std::fs::read_to_string(artifact.join("source.json"))?;
    let source: Value = serde_json::from_str(&source)?;
    match source.get("dir").and_then(Value::as_str) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Err(StageFailure { message: format!("{} names no model", artifact.display()), help: None }),
    }
}

fn import(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let file = ctx.stage.files.first().ok_or("an import stage needs its GGUF file")?;
    let dtype = match ctx.params.get("dtype").and_then(Value::as_str) {
        Some("f16") => crate::convert::OutDtype::F16,
        Some("bf16") => crate::convert::OutDtype::Bf16,
        _ => crate::convert::OutDtype::F32,
    };
    ctx.progress.set_message(format!("importing {}", file.display()));
    let report = crate::convert::import_gguf(file, &ctx.out.join("model"), dtype).map_err(|e| StageFailure {
        message: e.to_string(),
        help: miette::Diagnostic::help(&e).map(|h| h.to_string()),
    })?;
    Ok(json!({ "params": report.n_params, "vocab_size": report.vocab_size }))
}

/// A user's HF directory is used in place: the artifact records where it is. Its files'
/// content is already part of the key (`Stage::files`).
fn hf_model(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let dir = ctx.stage.files.first().and_then(|f| f.parent()).ok_or("a model stage needs its directory")?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::write(ctx.out.join("source.json"), serde_json::to_string_pretty(&json!({ "dir": dir }))?)?;
    Ok(Value::Null)
}
