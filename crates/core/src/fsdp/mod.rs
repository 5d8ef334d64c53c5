//! The FSDP engine: a train stage with `engine = fsdp` handed to torchrun + PyTorch FSDP2 over
//! the `transformers` model, from the project's own Python.
//!
//! cptc keeps everything around the training: it resolves the parameter plan from the model's
//! safetensors headers, computes one LR per step from the recipe's schedule, cuts the held-out
//! windows, writes them and a spec into the stage's resume folder, starts torchrun on the
//! embedded entry point (`train.py`), and turns its event lines into the same metrics, held-out
//! evaluations, progress and divergence guard as the built-in engine. The sequences are the mix
//! artifact's, read in order, so the ramp is realised exactly. Checkpoints
//! (`torch.distributed.checkpoint`) go to the resume folder; a rerun of the same key resumes
//! from the newest. The published model is a complete Hugging Face folder.

mod topology;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use topology::{Topology, TopologyError};

use crate::backend::eval::EvalResult;
use crate::backend::groups::{ParamInfo, ParamKind, ParamList, ParamPlan, plan_params};
use crate::backend::guard::GuardState;
use crate::backend::heldout::{accept_result, eval_batch, heldout_windows, windows_bytes};
use crate::backend::hf_files::{copy_side_files, tensor_shapes};
use crate::backend::metrics::{JsonlWriter, TrainRecord};
use crate::backend::schedule::lr_at;
use crate::recipe::{Precision, StepGeometry};
use crate::stages::train::{Outcome, Params, RunFiles, start_model};
use crate::stages::{DeviceClass, Input, StageCtx, StageFailure, Tier, read_json, threads, worker};

/// The entry point torchrun runs; embedded, so the binary is the whole product.
const ENTRY: &str = include_str!("train.py");

/// What the entry point reads; it refuses any other.
const SPEC_FORMAT: &str = "cptc-fsdp-v1";

/// The Python that runs the FSDP engine, when not found by itself.
pub const PYTHON_ENV: &str = "CPTC_PYTHON";

/// Failures of the launch itself (the engine's own failures arrive as its event lines).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum FsdpError {
    #[error("no Python for the FSDP engine: tried {}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    #[diagnostic(
        code(cptc::fsdp::python),
        help(
            "run ./scripts/setup.sh (it makes .venv with torch and transformers), or set {PYTHON_ENV} to a Python that has them"
        )
    )]
    NoPython { tried: Vec<PathBuf> },

    #[error("cannot start torchrun with {}", python.display())]
    #[diagnostic(code(cptc::fsdp::spawn))]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} has no torch: {line}", python.display())]
    #[diagnostic(
        code(cptc::fsdp::python),
        help("run ./scripts/setup.sh (it installs torch 2.11 and transformers into .venv), or set {PYTHON_ENV}")
    )]
    TorchMissing { python: PathBuf, line: String },

    #[error("the rendezvous could not bind its port: {line}")]
    #[diagnostic(
        code(cptc::fsdp::port_in_use),
        help("another job holds that port: give another `--rdzv-endpoint HOST:PORT` (on every node)")
    )]
    PortInUse { line: String },

    #[error("torchrun was killed by signal {signal}{why}")]
    #[diagnostic(
        code(cptc::fsdp::killed),
        help("a run of the same recipe resumes from the stage's last checkpoint (`--checkpoint-minutes`)")
    )]
    Killed { signal: i32, why: &'static str },

    #[error("a training process failed ({status}){when} without saying why; the end of {}:\n{tail}", log.display())]
    #[diagnostic(
        code(cptc::fsdp::rank_failed),
        help("every rank was stopped and nothing was published; a rerun resumes from the last checkpoint")
    )]
    RankFailed { status: String, when: &'static str, log: PathBuf, tail: String },

    #[error("torchrun ended without publishing a model ({status})")]
    #[diagnostic(code(cptc::fsdp::no_result), help("this is a bug in cptc; the launch log is {}", log.display()))]
    NoResult { status: String, log: PathBuf },
}

impl FsdpError {
    fn tier(&self) -> Tier {
        match self {
            FsdpError::RankFailed { .. } | FsdpError::NoResult { .. } => Tier::Internal,
            _ => Tier::Environment,
        }
    }

    fn failure(self) -> StageFailure {
        StageFailure { tier: self.tier(), diagnostic: Box::new(self) }
    }
}

