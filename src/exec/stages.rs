//! The real stage implementations, one per [`StageKind`], behind the [`Runner`] trait.
//!
//! Each reads its inputs' published folders and writes into `ctx.out`. Kinds whose
//! implementation has not landed yet fail with a clear message naming the stage: never a
//! fake result.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Runner, StageCtx, StageFailure};
use crate::check::recipe::{Corpus, EmbedInit, Heldout, LongContext, Mixture, Origin, Selection, TextSource};
use crate::data;
use crate::graph::StageKind;

/// The runner `cptc run` uses.
pub struct RealRunner;

impl Runner for RealRunner {
    fn run(&self, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
        match ctx.stage.kind {
            StageKind::Import => import(ctx),
            StageKind::HfModel => hf_model(ctx),
            StageKind::Ingest => ingest(ctx),
            StageKind::Split => split(ctx),
            StageKind::Tokenize => tokenize(ctx),
            StageKind::Mix => mix(ctx),
            StageKind::Vocab => vocab(ctx),
            StageKind::Resize => resize(ctx),
            StageKind::Fit => super::law::fit(ctx),
            StageKind::Choose => super::law::choose(ctx),
            StageKind::Train => super::training::train(ctx),
            StageKind::Eval => super::training::eval(ctx),
            StageKind::Report => super::report::report(ctx),
            StageKind::Test => Err(StageFailure {
                message: format!("stage `{}`: `test` stages exist for executor tests only", ctx.stage.id),
                help: None,
            }),
        }
    }
}

/// The folder holding a model, for an input produced by `import`, `hf_model`, `resize` or `train`.
pub fn model_dir(artifact: &Path) -> Result<PathBuf, StageFailure> {
    let inside = artifact.join("model");
    if inside.join("config.json").is_file() {
        return Ok(inside);
    }
    Err(StageFailure { message: format!("{} holds no model (no model/config.json)", artifact.display()), help: None })
}

fn import(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let file = ctx.stage.files.first().ok_or("an import stage needs its GGUF file")?;
    let dtype = match ctx.params.get("dtype").and_then(Value::as_str) {
        Some("f16") => crate::convert::OutDtype::F16,
        Some("bf16") => crate::convert::OutDtype::Bf16,
        _ => crate::convert::OutDtype::F32,
    };
    ctx.progress.set_message(format!("importing {}", file.display()));
    let report = crate::convert::import_gguf(file, &ctx.out.join("model"), dtype).map_err(|e| StageFailure {
        message: e.to_string(),
        help: miette::Diagnostic::help(&e).map(|h| h.to_string()),
    })?;
    Ok(json!({ "params": report.n_params, "vocab_size": report.vocab_size }))
}

/// A user's HF directory becomes an artifact of its own, so the artifact records no path of
/// this machine and outlives the folder moving; the files' content is already part of the key
/// (`Stage::files`). Weights are hard-linked (copied across file systems), small files copied,
/// so an editor rewriting `config.json` in place cannot change a published artifact. Symlinks
/// (the Hugging Face cache is made of them) are followed.
fn hf_model(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    const LINK_FROM: u64 = 16 << 20;
    let model = ctx.out.join("model");
    std::fs::create_dir_all(&model).map_err(|e| format!("{}: {e}", model.display()))?;
    for file in &ctx.stage.files {
        let Some(name) = file.file_name() else { continue };
        let real = std::fs::canonicalize(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let big = std::fs::metadata(&real).is_ok_and(|m| m.len() >= LINK_FROM);
        let to = model.join(name);
        if !(big && std::fs::hard_link(&real, &to).is_ok()) {
            std::fs::copy(&real, &to).map_err(|e| format!("copying {}: {e}", real.display()))?;
        }
    }
    if !model.join("config.json").is_file() {
        return Err(StageFailure {
            message: format!("{} has no config.json", ctx.stage.files.first().and_then(|f| f.parent()).unwrap_or(Path::new("?")).display()),
            help: Some("a `model` block's `hf` must be a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)".into()),
        });
    }
    Ok(Value::Null)
}

/// A parameter of the stage, deserialized from its canonical JSON.
pub(super) fn param<T: serde::de::DeserializeOwned>(ctx: &StageCtx<'_>, name: &str) -> Result<T, StageFailure> {
    let value = ctx.params.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value)
        .map_err(|e| StageFailure { message: format!("parameter `{name}` of {}: {e}", ctx.stage.id), help: None })
}

