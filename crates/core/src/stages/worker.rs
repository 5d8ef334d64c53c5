//! Train and eval stages run in `cptc-torch`, a worker process and the only program that links
//! libtorch, so `cptc plan`, `check` and cached runs never load it (half a gigabyte of shared
//! libraries and most of a second). This is the executor's side and the protocol both share.
//!
//! Protocol: `cptc-torch stage` reads one [`Request`] (JSON) from stdin, runs the stage, and
//! writes [`Event`] lines to stdout, the last being [`Event::Done`] or [`Event::Failed`]; other
//! stdout lines (a library printing) are passed on to stderr. `cptc-torch probe` prints one
//! [`ProbeReply`]. The request carries the protocol version: a worker from another build says so
//! instead of misreading it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Input, StageCtx, StageFailure, StageId, StageKind, Tier, eval, train};
use crate::store::Meta;

/// Bumped whenever [`Request`], [`Event`] or [`ProbeReply`] change shape.
pub const PROTOCOL: u32 = 1;

/// The worker's exit status when the executor went away mid-stage (its stdout closed).
pub const ORPHANED: i32 = 75;

/// Where the worker is, when it is not beside the `cptc` binary.
pub const WORKER_ENV: &str = "CPTC_TORCH";

/// One stage for the worker: everything its [`StageCtx`] holds, owned.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub protocol: u32,
    #[serde(with = "StageIdWire")]
    pub id: StageId,
    pub params: WorkerParams,
    pub files: Vec<PathBuf>,
    pub out: PathBuf,
    pub inputs: Vec<WireInput>,
    pub resume_dir: PathBuf,
    pub checkpoint_every: Option<Duration>,
}

/// The stage kinds the worker runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum WorkerParams {
    Train(Box<train::Params>),
    Eval(eval::Params),
}

/// A published input as sent to the worker.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireInput {
    #[serde(with = "InputWire")]
    pub role: Input,
    pub dir: PathBuf,
    pub meta: Meta,
}

/// Structured forms of ids and roles for the wire (their `Serialize` is the key's text form,
/// which is never parsed back). serde checks these mirrors against the real types.
#[derive(Serialize, Deserialize)]
#[serde(remote = "StageId")]
struct StageIdWire {
    kind: StageKind,
    name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Input", rename_all = "snake_case")]
enum InputWire {
    Docs,
    Split,
    Exclude(String),
    Tokenizer,
    Base,
    TrainOn(String),
    General(String),
    Model,
    Vocab,
    Corpus(String),
    Value,
    Ledger,
    Data,
    Fork,
    ForkData,
    Heldout(String),
    Point(#[serde(with = "StageIdWire")] StageId),
    DomainLaw,
    GeneralLaw,
    Reported(#[serde(with = "StageIdWire")] StageId),
}

/// One line of the worker's stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Message {
        text: String,
    },
    Length {
        n: u64,
    },
    Position {
        n: u64,
    },
    Inc {
        n: u64,
    },
    ResetEta,
    Notice {
        text: String,
    },
    /// The stage's output values; its files are in the request's `out`.
    Done {
        output: Value,
    },
    /// The stage failed: its diagnostic, flattened, and its tier.
    Failed {
        tier: Tier,
        code: Option<String>,
        message: String,
        help: Option<String>,
    },
}

impl Event {
    /// The failure as the worker reports it.
    pub fn failed(failure: &StageFailure) -> Event {
        let d = failure.diagnostic.as_ref();
        Event::Failed {
            tier: failure.tier,
            code: d.code().map(|c| c.to_string()),
            message: failure.message(),
            help: d.help().map(|h| h.to_string()),
        }
    }
}

/// What `cptc-torch probe` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub protocol: u32,
    pub cuda: bool,
    pub cuda_devices: i64,
}

/// A failure the worker reported, shown as the stage's own diagnostic would be.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WorkerDiagnostic {
    code: Option<String>,
    message: String,
    help: Option<String>,
}

impl Diagnostic for WorkerDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.code.as_ref().map(|c| Box::new(c) as Box<dyn std::fmt::Display>)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// A failure another process (the worker, the FSDP engine) reported as a diagnostic's parts.
pub fn reported(tier: Tier, code: Option<String>, message: String, help: Option<String>) -> StageFailure {
    StageFailure { tier, diagnostic: Box::new(WorkerDiagnostic { code, message, help }) }
}

/// The worker could not be started, or ended without a verdict.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum WorkerError {
    #[error("the libtorch worker `cptc-torch` is not installed beside `{}`", exe.display())]
    #[diagnostic(
        code(cptc::worker::missing),
        help(
            "train and eval stages run in `cptc-torch`: `cargo build --release` builds it beside `cptc`; or set {WORKER_ENV} to its path"
        )
    )]
    Missing { exe: PathBuf },

    #[error("cannot start the libtorch worker `{}`", path.display())]
    #[diagnostic(
        code(cptc::worker::spawn),
        help("check that it is executable and that libtorch is where it was built against")
    )]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the libtorch worker `{}` speaks protocol {found}, this cptc {expected}", path.display())]
    #[diagnostic(
        code(cptc::worker::protocol),
        help("rebuild both: `cargo build --release` builds `cptc` and `cptc-torch` together")
    )]
    Protocol { path: PathBuf, found: String, expected: u32 },

    #[error("the libtorch worker was killed by signal {signal}{why}")]
    #[diagnostic(
        code(cptc::worker::killed),
        help("a run of the same recipe resumes from the stage's last checkpoint (`--checkpoint-every`)")
    )]
    Killed { signal: i32, why: &'static str },

    #[error("the libtorch worker ended ({status}) without reporting the stage's result")]
    #[diagnostic(code(cptc::worker::crashed), help("this is a bug in cptc (or libtorch); its stderr is above"))]
    Crashed { status: String },
}