/// The spec the entry point reads (`train.py` documents each field by its use).
#[derive(Serialize)]
struct Spec<'a> {
    format: &'static str,
    model_dir: &'a Path,
    out_dir: PathBuf,
    train_shard: PathBuf,
    seq_len: u64,
    seqs_per_step: u64,
    micro_batch: u64,
    total_steps: u64,
    lrs: Vec<f64>,
    adamw: AdamW,
    grad_clip: f64,
    seed: u64,
    precision: &'static str,
    device: &'static str,
    threads: i32,
    params: &'a [ParamPlan],
    tied: bool,
    eval_steps: Vec<u64>,
    eval_sets: Vec<EvalSet>,
    checkpoint_dir: Option<PathBuf>,
    checkpoint_every_s: Option<f64>,
    resume_from: Option<PathBuf>,
    /// Long-context training: the config's RoPE parameters (transformers 5's form) and
    /// positions after the step-0 baseline.
    long_context: Option<LongContextSpec>,
}

#[derive(Serialize)]
struct LongContextSpec {
    rope_parameters: serde_json::Map<String, Value>,
    max_position_embeddings: u64,
}

/// The built-in engine's AdamW settings (`crates/torch/src/backend/optim.rs`).
#[derive(Serialize)]
struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

#[derive(Serialize)]
struct EvalSet {
    name: String,
    /// int64 little-endian: the inputs `[windows, seq_len]`, then the targets.
    file: PathBuf,
    windows: usize,
    batch: usize,
}

/// One line of the entry point's stdout.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum EngineEvent {
    Start { world: u64, step: u64, total: u64 },
    Step { step: u64, loss: f64, lr: f64, grad_norm: f64, tokens: u64, step_tokens: u64, secs: f64 },
    Eval { step: u64, sets: BTreeMap<String, SetTotals> },
    Checkpoint { step: u64 },
    Notice { text: String },
    Failed { tier: Tier, code: Option<String>, message: String, help: Option<String> },
    Done { steps: u64, tokens: u64, last_loss: Option<f64>, exhausted: bool, params: u64 },
}

#[derive(Debug, Deserialize)]
struct SetTotals {
    /// `null` when not finite (JSON has no NaN).
    nats: Option<f64>,
    tokens: u64,
}

/// A held-out set as cptc measures it: the bytes its windows cover.
struct HeldoutSet {
    name: String,
    bytes: u64,
    unencodable: u64,
}

