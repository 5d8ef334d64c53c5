//! The base tokenizer as vocabulary expansion sees it: its JSON, the loaded `tokenizers` object,
//! its vocabulary and added tokens, and the base pieces of any token string.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tokenizers::{Model as _, Tokenizer};

use super::error::VocabError;
use crate::data::encoder::Encoder;

/// One past the largest token id accepted (16M; real vocabularies stay below 300k).
const MAX_ID: u32 = 1 << 24;

/// A byte-level BPE `tokenizer.json`, loaded.
pub(crate) struct BaseTokenizer {
    pub(crate) path: PathBuf,
    pub(crate) json: Json,
    pub(crate) tokenizer: Tokenizer,
    /// The BPE model's vocabulary (token string in byte-level form -> id).
    pub(crate) vocab: HashMap<String, u32>,
    /// Added tokens (content -> id); some vocabularies put them after the model's ids.
    pub(crate) added: HashMap<String, u32>,
    /// One past the largest id in use; new tokens start here.
    pub(crate) next_id: u32,
}

impl BaseTokenizer {
    pub(crate) fn load(path: &Path) -> Result<Self, VocabError> {
        let text = fs::read_to_string(path).map_err(|e| VocabError::io("read", path, e))?;
        Self::from_str(path, &text)
    }

    pub(crate) fn from_str(path: &Path, text: &str) -> Result<Self, VocabError> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| VocabError::bad_tokenizer(path, format!("invalid JSON: {e}")))?;
        let model = json.get("model").ok_or_else(|| VocabError::bad_tokenizer(path, "no `model` object"))?;
        let model_type = model.get("type").and_then(Json::as_str).unwrap_or("?");
        if model_type != "BPE" {
            return Err(VocabError::UnsupportedTokenizer {
                path: path.to_path_buf(),
                kind: format!("`{model_type}` model"),
            });
        }
        // Surface lengths and the trainer's alphabet assume one symbol per byte.
        let byte_level = json.get("pre_tokenizer").is_some_and(has_byte_level);
        if !byte_level {
            return Err(VocabError::UnsupportedTokenizer {
                path: path.to_path_buf(),
                kind: "non-byte-level BPE".to_string(),
            });
        }
        let tokenizer: Tokenizer =
            text.parse().map_err(|e| VocabError::bad_tokenizer(path, format!("`tokenizers` refuses it: {e}")))?;
        let vocab: HashMap<String, u32> = tokenizer.get_model().get_vocab();
        // From the loaded tokenizer, not the JSON: `tokenizers` renumbers added tokens that
        // are missing from the model vocabulary, and the ids it uses are the ones that count.
        let added: HashMap<String, u32> =
            tokenizer.get_added_tokens_decoder().into_iter().map(|(id, token)| (token.content, id)).collect();
        let next_id = crate::data::encoder::id_bound(&tokenizer);
        // Tables are indexed by id: refuse absurd ids rather than allocate for them.
        if next_id > MAX_ID {
            return Err(VocabError::bad_tokenizer(
                path,
                format!("token id {} is beyond the {MAX_ID} cptc supports", next_id - 1),
            ));
        }
        Ok(Self { path: path.to_path_buf(), json, tokenizer, vocab, added, next_id })
    }

    /// An encoder over this tokenizer: the fast engine, checked against `tokenizer`.
    pub(crate) fn encoder(&self) -> Encoder {
        Encoder::from_json(&self.path, self.tokenizer.clone(), &self.json.to_string())
    }

    /// True when `token` (byte-level form) is taken, by the model or as an added token.
    pub(crate) fn contains(&self, token: &str) -> bool {
        self.vocab.contains_key(token) || self.added.contains_key(token)
    }

    /// The base tokenizer's pieces for one token string (byte-level form), as the BPE model
    /// alone segments it; `None` when a symbol of it is outside the base vocabulary.
    pub(crate) fn pieces(&self, token: &str) -> Option<Vec<(String, u32)>> {
        let pieces = self.tokenizer.get_model().tokenize(token).ok()?;
        let pieces: Vec<(String, u32)> = pieces.into_iter().map(|t| (t.value, t.id)).collect();
        // An unknown symbol is dropped silently by a BPE without `unk`: detect it by length.
        let covered: usize = pieces.iter().map(|(p, _)| p.len()).sum();
        (covered == token.len() && !pieces.is_empty()).then_some(pieces)
    }
}

/// Whether a pre-tokenizer JSON is, or contains in a `Sequence`, a `ByteLevel` step.
fn has_byte_level(pre: &Json) -> bool {
    match pre.get("type").and_then(Json::as_str) {
        Some("ByteLevel") => true,
        Some("Sequence") => {
            pre.get("pretokenizers").and_then(Json::as_array).is_some_and(|steps| steps.iter().any(has_byte_level))
        }
        _ => false,
    }
}

/// Length of a byte-level token string in bytes of text: each symbol stands for one byte.
pub(crate) fn surface_len(token: &str) -> usize {
    token.chars().count()
}

/// GPT-2's byte-to-symbol table inverted: the text bytes a byte-level token string stands for.
pub(crate) fn token_bytes(token: &str) -> Vec<u8> {
    token.chars().filter_map(symbol_byte).collect()
}

fn symbol_byte(c: char) -> Option<u8> {
    let c = c as u32;
    // Printable bytes map to themselves; the 68 others were shifted to 256.. in byte order.
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    if c < 256 && printable(c) {
        return u8::try_from(c).ok();
    }
    let shifted = c.checked_sub(256)?;
    (0u32..256).filter(|&b| !printable(b)).nth(shifted as usize).and_then(|b| u8::try_from(b).ok())
}

/// Human-readable text of a byte-level token (lossy for partial UTF-8 characters).
pub(crate) fn token_text(token: &str) -> String {
    String::from_utf8_lossy(&token_bytes(token)).into_owned()
}

/// Checks that `new` keeps every token of `base` at its id (model vocabulary and added tokens)
/// and returns the tokens it adds, by id.
pub(crate) fn new_tokens(base: &BaseTokenizer, new: &BaseTokenizer) -> Result<Vec<(u32, String)>, VocabError> {
    let fail = |message: String| VocabError::NotAnExtension { base: base.path.clone(), new: new.path.clone(), message };
    // In id order, so the error names the same token every time.
    let mut kept: Vec<(&String, &u32)> = base.vocab.iter().chain(&base.added).collect();
    kept.sort_by_key(|&(t, &id)| (id, t));
    for (token, &id) in kept {
        let now = new.vocab.get(token).or_else(|| new.added.get(token));
        if now != Some(&id) {
            let now = now.map_or("absent".to_string(), |n| format!("id {n}"));
            return Err(fail(format!(
                "token {:?} has id {id} in the base but is {now} in the new tokenizer",
                token_text(token)
            )));
        }
    }
    let mut added: Vec<(u32, String)> =
        new.vocab.iter().filter(|(t, _)| !base.contains(t)).map(|(t, &id)| (id, t.clone())).collect();
    added.sort();
    if let Some((id, token)) = added.iter().find(|(id, _)| *id < base.next_id) {
        return Err(fail(format!(
            "new token {:?} has id {id}, among the base's ids (below {})",
            token_text(token),
            base.next_id
        )));
    }
    Ok(added)
}
