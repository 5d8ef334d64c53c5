//! The vocab stage: a BPE trained on the domain's training split, the tokens that compress it
//! best merged into the base tokenizer, and a report of compression before and after.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure, model_dir, write_json};
use crate::data;
use crate::recipe::Selection;

/// v2: a tokenizer.json's truncation and padding ignored when measuring candidates.
pub const VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub size: u64,
    pub min_frequency: u64,
    pub select: Selection,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (base_dir, _) = ctx.input(&Input::Base)?;
    let base_model = model_dir(base_dir)?;
    let base_tok = base_model.join("tokenizer.json");
    let (mut train, mut domain_heldout, mut general_heldout) = (Vec::new(), Vec::new(), Vec::new());
    for ((), dir, _) in ctx.inputs_where(|i| matches!(i, Input::TrainOn(_)).then_some(())) {
        train.extend(data::texts::read_texts(&dir.join("train.jsonl"))?);
        domain_heldout.extend(data::texts::read_texts(&dir.join("heldout.jsonl"))?);
    }
    for ((), dir, _) in ctx.inputs_where(|i| matches!(i, Input::General(_)).then_some(())) {
        general_heldout.extend(data::texts::read_texts(&dir.join("heldout.jsonl"))?);
    }
    ctx.progress.set_message(format!("training a {}-token BPE on {} documents", p.size, train.len()));
    let candidates = crate::vocab::train_candidates(&base_tok, &train, p.size as usize, p.min_frequency)?;
    ctx.progress.set_message(format!("ranking {} candidates by gain", candidates.tokens.len()));
    let expansion = crate::vocab::select(&base_tok, &candidates, &train, p.select)?;
    let first_id = crate::vocab::embedding_rows(&base_model)?;
    let merged = crate::vocab::merge(&base_tok, &expansion, &ctx.out.join("tokenizer.json"), Some(first_id))?;
    let report =
        crate::vocab::report(&base_tok, &ctx.out.join("tokenizer.json"), &domain_heldout, &general_heldout, 20)?;
    write_json(&ctx.out.join("report.json"), &report)?;
    fs_err::write(ctx.out.join("report.txt"), report.to_string())?;
    Ok(json!({ "added": merged.n_added, "vocab_size": merged.vocab_size, "first_id": merged.first_id }))
}
