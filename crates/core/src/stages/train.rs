//! The train stage's parameters and version; it runs in the libtorch worker (`cptc-torch`,
//! `crates/torch/src/stages/train.rs`), which alone links tch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DeviceClass;
use crate::recipe::{Amount, Divergence, LongContext, LrSchedule, ParamGroup, Precision, Role};

/// v2: a final evaluation when the data runs out early.
/// v3: saved with its tokenizer files; `rope_theta` applied; checkpoints and resume.
pub const VERSION: u64 = 3;

/// The engine that trains: the built-in libtorch one (one device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Builtin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Which held-out sets measure the domain and which the general loss (for fits).
    pub roles: BTreeMap<String, Role>,
    /// The domain share when known before the run (a sweep point's), for fits.
    pub domain_share: Option<f64>,
    pub schedule: LrSchedule,
    pub tokens: u64,
    pub seq_len: u64,
    pub batch_tokens: u64,
    pub eval_every: Option<Amount>,
    /// Fractions of training at which to evaluate, besides `eval_every`.
    pub eval_at: Vec<f64>,
    pub eval_bytes: u64,
    pub seed: u64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Omitted from the key at its default: a guard never changes what is published.
    #[serde(default, skip_serializing_if = "Divergence::is_default")]
    pub divergence: Divergence,
    pub groups: Vec<ParamGroup>,
    pub long_context: Option<LongContext>,
    /// Arithmetic, device and engine: results differ by each, so all are in the key.
    pub precision: Precision,
    pub device: DeviceClass,
    pub engine: Engine,
}
