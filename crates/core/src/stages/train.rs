//! The train stage's parameters and version; it runs in the libtorch worker (`cptc-torch`,
//! `crates/torch/src/stages/train.rs`), which alone links tch.

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DeviceClass, Input, StageCtx, StageFailure, model_dir, read_json, write_json};
use crate::recipe::{Amount, Clock, Divergence, LongContext, LrSchedule, ParamGroup, Precision, Role, RopeExtension};
use crate::store::Meta;

/// v2: a final evaluation when the data runs out early.
/// v3: saved with its tokenizer files; `rope_theta` applied; checkpoints and resume.
/// (RoPE scalings came without a version change: recipes without one keep their keys.)
pub const VERSION: u64 = 3;

pub use crate::recipe::Engine;

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
    /// Long-context RoPE scaling; absent from the key when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope: Option<RopeExtension>,
    /// Arithmetic, device and engine: results differ by each, so all are in the key.
    pub precision: Precision,
    pub device: DeviceClass,
    pub engine: Engine,
    /// Steps whose whole state (weights, AdamW moments, RNG) the stage keeps in its artifact
    /// (`points/step-NNNNNNNN`), because forks start there. Absent from the key when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<u64>,
    /// A fork: the parent's step it starts from (the parent is its `Input::Fork`) and whose
    /// clock its schedule counts. `tokens` are the fork's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkStart>,
}

/// Where a fork starts: its parent's state after `step` steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForkStart {
    pub step: u64,
    pub clock: Clock,
}

impl Params {
    /// The step this stage starts from (0, or a fork's start) and the step its LR schedule
    /// counts from (its step 0): a fork on its parent's clock counts from the parent's start,
    /// so its schedule spans the parent's steps before it plus its own.
    pub fn schedule_span(&self) -> (u64, u64) {
        match self.fork {
            None => (0, 0),
            Some(ForkStart { step, clock: Clock::Continue }) => (step, 0),
            Some(ForkStart { step, clock: Clock::Restart }) => (step, step),
        }
    }
}

/// The folder of a kept state in a train artifact.
pub fn point_dir(artifact: &Path, step: u64) -> PathBuf {
    artifact.join("points").join(format!("step-{step:08}"))
}

impl Params {
    /// The steps that evaluate besides step 0 and the last: `eval_at`'s fractions and every
    /// `eval_every`, of a run of `total` steps of `tokens_per_step` tokens.
    pub fn eval_steps(&self, total: u64, tokens_per_step: u64) -> Vec<u64> {
        let mut steps: Vec<u64> =
            self.eval_at.iter().map(|f| ((f * total as f64).round() as u64).clamp(1, total)).collect();
        if let Some(every) = self.eval_every {
            let k = match every {
                Amount::Fraction(f) => ((f * total as f64).round() as u64).max(1),
                Amount::Steps(s) => s.max(1),
                Amount::Tokens(t) => t.div_ceil(tokens_per_step).max(1),
            };
            steps.extend((1..=total).filter(|s| s % k == 0));
        }
        steps.sort_unstable();
        steps.dedup();
        steps
    }
}

/// The starting model's folder, checked for what any engine needs before it trains: its
/// tokenizer (saved with the trained model; missing, it would fail only after training) and
/// positions that cover `seq_len`, unless the recipe says this is long-context training.
pub fn start_model<'c>(p: &Params, ctx: &'c StageCtx<'_>) -> Result<(PathBuf, &'c Meta), StageFailure> {
    let (model_art, model_meta) = ctx.input(&Input::Model)?;
    let dir = model_dir(model_art)?;
    if !dir.join("tokenizer.json").is_file() {
        return Err(StageFailure::input(
            format!("{} has no tokenizer.json", dir.display()),
            Some("a model to train needs its tokenizer beside it (a Hugging Face folder)".into()),
        ));
    }
    // Past the positions the base was trained on, RoPE still computes, but the model has never
    // seen those distances: that is long-context training, which the recipe must say it is.
    let config: Value = read_json(&dir.join("config.json"))?;
    let positions = config.get("max_position_embeddings").and_then(Value::as_u64);
    if let Some(positions) = positions
        && p.long_context.is_none()
        && p.seq_len > positions
    {
        return Err(StageFailure::input(
            format!(
                "`seq_len` {} is past the {positions} positions the model was trained on (`max_position_embeddings`)",
                p.seq_len
            ),
            Some("train at most that long, or add a `long_context { ... }` block (with a larger `rope_theta`)".into()),
        ));
    }
    Ok((dir, model_meta))
}

