//! The tokenize stage: both sides of a split into Megatron shards (`train`, `heldout`), with
//! statistics and each document's byte count (evaluation divides by them, less the held-out
//! bytes the vocabulary cannot encode, `heldout.unencodable.json`).

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure, model_dir, read_json, tokenizer_path, write_json};
use crate::data;

/// v2: per-document byte counts of each side, for bits per byte.
/// v3: a tokenizer.json's truncation and padding ignored; dtype from the largest id.
/// v4: held-out bytes the vocabulary cannot encode, per document (written only when any).
pub const VERSION: u64 = 4;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// The corpus's name: the statistics carry it, so it is part of the key.
    pub corpus: String,
    /// End every document with the tokenizer's EOS token.
    pub eos: bool,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (split_dir, _) = ctx.input(&Input::Split)?;
    let (tok_dir, _) = ctx.input(&Input::Tokenizer)?;
    let mut tokenizer = data::tokenize::load_tokenizer(&tokenizer_path(tok_dir)?)?;
    let eos = if p.eos { Some(eos_id(tok_dir, &tokenizer)?) } else { None };
    let options = data::tokenize::TokenizeOptions { eos, ..Default::default() };
    let unencodable = data::tokenize::unencodable_bytes(tokenizer.reference());
    let mut stats = serde_json::Map::new();
    for side in ["train", "heldout"] {
        ctx.progress.set_message(format!("{side} side"));
        let texts = data::texts::read_texts(&split_dir.join(format!("{side}.jsonl")))?;
        // Bytes per document: evaluation divides nats by the bytes of the text it covers.
        let doc_bytes: Vec<usize> = texts.iter().map(String::len).collect();
        write_json(&ctx.out.join(format!("{side}.doc_bytes.json")), &doc_bytes)?;
        let s = data::tokenize::tokenize_corpus(&tokenizer, &p.corpus, &texts, &ctx.out.join(side), &options)?;
        // An engine that disagreed on one side is not trusted with the other.
        if tokenizer.has_fast()
            && let Some(reason) = s.engine.info.as_ref().and_then(|i| i.fallback_reason.clone())
        {
            tokenizer = tokenizer.without_fast(reason);
        }
        let mut value = serde_json::to_value(&s).map_err(|e| StageFailure::internal(e.to_string()))?;
        // Bits per byte leave out what no token covers: counted per held-out document, and
        // written only when there is any, so a complete vocabulary's artifact is unchanged.
        if let (Some(missing), "heldout") = (&unencodable, side) {
            let per_doc: Vec<u64> =
                texts.iter().map(|t| t.bytes().filter(|&b| missing[usize::from(b)]).count() as u64).collect();
            let total: u64 = per_doc.iter().sum();
            if total > 0 {
                write_json(&ctx.out.join("heldout.unencodable.json"), &per_doc)?;
                if let Value::Object(map) = &mut value {
                    map.insert("unencodable_bytes".to_string(), json!(total));
                }
            }
        }
        // The staging folder's path must not leak into the output: keep file names only.
        if let Value::Object(map) = &mut value {
            map.insert("bin".to_string(), json!(format!("{side}.bin")));
            map.insert("idx".to_string(), json!(format!("{side}.idx")));
        }
        stats.insert(side.to_string(), value);
    }
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(Value::Object(stats))
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
