//! Candidate tokens: a BPE trained with `tokenizers`' `BpeTrainer` on domain text, through the
//! base tokenizer's own normalizer and pre-tokenizer, minus what the base vocabulary has.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value as Json;
use tokenizers::Tokenizer;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

use super::base::{BaseTokenizer, token_text};
use super::error::VocabError;

/// One token the domain BPE learned that the base vocabulary lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The token in the tokenizer's byte-level form (as stored in `tokenizer.json`).
    pub token: String,
    /// The text it stands for (lossy where it ends inside a UTF-8 character).
    pub text: String,
    /// The trained merge that made it: its left part (byte-level form); the right part is the
    /// rest of `token`.
    pub left: String,
    /// Position of that merge in the trained BPE: lower means more frequent in the domain text.
    pub rank: usize,
}

/// The result of [`train_candidates`].
#[derive(Clone, Debug, Serialize)]
pub struct Candidates {
    /// The base `tokenizer.json` they were trained against.
    pub base: std::path::PathBuf,
    /// Candidates in the trained BPE's merge order.
    pub tokens: Vec<Candidate>,
    /// Size of the trained vocabulary (byte alphabet included).
    pub trained_size: usize,
    /// How many trained tokens the base vocabulary already had.
    pub n_in_base: usize,
    pub train_bytes: usize,
    #[serde(serialize_with = "super::report::secs")]
    pub elapsed: Duration,
}

/// Trains a BPE of `size` tokens (alphabet included) on `texts` with the base tokenizer's
/// normalizer and pre-tokenizer and returns the learned tokens the base lacks, in merge order.
/// `min_frequency` is the trainer's: pairs seen fewer times are never merged.
pub fn train_candidates<S: AsRef<str> + Sync>(
    base: &Path,
    texts: &[S],
    size: usize,
    min_frequency: u64,
) -> Result<Candidates, VocabError> {
    let start = Instant::now();
    let base_tok = BaseTokenizer::load(base)?;
    let alphabet = ByteLevel::alphabet();
    if size <= alphabet.len() {
        return Err(VocabError::SizeTooSmall { size });
    }
    let train_bytes: usize = texts.iter().map(|t| t.as_ref().len()).sum();
    if train_bytes == 0 {
        return Err(VocabError::EmptyCorpus);
    }

    let trainer = BpeTrainer::builder()
        .vocab_size(size)
        .min_frequency(min_frequency)
        .show_progress(false)
        // Every byte symbol, so no text byte is ever out of the trained vocabulary.
        .initial_alphabet(alphabet.into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let mut domain = Tokenizer::new(BPE::default());
    domain
        .with_normalizer(base_tok.tokenizer.get_normalizer().cloned())
        .map_err(|e| VocabError::Train { message: e.to_string() })?;
    domain.with_pre_tokenizer(base_tok.tokenizer.get_pre_tokenizer().cloned());
    domain
        .train(&mut trainer, texts.iter().map(AsRef::as_ref))
        .map_err(|e| VocabError::Train { message: e.to_string() })?;

    // The trained merges, in order, through the model's own serialization.
    let model = serde_json::to_value(domain.get_model()).map_err(|e| VocabError::Train { message: e.to_string() })?;
    let trained_size = model.get("vocab").and_then(Json::as_object).map_or(0, |v| v.len());
    let merges = model
        .get("merges")
        .and_then(Json::as_array)
        .ok_or_else(|| VocabError::Train { message: "the trained model has no merges".to_string() })?;
    let mut tokens = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut n_in_base = 0;
    for (rank, merge) in merges.iter().enumerate() {
        let (left, right) =
            merge_pair(merge).ok_or_else(|| VocabError::Train { message: format!("unexpected merge {merge}") })?;
        let token = format!("{left}{right}");
        if base_tok.contains(&token) {
            n_in_base += 1;
            continue;
        }
        if seen.insert(token.clone(), ()).is_some() {
            continue;
        }
        tokens.push(Candidate { text: token_text(&token), token, left, rank });
    }
    Ok(Candidates { base: base.to_path_buf(), tokens, trained_size, n_in_base, train_bytes, elapsed: start.elapsed() })
}

/// A merge as `tokenizer.json` stores it: `["a", "b"]` or, in older files, `"a b"`.
pub(crate) fn merge_pair(merge: &Json) -> Option<(String, String)> {
    match merge {
        Json::Array(pair) => match pair.as_slice() {
            [Json::String(a), Json::String(b)] => Some((a.clone(), b.clone())),
            _ => None,
        },
        Json::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
        _ => None,
    }
}
