//! Ranking candidates by compression gain, measured by encoding the domain training text with
//! every candidate merged in, and keeping the top K or those above a gain threshold.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::base::{BaseTokenizer, surface_len, token_text};
use super::error::VocabError;
use super::merge::{Plan, expanded_json, load_expanded};
use super::train::Candidates;
use crate::data::encoder::Encoder;
use crate::recipe::Selection;

/// A token chosen for the expanded vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewToken {
    /// Byte-level form, as in `tokenizer.json`.
    pub token: String,
    pub text: String,
    /// The merge that builds it (byte-level forms); both sides exist before it.
    pub left: String,
    pub right: String,
    /// How many times the expanded tokenizer emitted it on the domain training text (with all
    /// candidates present).
    pub count: u64,
    /// Base tokens it replaced there, minus the tokens it costs: the tokens saved.
    pub saved: u64,
    /// `saved` as a fraction of the base tokenizer's tokens on that text.
    pub gain: f64,
    /// False for an intermediate kept only because a longer token is built from it.
    pub trained: bool,
}

/// The tokens and merges to add, from [`select`].
#[derive(Clone, Debug, Serialize)]
pub struct Expansion {
    pub base: PathBuf,
    pub selection: Selection,
    /// In id order: the first gets the first new id.
    pub tokens: Vec<NewToken>,
    /// New merges, ranked after all base merges, in this order.
    pub merges: Vec<(String, String)>,
    /// Candidates the trainer proposed, and how many new entries their merge trees needed in all.
    pub n_candidates: usize,
    pub n_planned: usize,
    /// Tokens on the domain training text: base, and with every planned token.
    pub base_tokens: u64,
    pub all_planned_tokens: u64,
    #[serde(serialize_with = "super::report::secs")]
    pub elapsed: Duration,
}

/// Ranks `candidates` by the tokens they save on `texts` (the domain training split) and keeps
/// those `selection` asks for, plus the intermediates their merges need. `TopK(k)` keeps at
/// most `k` new entries in all; `MinGain(g)` keeps every token saving at least the fraction `g`
/// of the base token count.
pub fn select<S: AsRef<str> + Sync>(
    base: &Path,
    candidates: &Candidates,
    texts: &[S],
    selection: Selection,
) -> Result<Expansion, VocabError> {
    let start = Instant::now();
    let base_tok = BaseTokenizer::load(base)?;
    let plan = Plan::derive(&base_tok, &candidates.tokens);
    let planned: Vec<String> = plan.tokens.iter().map(|t| t.token.clone()).collect();
    let text = expanded_json(&base_tok, &planned, &plan.merges, base_tok.next_id)?;
    let expanded = load_expanded(&text)?;

    let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
    let before = encode_all(&base_tok.encoder(), &texts)?;
    let after = encode_all(&Encoder::from_json(Path::new("the planned expansion"), expanded, &text), &texts)?;
    let first_id = base_tok.next_id;
    let lens = SurfaceLens::new(&base_tok);
    let mut count = vec![0u64; planned.len()];
    let mut saved = vec![0u64; planned.len()];
    for (base_ids, new_ids) in before.iter().zip(&after) {
        attribute(base_ids, new_ids, first_id, &lens, &planned, |i, n| {
            count[i] += 1;
            saved[i] += n.saturating_sub(1);
        });
    }
    let base_tokens: u64 = before.iter().map(|ids| ids.len() as u64).sum();
    let all_planned_tokens: u64 = after.iter().map(|ids| ids.len() as u64).sum();

    let keep = choose(&plan, &saved, base_tokens, selection);
    let tokens: Vec<NewToken> = plan
        .tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(i, t)| NewToken {
            token: t.token.clone(),
            text: token_text(&t.token),
            left: t.left.clone(),
            right: t.right.clone(),
            count: count[i],
            saved: saved[i],
            gain: ratio(saved[i], base_tokens),
            trained: t.trained,
        })
        .collect();
    let kept: HashSet<&str> = tokens.iter().map(|t| t.token.as_str()).collect();
    let usable = |s: &str| kept.contains(s) || base_tok.contains(s);
    let merges = plan
        .merges
        .iter()
        .filter(|(a, b)| usable(a) && usable(b) && kept.contains(format!("{a}{b}").as_str()))
        .cloned()
        .collect();
    Ok(Expansion {
        base: base.to_path_buf(),
        selection,
        tokens,
        merges,
        n_candidates: candidates.tokens.len(),
        n_planned: planned.len(),
        base_tokens,
        all_planned_tokens,
        elapsed: start.elapsed(),
    })
}

