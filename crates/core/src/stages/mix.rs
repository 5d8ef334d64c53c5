//! The mix stage: the training sequences of one train stage drawn from its mixture (shares,
//! ramp, seed), written as a shard of `seq_len + 1`-token sequences, with realized shares per
//! window, and the data ledger (`ledger.json`, `ledger/<corpus>.docs`): where each corpus'
//! stream stands (its epoch and the documents consumed in it) and what every phase so far read.
//! A train stage that continues another (`model = <train>`) continues each shared corpus'
//! stream from its parent's ledger: no document is read again before the corpus is exhausted.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Input, Runtime, StageCtx, StageFailure, ValueRef, read_json, write_json};
use crate::data;
use crate::recipe::{LongContext, Mixture};
use crate::report::{DataPhase, DataRead};

/// v2: share windows sized to the run (about 40 per run), for the report's chart.
/// v3: documents any corpus holds out are never drawn (`excluded` per corpus); passes per
/// corpus (`epochs`), refused past its `max_epochs`.
/// v4: the data ledger; a continuing stage's streams go on from its parent's.
pub const VERSION: u64 = 4;

/// `ledger.json`: per corpus where its stream stands, and the phases so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub sources: BTreeMap<String, Stream>,
    pub phases: Vec<DataPhase>,
}

/// Where one corpus' stream stands after a phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stream {
    pub epoch: u64,
    /// Documents consumed in that epoch (their shard indices are in `ledger/<corpus>.docs`).
    pub consumed: u64,
}

fn docs_path(dir: &Path, corpus: &str) -> std::path::PathBuf {
    dir.join("ledger").join(format!("{corpus}.docs"))
}

impl Ledger {
    pub fn read(dir: &Path) -> Result<Ledger, StageFailure> {
        read_json(&dir.join("ledger.json"))
    }

