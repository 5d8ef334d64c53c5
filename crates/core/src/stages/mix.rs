//! The mix stage: the training sequences of one train stage drawn from its mixture (shares,
//! ramp, seed), written as a shard of `seq_len + 1`-token sequences, with realized shares per
//! window.

use std::io::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Input, Runtime, StageCtx, StageFailure, ValueRef, write_json};
use crate::data;
use crate::recipe::{LongContext, Mixture};

/// v2: share windows sized to the run (about 40 per run), for the report's chart.
/// v3: documents any corpus holds out are never drawn (`excluded` per corpus); passes per
/// corpus (`epochs`), refused past its `max_epochs`.
pub const VERSION: u64 = 3;

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
        sources.push(data::mixture::Source { corpus: corpus.clone(), shard, skip });
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
    let names = sampler.corpus_names().to_vec();
    for _ in 0..sequences {
        let sampled = sampler.next_sequence()?;
        // Consecutive sequences share one token: count what is new.
        drawn[sampled.corpus] += sampled.seq.tokens.len().saturating_sub(1) as u64;
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
        .zip(drawn.iter().zip(&available))
        .map(|(n, (&d, &a))| (n.clone(), json!({ "drawn": d, "tokens": a, "epochs": d as f64 / a.max(1) as f64 })))
        .collect();
    let mut stats = json!({ "sequences": sequences, "seq_len": length, "tokens": summary.tokens, "windows": windows, "epochs": epochs, "sources": passes });
    // Written only when any, so a recipe whose corpora share no document keeps its artifact.
    if !excluded.is_empty() {
        stats["excluded"] = Value::Object(excluded);
    }
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(json!({ "sequences": sequences, "tokens": summary.tokens }))
}
