//! The split stage: the held-out rule of a corpus decided from its document index (normalized
//! hashes), and the hashes it holds out, which every mix stage keeps out of training in every
//! corpus. No text is read or written: tokenize applies the rule while it streams the files.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure, read_json, write_json};
use crate::data;
use crate::data::split::SplitRule;
use crate::recipe::Heldout;

/// v2: long held-out documents cut into pieces of at most 4 KB.
/// v3: a rule over normalized hashes (`split.json`) and the held-out hashes; no text copies.
pub const VERSION: u64 = 3;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub heldout: Heldout,
}

/// `split.json`: what tokenize needs to put each document on its side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub rule: SplitRule,
    pub train_docs: u64,
    pub heldout_docs: u64,
}

/// The held-out hashes' file: 32-byte hashes, sorted, distinct.
pub const HELDOUT_HASHES: &str = "heldout.hashes";

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (docs_dir, _) = ctx.input(&Input::Docs)?;
    let index = docs_dir.join(super::ingest::INDEX);
    let mut failed = None;
    let hashes = data::index::IndexReader::open(&index)?.map_while(|r| match r {
        Ok(d) => Some(d.hash),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let rule = SplitRule::streamed(p.heldout, hashes);
    if let Some(e) = failed {
        return Err(e.into());
    }
    let rule = rule?;
    let (mut train_docs, mut heldout_docs) = (0u64, 0u64);
    let mut held = BTreeSet::new();
    for d in data::index::IndexReader::open(&index)? {
        let d = d?;
        if rule.is_heldout(&d.hash) {
            heldout_docs += 1;
            held.insert(d.hash);
        } else {
            train_docs += 1;
        }
    }
    let path = ctx.out.join(HELDOUT_HASHES);
    let io = |e| StageFailure::of(data::DataError::io("write", &path, e));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    for h in &held {
        out.write_all(h).map_err(io)?;
    }
    out.flush().map_err(io)?;
    write_json(&ctx.out.join("split.json"), &Decision { rule, train_docs, heldout_docs })?;
    Ok(json!({ "train_docs": train_docs, "heldout_docs": heldout_docs }))
}

/// A split artifact's decision.
pub fn decision(split_dir: &Path) -> Result<Decision, StageFailure> {
    read_json(&split_dir.join("split.json"))
}

/// A split artifact's held-out documents' keys, added to `into`.
pub fn heldout_keys(
    split_dir: &Path,
    into: &mut std::collections::HashSet<data::split::DocKey>,
) -> Result<(), StageFailure> {
    let path = split_dir.join(HELDOUT_HASHES);
    let bytes = std::fs::read(&path).map_err(|e| StageFailure::of(data::DataError::io("read", &path, e)))?;
    into.extend(bytes.chunks_exact(32).map(|c| data::split::doc_key(&c.try_into().unwrap_or([0; 32]))));
    Ok(())
}
