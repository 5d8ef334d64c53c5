//! Held-out split by document content hash (blake3 of the normalized text): deterministic,
//! order-free and stable when documents are appended.
//!
//! The hash is over the text with every whitespace run (CRLF included) read as one space and
//! the ends trimmed, so copies that differ only in spacing or line endings share a side, in one
//! corpus and, through the tokenize stage's exclusions, across corpora.
//!
//! - `Heldout::Fraction(f)`: a document is held out iff its hash, read as a number in [0, 1), is
//!   below `f`. Each document's side depends on its own text only, so appending documents never
//!   moves any existing one.
//! - `Heldout::Docs(n)`: the documents with the `n` smallest distinct hashes are held out (all
//!   copies of a duplicated text go to the same side, so duplicates never leak across). Appending
//!   can only lower the n-th smallest hash: **a training document never becomes held-out**, so a
//!   model trained on an earlier split is never evaluated on its own training data. A new document
//!   with a smaller hash may enter the held-out set and push the largest held-out one into train;
//!   that is unavoidable for an exact count, and users who need fully frozen eval sets use a
//!   fraction.

use serde::{Deserialize, Serialize};

use super::error::DataError;
use crate::recipe::Heldout;

/// blake3 of a document's normalized text (words joined by one space): the key of the split.
pub fn doc_hash(text: &str) -> [u8; 32] {
    // Words gathered into a buffer and hashed a buffer at a time: one `update` per word costs
    // more than the hashing itself.
    let mut h = blake3::Hasher::new();
    let mut buf = [0u8; 8192];
    let mut len = 0;
    for (i, word) in text.split_whitespace().enumerate() {
        for piece in [if i > 0 { &b" "[..] } else { &b""[..] }, word.as_bytes()] {
            if len + piece.len() > buf.len() {
                h.update(&buf[..len]);
                len = 0;
            }
            if piece.len() > buf.len() {
                h.update(piece);
            } else {
                buf[len..len + piece.len()].copy_from_slice(piece);
                len += piece.len();
            }
        }
    }
    h.update(&buf[..len]);
    *h.finalize().as_bytes()
}

/// The first 16 bytes of a [`doc_hash`]: what a shard keeps per document (`train.hashes`) to
/// recognise a document another corpus holds out.
pub type DocKey = [u8; 16];

pub fn doc_key(hash: &[u8; 32]) -> DocKey {
    let mut k = [0u8; 16];
    k.copy_from_slice(&hash[..16]);
    k
}

/// A per-document decision, computable for each document alone once built (for streaming).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitRule {
    /// Held out iff the hash is strictly below this (big-endian) 256-bit threshold.
    Below([u8; 32]),
    /// Held out iff the hash is at most this one.
    AtMost([u8; 32]),
    /// Nothing held out.
    None,
}

impl SplitRule {
    /// The rule for a fraction in [0, 1); needs no corpus pass.
    pub fn fraction(f: f64) -> Result<SplitRule, DataError> {
        if !(0.0..1.0).contains(&f) {
            return Err(DataError::BadSplit { reason: format!("fraction {f} is not in [0, 1)") });
        }
        if f == 0.0 {
            return Ok(SplitRule::None);
        }
        // f * 2^64 as the first 8 bytes of the threshold; the rest zero. `as` saturates.
        let top = (f * 18_446_744_073_709_551_616.0) as u64;
        let mut t = [0u8; 32];
        t[..8].copy_from_slice(&top.to_be_bytes());
        Ok(SplitRule::Below(t))
    }

    /// The rule for a count: the `n` smallest distinct hashes among `hashes`.
    pub fn count(hashes: &[[u8; 32]], n: u64) -> Result<SplitRule, DataError> {
        SplitRule::count_streamed(hashes.iter().copied(), n)
    }

    /// [`count`](Self::count) over a stream of hashes, holding at most `n + 1` of them.
    pub fn count_streamed(hashes: impl Iterator<Item = [u8; 32]>, n: u64) -> Result<SplitRule, DataError> {
        if n == 0 {
            return Ok(SplitRule::None);
        }
        let n_us = usize::try_from(n).unwrap_or(usize::MAX);
        // The n smallest distinct hashes so far, plus a witness that at least one more exists.
        let mut smallest = std::collections::BTreeSet::new();
        for h in hashes {
            if smallest.len() <= n_us {
                smallest.insert(h);
            } else if smallest.last().is_some_and(|last| &h < last) && smallest.insert(h) {
                smallest.pop_last();
            }
        }
        if smallest.len() <= n_us {
            return Err(DataError::BadSplit {
                reason: format!(
                    "{n} held-out documents requested but the corpus has {} distinct documents; none would be left to train on",
                    smallest.len()
                ),
            });
        }
        Ok(SplitRule::AtMost(*smallest.iter().nth(n_us - 1).unwrap_or(&[0xFF; 32])))
    }

    /// The rule for a recipe's setting over a corpus' document hashes.
    pub fn new(heldout: Heldout, hashes: &[[u8; 32]]) -> Result<SplitRule, DataError> {
        SplitRule::streamed(heldout, hashes.iter().copied())
    }

    /// [`new`](Self::new) over a stream of hashes (a fraction reads none of them).
    pub fn streamed(heldout: Heldout, hashes: impl Iterator<Item = [u8; 32]>) -> Result<SplitRule, DataError> {
        match heldout {
            Heldout::Fraction(f) => SplitRule::fraction(f),
            Heldout::Docs(n) => SplitRule::count_streamed(hashes, n),
        }
    }

    pub fn is_heldout(&self, hash: &[u8; 32]) -> bool {
        match self {
            SplitRule::Below(t) => hash < t,
            SplitRule::AtMost(t) => hash <= t,
            SplitRule::None => false,
        }
    }
}

/// Document indices on each side, each in the original order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub heldout: Vec<usize>,
}

/// Splits documents (given by their texts) per the recipe's held-out setting.
pub fn split<S: AsRef<str> + Sync>(docs: &[S], heldout: Heldout) -> Result<Split, DataError> {
    use rayon::prelude::*;
    let hashes: Vec<[u8; 32]> = docs.par_iter().map(|d| doc_hash(d.as_ref())).collect();
    let rule = SplitRule::new(heldout, &hashes)?;
    let mut out = Split::default();
    for (i, h) in hashes.iter().enumerate() {
        if rule.is_heldout(h) {
            out.heldout.push(i);
        } else {
            out.train.push(i);
        }
    }
    Ok(out)
}
/// Held-out documents longer than this are evaluated as pieces (see [`pieces`]).
pub const MAX_HELDOUT_PIECE_BYTES: usize = 4096;

/// Cuts `text` into consecutive pieces of at most `max_bytes` (a longer run without any break
/// is cut at a character boundary), preferring paragraph breaks, then line breaks, then spaces.
/// Concatenated, the pieces are the text. Evaluation budgets in bytes can then stop inside a
/// novel instead of taking all of it, and the cut does not depend on any tokenizer.
pub fn pieces(text: &str, max_bytes: usize) -> Vec<&str> {
    let max_bytes = max_bytes.max(4);
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max_bytes {
        let mut limit = max_bytes;
        while !rest.is_char_boundary(limit) {
            limit -= 1;
        }
        let window = &rest[..limit];
        // Keep the break with the piece before it; never cut in the first quarter.
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|b| window.rfind(b).map(|i| i + b.len()).filter(|&i| i >= max_bytes / 4))
            .unwrap_or(limit);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest);
    }
    out
}
