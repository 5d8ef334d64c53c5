//! The held-out windows every evaluation during training reads, whichever engine runs it, and
//! the checks of what it measured: so both engines measure the same text the same way.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::eval::EvalResult;
use crate::data::shard::ShardReader;
use crate::stages::{StageCtx, StageFailure, read_json};

/// Targets that count in no loss (padding, prompts): PyTorch's `ignore_index`.
pub const IGNORE_INDEX: i64 = -100;

/// One evaluation sequence: `input[i]` predicts `target[i]`; the text bytes its targets cover
/// ride on the first window of the chosen documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub input: Vec<i64>,
    pub target: Vec<i64>,
    pub bytes: u64,
}

/// The first held-out documents of a tokenized corpus, up to `budget` bytes of text, cut into
/// `seq_len + 1` windows (the last padded with [`IGNORE_INDEX`] targets, and so is every token
/// a loss mask leaves out: a prompt, where the corpus marks `loss_on`); returns them and the
/// bytes no token covers. Choosing by bytes picks the same documents whatever the tokenizer, so
/// a base and an expanded vocabulary are measured on the same text.
pub fn heldout_windows(tokenized: &Path, seq_len: usize, budget: u64) -> Result<(Vec<Window>, u64), StageFailure> {
    let shard = ShardReader::open(&tokenized.join("heldout"))?;
    let doc_bytes: Vec<u64> = read_json(&tokenized.join("heldout.doc_bytes.json"))?;
    let unencodable_path = tokenized.join("heldout.unencodable.json");
    let unencodable: Vec<u64> = if unencodable_path.is_file() { read_json(&unencodable_path)? } else { Vec::new() };
    let mut tokens: Vec<u32> = Vec::new();
    // Which tokens are targets: an SFT corpus' held-out answers count, its prompts do not.
    let mut mask: Option<Vec<u8>> = shard.masked().then(Vec::new);
    let (mut bytes, mut missing) = (0u64, 0u64);
    for i in 0..shard.len() {
        if bytes >= budget && !tokens.is_empty() {
            break;
        }
        tokens.extend(shard.read_doc(i)?);
        if let Some(m) = &mut mask {
            m.extend(shard.read_mask(i)?);
        }
        bytes += doc_bytes.get(i).copied().unwrap_or(0);
        missing += unencodable.get(i).copied().unwrap_or(0);
    }
    let covered = bytes - missing.min(bytes);
    let mut windows = Vec::new();
    let mut start = 0;
    while start + 1 < tokens.len() {
        let end = (start + seq_len + 1).min(tokens.len());
        let chunk = &tokens[start..end];
        let mut input: Vec<i64> = chunk[..chunk.len() - 1].iter().map(|&t| i64::from(t)).collect();
        let mut target: Vec<i64> = chunk[1..].iter().map(|&t| i64::from(t)).collect();
        if let Some(m) = &mask {
            for (t, &keep) in target.iter_mut().zip(&m[start + 1..end]) {
                if keep == 0 {
                    *t = IGNORE_INDEX;
                }
            }
        }
        input.resize(seq_len, 0);
        target.resize(seq_len, IGNORE_INDEX);
        windows.push(Window { input, target, bytes: if start == 0 { covered } else { 0 } });
        start = end - 1;
    }
    Ok((windows, missing))
}

/// The windows as one little-endian int64 array: every input `[n, seq_len]`, then every
/// target: the file the FSDP engine (and transformers in tests) evaluates.
pub fn windows_bytes(windows: &[Window]) -> Vec<u8> {
    let inputs = windows.iter().flat_map(|w| &w.input);
    let targets = windows.iter().flat_map(|w| &w.target);
    inputs.chain(targets).flat_map(|t| t.to_le_bytes()).collect()
}

/// Sequences per evaluation pass: 4 up to 2k tokens, fewer beyond, so the logits of a pass
/// (tokens x vocabulary, float32) stay about as large as at 4 x 2k.
pub fn eval_batch(seq_len: usize) -> usize {
    (8192 / seq_len.max(1)).clamp(1, 4)
}

/// Checks one set's result (tokens to evaluate, a finite loss), says what the user should know
/// at the baseline (unencodable bytes, less text than asked) and adds it to `out`.
pub fn accept_result(
    ctx: &StageCtx<'_>,
    out: &mut BTreeMap<String, Value>,
    set: &str,
    step: u64,
    budget: u64,
    result: &EvalResult,
) -> Result<(), StageFailure> {
    let unencodable = result.unencodable_bytes;
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
    out.insert(set.to_owned(), serde_json::to_value(result)?);
    Ok(())
}
