//! Merging new tokens into a base byte-level BPE as real vocabulary entries and merges: the merge
//! trees that make each token reachable from the base segmentation, and the written
//! `tokenizer.json` (base ids untouched, new ids appended after every id in use).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value as Json;
use tokenizers::Tokenizer;

use super::base::BaseTokenizer;
use super::error::VocabError;
use super::select::Expansion;
use super::train::Candidate;

/// A new vocabulary entry and the merge that first produces it.
#[derive(Clone, Debug)]
pub(crate) struct PlannedToken {
    pub(crate) token: String,
    pub(crate) left: String,
    pub(crate) right: String,
    /// False for an intermediate that only exists so a longer candidate can be built.
    pub(crate) trained: bool,
}

/// New tokens and merges, in creation order, each buildable from base tokens and earlier entries.
///
/// The base BPE applies all of its own merges first (they rank lower), and a new merge never
/// creates a pair a base merge could use, so an expanded encoding is the base encoding with new
/// merges applied on top. A new token is therefore only ever formed from the pieces the base
/// leaves, and its merge tree must follow the base segmentation's boundaries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub(crate) tokens: Vec<PlannedToken>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) merges: Vec<(String, String)>,
    merge_set: HashSet<(String, String)>,
}

impl Plan {
    /// Plans every candidate (in trained order) that the base vocabulary can spell.
    pub(crate) fn derive(base: &BaseTokenizer, candidates: &[Candidate]) -> Self {
        let hints: HashMap<&str, usize> =
            candidates.iter().map(|c| (c.token.as_str(), c.left.chars().count())).collect();
        let mut plan = Self::default();
        for candidate in candidates {
            let Some(pieces) = base.pieces(&candidate.token) else {
                continue;
            };
            if pieces.len() < 2 {
                continue;
            }
            let pieces: Vec<&str> = pieces.iter().map(|(p, _)| p.as_str()).collect();
            // A candidate the base cannot reach cleanly is dropped; see `build`.
            let _ = plan.build(base, &hints, &pieces, true);
        }
        plan
    }

    /// Makes the concatenation of `pieces` reachable and returns it; `None` when every way to
    /// split it would need a merge that yields an existing base token (such a merge would also
    /// fire on text the candidate has nothing to do with, changing the base encoding).
    fn build(
        &mut self,
        base: &BaseTokenizer,
        hints: &HashMap<&str, usize>,
        pieces: &[&str],
        trained: bool,
    ) -> Option<String> {
        if let [single] = pieces {
            return Some((*single).to_string());
        }
        let token: String = pieces.concat();
        if base.contains(&token) {
            return None;
        }
        let k = self.split_point(base, hints, &token, pieces)?;
        let left = self.build(base, hints, &pieces[..k], false)?;
        let right = self.build(base, hints, &pieces[k..], false)?;
        let pair = (left.clone(), right.clone());
        if !self.merge_set.contains(&pair) {
            // A token already planned from other pieces gets a second merge: both are valid
            // ways to reach it, and the contexts differ.
            self.merge_set.insert(pair.clone());
            self.merges.push(pair);
        }
        match self.index.get(&token) {
            Some(&i) => self.tokens[i].trained |= trained,
            None => {
                self.index.insert(token.clone(), self.tokens.len());
                self.tokens.push(PlannedToken { token: token.clone(), left, right, trained });
            }
        }
        Some(token)
    }

    /// Where to split `pieces` (2 or more): the trained BPE's own split when it falls on a
    /// base boundary, else a boundary whose sides already exist, else the last boundary (a
    /// left-to-right chain of prefixes, which the trained BPE most often has as tokens). Sides
    /// of several pieces that spell a base token are never chosen.
    fn split_point(
        &self,
        base: &BaseTokenizer,
        hints: &HashMap<&str, usize>,
        token: &str,
        pieces: &[&str],
    ) -> Option<usize> {
        let n = pieces.len();
        let spells_base = |side: &[&str]| side.len() > 1 && base.contains(&side.concat());
        let allowed = |k: usize| !spells_base(&pieces[..k]) && !spells_base(&pieces[k..]);
        if let Some(&hint) = hints.get(token) {
            let mut at = 0;
            for (k, piece) in pieces[..n - 1].iter().enumerate() {
                at += piece.chars().count();
                if at == hint && allowed(k + 1) {
                    return Some(k + 1);
                }
            }
        }
        let exists = |side: &[&str]| {
            let s = side.concat();
            side.len() == 1 || self.index.contains_key(&s) || hints.contains_key(s.as_str())
        };
        (1..n)
            .rev()
            .find(|&k| allowed(k) && exists(&pieces[..k]) && exists(&pieces[k..]))
            .or_else(|| (1..n).rev().find(|&k| allowed(k)))
    }
}