/// Reads a JSON file of an artifact; errors name the file.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StageFailure> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| StageFailure::from(format!("{}: {e}", path.display())))
}

/// Writes a JSON file of an artifact; errors name the file.
pub(super) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), StageFailure> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// Reads the corpus files into normalised documents (`docs.jsonl`) and a report of what was
/// skipped and where.
fn ingest(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let name = ctx.stage.id.strip_prefix("ingest:").unwrap_or(&ctx.stage.id).to_string();
    let text = match ctx.params.get("text") {
        Some(t) if t.get("template").is_some() => {
            let template = t.get("template").and_then(Value::as_str).unwrap_or_default();
            let parts = crate::check::parse_template(template).map_err(|reason| StageFailure {
                message: format!("template of corpus `{name}`: {reason}"),
                help: None,
            })?;
            TextSource::Template(crate::check::recipe::Template { text: template.to_string(), parts })
        }
        Some(t) => TextSource::Field(t.get("field").and_then(Value::as_str).unwrap_or("text").to_string()),
        None => TextSource::Field("text".to_string()),
    };
    let strict = param::<Option<bool>>(ctx, "strict")?.unwrap_or(false);
    let corpus = Corpus {
        name: name.clone(),
        patterns: Vec::new(),
        files: ctx.stage.files.clone(),
        format: param(ctx, "format")?,
        text,
        heldout: Heldout::Fraction(0.0),
        strict,
        origin: Origin::default(),
    };
    let options = data::ingest::IngestOptions { strict, ..Default::default() };
    ctx.progress.set_message(format!("reading {} files", corpus.files.len()));
    let ingested = data::ingest::read_corpus(&corpus, &options)?;
    data::texts::write_texts(&ctx.out.join("docs.jsonl"), ingested.docs.iter().map(|d| d.text.as_str()))?;
    // Paths in the report are made relative to nothing machine-specific: file names only.
    let mut report = serde_json::to_value(&ingested.report)?;
    if let Some(issues) = report.get_mut("issues").and_then(Value::as_array_mut) {
        for issue in issues {
            if let Some(file) = issue.get_mut("file") {
                let name =
                    file.as_str().and_then(|f| Path::new(f).file_name()).map(|n| n.to_string_lossy().into_owned());
                *file = json!(name);
            }
        }
    }
    write_json(&ctx.out.join("report.json"), &report)?;
    Ok(
        json!({ "documents": ingested.report.documents, "bytes": ingested.report.bytes, "skipped": ingested.report.skipped.total() }),
    )
}

/// Splits documents into `train.jsonl` and `heldout.jsonl` (long ones in pieces) by a hash of
/// each document.
fn split(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (docs_dir, _) = ctx.input("docs")?;
    let texts = data::texts::read_texts(&docs_dir.join("docs.jsonl"))?;
    let heldout = match ctx.params.get("heldout") {
        Some(h) if h.get("docs").is_some() => Heldout::Docs(h.get("docs").and_then(Value::as_u64).unwrap_or(0)),
        Some(h) => Heldout::Fraction(h.get("fraction").and_then(Value::as_f64).unwrap_or(0.0)),
        None => Heldout::Fraction(0.0),
    };
    let sides = data::split::split(&texts, heldout)?;
    data::texts::write_texts(&ctx.out.join("train.jsonl"), sides.train.iter().map(|&i| texts[i].as_str()))?;
    // Long held-out documents become pieces, so an evaluation budget can stop inside a novel.
    let pieces: Vec<&str> = sides
        .heldout
        .iter()
        .flat_map(|&i| data::split::pieces(&texts[i], data::split::MAX_HELDOUT_PIECE_BYTES))
        .collect();
    data::texts::write_texts(&ctx.out.join("heldout.jsonl"), pieces.iter().copied())?;
    Ok(json!({ "train_docs": sides.train.len(), "heldout_docs": sides.heldout.len(), "heldout_pieces": pieces.len() }))
}

