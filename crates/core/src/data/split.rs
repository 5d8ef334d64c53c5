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

/// The hash that places a document: its split field's value where the corpus splits by one
/// (`split_by`; records sharing the value share the hash in every corpus), else its
/// normalized text ([`doc_hash`]).
pub fn document_hash(d: &super::ingest::Document) -> [u8; 32] {
    match &d.split_key {
        Some(key) => {
            let mut h = blake3::Hasher::new();
            h.update(b"cptc split key\0");
            h.update(key.as_bytes());
            *h.finalize().as_bytes()
        }
        None => doc_hash(&d.text),
    }
}

/// blake3 of a document's normalized text (words joined by one space): the key of the split.
/// "Whitespace" is Unicode's `White_Space`, as `str::split_whitespace` reads it.
pub fn doc_hash(text: &str) -> [u8; 32] {
    // Runs of non-space bytes are copied into a buffer, hashed a buffer at a time: one
    // `update` per word costs more than the hashing itself. The buffer is the thread's own (a
    // fresh one per document would cost a memset each). The scan works on bytes: every space
    // but ASCII's has a lead byte (C2, E1, E2, E3) no other byte of UTF-8 text shares.
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(HASH_BUFFER));
    }
    BUFFER.with_borrow_mut(|buf| {
        buf.clear();
        let bytes = text.as_bytes();
        let mut h = blake3::Hasher::new();
        let mut put = |h: &mut blake3::Hasher, piece: &[u8]| {
            if buf.len() + piece.len() > HASH_BUFFER {
                h.update(buf);
                buf.clear();
            }
            if piece.len() > HASH_BUFFER {
                h.update(piece);
            } else {
                buf.extend_from_slice(piece);
            }
        };
        // Text already normal (words and single ASCII spaces) is copied a stretch at a time;
        // a stretch ends where a run of spaces is anything else.
        let n = bytes.len();
        let run_end = |mut j: usize| {
            while j < n {
                match space_len(bytes, j) {
                    0 => break,
                    l => j += l,
                }
            }
            j
        };
        let mut i = run_end(0);
        let mut stretch = i;
        while i < n {
            // Sixteen bytes at a time (eight near the end) to the first that may need more
            // than a copy: most of a text is words and single spaces.
            if let Some(block) = bytes.get(i..i + 17) {
                match candidates16(block) {
                    0 => {
                        i += 16;
                        continue;
                    }
                    m => i += m.trailing_zeros() as usize,
                }
            } else if let Some(block) = bytes.get(i..i + 9) {
                match candidates(block) {
                    0 => {
                        i += 8;
                        continue;
                    }
                    m => i += (m.trailing_zeros() / 8) as usize,
                }
            }
            let b = bytes[i];
            if !MAY_START_SPACE[usize::from(b)] {
                i += 1;
                continue;
            }
            // The common case: one ASCII space between two words.
            if b == b' ' && i + 1 < n && !MAY_START_SPACE[usize::from(bytes[i + 1])] {
                i += 2;
                continue;
            }
            if space_len(bytes, i) == 0 {
                i += 1;
                continue;
            }
            let j = run_end(i);
            if j == n {
                break;
            }
            if j - i > 1 || bytes[i] != b' ' {
                put(&mut h, &bytes[stretch..i]);
                put(&mut h, b" ");
                stretch = j;
            }
            i = j;
        }
        put(&mut h, &bytes[stretch..i]);
        h.update(buf);
        *h.finalize().as_bytes()
    })
}

/// One bit per byte (the lane's top bit) of `block[..8]` that may start a whitespace run the
/// normalization changes: a byte below 0x20 (ASCII's spaces but ' '), a lead byte of a Unicode
/// space (C2, E0..E3: E0 is never one, a harmless extra), or a space followed by any of those
/// or by a space (`block[8]` is the byte after the eighth). No such byte is ever missed; a lane
/// above a flagged one may be flagged too (the subtraction's borrow), which costs a byte-wise
/// look, never a wrong hash: the lowest flagged lane is where the byte loop takes over.
#[inline(always)]
fn candidates(block: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Lanes of `v` below `n` (n <= 0x80), with the borrow caveat above.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let (x, next) = (word(0), word(1));
    let special = |v: u64| below(v, 0x20) | below(v ^ (ONES * 0xC2), 1) | below(v ^ (ONES * 0xE0), 4);
    let space = |v: u64| below(v ^ (ONES * 0x20), 1);
    special(x) | (space(x) & (special(next) | space(next)))
}

/// [`candidates`] over `block[..16]` in one SIMD register (`block[16]`: the byte after), one
/// bit per byte, exact: no lane is flagged by another's borrow.
#[inline(always)]
fn candidates16(block: &[u8]) -> u32 {
    use wide::u8x16;
    let lanes = |at: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&block[at..at + 16]);
        u8x16::from(w)
    };
    let (x, next) = (lanes(0), lanes(1));
    // Below 0x20, a C2 lead, or E0..E3 (the top six bits 111000).
    let special = |v: u8x16| {
        v.min(u8x16::splat(0x1F)).simd_eq(v)
            | v.simd_eq(u8x16::splat(0xC2))
            | (v & u8x16::splat(0xFC)).simd_eq(u8x16::splat(0xE0))
    };
    let space = |v: u8x16| v.simd_eq(u8x16::splat(0x20));
    (special(x) | (space(x) & (special(next) | space(next)))).to_bitmask()
}

/// Bytes of normalized text gathered per `update` of the document hash.
const HASH_BUFFER: usize = 64 << 10;

/// Bytes a `White_Space` character can start with: ASCII's spaces and four lead bytes.
const MAY_START_SPACE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 9;
    while b <= 13 {
        t[b] = true;
        b += 1;
    }
    t[b' ' as usize] = true;
    t[0xC2] = true;
    t[0xE1] = true;
    t[0xE2] = true;
    t[0xE3] = true;
    t
};

/// The byte length of the `White_Space` character starting at `bytes[i]`, or 0.
#[inline(always)]
fn space_len(bytes: &[u8], i: usize) -> usize {
    let b = bytes[i];
    if b < 0x80 {
        return usize::from(matches!(b, b'\t'..=b'\r' | b' '));
    }
    let at = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
    match b {
        // U+0085, U+00A0
        0xC2 if matches!(at(1), 0x85 | 0xA0) => 2,
        // U+1680
        0xE1 if at(1) == 0x9A && at(2) == 0x80 => 3,
        // U+2000..U+200A, U+2028, U+2029, U+202F; U+205F
        0xE2 if at(1) == 0x80 && matches!(at(2), 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF) => 3,
        0xE2 if at(1) == 0x81 && at(2) == 0x9F => 3,
        // U+3000
        0xE3 if at(1) == 0x80 && at(2) == 0x80 => 3,
        _ => 0,
    }
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
