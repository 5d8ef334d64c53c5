//! The stage kinds that need libtorch, run by the worker: their parameters and versions are in
//! `cptc::stages`, as every kind's are, so keys and plans never need this crate.

pub mod eval;
pub mod train;

use cptc::stages::worker::WorkerParams;
use cptc::stages::{StageCtx, StageFailure};
use serde_json::Value;

/// Runs a stage the worker was asked to run.
pub fn run(params: &WorkerParams, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    match params {
        WorkerParams::Train(p) => train::run(p, ctx),
        WorkerParams::Eval(p) => eval::run(p, ctx),
    }
}
