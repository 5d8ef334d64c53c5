//! The backend's half that needs no libtorch: model configs, errors, LR schedules, metric records.
//!
//! The engine itself (tensors, the Llama forward pass, AdamW, checkpoints, evaluation) is the
//! `cptc-torch` crate, the only code that links libtorch; the `cptc` command runs it as a worker
//! process (`crate::stages::worker`). What both sides, and the planner, need lives here:
//!
//! - [`LlamaConfig`]: a Hugging Face `config.json` of a Llama-family model, checked for what the
//!   engine supports; parameter counts for plan estimates.
//! - [`BackendError`]: every failure of loading, training, evaluating or saving, with stable
//!   `cptc::backend::*` codes; [`is_environment_error`] tells the machine's faults apart.
//! - [`schedule::lr_at`]: a pure function of the recipe's `LrSchedule`.
//! - [`metrics`]: the JSONL records of training and evaluation, FLOPs per token;
//!   [`eval::EvalResult`]: loss, perplexity and bits per byte from summed nats.

mod config;
mod error;
pub mod eval;
pub mod groups;
pub mod guard;
pub mod heldout;
pub mod hf_files;
pub mod metrics;
pub mod rope;
pub mod schedule;

pub use config::{ARCHS, Arch, LlamaConfig, Norms, QkNorm, RopeScaling, Sliding};
pub use error::{BackendError, Result, is_environment_error};