/// Runs a train stage on the FSDP engine.
pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    ctx.topology.validate()?;
    // `check` refuses forks of FSDP runs: this engine keeps no states to fork from yet.
    if p.fork.is_some() || !p.keep.is_empty() {
        return Err(StageFailure::internal("a fork reached the FSDP engine, which keeps no fork states"));
    }
    let (dir, model_meta) = start_model(p, ctx)?;
    let (params, tied) = param_list(&dir)?;
    let config: Value = read_json(&dir.join("config.json"))?;
    let n_layers = config.get("num_hidden_layers").and_then(Value::as_i64).unwrap_or(0);
    let old_vocab = model_meta.values.get("old_vocab").and_then(Value::as_i64);
    let plans = plan_params(&ParamList { params: &params, n_layers, tied }, &p.groups, old_vocab)?;

    let geometry = StepGeometry::new(p.tokens, p.seq_len, p.batch_tokens);
    let total = geometry.steps;
    let tokens_per_step = geometry.tokens_per_step();
    let lrs: Vec<f64> = (0..total).map(|s| lr_at(&p.schedule, s, total, tokens_per_step)).collect();
    let files = RunFiles::of(ctx)?;
    let work = ctx.resume_dir.join("fsdp");
    fs_err::create_dir_all(&work)?;
    let entry = work.join("train.py");
    fs_err::write(&entry, ENTRY)?;

    // The held-out windows, cut once here for every rank and evaluation.
    let seq = p.seq_len as usize;
    let mut sets = Vec::new();
    let mut eval_sets = Vec::new();
    for (i, (name, tokenized, _)) in ctx
        .inputs_where(|r| match r {
            Input::Heldout(c) => Some(c),
            _ => None,
        })
        .enumerate()
    {
        let (windows, unencodable) = heldout_windows(tokenized, seq, p.eval_bytes)?;
        let file = work.join(format!("heldout-{i}.i64"));
        fs_err::write(&file, windows_bytes(&windows))?;
        sets.push(HeldoutSet { name: name.clone(), bytes: windows.iter().map(|w| w.bytes).sum(), unencodable });
        eval_sets.push(EvalSet { name: name.clone(), file, windows: windows.len(), batch: eval_batch(seq) });
    }

    // A run of this key cut short resumes from its newest checkpoint.
    let resume_from = files.latest_checkpoint().filter(|c| c.join("trainer_state.json").is_file());
    let resumed_at = match &resume_from {
        Some(c) => read_json::<Value>(&c.join("trainer_state.json"))?.get("step").and_then(Value::as_u64),
        None => None,
    };
    if resume_from.is_none()
        && let Some(root) = &files.checkpoints
        && root.exists()
    {
        fs_err::remove_dir_all(root)?;
    }
    let mut evals = RunFiles::rewind(&files.evals, resumed_at)?;
    let metrics = RunFiles::rewind(&files.metrics, resumed_at)?;
    // The guard's state as the steps before the checkpoint left it.
    let mut guard = GuardState::default();
    for m in metrics.iter().filter(|m| m.get("kind").and_then(Value::as_str) == Some("train")) {
        if let (Some(step), Some(loss)) = (m.get("step").and_then(Value::as_u64), m.get("loss").and_then(Value::as_f64))
        {
            let _ = guard.observe(p.divergence, step.saturating_sub(1), loss, None);
        }
    }
    if let Some(step) = resumed_at {
        ctx.notice(&format!("resuming at step {step} from its checkpoint"));
    }

    let (mix_dir, _) = ctx.input(&Input::Data)?;
    let spec = Spec {
        format: SPEC_FORMAT,
        model_dir: &dir,
        out_dir: ctx.out.join("model"),
        train_shard: mix_dir.join("train"),
        seq_len: p.seq_len,
        seqs_per_step: StepGeometry::seqs_per_step(p.batch_tokens, p.seq_len),
        micro_batch: 1,
        total_steps: total,
        lrs,
        adamw: AdamW { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: p.weight_decay },
        grad_clip: p.grad_clip,
        seed: p.seed,
        precision: match p.precision {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        },
        device: match p.device {
            DeviceClass::Cpu => "cpu",
            DeviceClass::Cuda => "cuda",
        },
        threads: threads_per_process(ctx)?,
        params: &plans,
        tied,
        eval_steps: p.eval_steps(total, tokens_per_step),
        eval_sets,
        checkpoint_dir: files.checkpoints.clone(),
        checkpoint_every_s: ctx.checkpoint_every.map(|d| d.as_secs_f64()),
        resume_from,
        long_context: p.long_context.map(|lc| {
            let e = crate::backend::rope::extend(&config, lc.rope_theta, p.rope, p.seq_len);
            LongContextSpec { rope_parameters: e.rope_parameters, max_position_embeddings: e.max_position_embeddings }
        }),
    };
    let spec_path = work.join("spec.json");
    crate::store::write_atomic(&spec_path, &serde_json::to_vec_pretty(&spec)?)?;

    let mut session = Session {
        ctx,
        sets: &sets,
        metrics: JsonlWriter::append(&files.metrics)?,
        evals_log: JsonlWriter::append(&files.evals)?,
        evals: &mut evals,
        guard,
        divergence: p.divergence,
        budget: p.eval_bytes,
        checkpoint: None,
        files: &files,
        resumed_at,
    };
    let done = launch(&entry, &spec_path, &work, ctx, &mut session)?;
    let EngineEvent::Done { steps, tokens, last_loss, params: n_params, exhausted } = done else {
        return Err(StageFailure::internal("the FSDP engine's last event was not `done`"));
    };
    if exhausted {
        ctx.notice(&format!("the mixture's sequences ran out after {steps} of {total} steps"));
    }
    let model_out = ctx.out.join("model");
    if !model_out.join("model.safetensors").is_file() || !model_out.join("config.json").is_file() {
        return Err(StageFailure::internal(format!(
            "the FSDP engine said done but {} is incomplete",
            model_out.display()
        )));
    }
    copy_side_files(&dir, &model_out)?;
    files.publish(ctx, &evals)?;
    let outcome = Outcome { params: n_params, tokens_per_step, steps, tokens, last_loss };
    Ok(p.output(&outcome, &evals))
}

/// The model's parameters from its safetensors headers (names, shapes, kinds) and whether its
/// head is tied to the embeddings (transformers leaves a tied head out of the files).
fn param_list(dir: &Path) -> Result<(Vec<ParamInfo>, bool), StageFailure> {
    let shapes = tensor_shapes(dir)?;
    let tied = !shapes.iter().any(|(n, _)| n == "lm_head.weight");
    let params = shapes
        .into_iter()
        .filter(|(n, _)| !n.ends_with("rotary_emb.inv_freq"))
        .map(|(n, s)| {
            let kind = ParamKind::of_hf_name(&n, &s);
            (n, s, kind)
        })
        .collect();
    Ok((params, tied))
}

