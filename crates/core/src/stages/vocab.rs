//! The vocab stage: a BPE trained on the domain's training split, the tokens that compress it
//! best merged into the base tokenizer, and a report of compression before and after.
//!
//! The text is read from the corpora's source files (the stage's external files, grouped by
//! `Params::sources`), each document put on its side by its corpus' split rule. Memory is
//! bounded whatever the corpora's size: the BPE learns from at most `sample_bytes` of training
//! text and the report measures at most `heldout_bytes` of held-out text per side, each the
//! documents with the smallest hashes (a sample that does not depend on file order, and all
//! of a corpus smaller than the budget).

use serde::Serialize;
use serde_json::{Value, json};

use super::ingest::{BATCH_BYTES, Source};
use super::{Input, StageCtx, StageFailure, model_dir, split, write_json};
use crate::data;
use crate::recipe::Selection;

/// v2: a tokenizer.json's truncation and padding ignored when measuring candidates.
/// v3: text read from the source files; the split by normalized hash.
/// v4: bounded samples of the training and held-out text.
pub const VERSION: u64 = 4;

/// Training text the BPE learns from, at most (the documents with the smallest hashes): plenty
/// for the few thousand tokens a vocabulary adds, and the stage's memory stays near 1 GB.
pub const SAMPLE_BYTES: u64 = 256 << 20;
/// Held-out text per side the compression report measures, at most.
pub const HELDOUT_BYTES: u64 = 32 << 20;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub size: u64,
    pub min_frequency: u64,
    pub select: Selection,
    /// The corpora read, in the order of the stage's external files.
    pub sources: Vec<VocabSource>,
    /// Budgets of the text held in memory: training text, held-out text per side.
    pub sample_bytes: u64,
    pub heldout_bytes: u64,
}

/// The texts with the smallest keys that fit a byte budget, gathered from a stream in bounded
/// memory and returned in the order they came.
struct Sample {
    budget: u64,
    bytes: u64,
    /// Max-heap by key: the first to go when over budget.
    kept: std::collections::BinaryHeap<([u8; 32], u64, String)>,
    seen: u64,
}

impl Sample {
    fn new(budget: u64) -> Sample {
        Sample { budget, bytes: 0, kept: std::collections::BinaryHeap::new(), seen: 0 }
    }

    fn push(&mut self, key: [u8; 32], text: String) {
        self.bytes += text.len() as u64;
        self.kept.push((key, self.seen, text));
        self.seen += 1;
        while self.bytes > self.budget {
            let Some((_, _, dropped)) = self.kept.pop() else { break };
            self.bytes -= dropped.len() as u64;
        }
    }

    fn into_texts(self) -> Vec<String> {
        let mut kept = self.kept.into_vec();
        kept.sort_by_key(|k| k.1);
        kept.into_iter().map(|k| k.2).collect()
    }
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
    let mut train = Sample::new(p.sample_bytes);
    let (mut domain_heldout, mut general_heldout) = (Sample::new(p.heldout_bytes), Sample::new(p.heldout_bytes));
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
                let hash = data::split::document_hash(&d);
                if rule.is_heldout(&hash) {
                    // A document's pieces share its key: the budget drops whole documents,
                    // but for the pieces of the one at its edge.
                    for piece in data::split::pieces(&d.text, data::split::MAX_HELDOUT_PIECE_BYTES) {
                        heldout.push(hash, piece.to_string());
                    }
                } else if s.train_on {
                    train.push(hash, d.text);
                }
            }
            Ok(())
        })?;
    }
    let (train, domain_heldout, general_heldout) =
        (train.into_texts(), domain_heldout.into_texts(), general_heldout.into_texts());
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

#[cfg(test)]
mod tests {
    use super::Sample;

    #[test]
    fn a_sample_keeps_the_smallest_keys_that_fit_in_arrival_order() {
        let key = |b: u8| [b; 32];
        let mut s = Sample::new(10);
        // Keys 5, 1, 9, 3 with 4 bytes each: 1 and 3 fit; 5 and 9 go.
        for (k, t) in [(5, "aaaa"), (1, "bbbb"), (9, "cccc"), (3, "dddd")] {
            s.push(key(k), t.to_string());
        }
        assert_eq!(s.into_texts(), ["bbbb", "dddd"]);
        // Under budget nothing goes, and the order is the stream's.
        let mut all = Sample::new(100);
        for (k, t) in [(5, "a"), (1, "b"), (9, "c")] {
            all.push(key(k), t.to_string());
        }
        assert_eq!(all.into_texts(), ["a", "b", "c"]);
    }
}
