//! The split stage: documents into `train.jsonl` and `heldout.jsonl` (long held-out ones in
//! pieces) by a hash of each document.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure};
use crate::data;
use crate::recipe::Heldout;

/// v2: long held-out documents cut into pieces of at most 4 KB.
pub const VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub heldout: Heldout,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (docs_dir, _) = ctx.input(&Input::Docs)?;
    let texts = data::texts::read_texts(&docs_dir.join("docs.jsonl"))?;
    let sides = data::split::split(&texts, p.heldout)?;
    data::texts::write_texts(&ctx.out.join("train.jsonl"), sides.train.iter().map(|&i| texts[i].as_str()))?;
    // Long held-out documents become pieces, so an evaluation budget can stop inside a novel.
    let pieces: Vec<&str> = sides
        .heldout
        .iter()
        .flat_map(|&i| data::split::pieces(&texts[i], data::split::MAX_HELDOUT_PIECE_BYTES))
        .collect();
    data::texts::write_texts(&ctx.out.join("heldout.jsonl"), pieces.iter().copied())?;
    Ok(json!({ "train_docs": sides.train.len(), "heldout_docs": sides.heldout.len(), "heldout_pieces": pieces.len() }))
}
