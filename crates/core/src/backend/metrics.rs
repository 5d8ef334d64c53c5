//! Metric records (one JSON object per line), training throughput and model FLOPs utilisation.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::config::LlamaConfig;
use super::error::{BackendError, Result};

/// One optimizer step, as logged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainRecord {
    pub kind: &'static str,
    pub step: u64,
    /// Input tokens trained on so far.
    pub tokens: u64,
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub step_time_s: f64,
    pub tokens_per_s: f64,
    /// Model FLOPs utilisation, when the device's peak is known.
    pub mfu: Option<f64>,
}

/// Held-out evaluation of one set at one step, as logged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalRecord {
    pub kind: &'static str,
    pub step: u64,
    pub set: String,
    pub loss: f64,
    pub ppl: f64,
    pub bpb: Option<f64>,
    pub tokens: u64,
    pub bytes: u64,
}

/// Training FLOPs per token: `6 N + 12 L d_attn T` (Chinchilla/PaLM accounting), where `N`
/// counts the matmul parameters (the head included even when tied, the embedding lookup not)
/// and the second term is attention's score and value products at sequence length `T`.
pub fn flops_per_token(cfg: &LlamaConfig, seq_len: usize) -> f64 {
    // n_params counts the embedding once, plus the head when untied: drop the lookup table.
    let lookup = if cfg.tie_word_embeddings { 0 } else { cfg.vocab_size * cfg.hidden_size };
    let matmul_params = cfg.n_params() - lookup;
    let attn = 12 * cfg.num_hidden_layers * cfg.q_dim() * seq_len as i64;
    6.0 * matmul_params as f64 + attn as f64
}

/// Turns step timings into records with tokens/s and MFU.
pub struct Throughput {
    flops_per_token: f64,
    peak_flops: Option<f64>,
}

impl Throughput {
    pub fn new(cfg: &LlamaConfig, seq_len: usize, peak_flops: Option<f64>) -> Self {
        Self { flops_per_token: flops_per_token(cfg, seq_len), peak_flops }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        step: u64,
        tokens_seen: u64,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        step_tokens: u64,
        secs: f64,
    ) -> TrainRecord {
        let tokens_per_s = step_tokens as f64 / secs.max(1e-9);
        TrainRecord {
            kind: "train",
            step,
            tokens: tokens_seen,
            loss,
            lr,
            grad_norm,
            step_time_s: secs,
            tokens_per_s,
            mfu: self.peak_flops.map(|p| tokens_per_s * self.flops_per_token / p),
        }
    }
}

/// Appends records to a JSONL file, one object per line, flushed after each.
pub struct JsonlWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlWriter {
    pub fn append(path: &Path) -> Result<Self> {
        let file =
            OpenOptions::new().create(true).append(true).open(path).map_err(|e| BackendError::io("open", path, e))?;
        Ok(Self { path: path.to_owned(), out: BufWriter::new(file) })
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| BackendError::io("write", &self.path, e))
    }
}
