//! The result of a held-out evaluation: loss, perplexity and bits per byte from summed nats.

use serde::{Deserialize, Serialize};

use super::metrics::EvalRecord;

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
    /// Text bytes the bits per byte divide by: the evaluated text's, less `unencodable_bytes`.
    pub bytes: u64,
    /// Bytes of the evaluated text no token covers (a byte-level vocabulary lacking them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unencodable_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl EvalResult {
    /// From summed nats, counted tokens and text bytes.
    pub fn from_totals(nats: f64, tokens: u64, bytes: u64) -> Self {
        let loss = if tokens == 0 { f64::NAN } else { nats / tokens as f64 };
        let bpb = (bytes > 0).then(|| nats / (std::f64::consts::LN_2 * bytes as f64));
        Self { loss, ppl: loss.exp(), bpb, nats, tokens, bytes, unencodable_bytes: 0 }
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
