//! Held-out evaluation: loss, perplexity and bits per byte over token sequences.

use serde::{Deserialize, Serialize};

use super::error::Result;
use super::metrics::EvalRecord;
use super::model::Llama;
use super::train::{Example, sum_nats};

/// One held-out sequence and the UTF-8 byte length of the text its counted targets cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalExample {
    pub example: Example,
    pub bytes: u64,
}

/// Totals and the metrics derived from them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean nats per counted target token.
    pub loss: f64,
    pub ppl: f64,
    /// Total nats / (ln 2 x total bytes): comparable across tokenizers; `None` without bytes.
    pub bpb: Option<f64>,
    pub nats: f64,
    pub tokens: u64,
    pub bytes: u64,
}

impl EvalResult {
    /// From summed nats, counted tokens and text bytes.
    pub fn from_totals(nats: f64, tokens: u64, bytes: u64) -> Self {
        let loss = if tokens == 0 { f64::NAN } else { nats / tokens as f64 };
        let bpb = (bytes > 0).then(|| nats / (std::f64::consts::LN_2 * bytes as f64));
        Self { loss, ppl: loss.exp(), bpb, nats, tokens, bytes }
    }

    /// The JSONL record of this result for set `set` at training step `step`.
    pub fn record(&self, step: u64, set: &str) -> EvalRecord {
        EvalRecord {
            kind: "eval",
            step,
            set: set.to_owned(),
            loss: self.loss,
            ppl: self.ppl,
            bpb: self.bpb,
            tokens: self.tokens,
            bytes: self.bytes,
        }
    }
}

/// Evaluates `model` on `examples`, `micro_batch` sequences of equal length per forward pass,
/// without gradients, in the model's precision. Token sums are accumulated in float64.
pub fn evaluate<I>(model: &Llama, examples: I, micro_batch: usize) -> Result<EvalResult>
where
    I: IntoIterator<Item = EvalExample>,
{
    let vocab = model.config().vocab_size;
    let (mut nats, mut tokens, mut bytes) = (0.0, 0u64, 0u64);
    let mut pending: Vec<Example> = Vec::new();
    let mut flush = |pending: &mut Vec<Example>| -> Result<()> {
        if !pending.is_empty() {
            let (n, t) = sum_nats(model, pending)?;
            nats += n;
            tokens += t;
            pending.clear();
        }
        Ok(())
    };
    for (i, e) in examples.into_iter().enumerate() {
        e.example.validate(i as u64, vocab, None)?;
        bytes += e.bytes;
        let same_len = pending.first().is_none_or(|p| p.input.len() == e.example.input.len());
        if !same_len || pending.len() >= micro_batch.max(1) {
            flush(&mut pending)?;
        }
        pending.push(e.example);
    }
    flush(&mut pending)?;
    Ok(EvalResult::from_totals(nats, tokens, bytes))
}
