//! The eval stage: a model measured on held-out sets (loss, perplexity, bits per byte); and
//! the held-out evaluation the train stage runs during training. Its parameters are
//! `cptc::stages::eval::Params`.

use std::collections::BTreeMap;

use cptc::stages::eval::Params;
use cptc::stages::{Input, StageCtx, StageFailure, model_dir, write_json};
use serde_json::{Value, json};

use crate::backend::Llama;
use crate::backend::eval::{EvalExample, evaluate};
use crate::backend::metrics::JsonlWriter;
use crate::backend::train::Example;
use crate::device;
use cptc::backend::heldout::{accept_result, eval_batch, heldout_windows};

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    crate::backend::set_num_threads(threads()?);
    let (model_art, _) = ctx.input(&Input::Model)?;
    let mut model = Llama::load(&model_dir(model_art)?, device(p.device))?;
    model.set_precision(p.precision.into());
    let seq_len = (p.seq_len as usize).min(model.config().max_position_embeddings.max(2) as usize);
    let mut log = JsonlWriter::append(&ctx.out.join("metrics.jsonl"))?;
    let sets = eval_sets(ctx, &model, seq_len, p.bytes, 0, &mut log)?;
    write_json(&ctx.out.join("eval.json"), &sets)?;
    Ok(json!({ "sets": sets }))
}

pub(super) use cptc::stages::threads;

/// Evaluates `model` on every held-out input; returns set -> metrics.
pub(super) fn eval_sets(
    ctx: &StageCtx<'_>,
    model: &Llama,
    seq_len: usize,
    budget: u64,
    step: u64,
    log: &mut JsonlWriter,
) -> Result<BTreeMap<String, Value>, StageFailure> {
    let mut out = BTreeMap::new();
    for (set, dir, _) in ctx.inputs_where(|i| match i {
        Input::Heldout(c) => Some(c),
        _ => None,
    }) {
        ctx.progress.set_message(format!("eval {set} at step {step}"));
        let (windows, unencodable) = heldout_windows(dir, seq_len, budget)?;
        let examples =
            windows.into_iter().map(|w| EvalExample { example: Example::pair(w.input, w.target), bytes: w.bytes });
        let mut result = evaluate(model, examples, eval_batch(seq_len))?;
        result.unencodable_bytes = unencodable;
        accept_result(ctx, &mut out, set, step, budget, &result)?;
        log.write(&result.record(step, set))?;
    }
    Ok(out)
}
