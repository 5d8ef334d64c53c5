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
pub const VERSION: u64 = 2;

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

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let domain_share = match &p.domain_share {
        None => None,
        Some(Runtime::Known(v)) => Some(*v),
        Some(Runtime::From(r)) => {
            return Err(StageFailure::internal(format!("{r} was not resolved before the stage ran")));
        }
    };
    let mut sources = Vec::new();
    for (corpus, dir, _) in ctx.inputs_where(|i| match i {
        Input::Corpus(c) => Some(c),
        _ => None,
    }) {
        sources.push(data::mixture::Source {
            corpus: corpus.clone(),
            shard: data::shard::ShardReader::open(&dir.join("train"))?,
        });
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
    for _ in 0..sequences {
        let sampled = sampler.next_sequence()?;
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
    let stats = json!({ "sequences": sequences, "seq_len": length, "tokens": summary.tokens, "windows": windows, "epochs": epochs });
    write_json(&ctx.out.join("stats.json"), &stats)?;
    Ok(json!({ "sequences": sequences, "tokens": summary.tokens }))
}
