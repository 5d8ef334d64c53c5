//! The tokenize stage: a corpus streamed from its source files straight into Megatron shards
//! (`train`, `heldout`), the split's rule deciding each document's side, with statistics and
//! each held-out piece's byte count (evaluation divides by them, less the held-out bytes the
//! vocabulary cannot encode, `heldout.unencodable.json`).
//!
//! Memory holds a few batches of text whatever the corpus' size; nothing but tokens lands in
//! the store, and per training document its [`DocKey`] (`train.hashes`): the mix stage skips a
//! document another corpus holds out, so this stage depends on its own corpus only.

use std::io::Write as _;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use super::ingest::{BATCH_BYTES, Source};
use super::{Input, StageCtx, StageFailure, model_dir, read_json, split, tokenizer_path, write_json};
use crate::data;
use crate::data::split::DocKey;
use crate::data::tokenize::{Encoder, ShardStream, TokenizeOptions};

/// v2: per-document byte counts of each side, for bits per byte.
/// v3: a tokenizer.json's truncation and padding ignored; dtype from the largest id.
/// v4: held-out bytes the vocabulary cannot encode, per document (written only when any).
/// v5: streamed from the source files; `train.hashes`.
pub const VERSION: u64 = 5;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// How to read the corpus' files (the stage's external files).
    #[serde(flatten)]
    pub source: Source,
    /// End every document with the tokenizer's EOS token.
    pub eos: bool,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (split_dir, _) = ctx.input(&Input::Split)?;
    let (tok_dir, _) = ctx.input(&Input::Tokenizer)?;
    let decision = split::decision(split_dir)?;
    let tokenizer = data::tokenize::load_tokenizer(&tokenizer_path(tok_dir)?)?;
    let eos = if p.eos { Some(eos_id(tok_dir, &tokenizer)?) } else { None };
    let options = TokenizeOptions { eos, ..Default::default() };
    let sides = match stream(p, ctx, &tokenizer, &options, &decision.rule) {
        // The fast engine disagreed with the reference on a checked document: the ids are
        // always the reference's, so the whole corpus is encoded again by it.
        Err(e @ data::DataError::EngineMismatch { .. }) => {
            stream(p, ctx, &tokenizer.reference_copy(e.to_string()), &options, &decision.rule)?
        }
        other => other?,
    };
    let Sides { train, heldout, heldout_bytes, unencodable } = sides;
    write_json(&ctx.out.join("heldout.doc_bytes.json"), &heldout_bytes)?;
    let mut stats = serde_json::Map::new();
    for (side, s) in [("train", train), ("heldout", heldout)] {
        let mut value = serde_json::to_value(&s).map_err(|e| StageFailure::internal(e.to_string()))?;
        if let Value::Object(map) = &mut value {
            // The staging folder's path must not leak into the output: keep file names only.
            map.insert("bin".to_string(), json!(format!("{side}.bin")));
            map.insert("idx".to_string(), json!(format!("{side}.idx")));
        }
        stats.insert(side.to_string(), value);
    }
    // Bits per byte leave out what no token covers: counted per held-out piece, and written
    // only when there is any, so a complete vocabulary's artifact is unchanged.
    let total: u64 = unencodable.iter().sum();
    if total > 0 {
        write_json(&ctx.out.join("heldout.unencodable.json"), &unencodable)?;
        if let Some(Value::Object(map)) = stats.get_mut("heldout") {
            map.insert("unencodable_bytes".to_string(), json!(total));
        }
    }
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(Value::Object(stats))
}

/// Per training document (in shard order), its [`DocKey`].
pub const TRAIN_HASHES: &str = "train.hashes";

/// The [`DocKey`]s of a tokenize artifact's training documents.
pub fn train_keys(dir: &Path) -> Result<Vec<DocKey>, StageFailure> {
    let path = dir.join(TRAIN_HASHES);
    let bytes = std::fs::read(&path).map_err(|e| StageFailure::of(data::DataError::io("read", &path, e)))?;
    Ok(bytes.chunks_exact(16).map(|c| c.try_into().unwrap_or([0; 16])).collect())
}