/// What the event loop keeps while the engine runs.
struct Session<'s, 'c> {
    ctx: &'s StageCtx<'c>,
    sets: &'s [HeldoutSet],
    metrics: JsonlWriter,
    evals_log: JsonlWriter,
    evals: &'s mut Vec<Value>,
    guard: GuardState,
    divergence: crate::recipe::Divergence,
    budget: u64,
    checkpoint: Option<u64>,
    files: &'s RunFiles,
    resumed_at: Option<u64>,
}

impl Session<'_, '_> {
    /// Rewinds the logs to `step` and reopens them.
    fn restart_logs(&mut self, step: u64) -> Result<(), StageFailure> {
        let at = Some(step).filter(|&s| s > 0);
        *self.evals = RunFiles::rewind(&self.files.evals, at)?;
        RunFiles::rewind(&self.files.metrics, at)?;
        self.metrics = JsonlWriter::append(&self.files.metrics)?;
        self.evals_log = JsonlWriter::append(&self.files.evals)?;
        self.guard = GuardState::default();
        self.resumed_at = at;
        Ok(())
    }

    /// Applies one event; `Some` ends the run (its result, or the stage's failure).
    fn apply(&mut self, event: EngineEvent) -> Result<Option<EngineEvent>, StageFailure> {
        let progress = self.ctx.progress;
        match event {
            EngineEvent::Start { world, step, total } => {
                if self.resumed_at.is_some_and(|r| r != step) {
                    // The ranks did not resume after all (a node lacked the checkpoint): the
                    // logs start again with them.
                    self.restart_logs(step)?;
                }
                progress.set_length(total);
                progress.set_position(step);
                progress.reset_eta();
                progress.set_message(format!("fsdp over {world} processes"));
            }
            EngineEvent::Step { step, loss, lr, grad_norm, tokens, step_tokens, secs } => {
                let record = TrainRecord {
                    kind: "train",
                    step,
                    tokens,
                    loss,
                    lr,
                    grad_norm,
                    step_time_s: secs,
                    tokens_per_s: step_tokens as f64 / secs.max(1e-9),
                    mfu: None,
                };
                self.metrics.write(&record)?;
                progress.set_position(step);
                progress.set_message(format!("loss {loss:.3} lr {lr:.2e} {:.0} tok/s", record.tokens_per_s));
                let checkpoint = self.checkpoint.map(|s| PathBuf::from(format!("step-{s:08}")));
                self.guard.observe(self.divergence, step - 1, loss, checkpoint)?;
            }
            EngineEvent::Eval { step, sets } => {
                let mut out = BTreeMap::new();
                for set in self.sets {
                    let Some(t) = sets.get(&set.name) else {
                        return Err(StageFailure::internal(format!("the FSDP engine did not evaluate `{}`", set.name)));
                    };
                    let mut result = EvalResult::from_totals(t.nats.unwrap_or(f64::NAN), t.tokens, set.bytes);
                    result.unencodable_bytes = set.unencodable;
                    accept_result(self.ctx, &mut out, &set.name, step, self.budget, &result)?;
                    self.metrics.write(&result.record(step, &set.name))?;
                }
                let eval = json!({ "step": step, "sets": out });
                self.evals_log.write(&eval)?;
                self.evals.push(eval);
            }
            EngineEvent::Checkpoint { step } => self.checkpoint = Some(step),
            EngineEvent::Notice { text } => self.ctx.notice(&text),
            EngineEvent::Failed { tier, code, message, help } => {
                return Err(worker::reported(tier, code, message, help));
            }
            done @ EngineEvent::Done { .. } => return Ok(Some(done)),
        }
        Ok(None)
    }
}

/// Runs torchrun on the entry point and feeds its events to `session` until it ends; on any
/// failure every rank is stopped (torchrun tears its workers down on SIGTERM).
fn launch(
    entry: &Path,
    spec: &Path,
    work: &Path,
    ctx: &StageCtx<'_>,
    session: &mut Session<'_, '_>,
) -> Result<EngineEvent, StageFailure> {
    let py = python().map_err(FsdpError::failure)?;
    let log_path = work.join("launch.log");
    let log = fs_err::File::create(&log_path)?;
    let topology = ctx.topology;
    let mut cmd = Command::new(&py);
    cmd.args(["-m", "torch.distributed.run"])
        .args(topology.torchrun_args())
        .arg("--max-restarts=0")
        .arg(entry)
        .arg(spec)
        .env("PYTHONUNBUFFERED", "1")
        .env("OMP_NUM_THREADS", threads_per_process(ctx)?.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.into_parts().0);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| FsdpError::Spawn { python: py.clone(), source }.failure())?;
    let stop = |child: &mut std::process::Child| {
        terminate(child);
        let _ = child.wait();
    };
    let mut outcome: Option<Result<EngineEvent, StageFailure>> = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // torchrun may prefix a worker's lines (`[rank0]:`): the event starts at its brace.
            let event = line.find('{').and_then(|i| serde_json::from_str::<EngineEvent>(&line[i..]).ok());
            let Some(event) = event else {
                if !line.trim().is_empty() {
                    ctx.progress.notice(&line);
                }
                continue;
            };
            match session.apply(event) {
                Ok(None) => {}
                Ok(Some(done)) => outcome = Some(Ok(done)),
                Err(e) => {
                    stop(&mut child);
                    return Err(e);
                }
            }
        }
    }
    let status = child.wait().map_err(|source| FsdpError::Spawn { python: py.clone(), source }.failure())?;
    match outcome {
        Some(Ok(done)) if status.success() => Ok(done),
        outcome => Err(ended(status, &py, &log_path, matches!(outcome, Some(Ok(_)))).failure()),
    }
}

