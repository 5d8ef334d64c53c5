//! The eval stage: a model measured on held-out sets (loss, perplexity, bits per byte); and
//! the held-out evaluation the train stage runs during training. Its parameters are
//! `cptc::stages::eval::Params`.

use std::collections::BTreeMap;
use std::path::Path;

use cptc::data::shard::ShardReader;
use cptc::stages::eval::Params;
use cptc::stages::{Input, StageCtx, StageFailure, model_dir, read_json, write_json};
use serde_json::{Value, json};

use crate::backend::eval::{EvalExample, evaluate};
use crate::backend::metrics::JsonlWriter;
use crate::backend::train::Example;
use crate::backend::{IGNORE_INDEX, Llama};
use crate::device;

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

/// Intra-op threads for libtorch: `CPTC_THREADS` (a positive count), else the cores available.
pub(super) fn threads() -> Result<i32, StageFailure> {
    match std::env::var("CPTC_THREADS") {
        Ok(v) => v.trim().parse::<i32>().ok().filter(|&n| n > 0).ok_or_else(|| {
            StageFailure::input(
                format!("CPTC_THREADS={v} is not a positive number of threads"),
                Some("unset it to use every core, or give a count such as CPTC_THREADS=4".into()),
            )
        }),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as i32)),
    }
}

/// The first held-out documents of a tokenized corpus, up to `budget` bytes of text, cut into
/// `seq_len + 1` windows; the bytes of the chosen documents that tokens cover ride on the first
/// example, and the bytes no token covers are returned beside. Choosing by bytes picks the same
/// documents whatever the tokenizer, so a base and an expanded vocabulary are measured on the
/// same text.
fn heldout_examples(tokenized: &Path, seq_len: usize, budget: u64) -> Result<(Vec<EvalExample>, u64), StageFailure> {
    let shard = ShardReader::open(&tokenized.join("heldout"))?;
    let doc_bytes: Vec<u64> = read_json(&tokenized.join("heldout.doc_bytes.json"))?;
    let unencodable_path = tokenized.join("heldout.unencodable.json");
    let unencodable: Vec<u64> = if unencodable_path.is_file() { read_json(&unencodable_path)? } else { Vec::new() };
    let mut tokens: Vec<u32> = Vec::new();
    let (mut bytes, mut missing) = (0u64, 0u64);
    for i in 0..shard.len() {
        if bytes >= budget && !tokens.is_empty() {
            break;
        }
        tokens.extend(shard.read_doc(i)?);
        bytes += doc_bytes.get(i).copied().unwrap_or(0);
        missing += unencodable.get(i).copied().unwrap_or(0);
    }
    let covered = bytes - missing.min(bytes);
    let mut examples = Vec::new();
    let mut start = 0;
    while start + 1 < tokens.len() {
        let end = (start + seq_len + 1).min(tokens.len());
        let chunk = &tokens[start..end];
        let mut input: Vec<i64> = chunk[..chunk.len() - 1].iter().map(|&t| i64::from(t)).collect();
        let mut target: Vec<i64> = chunk[1..].iter().map(|&t| i64::from(t)).collect();
        input.resize(seq_len, 0);
        target.resize(seq_len, IGNORE_INDEX);
        examples
            .push(EvalExample { example: Example::pair(input, target), bytes: if start == 0 { covered } else { 0 } });
        start = end - 1;
    }
    Ok((examples, missing))
}

/// Sequences per evaluation pass: 4 up to 2k tokens, fewer beyond, so the logits of a pass
/// (tokens x vocabulary, float32) stay about as large as at 4 x 2k.
fn eval_batch(seq_len: usize) -> usize {
    (8192 / seq_len.max(1)).clamp(1, 4)
}

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
        let (examples, unencodable) = heldout_examples(dir, seq_len, budget)?;
        let mut result = evaluate(model, examples, eval_batch(seq_len))?;
        result.unencodable_bytes = unencodable;
        if result.tokens == 0 {
            return Err(StageFailure::input(
                format!("the held-out set of `{set}` has no tokens to evaluate"),
                Some("its held-out documents are empty: check the corpus's `text` field and `heldout`".into()),
            ));
        }
        if !result.loss.is_finite() {
            return Err(StageFailure::input(
                format!("the held-out loss of `{set}` at step {step} is {}", result.loss),
                Some("the model's weights or the run's arithmetic broke: lower the LR, or try fp32".into()),
            ));
        }
        if step == 0 && unencodable > 0 {
            let share = 100.0 * unencodable as f64 / (unencodable + result.bytes).max(1) as f64;
            ctx.notice(&format!(
                "`{set}`: {unencodable} bytes ({share:.2}%) of the held-out text have no token in this vocabulary; \
                 bits per byte leave them out"
            ));
        }
        if step == 0 && result.bytes + unencodable < budget {
            ctx.notice(&format!(
                "`{set}` has {} bytes of held-out text, fewer than the {budget} asked: its loss is noisier",
                result.bytes + unencodable
            ));
        }
        log.write(&result.record(step, set))?;
        out.insert(set.clone(), serde_json::to_value(result)?);
    }
    Ok(out)
}