/// Both shards of a corpus and what evaluation needs of the held-out side.
struct Sides {
    train: data::tokenize::CorpusStats,
    heldout: data::tokenize::CorpusStats,
    /// Per held-out piece: its bytes, and the bytes of it no token covers.
    heldout_bytes: Vec<u64>,
    unencodable: Vec<u64>,
}

/// One pass over the corpus' files: each batch of documents hashed and sent to its side.
fn stream(
    p: &Params,
    ctx: &StageCtx<'_>,
    tok: &Encoder,
    options: &TokenizeOptions,
    rule: &data::split::SplitRule,
) -> Result<Sides, data::DataError> {
    let missing = data::tokenize::unencodable_bytes(tok.reference());
    let corpus = p.source.corpus(ctx.files);
    let name = &p.source.corpus;
    let mut train = ShardStream::create(tok, name, &ctx.out.join("train"), options)?;
    let mut heldout = ShardStream::create(tok, name, &ctx.out.join("heldout"), options)?;
    let (mut heldout_bytes, mut unencodable) = (Vec::new(), Vec::new());
    let keys_path = ctx.out.join(TRAIN_HASHES);
    let io = |e| data::DataError::io("write", &keys_path, e);
    let mut keys = std::io::BufWriter::new(std::fs::File::create(&keys_path).map_err(io)?);
    // Held-out pieces wait until a batch's worth has gathered: they are a small share.
    let mut held: Vec<String> = Vec::new();
    let mut held_len = 0;
    let (mut done_bytes, total_bytes) =
        (0u64, ctx.files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum());
    ctx.progress.set_length(total_bytes);
    data::ingest::visit_batches(&corpus, &p.source.options(), BATCH_BYTES, |batch| {
        let hashes: Vec<[u8; 32]> = batch.par_iter().map(|d| data::split::doc_hash(&d.text)).collect();
        let mut to_train: Vec<&str> = Vec::with_capacity(batch.len());
        for (d, h) in batch.iter().zip(&hashes) {
            if rule.is_heldout(h) {
                for piece in data::split::pieces(&d.text, data::split::MAX_HELDOUT_PIECE_BYTES) {
                    heldout_bytes.push(piece.len() as u64);
                    if let Some(m) = &missing {
                        unencodable.push(piece.bytes().filter(|&b| m[usize::from(b)]).count() as u64);
                    }
                    held_len += piece.len();
                    held.push(piece.to_string());
                }
            } else {
                to_train.push(&d.text);
                keys.write_all(&data::split::doc_key(h)).map_err(io)?;
            }
        }
        train.push(&to_train)?;
        if held_len >= BATCH_BYTES {
            heldout.push(&held)?;
            held.clear();
            held_len = 0;
        }
        // Progress in source bytes is approximate (compressed files, skipped records).
        done_bytes += batch.iter().map(|d| d.text.len() as u64).sum::<u64>();
        ctx.progress.set_position(done_bytes.min(total_bytes));
        Ok(())
    })?;
    heldout.push(&held)?;
    keys.flush().map_err(io)?;
    let (train, heldout) = (train.finish()?, heldout.finish()?);
    Ok(Sides { train, heldout, heldout_bytes, unencodable })
}

/// The id that ends every document in the shards: one of the usual EOS tokens of the tokenizer,
/// else the model's `eos_token_id`. Documents run together without one, so none is an error.
fn eos_id(tok_dir: &Path, tokenizer: &data::tokenize::Encoder) -> Result<u32, StageFailure> {
    if let Some(id) = data::tokenize::eos_token(tokenizer.reference()) {
        return Ok(id);
    }
    let config = model_dir(tok_dir).ok().map(|d| d.join("config.json"));
    let from_config =
        config.as_ref().and_then(|c| read_json::<Value>(c).ok()).and_then(|c| data::tokenize::eos_from_config(&c));
    from_config.ok_or_else(|| {
        StageFailure::input(
            format!(
                "{}: no end-of-document token: none of {} is in it, and {} gives no `eos_token_id`",
                tokenizer.path().display(),
                data::tokenize::EOS_TOKENS.join(", "),
                config.map_or("no config.json".to_string(), |c| c.display().to_string()),
            ),
            Some(
                "documents are separated by an EOS token in the shards; give the model's config.json an `eos_token_id`"
                    .into(),
            ),
        )
    })
}