/// The text of a `tokenizer.json` that extends `base` with `tokens` (ids from `first_id` on, in
/// order) and `merges` (ranked after every base merge).
pub(crate) fn expanded_json(
    base: &BaseTokenizer,
    tokens: &[String],
    merges: &[(String, String)],
    first_id: u32,
) -> Result<String, VocabError> {
    let mut json = base.json.clone();
    let merge_err = |message: &str| VocabError::Merge { message: message.to_string() };
    let model = json.get_mut("model").and_then(Json::as_object_mut).ok_or_else(|| merge_err("no model object"))?;
    let vocab = model.get_mut("vocab").and_then(Json::as_object_mut).ok_or_else(|| merge_err("no model vocabulary"))?;
    // `tokenizers` numbers an added token absent from the model vocabulary by the model's
    // vocabulary *count* when it loads the file: with new entries that count grows and Qwen's
    // added tokens (ids after its BPE ids) would move onto new tokens' ids. In the model
    // vocabulary at their own ids they stay put; the BPE never produces them (added tokens are
    // split off before it runs, and no merge makes them).
    let mut added: Vec<(&String, &u32)> = base.added.iter().collect();
    added.sort_by_key(|&(t, &id)| (id, t));
    for (content, &id) in added {
        if !vocab.contains_key(content) {
            vocab.insert(content.clone(), Json::from(id));
        }
    }
    for (i, token) in tokens.iter().enumerate() {
        let id = u32::try_from(i)
            .ok()
            .and_then(|i| first_id.checked_add(i))
            .ok_or_else(|| merge_err("token ids overflow u32"))?;
        if vocab.insert(token.clone(), Json::from(id)).is_some() {
            return Err(merge_err(&format!("token {token:?} is already in the base")));
        }
    }
    let merges_json =
        model.get_mut("merges").and_then(Json::as_array_mut).ok_or_else(|| merge_err("no model merges"))?;
    // Keep the file's own notation: pairs in current files, "a b" strings in older ones.
    let as_strings = merges_json.first().is_some_and(Json::is_string);
    for (a, b) in merges {
        merges_json.push(if as_strings {
            Json::String(format!("{a} {b}"))
        } else {
            Json::Array(vec![Json::String(a.clone()), Json::String(b.clone())])
        });
    }
    serde_json::to_string_pretty(&json).map_err(|e| merge_err(&e.to_string()))
}

/// Loads an expanded `tokenizer.json` text, as Python's `tokenizers` would.
pub(crate) fn load_expanded(text: &str) -> Result<Tokenizer, VocabError> {
    text.parse().map_err(|e: tokenizers::Error| VocabError::Merge { message: e.to_string() })
}

/// What [`merge`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Merged {
    pub path: PathBuf,
    /// Id of the first new token; the others follow in order.
    pub first_id: u32,
    pub n_added: usize,
    pub n_merges_added: usize,
    /// Vocabulary size with added tokens, as `len(tokenizer)` reports it.
    pub vocab_size: usize,
}

/// Writes the base tokenizer extended by `expansion` to `out` (a `tokenizer.json` path),
/// atomically. New ids start at `first_id` or just after the base's last id, whichever is
/// larger: pass the model's embedding rows as `first_id` when they exceed the tokenizer (Qwen
/// pads them) so new tokens get rows of their own.
pub fn merge(base: &Path, expansion: &Expansion, out: &Path, first_id: Option<u32>) -> Result<Merged, VocabError> {
    let base_tok = BaseTokenizer::load(base)?;
    let first_id = base_tok.next_id.max(first_id.unwrap_or(0));
    let tokens: Vec<String> = expansion.tokens.iter().map(|t| t.token.clone()).collect();
    let text = expanded_json(&base_tok, &tokens, &expansion.merges, first_id)?;
    let loaded = load_expanded(&text)?;
    write_atomic(out, text.as_bytes())?;
    Ok(Merged {
        path: out.to_path_buf(),
        first_id,
        n_added: tokens.len(),
        n_merges_added: expansion.merges.len(),
        vocab_size: loaded.get_vocab_size(true),
    })
}

/// Writes `bytes` beside `path` and renames it into place, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VocabError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(VocabError::io("write", path, e));
    }
    Ok(())
}