/// Runs a train or eval stage in the worker, relaying its progress to `ctx.progress`.
pub fn run(params: WorkerParams, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let path = worker_path().map_err(environment)?;
    let request = Request {
        protocol: PROTOCOL,
        id: ctx.id.clone(),
        params,
        files: ctx.files.to_vec(),
        out: ctx.out.to_path_buf(),
        inputs: ctx
            .inputs
            .iter()
            .map(|(role, dir, meta)| WireInput { role: role.clone(), dir: dir.clone(), meta: meta.clone() })
            .collect(),
        resume_dir: ctx.resume_dir.clone(),
        checkpoint_every: ctx.checkpoint_every,
    };
    let mut child = Command::new(&path)
        .arg("stage")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| environment(WorkerError::Spawn { path: path.clone(), source }))?;
    let request =
        serde_json::to_vec(&request).map_err(|e| StageFailure::internal(format!("encoding the request: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that dies before reading says why below; its exit status decides.
        let _ = stdin.write_all(&request);
    }
    let mut verdict = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Event>(&line) {
                Ok(event) => {
                    if let Some(end) = apply(event, ctx) {
                        verdict = Some(end);
                    }
                }
                Err(_) => ctx.progress.notice(&line),
            }
        }
    }
    let status = child.wait().map_err(|source| environment(WorkerError::Spawn { path: path.clone(), source }))?;
    match verdict {
        Some(end) => end,
        None => Err(ended(status)),
    }
}

/// Applies a progress event; the last event gives the stage's result.
fn apply(event: Event, ctx: &StageCtx<'_>) -> Option<Result<Value, StageFailure>> {
    let p = ctx.progress;
    match event {
        Event::Message { text } => p.set_message(text),
        Event::Length { n } => p.set_length(n),
        Event::Position { n } => p.set_position(n),
        Event::Inc { n } => p.inc(n),
        Event::ResetEta => p.reset_eta(),
        Event::Notice { text } => p.notice(&text),
        Event::Done { output } => return Some(Ok(output)),
        Event::Failed { tier, code, message, help } => return Some(Err(reported(tier, code, message, help))),
    }
    None
}

/// A worker that ended without a verdict: killed (the machine's doing, most likely memory) or
/// crashed (a bug).
fn ended(status: std::process::ExitStatus) -> StageFailure {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(signal) => {
            let why = match signal {
                9 => " (out of memory? the kernel's OOM killer sends it)",
                2 | 15 => " (interrupted)",
                _ => "",
            };
            let failure = WorkerError::Killed { signal, why };
            let tier = if signal == 9 || signal == 2 || signal == 15 { Tier::Environment } else { Tier::Internal };
            StageFailure { tier, diagnostic: Box::new(failure) }
        }
        None => StageFailure {
            tier: Tier::Internal,
            diagnostic: Box::new(WorkerError::Crashed { status: status.to_string() }),
        },
    }
}

fn environment(e: WorkerError) -> StageFailure {
    StageFailure { tier: Tier::Environment, diagnostic: Box::new(e) }
}

/// `$CPTC_TORCH`, else `cptc-torch` beside the running binary (or beside its folder: test
/// binaries live in `target/<profile>/deps`, the workspace's binaries one level up).
pub fn worker_path() -> Result<PathBuf, WorkerError> {
    if let Some(path) = std::env::var_os(WORKER_ENV) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("cptc"));
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join("cptc-torch")];
    if dir.file_name().is_some_and(|n| n == "deps")
        && let Some(up) = dir.parent()
    {
        candidates.push(up.join("cptc-torch"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or(WorkerError::Missing { exe })
}

/// Whether libtorch sees a CUDA device. Without the NVIDIA driver's control device it cannot,
/// and the answer costs nothing; with it, the worker is asked once per process.
pub fn cuda_available() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| Path::new("/dev/nvidiactl").exists() && probe().is_ok_and(|r| r.cuda))
}

/// Asks the worker what libtorch sees.
pub fn probe() -> Result<ProbeReply, WorkerError> {
    let path = worker_path()?;
    let out = Command::new(&path)
        .arg("probe")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| WorkerError::Spawn { path: path.clone(), source })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let reply = text.lines().rev().find_map(|l| serde_json::from_str::<ProbeReply>(l).ok());
    match reply {
        Some(r) if r.protocol == PROTOCOL => Ok(r),
        Some(r) => Err(WorkerError::Protocol { path, found: r.protocol.to_string(), expected: PROTOCOL }),
        None => {
            Err(WorkerError::Protocol { path, found: format!("nothing readable ({})", out.status), expected: PROTOCOL })
        }
    }
}
