//! The vocab stage: a BPE trained on the domain's training split, the tokens that compress it
//! best merged into the base tokenizer, and a report of compression before and after.
//!
//! The text is read from the corpora's source files (the stage's external files, grouped by
//! `Params::sources`), each document put on its side by its corpus' split rule.

use serde::Serialize;
use serde_json::{Value, json};

use super::ingest::{BATCH_BYTES, Source};
use super::{Input, StageCtx, StageFailure, model_dir, split, write_json};
use crate::data;
use crate::recipe::Selection;

/// v2: a tokenizer.json's truncation and padding ignored when measuring candidates.
/// v3: text read from the source files; the split by normalized hash.
pub const VERSION: u64 = 3;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub size: u64,
    pub min_frequency: u64,
    pub select: Selection,
    /// The corpora read, in the order of the stage's external files.
    pub sources: Vec<VocabSource>,
}

/// A corpus the vocabulary reads: its training side to learn from (`train_on`, whose held-out
/// side measures the gain) or its held-out side only (`general`, measured for no loss).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocabSource {
    pub train_on: bool,
    #[serde(flatten)]
    pub source: Source,
    /// How many of the stage's external files are this corpus' (they follow the previous one's).
    pub files: usize,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (base_dir, _) = ctx.input(&Input::Base)?;
    let base_model = model_dir(base_dir)?;
    let base_tok = base_model.join("tokenizer.json");
    let (mut train, mut domain_heldout, mut general_heldout) = (Vec::new(), Vec::new(), Vec::new());
    let mut first = 0;
    for s in &p.sources {
        let name = s.source.corpus.clone();
        let role = if s.train_on { Input::TrainOn(name) } else { Input::General(name) };
        let (split_dir, _) = ctx.input(&role)?;
        let rule = split::decision(split_dir)?.rule;
        let files = ctx.files.get(first..first + s.files).ok_or_else(|| {
            StageFailure::internal(format!("vocab: {} external files, {} expected", ctx.files.len(), first + s.files))
        })?;
        first += s.files;
        ctx.progress.set_message(format!("reading {}", s.source.corpus));
        let heldout = if s.train_on { &mut domain_heldout } else { &mut general_heldout };
        data::ingest::visit_batches(&s.source.corpus(files), &s.source.options(), BATCH_BYTES, |batch| {
            for d in batch {
                if rule.is_heldout(&data::split::doc_hash(&d.text)) {
                    let pieces = data::split::pieces(&d.text, data::split::MAX_HELDOUT_PIECE_BYTES);
                    heldout.extend(pieces.into_iter().map(str::to_string));
                } else if s.train_on {
                    train.push(d.text);
                }
            }
            Ok(())
        })?;
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
