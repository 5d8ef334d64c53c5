//! The eval stage's parameters and version; it runs in the libtorch worker (`cptc-torch`,
//! `crates/torch/src/stages/eval.rs`).

use serde::{Deserialize, Serialize};

use super::DeviceClass;
use crate::recipe::{Metric, Precision};

pub const VERSION: u64 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub metrics: Vec<Metric>,
    /// Held-out text per set, in bytes.
    pub bytes: u64,
    pub seq_len: u64,
    /// Arithmetic and device: results differ by them, so both are in the key.
    pub precision: Precision,
    pub device: DeviceClass,
}