/// This machine's cores (`CPTC_THREADS`) shared by the node's processes.
fn threads_per_process(ctx: &StageCtx<'_>) -> Result<i32, StageFailure> {
    Ok((threads()? / ctx.topology.nproc_per_node as i32).max(1))
}

/// Why torchrun ended without a result: read from its status and its log (`after_done`: the
/// engine had reported the run done, so a process failed while shutting down).
fn ended(status: ExitStatus, python: &Path, log: &Path, after_done: bool) -> FsdpError {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(signal) = status.signal() {
        let why = match signal {
            9 => " (out of memory? the kernel's OOM killer sends it)",
            2 | 15 => " (interrupted)",
            _ => "",
        };
        return FsdpError::Killed { signal, why };
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let find = |needle: &str| text.lines().find(|l| l.contains(needle)).map(|l| l.trim().to_owned());
    if let Some(line) = find("No module named 'torch'").or_else(|| find("No module named torch")) {
        return FsdpError::TorchMissing { python: python.to_owned(), line };
    }
    if let Some(line) = find("address already in use").or_else(|| find("EADDRINUSE")) {
        return FsdpError::PortInUse { line };
    }
    if status.success() {
        return FsdpError::NoResult { status: status.to_string(), log: log.to_owned() };
    }
    // The workers' own output comes before torchrun's report of their failure.
    let own = text
        .lines()
        .take_while(|l| !l.contains("torch/distributed/elastic") && !l.contains("torch.distributed.elastic"));
    let lines: Vec<&str> = own.filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    let when = if after_done { " after the engine had reported the run done" } else { "" };
    FsdpError::RankFailed { status: status.to_string(), when, log: log.to_owned(), tail }
}

/// SIGTERM, not `Child::kill`'s SIGKILL: torchrun stops every worker before it exits.
#[allow(unsafe_code)]
fn terminate(child: &std::process::Child) {
    // SAFETY: kill(2) on our own, not yet reaped child's pid has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// torchrun dies with cptc: a killed `cptc run` must not leave ranks writing into the resume
/// folder a rerun reads.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// The Python with torch and transformers: `$CPTC_PYTHON`, the active virtual environment,
/// a `.venv` in a folder above the `cptc` binary or the working directory (the project's own,
/// made by `scripts/setup.sh`), else `python3` on the `PATH`.
pub fn python() -> Result<PathBuf, FsdpError> {
    if let Some(p) = std::env::var_os(PYTHON_ENV) {
        return Ok(PathBuf::from(p));
    }
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        candidates.push(Path::new(&venv).join("bin/python"));
    }
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    for start in [exe.as_deref().and_then(Path::parent), cwd.as_deref()].into_iter().flatten() {
        candidates.extend(start.ancestors().map(|d| d.join(".venv/bin/python")));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("python3")));
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        tried.push(c);
    }
    tried.truncate(4);
    Err(FsdpError::NoPython { tried })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    #[test]
    fn a_process_failing_after_the_run_was_done_is_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("launch.log");
        std::fs::write(&log, "step 3\nterminate called without an active exception\n").expect("log");
        // Exit status 1, as torchrun reports a worker's failure.
        let status = ExitStatus::from_raw(1 << 8);
        let python = Path::new("python3");
        let after = ended(status, python, &log, true).to_string();
        assert!(after.contains("after the engine had reported the run done"), "{after}");
        assert!(after.contains("terminate called without an active exception"), "{after}");
        let during = ended(status, python, &log, false).to_string();
        assert!(!during.contains("reported the run done"), "{during}");
        assert!(during.contains("failed (exit status: 1) without saying why"), "{during}");
    }
}
