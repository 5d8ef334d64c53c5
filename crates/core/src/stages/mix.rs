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
use crate::recipe::{Clock, LongContext, Mixture};
use crate::report::{DataPhase, DataRead};

/// v2: share windows sized to the run (about 40 per run), for the report's chart.
/// v3: documents any corpus holds out are never drawn (`excluded` per corpus); passes per
/// corpus (`epochs`), refused past its `max_epochs`.
/// v4: the data ledger; a continuing stage's streams go on from its parent's.
/// v5: passes counted against what one pass gives (long context's short documents at their
/// keep rate), in `max_epochs`, the ledger and `stats.json`.
pub const VERSION: u64 = 5;

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
        read_u32s(&docs_path(dir, corpus))
    }

    fn write_docs(dir: &Path, corpus: &str, docs: &[u32]) -> Result<(), StageFailure> {
        write_u32s(&docs_path(dir, corpus), docs)
    }

    /// Writes into `dir` the ledger after this phase's reads: the streams of the corpora it
    /// read (`consumed`, per name), the earlier ledger's for the others, and its phases plus
    /// this one.
    fn write_after(
        dir: &Path,
        before: Option<&(std::path::PathBuf, Ledger)>,
        names: &[String],
        consumed: Vec<(u64, Vec<u32>)>,
        phase: DataPhase,
    ) -> Result<(), StageFailure> {
        let mut ledger = Ledger::default();
        if let Some((from, before)) = before {
            for (corpus, stream) in &before.sources {
                if !names.contains(corpus) {
                    Ledger::write_docs(dir, corpus, &Ledger::consumed(from, corpus)?)?;
                    ledger.sources.insert(corpus.clone(), stream.clone());
                }
            }
            ledger.phases.clone_from(&before.phases);
        }
        for (name, (epoch, docs)) in names.iter().zip(consumed) {
            Ledger::write_docs(dir, name, &docs)?;
            ledger.sources.insert(name.clone(), Stream { epoch, consumed: docs.len() as u64 });
        }
        ledger.phases.push(phase);
        write_json(&dir.join("ledger.json"), &ledger)
    }
}