/// Where a train stage logs: its own folder, or the resume folder when it checkpoints (the
/// logs must outlive a killed run as its checkpoints do).
pub struct RunFiles {
    pub metrics: PathBuf,
    pub evals: PathBuf,
    pub checkpoints: Option<PathBuf>,
}

impl RunFiles {
    pub fn of(ctx: &StageCtx<'_>) -> Result<Self, StageFailure> {
        if ctx.checkpoint_every.is_none() {
            return Ok(RunFiles {
                metrics: ctx.out.join("metrics.jsonl"),
                evals: ctx.out.join("evals.jsonl"),
                checkpoints: None,
            });
        };
        let dir = &ctx.resume_dir;
        fs_err::create_dir_all(dir)?;
        Ok(RunFiles {
            metrics: dir.join("metrics.jsonl"),
            evals: dir.join("evals.jsonl"),
            checkpoints: Some(dir.join("checkpoints")),
        })
    }

    /// The newest checkpoint, if a run of this key was cut short after writing one.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        checkpoints(self.checkpoints.as_ref()?).ok()?.pop()
    }

    /// Keeps the log lines of steps up to `step` (what happened before the checkpoint resumed
    /// from; a line cut by the kill goes too) and returns them.
    pub fn rewind(path: &Path, step: Option<u64>) -> Result<Vec<Value>, StageFailure> {
        let kept: Vec<Value> = match (step, std::fs::read_to_string(path)) {
            (Some(step), Ok(text)) => text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v.get("step").and_then(Value::as_u64).is_some_and(|s| s <= step))
                .collect(),
            _ => Vec::new(),
        };
        let text: String = kept.iter().map(|v| format!("{v}\n")).collect();
        // Aside, then renamed: a kill here must not leave the log emptied beside a checkpoint.
        crate::store::write_atomic(path, text.as_bytes())?;
        Ok(kept)
    }

    /// Publishes the logs into the stage's folder: the metrics, and the evaluations as
    /// `evals.json` (their log is only for resuming).
    pub fn publish(&self, ctx: &StageCtx<'_>, evals: &[Value]) -> Result<(), StageFailure> {
        if self.metrics != ctx.out.join("metrics.jsonl") {
            fs_err::copy(&self.metrics, ctx.out.join("metrics.jsonl"))?;
        }
        let _ = std::fs::remove_file(ctx.out.join("evals.jsonl"));
        write_json(&ctx.out.join("evals.json"), &evals)
    }
}

/// The `step-NNNNNNNN` checkpoints written under `root`, oldest first (the names sort by step;
/// a save cut short is a hidden `.step-*.tmp` and is not listed).
pub fn checkpoints(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-")))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// What a training did, whichever engine ran it.
pub struct Outcome {
    pub params: u64,
    pub tokens_per_step: u64,
    pub steps: u64,
    pub tokens: u64,
    pub last_loss: Option<f64>,
}

impl Params {
    /// The stage's output values: what the report, fits and later stages read.
    pub fn output(&self, o: &Outcome, evals: &[Value]) -> Value {
        let mut out = serde_json::json!({
            "params": o.params,
            "tokens_per_step": o.tokens_per_step,
            "domain_share": self.domain_share,
            "roles": self.roles,
            "steps": o.steps,
            "tokens": o.tokens,
            "last_loss": o.last_loss,
            "evals": evals,
        });
        // Only a fork's: the outputs of other trains stay as they were.
        if let Some(fork) = self.fork {
            out["forked_at"] = serde_json::json!(fork.step);
        }
        out
    }
}