/// Indices of the planned tokens to keep, closed under "is built from".
fn choose(plan: &Plan, saved: &[u64], base_tokens: u64, selection: Selection) -> HashSet<usize> {
    let mut order: Vec<usize> = (0..plan.tokens.len()).filter(|&i| saved[i] > 0).collect();
    // Best first; ties keep creation order, so the result never depends on hashing.
    order.sort_by(|&a, &b| saved[b].cmp(&saved[a]).then(a.cmp(&b)));
    let limit = match selection {
        Selection::TopK(k) => usize::try_from(k).unwrap_or(usize::MAX),
        Selection::MinGain(_) => usize::MAX,
    };
    let mut keep = HashSet::new();
    for i in order {
        // Ranked by `saved`, so the first below the threshold ends the list.
        if matches!(selection, Selection::MinGain(threshold) if ratio(saved[i], base_tokens) < threshold) {
            break;
        }
        let missing = closure(plan, i, &keep);
        if keep.len() + missing.len() <= limit {
            keep.extend(missing);
        }
        if keep.len() >= limit {
            break;
        }
    }
    keep
}

/// `i` and the planned tokens its merge tree needs, minus those in `keep`.
fn closure(plan: &Plan, i: usize, keep: &HashSet<usize>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![i];
    while let Some(j) = stack.pop() {
        if keep.contains(&j) || out.contains(&j) {
            continue;
        }
        out.push(j);
        let t = &plan.tokens[j];
        for part in [&t.left, &t.right] {
            if let Some(&p) = plan.index.get(part) {
                stack.push(p);
            }
        }
    }
    out
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Encodes each text without special tokens; ids only, exactly the reference's (see
/// [`Encoder::encode_all`]: a sample is checked against `tokenizers` 0.23).
pub(crate) fn encode_all(encoder: &Encoder, texts: &[&str]) -> Result<Vec<Vec<u32>>, VocabError> {
    encoder.encode_all(texts, 64).map_err(|e| VocabError::Merge { message: format!("encoding failed: {e}") })
}

/// Text bytes per base id (0 where unknown, e.g. added tokens).
pub(crate) struct SurfaceLens(Vec<usize>);

impl SurfaceLens {
    pub(crate) fn new(base: &BaseTokenizer) -> Self {
        let mut lens = vec![0; base.next_id as usize];
        for (token, &id) in &base.vocab {
            if let Some(slot) = lens.get_mut(id as usize) {
                *slot = surface_len(token);
            }
        }
        Self(lens)
    }

    fn get(&self, id: u32) -> usize {
        self.0.get(id as usize).copied().unwrap_or(0)
    }
}

/// Walks a base encoding and the expanded encoding of the same text together and calls
/// `found(index of the new token, base tokens it covers)` for each new token. The expanded
/// encoding only ever merges runs of base tokens, so the two line up; a walk that stops lining up
/// (it never should) just stops attributing.
pub(crate) fn attribute(
    base_ids: &[u32],
    new_ids: &[u32],
    first_id: u32,
    lens: &SurfaceLens,
    new_tokens: &[String],
    mut found: impl FnMut(usize, u64),
) {
    let mut j = 0;
    for &id in new_ids {
        if id < first_id {
            if base_ids.get(j) != Some(&id) {
                return;
            }
            j += 1;
            continue;
        }
        let Some(token) = new_tokens.get((id - first_id) as usize) else {
            return;
        };
        let need = surface_len(token);
        let (mut covered, mut n) = (0, 0u64);
        while covered < need {
            let Some(&b) = base_ids.get(j) else {
                return;
            };
            let len = lens.get(b);
            if len == 0 {
                return;
            }
            covered += len;
            n += 1;
            j += 1;
        }
        if covered != need {
            return;
        }
        found((id - first_id) as usize, n);
    }
}

/// Occurrences of each new token in the expanded encodings (index by id - `first_id`).
pub(crate) fn count_new(encodings: &[Vec<u32>], first_id: u32, n_new: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n_new];
    for id in encodings.iter().flatten() {
        if let Some(c) = id.checked_sub(first_id).and_then(|i| counts.get_mut(i as usize)) {
            *c += 1;
        }
    }
    counts
}
