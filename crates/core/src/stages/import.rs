//! The import stage: a GGUF file converted to a Hugging Face model folder.

use serde::Serialize;
use serde_json::{Value, json};

use super::{StageCtx, StageFailure};

pub const VERSION: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// Weight dtype of the written `model.safetensors`.
    pub dtype: Dtype,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let file = ctx.files.first().ok_or_else(|| StageFailure::internal("an import stage needs its GGUF file"))?;
    let dtype = match p.dtype {
        Dtype::F16 => crate::convert::OutDtype::F16,
        Dtype::Bf16 => crate::convert::OutDtype::Bf16,
        Dtype::F32 => crate::convert::OutDtype::F32,
    };
    ctx.progress.set_message(format!("importing {}", file.display()));
    let report = crate::convert::import_gguf(file, &ctx.out.join("model"), dtype)?;
    Ok(json!({ "params": report.n_params, "vocab_size": report.vocab_size }))
}
