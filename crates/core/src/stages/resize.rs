//! The resize stage: the model's embeddings (and untied head) grown for an expanded
//! vocabulary, new rows initialised from the tokens' old pieces.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure, model_dir};
use crate::recipe::EmbedInit;

pub const VERSION: u64 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub init: EmbedInit,
    pub seed: u64,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (model_art, _) = ctx.input(&Input::Model)?;
    let (vocab_art, _) = ctx.input(&Input::Vocab)?;
    let model_in = model_dir(model_art)?;
    ctx.progress.set_message("resizing embeddings");
    let resized = crate::vocab::resize_embeddings(
        &model_in,
        &ctx.out.join("model"),
        &model_in.join("tokenizer.json"),
        &vocab_art.join("tokenizer.json"),
        p.init,
        p.seed,
    )?;
    Ok(json!({ "old_vocab": resized.old_rows, "new_vocab": resized.new_rows, "added": resized.n_new_tokens }))
}