    /// The documents consumed in `corpus`' current epoch (sorted shard indices).
    pub fn consumed(dir: &Path, corpus: &str) -> Result<Vec<u32>, StageFailure> {
        let path = docs_path(dir, corpus);
        let bytes = std::fs::read(&path).map_err(|e| StageFailure::of(data::DataError::io("read", &path, e)))?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn write_docs(dir: &Path, corpus: &str, docs: &[u32]) -> Result<(), StageFailure> {
        let path = docs_path(dir, corpus);
        let io = |e| StageFailure::of(data::DataError::io("write", &path, e));
        std::fs::create_dir_all(dir.join("ledger")).map_err(io)?;
        let bytes: Vec<u8> = docs.iter().flat_map(|d| d.to_le_bytes()).collect();
        std::fs::write(&path, bytes).map_err(io)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub mixture: Mixture,
    /// Tokens to draw: the train stage's budget in whole steps.
    pub tokens: u64,
    pub seq_len: u64,
    pub seed: u64,
    pub long_context: Option<LongContext>,
    /// Overrides the mixture's final domain share (a sweep point, a chosen ratio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_share: Option<Runtime<f64>>,
    /// Per corpus of the mixture, the passes over its training side the stage may draw.
    pub max_epochs: std::collections::BTreeMap<String, f64>,
}

impl Params {
    pub(super) fn waits_for(&self) -> Vec<&ValueRef> {
        match &self.domain_share {
            Some(Runtime::From(r)) => vec![r],
            _ => Vec::new(),
        }
    }

    pub(super) fn resolve(&mut self, value: &ValueRef, got: &Value) -> Result<(), String> {
        if let Some(Runtime::From(r)) = &self.domain_share
            && r == value
        {
            let share = got
                .as_f64()
                .filter(|s| (0.0..=1.0).contains(s))
                .ok_or_else(|| format!("{value} = {got} is not a share in [0, 1]"))?;
            self.domain_share = Some(Runtime::Known(share));
        }
        Ok(())
    }
}

/// Fails once `corpus` has given more than its `max_epochs` passes over its `available`
/// tokens: past a few repeats more passes stop helping, and silent extra epochs are a classic
/// surprise of mixture changes.
fn over_limit(p: &Params, corpus: &str, drawn: u64, available: u64) -> Result<(), StageFailure> {
    let Some(&limit) = p.max_epochs.get(corpus) else { return Ok(()) };
    if (drawn as f64) <= limit * available as f64 {
        return Ok(());
    }
    Err(StageFailure::input(
        format!(
            "mixture `{}` reads corpus `{corpus}` more than {limit} times over (max_epochs): its training side holds {available} tokens, and {drawn} of the stage's {} were drawn from it before it was done",
            p.mixture.name, p.tokens
        ),
        Some(format!(
            "add text to `{corpus}`, lower its share or the stage's `tokens`, or allow more passes with `max_epochs = ...` in corpus `{corpus}` (`cptc plan` shows the passes per source)"
        )),
    ))
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let domain_share = match &p.domain_share {
        None => None,
        Some(Runtime::Known(v)) => Some(*v),
        Some(Runtime::From(r)) => {
            return Err(StageFailure::internal(format!("{r} was not resolved before the stage ran")));
        }
    };
    // A document held out anywhere in the recipe (by its normalized hash) is trained on nowhere.
    let mut held = std::collections::HashSet::new();
    for ((), dir, _) in ctx.inputs_where(|i| matches!(i, Input::Exclude(_)).then_some(())) {
        super::split::heldout_keys(dir, &mut held)?;
    }
    // The phase this one continues: each shared corpus' stream goes on where it stood.
    let parent = ctx.optional(&Input::Ledger).map(|(dir, _)| Ledger::read(dir).map(|l| (dir, l))).transpose()?;
    let mut sources = Vec::new();
    let mut excluded = serde_json::Map::new();
    // Training tokens each source can give, and how many the stage has drawn from it.
    let mut available: Vec<u64> = Vec::new();
    for (corpus, dir, _) in ctx.inputs_where(|i| match i {
        Input::Corpus(c) => Some(c),
        _ => None,
    }) {
        let shard = data::shard::ShardReader::open(&dir.join("train"))?;
        let keys = super::tokenize::train_keys(dir)?;
        if keys.len() != shard.len() {
            return Err(StageFailure::internal(format!(
                "{}: {} document keys for {} documents",
                dir.display(),
                keys.len(),
                shard.len()
            )));
        }
        let skip: Vec<u32> =
            keys.iter().enumerate().filter(|(_, k)| held.contains(*k)).map(|(i, _)| i as u32).collect();
        if !skip.is_empty() {
            excluded.insert(corpus.clone(), json!(skip.len()));
        }
        let skipped: u64 = skip.iter().map(|&d| u64::from(shard.doc_len(d as usize))).sum();
        available.push(shard.num_tokens().saturating_sub(skipped));
        let continues = match &parent {
            Some((dir, ledger)) => match ledger.sources.get(corpus) {
                Some(stream) => Some((stream.epoch, Ledger::consumed(dir, corpus)?)),
                None => None,
            },
            None => None,
        };
        sources.push(data::mixture::Source { corpus: corpus.clone(), shard, skip, continues });
    }
    let vocab = sources.iter().map(|s| s.shard.dtype()).max_by_key(|d| d.size());
    let length = p.long_context.map_or(p.seq_len, |lc| lc.target_len);
    let sequences = p.tokens.div_ceil(length.max(1));
    let config = data::mixture::SamplerConfig {
        mixture: p.mixture.clone(),
        domain_share,
        total_tokens: p.tokens,
        seq_len: p.seq_len,
        seed: p.seed,
        long_context: p.long_context,
        // About 40 windows per run (at most 1000 sequences each): enough points to see a ramp.
        window: (sequences / 40).clamp(8, 1000),
    };
    let mut sampler = data::mixture::Sampler::new(config, sources)?;
    let vocab_for_dtype = match vocab {
        Some(data::shard::TokenDtype::U16) | None => 65_000,
        Some(_) => u64::from(u32::MAX),
    };
    let mut writer = data::shard::ShardWriter::create(&ctx.out.join("train"), vocab_for_dtype)?;
    let spans_file = fs_err::File::create(ctx.out.join("spans.jsonl"))?;
    let mut spans = std::io::BufWriter::new(spans_file);
    let mut windows = Vec::new();
    let mut epochs = Vec::new();
    ctx.progress.set_length(sequences);
    let mut drawn = vec![0u64; available.len()];
    // Documents begun per source (the last one, so the one-token overlap is not a new read).
    let mut documents = vec![0u64; available.len()];
    let mut last_doc: Vec<Option<u64>> = vec![None; available.len()];
    let names = sampler.corpus_names().to_vec();
    for _ in 0..sequences {
        let sampled = sampler.next_sequence()?;
        // Consecutive sequences share one token: count what is new.
        drawn[sampled.corpus] += sampled.seq.tokens.len().saturating_sub(1) as u64;
        for span in &sampled.seq.spans {
            if span.doc_start == 0 && last_doc[sampled.corpus] != Some(span.doc) {
                documents[sampled.corpus] += 1;
            }
            last_doc[sampled.corpus] = Some(span.doc);
        }
        over_limit(p, &names[sampled.corpus], drawn[sampled.corpus], available[sampled.corpus])?;
        writer.add_document(&sampled.seq.tokens)?;
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
    spans.flush()?;
    let last = sampler.window_stats();
    if last.sequences > 0 {
        windows.push(serde_json::to_value(last)?);
    }
    let summary = writer.finish()?;
    let passes: serde_json::Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (d, a) = (drawn[i], available[i]);
            (
                n.clone(),
                json!({ "drawn": d, "tokens": a, "epochs": d as f64 / a.max(1) as f64, "documents": documents[i] }),
            )
        })
        .collect();
    // The ledger: this phase's streams, the parent's for corpora this phase did not read.
    let mut ledger = Ledger::default();
    if let Some((dir, before)) = &parent {
        for (corpus, stream) in &before.sources {
            if !names.contains(corpus) {
                Ledger::write_docs(ctx.out, corpus, &Ledger::consumed(dir, corpus)?)?;
                ledger.sources.insert(corpus.clone(), stream.clone());
            }
        }
        ledger.phases.clone_from(&before.phases);
    }
    let mut phase = DataPhase { stage: ctx.id.name.clone(), sources: BTreeMap::new() };
    for (i, (epoch, docs)) in sampler.consumed().into_iter().enumerate() {
        Ledger::write_docs(ctx.out, &names[i], &docs)?;
        ledger.sources.insert(names[i].clone(), Stream { epoch, consumed: docs.len() as u64 });
        let epochs = drawn[i] as f64 / available[i].max(1) as f64;
        phase.sources.insert(names[i].clone(), DataRead { tokens: drawn[i], documents: documents[i], epochs });
    }
    ledger.phases.push(phase);
    write_json(&ctx.out.join("ledger.json"), &ledger)?;
    let mut stats = json!({ "sequences": sequences, "seq_len": length, "tokens": summary.tokens, "windows": windows, "epochs": epochs, "sources": passes });
    // Written only when any, so a recipe whose corpora share no document keeps its artifact.
    if !excluded.is_empty() {
        stats["excluded"] = Value::Object(excluded);
    }
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(json!({ "sequences": sequences, "tokens": summary.tokens }))
}