/// The `tokenizer.json` an artifact provides: a vocab stage's own, or its model's.
pub fn tokenizer_path(artifact: &Path) -> Result<PathBuf, StageFailure> {
    let own = artifact.join("tokenizer.json");
    if own.is_file() {
        return Ok(own);
    }
    Ok(model_dir(artifact)?.join("tokenizer.json"))
}

/// Tokenizes both sides of a split into Megatron shards (`train`, `heldout`) with statistics.
fn tokenize(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (split_dir, _) = ctx.input("split")?;
    let (tok_dir, _) = ctx.input("tokenizer")?;
    let mut tokenizer = data::tokenize::load_tokenizer(&tokenizer_path(tok_dir)?)?;
    let eos =
        if param::<Option<bool>>(ctx, "eos")?.unwrap_or(true) { Some(eos_id(tok_dir, &tokenizer)?) } else { None };
    let name = ctx.stage.id.strip_prefix("tokenize:").unwrap_or(&ctx.stage.id).to_string();
    let options = data::tokenize::TokenizeOptions { eos, ..Default::default() };
    let mut stats = serde_json::Map::new();
    for side in ["train", "heldout"] {
        ctx.progress.set_message(format!("{side} side"));
        let texts = data::texts::read_texts(&split_dir.join(format!("{side}.jsonl")))?;
        // Bytes per document: evaluation divides nats by the bytes of the text it covers.
        let doc_bytes: Vec<usize> = texts.iter().map(String::len).collect();
        write_json(&ctx.out.join(format!("{side}.doc_bytes.json")), &doc_bytes)?;
        let s = data::tokenize::tokenize_corpus(&tokenizer, &name, &texts, &ctx.out.join(side), &options)?;
        // An engine that disagreed on one side is not trusted with the other.
        if tokenizer.has_fast()
            && let Some(reason) = s.engine.info.as_ref().and_then(|i| i.fallback_reason.clone())
        {
            tokenizer = tokenizer.without_fast(reason);
        }
        let mut value = serde_json::to_value(&s)?;
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
    from_config.ok_or_else(|| StageFailure {
        message: format!(
            "{}: no end-of-document token: none of {} is in it, and {} gives no `eos_token_id`",
            tokenizer.path().display(),
            data::tokenize::EOS_TOKENS.join(", "),
            config.map_or("no config.json".to_string(), |c| c.display().to_string()),
        ),
        help: Some(
            "documents are separated by an EOS token in the shards; give the model's config.json an `eos_token_id`"
                .into(),
        ),
    })
}

/// Draws the training sequences of one train stage from its mixture (shares, ramp, seed) and
/// writes them as a shard of `seq_len + 1`-token sequences, with realized shares per window.
fn mix(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let mixture: Mixture = param(ctx, "mixture")?;
    let tokens: u64 = param(ctx, "tokens")?;
    let seq_len: u64 = param(ctx, "seq_len")?;
    let seed: u64 = param(ctx, "seed")?;
    let long_context: Option<LongContext> = param(ctx, "long_context")?;
    let domain_share: Option<f64> = param(ctx, "domain_share")?;
    let mut sources = Vec::new();
    for (corpus, (dir, _)) in ctx.inputs_with("corpus:") {
        sources.push(data::mixture::Source {
            corpus: corpus.to_string(),
            shard: data::shard::ShardReader::open(&dir.join("train"))?,
        });
    }
    let vocab = sources.iter().map(|s| s.shard.dtype()).max_by_key(|d| d.size());
    let length = long_context.map_or(seq_len, |lc| lc.target_len);
    let sequences = tokens.div_ceil(length.max(1));
    let config = data::mixture::SamplerConfig {
        mixture,
        domain_share,
        total_tokens: tokens,
        seq_len,
        seed,
        long_context,
        // About 40 windows per run (at most 1000 sequences each): enough points to see a ramp.
        window: (sequences / 40).clamp(8, 1000),
    };
    let mut sampler = data::mixture::Sampler::new(config, sources)?;
    let vocab_for_dtype = match vocab {
        Some(data::shard::TokenDtype::U16) | None => 65_000,
        Some(_) => u64::from(u32::MAX),
    };
    let mut writer = data::shard::ShardWriter::create(&ctx.out.join("train"), vocab_for_dtype)?;
    let spans_path = ctx.out.join("spans.jsonl");
    let spans_file = std::fs::File::create(&spans_path).map_err(|e| format!("{}: {e}", spans_path.display()))?;
    let mut spans = std::io::BufWriter::new(spans_file);
    let mut windows = Vec::new();
    let mut epochs = Vec::new();
    ctx.progress.set_length(sequences);
    for _ in 0..sequences {
        let sampled = sampler.next_sequence()?;
        writer.add_document(&sampled.seq.tokens)?;
        use std::io::Write as _;
        writeln!(
            spans,
            "{}",
            json!({ "index": sampled.index, "role": sampled.role, "corpus": sampler.corpus_names().get(sampled.corpus), "epoch": sampled.seq.epoch, "spans": sampled.seq.spans })
        )?;
        for event in sampler.drain_events() {
            match event {
                data::mixture::SamplerEvent::Window(w) => windows.push(serde_json::to_value(w)?),
                e @ data::mixture::SamplerEvent::NewEpoch { .. } => epochs.push(serde_json::to_value(e)?),
            }
        }
        ctx.progress.inc(1);
    }
    {
        use std::io::Write as _;
        spans.flush()?;
    }
    let last = sampler.window_stats();
    if last.sequences > 0 {
        windows.push(serde_json::to_value(last)?);
    }
    let summary = writer.finish()?;
    let stats = json!({ "sequences": sequences, "seq_len": length, "tokens": summary.tokens, "windows": windows, "epochs": epochs });
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(json!({ "sequences": sequences, "tokens": summary.tokens }))
}

/// Trains a BPE on the domain's training split, keeps the tokens that compress it best, and
/// merges them into the base tokenizer; reports compression before and after.
fn vocab(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let size: u64 = param(ctx, "size")?;
    let min_frequency: u64 = param(ctx, "min_frequency")?;
    let selection: Selection = param(ctx, "select")?;
    let (base_dir, _) = ctx.input("base")?;
    let base_model = model_dir(base_dir)?;
    let base_tok = base_model.join("tokenizer.json");
    let (mut train, mut domain_heldout, mut general_heldout) = (Vec::new(), Vec::new(), Vec::new());
    for (_, (dir, _)) in ctx.inputs_with("train_on:") {
        train.extend(data::texts::read_texts(&dir.join("train.jsonl"))?);
        domain_heldout.extend(data::texts::read_texts(&dir.join("heldout.jsonl"))?);
    }
    for (_, (dir, _)) in ctx.inputs_with("general:") {
        general_heldout.extend(data::texts::read_texts(&dir.join("heldout.jsonl"))?);
    }
    ctx.progress.set_message(format!("training a {size}-token BPE on {} documents", train.len()));
    let candidates = crate::vocab::train_candidates(&base_tok, &train, size as usize, min_frequency)?;
    ctx.progress.set_message(format!("ranking {} candidates by gain", candidates.tokens.len()));
    let expansion = crate::vocab::select(&base_tok, &candidates, &train, selection)?;
    let first_id = crate::vocab::embedding_rows(&base_model)?;
    let merged = crate::vocab::merge(&base_tok, &expansion, &ctx.out.join("tokenizer.json"), Some(first_id))?;
    let report =
        crate::vocab::report(&base_tok, &ctx.out.join("tokenizer.json"), &domain_heldout, &general_heldout, 20)?;
    write_json(&ctx.out.join("report.json"), &report)?;
    std::fs::write(ctx.out.join("report.txt"), report.to_string())?;
    Ok(json!({ "added": merged.n_added, "vocab_size": merged.vocab_size, "first_id": merged.first_id }))
}

/// Grows the model's embeddings (and untied head) for the expanded vocabulary.
fn resize(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let init: EmbedInit = param(ctx, "init")?;
    let seed: u64 = param(ctx, "seed")?;
    let (model_art, _) = ctx.input("model")?;
    let (vocab_art, _) = ctx.input("vocab")?;
    let model_in = model_dir(model_art)?;
    ctx.progress.set_message("resizing embeddings");
    let resized = crate::vocab::resize_embeddings(
        &model_in,
        &ctx.out.join("model"),
        &model_in.join("tokenizer.json"),
        &vocab_art.join("tokenizer.json"),
        init,
        seed,
    )?;
    Ok(json!({ "old_vocab": resized.old_rows, "new_vocab": resized.new_rows, "added": resized.n_new_tokens }))
}