fn write_u32s(path: &Path, values: &[u32]) -> Result<(), StageFailure> {
    let io = |e| StageFailure::of(data::DataError::io("write", path, e));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let bytes: Vec<u8> = values.iter().flat_map(|d| d.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(io)
}

fn read_u32s(path: &Path) -> Result<Vec<u32>, StageFailure> {
    let bytes = std::fs::read(path).map_err(|e| StageFailure::of(data::DataError::io("read", path, e)))?;
    Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// `points/<n>/sampler.json`: the streams after `n` sequences, where a fork starts. With it in
/// that folder: `continues/<corpus>.docs` (what each source's stream began this stage with)
/// and the ledger as of that point (`ledger.json`, `ledger/`).
#[derive(Debug, Serialize, Deserialize)]
struct Point {
    state: data::mixture::SamplerState,
    sources: Vec<String>,
    parts: Vec<(crate::recipe::Role, Vec<String>)>,
    /// Per source, the epoch its stream began this stage in.
    continues: Vec<u64>,
}

fn point_dir(mix: &Path, sequences: u64) -> std::path::PathBuf {
    mix.join("points").join(sequences.to_string())
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
    /// Sequence counts at which the streams' state is kept (`points/<n>/`): where forks of
    /// this stage's train start. Absent from the key when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<u64>,
    /// A fork's mix: it goes on from its parent mix's streams (`Input::ForkData`) as they stood
    /// after `at` sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<MixFork>,
}

/// Where a fork's data starts, and whose clock its ramp counts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MixFork {
    /// Sequences the parent drew before the fork's point.
    pub at: u64,
    pub clock: crate::recipe::Clock,
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

/// The keys of the documents the split artifacts in `dirs` hold out.
pub fn held_keys<'a>(
    dirs: impl IntoIterator<Item = &'a Path>,
) -> Result<std::collections::HashSet<data::split::DocKey>, StageFailure> {
    let mut held = std::collections::HashSet::new();
    for dir in dirs {
        super::split::heldout_keys(dir, &mut held)?;
    }
    Ok(held)
}

/// A corpus' training side as the mixture reads it.
pub struct Supply {
    /// Its documents another corpus of the recipe holds out (ascending): never drawn.
    pub skip: Vec<u32>,
    /// The tokens one pass over the rest gives, short documents counted at their long-context
    /// keep rate (each pass keeps one with that probability): what `max_epochs` counts passes of.
    pub per_pass: u64,
}

/// The [`Supply`] of the tokenize artifact in `dir` (its training shard `shard`), given the
/// keys `held` out elsewhere and the train's long-context setting. Reads the documents' keys
/// only when anything is held out, their lengths only when any is skipped or thinned.
pub fn supply(
    dir: &Path,
    shard: &data::shard::ShardReader,
    held: &std::collections::HashSet<data::split::DocKey>,
    long_context: Option<&LongContext>,
) -> Result<Supply, StageFailure> {
    let mut skip = Vec::new();
    if !held.is_empty() {
        let keys = super::tokenize::visit_train_keys(dir, |i, k| {
            if held.contains(k) {
                skip.push(i as u32);
            }
        })?;
        if keys != shard.len() {
            return Err(StageFailure::internal(format!(
                "{}: {keys} document keys for {} documents",
                dir.display(),
                shard.len()
            )));
        }
    }
    let thinned = long_context.filter(|lc| lc.keep_short < 1.0);
    if skip.is_empty() && thinned.is_none() {
        return Ok(Supply { skip, per_pass: shard.num_tokens() });
    }
    let mut skipped = skip.iter().peekable();
    let mut per_pass = 0.0f64;
    for d in 0..shard.len() {
        if skipped.next_if(|&&s| s as usize == d).is_some() {
            continue;
        }
        let len = shard.doc_len(d);
        per_pass += match thinned {
            Some(lc) if u64::from(len) < lc.short_below => f64::from(len) * lc.keep_short.max(0.0),
            _ => f64::from(len),
        };
    }
    Ok(Supply { skip, per_pass: per_pass.round() as u64 })
}

/// Fails once `corpus` has given more than its `max_epochs` passes of `available` tokens each
/// ([`Supply::per_pass`]), `drawn` counting the earlier phases' draws from the same stream
/// (`earlier`: there were any): past a few repeats more passes stop helping, and silent extra
/// epochs are a classic surprise of mixture changes and of training in phases.
fn over_limit(p: &Params, corpus: &str, drawn: u64, available: u64, earlier: bool) -> Result<(), StageFailure> {
    let Some(&limit) = p.max_epochs.get(corpus) else { return Ok(()) };
    if (drawn as f64) <= limit * available as f64 {
        return Ok(());
    }
    let phases = if earlier { " (with the phases before this one)" } else { "" };
    Err(StageFailure::input(
        format!(
            "mixture `{}` reads corpus `{corpus}` more than {limit} times over (max_epochs): one pass over its training side gives {available} tokens, and {drawn}{phases} were drawn from it before the stage's {} were",
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
    let held = held_keys(ctx.inputs_where(|i| matches!(i, Input::Exclude(_)).then_some(())).map(|((), dir, _)| dir))?;
    // A fork goes on from its parent's streams at its point; a phase continuing another from
    // the streams where that one ended. Either way each shared corpus goes on where it stood.
    let fork = match &p.fork {
        Some(f) => {
            let dir = point_dir(ctx.input(&Input::ForkData)?.0, f.at);
            let point: Point = read_json(&dir.join("sampler.json"))?;
            Some((point, dir))
        }
        None => None,
    };
    let parent: Option<(std::path::PathBuf, Ledger)> = match (&fork, ctx.optional(&Input::Ledger)) {
        (Some((_, dir)), _) => Some((dir.clone(), Ledger::read(dir)?)),
        (None, Some((dir, _))) => Some((dir.to_path_buf(), Ledger::read(dir)?)),
        (None, None) => None,
    };
    let mut sources = Vec::new();
    let mut excluded = serde_json::Map::new();
    // Training tokens each source can give, and how many the stage has drawn from it.
    let mut available: Vec<u64> = Vec::new();
    for (corpus, dir, _) in ctx.inputs_where(|i| match i {
        Input::Corpus(c) => Some(c),
        _ => None,
    }) {
        let shard = data::shard::ShardReader::open(&dir.join("train"))?;
        let Supply { skip, per_pass } = supply(dir, &shard, &held, p.long_context.as_ref())?;
        if !skip.is_empty() {
            excluded.insert(corpus.clone(), json!(skip.len()));
        }
        available.push(per_pass);
        // A source the fork's parent drew from is rebuilt as the parent built it, then put at
        // its cursor (`Sampler::adopt`); any other continues from the ledger.
        let forked = match &fork {
            Some((point, dir)) => match point.sources.iter().position(|n| n == corpus) {
                Some(k) => {
                    let epoch = point.continues.get(k).copied().ok_or_else(|| {
                        StageFailure::internal(format!("{}: no continuation for `{corpus}`", dir.display()))
                    })?;
                    Some((epoch, dir.join("continues").join(format!("{corpus}.docs"))))
                }
                None => None,
            },
            None => None,
        };
        let continues = match (forked, &parent) {
            (Some((epoch, docs)), _) => Some((epoch, read_u32s(&docs)?)),
            (None, Some((dir, ledger))) => match ledger.sources.get(corpus) {
                Some(stream) => Some((stream.epoch, Ledger::consumed(dir, corpus)?)),
                None => None,
            },
            (None, None) => None,
        };
        sources.push(data::mixture::Source { corpus: corpus.clone(), shard, skip, continues });
    }
    let vocab = sources.iter().map(|s| s.shard.dtype()).max_by_key(|d| d.size());
    // A masked corpus' loss masks follow its tokens into the sequences.
    let masked = sources.iter().any(|s| s.shard.masked());
    let length = p.long_context.map_or(p.seq_len, |lc| lc.target_len);
    let sequences = p.tokens.div_ceil(length.max(1));
    // The ramp's clock: a fork on its parent's spans the parent's sequences before it too.
    let (total_tokens, origin) = match p.fork {
        None => (p.tokens, 0),
        Some(MixFork { at, clock: Clock::Continue }) => (at * length + p.tokens, 0),
        Some(MixFork { at, clock: Clock::Restart }) => (p.tokens, at),
    };
    let config = data::mixture::SamplerConfig {
        mixture: p.mixture.clone(),
        domain_share,
        total_tokens,
        origin,
        seq_len: p.seq_len,
        seed: p.seed,
        long_context: p.long_context,
        // About 40 windows per run (at most 1000 sequences each): enough points to see a ramp.
        window: (sequences / 40).clamp(8, 1000),
    };
    let mut sampler = data::mixture::Sampler::new(config, sources)?;
    if let Some((point, _)) = &fork {
        sampler.adopt(&point.state, &point.sources, &point.parts)?;
    }
    let vocab_for_dtype = match vocab {
        Some(data::shard::TokenDtype::U16) | None => 65_000,
        Some(_) => u64::from(u32::MAX),
    };
    let mut writer = if masked {
        data::shard::ShardWriter::create_masked(&ctx.out.join("train"), vocab_for_dtype)?
    } else {
        data::shard::ShardWriter::create(&ctx.out.join("train"), vocab_for_dtype)?
    };
    let mut mask = Vec::new();
    // Tokens that are training targets (a sequence's first token is an input only).
    let mut targets = 0u64;
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
    // What the phases before this one (a continued or forked train's) drew from the same
    // streams: `max_epochs` bounds a corpus' passes over the whole run, not each phase's.
    let earlier: Vec<u64> = names
        .iter()
        .map(|n| {
            parent.as_ref().map_or(0, |(_, ledger)| {
                ledger.phases.iter().filter_map(|ph| ph.sources.get(n)).map(|r| r.tokens).sum()
            })
        })
        .collect();
    let phase = |drawn: &[u64], documents: &[u64]| DataPhase {
        stage: ctx.id.name.clone(),
        sources: names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let epochs = drawn[i] as f64 / available[i].max(1) as f64;
                (n.clone(), DataRead { tokens: drawn[i], documents: documents[i], epochs })
            })
            .collect(),
    };
    // The streams where a fork of this stage's train starts: kept with the ledger as of then.
    let keep_point = |sampler: &data::mixture::Sampler, drawn: &[u64], documents: &[u64]| {
        let dir = point_dir(ctx.out, sampler.position());
        let continuations = sampler.continuations();
        for (name, (_, docs)) in names.iter().zip(&continuations) {
            write_u32s(&dir.join("continues").join(format!("{name}.docs")), docs)?;
        }
        let point = Point {
            state: sampler.state(),
            sources: names.clone(),
            parts: sampler.part_corpora(),
            continues: continuations.iter().map(|(e, _)| *e).collect(),
        };
        write_json(&dir.join("sampler.json"), &point)?;
        Ledger::write_after(&dir, parent.as_ref(), &names, sampler.consumed(), phase(drawn, documents))
    };
    for _ in 0..sequences {
        if p.keep.contains(&sampler.position()) {
            keep_point(&sampler, &drawn, &documents)?;
        }
        let sampled = sampler.next_sequence()?;
        // Consecutive sequences share one token: count what is new.
        drawn[sampled.corpus] += sampled.seq.tokens.len().saturating_sub(1) as u64;
        for span in &sampled.seq.spans {
            if span.doc_start == 0 && last_doc[sampled.corpus] != Some(span.doc) {
                documents[sampled.corpus] += 1;
            }
            last_doc[sampled.corpus] = Some(span.doc);
        }
        let c = sampled.corpus;
        over_limit(p, &names[c], earlier[c] + drawn[c], available[c], earlier[c] > 0)?;
        let shard = sampler.shard(sampled.corpus);
        if shard.masked() {
            mask.clear();
            for span in &sampled.seq.spans {
                shard.read_mask_range(span.doc as usize, span.doc_start, span.len, &mut mask)?;
            }
            writer.add_masked(&sampled.seq.tokens, &mask)?;
            targets += mask.iter().skip(1).filter(|&&m| m != 0).count() as u64;
        } else {
            writer.add_document(&sampled.seq.tokens)?;
            targets += sampled.seq.tokens.len().saturating_sub(1) as u64;
        }
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
    if p.keep.contains(&sampler.position()) {
        keep_point(&sampler, &drawn, &documents)?;
    }
    // The ledger: this phase's streams, the parent's for corpora this phase did not read.
    Ledger::write_after(ctx.out, parent.as_ref(), &names, sampler.consumed(), phase(&drawn, &documents))?;
    let mut stats = json!({ "sequences": sequences, "seq_len": length, "tokens": summary.tokens, "windows": windows, "epochs": epochs, "sources": passes });
    // Written only when any, so a recipe whose corpora share no document keeps its artifact.
    if !excluded.is_empty() {
        stats["excluded"] = Value::Object(excluded);
    }
    if masked {
        stats["targets"] = json!(targets);
    }
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(json!({ "sequences": sequences, "tokens": summary.tokens }))
}
