//! The executor: computes each stage's key from its inputs' output digests, reuses published
//! artifacts, runs the rest in dependency order (independent CPU stages in parallel), and
//! publishes their outputs atomically.
//!
//! Early cutoff falls out of the keys: a stage's key covers its inputs' *output digests*, so
//! a rerun input whose output is byte-identical leaves every downstream key unchanged.

mod events;
mod law;
mod report;
pub mod stages;
mod training;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use miette::Diagnostic;
use petgraph::graph::NodeIndex;
use rayon::prelude::*;
use thiserror::Error;

pub use events::EventLog;

use crate::graph::key::hash_file;
use crate::graph::{CacheKey, Digest, Graph, KeyWriter, Stage};
use crate::store::{KeyParts, Meta, Store, StoreError};

impl CacheKey for KeyParts {
    fn write_key(&self, w: &mut KeyWriter) {
        w.str(&self.kind);
        w.u64(self.version);
        let mut params = self.params.clone();
        // Run-time values are parameters like any other once known.
        if let serde_json::Value::Object(map) = &mut params {
            for (k, v) in &self.values {
                map.insert(k.clone(), v.clone());
            }
        }
        params.write_key(w);
        w.seq(self.inputs.len());
        for (role, digest) in &self.inputs {
            w.str(role);
            w.digest(digest);
        }
        w.seq(self.files.len());
        for (name, digest) in &self.files {
            w.str(name);
            w.digest(digest);
        }
    }
}

#[derive(Debug, Error, Diagnostic)]
pub enum ExecError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error("stage `{stage}` failed: {message}")]
    #[diagnostic(code(cptc::exec::stage_failed))]
    Stage {
        stage: String,
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("cannot read input file {path} of stage `{stage}`: {source}")]
    #[diagnostic(code(cptc::exec::input_file), help("the recipe names it; check that it still exists"))]
    InputFile { stage: String, path: String, source: std::io::Error },

    #[error("no stage named `{name}`")]
    #[diagnostic(code(cptc::exec::unknown_stage))]
    UnknownStage {
        name: String,
        #[help]
        help: String,
    },
}

/// Where a stage stands before (or instead of) running.
#[derive(Clone, Debug)]
pub enum Status {
    /// Its artifact is in the store.
    Cached(Box<Meta>),
    /// It will run; `why` says what changed since it last ran (empty when it never did).
    WillRun { key: Option<Digest>, why: Vec<String> },
    /// A parameter waits for a value another stage computes.
    Pending { waiting_for: String },
}

/// Choices of `cptc run`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run only these stages and what they need.
    pub only: Vec<String>,
    /// Rerun these stages and everything downstream of them.
    pub from: Vec<String>,
    /// Rerun these stages even if cached.
    pub force: Vec<String>,
    pub dry_run: bool,
    /// How often a long stage (training) checkpoints, so a failed or killed run resumes where
    /// it was; `None` never. Results do not depend on it, so it is not part of any key.
    pub checkpoint_every: Option<std::time::Duration>,
}

/// What a stage implementation gets.
pub struct StageCtx<'a> {
    pub stage: &'a Stage,
    /// Parameters with run-time values filled in.
    pub params: serde_json::Value,
    /// Folder to write the output into (published when `run` returns Ok).
    pub out: &'a Path,
    /// Input role -> published artifact folder and its meta.
    pub inputs: BTreeMap<String, (PathBuf, Meta)>,
    pub progress: &'a indicatif::ProgressBar,
    /// A folder of this stage's key that outlives a failed or killed run (checkpoints); the
    /// executor removes it once the stage publishes.
    pub resume_dir: PathBuf,
    /// How often to checkpoint into `resume_dir` (`None`: never).
    pub checkpoint_every: Option<std::time::Duration>,
}

impl StageCtx<'_> {
    /// Tells the user something about the run as it happens (a resume, a checkpoint refused),
    /// above the progress bars; unlike indicatif's `println`, also when stderr is not a terminal.
    pub fn notice(&self, line: &str) {
        self.progress.suspend(|| eprintln!("{}: {line}", self.stage.id));
    }

    pub fn input(&self, role: &str) -> Result<&(PathBuf, Meta), String> {
        self.inputs.get(role).ok_or_else(|| format!("missing input `{role}`"))
    }

    /// Inputs whose role starts with `prefix` (`corpus:`, `heldout:`...), without the prefix.
    pub fn inputs_with(&self, prefix: &str) -> Vec<(&str, &(PathBuf, Meta))> {
        self.inputs.iter().filter_map(|(role, v)| Some((role.strip_prefix(prefix)?, v))).collect()
    }
}

/// Error from a stage implementation: a message and optional help.
#[derive(Debug)]
pub struct StageFailure {
    pub message: String,
    pub help: Option<String>,
}

/// Any error (a message string included) becomes a failure whose message carries the whole
/// source chain (the OS's reason behind "cannot read `x`") and whose help is the phase error's.
impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for StageFailure {
    fn from(e: E) -> Self {
        let e: Box<dyn std::error::Error + Send + Sync> = e.into();
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = s.source();
        }
        StageFailure { message, help: phase_help(e.as_ref()) }
    }
}

/// The miette help of a phase error (or of the first one in its source chain that has one).
fn phase_help(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use miette::Diagnostic;
    fn help_of<D: Diagnostic + 'static>(e: &(dyn std::error::Error + 'static)) -> Option<String> {
        e.downcast_ref::<D>().and_then(|d| d.help()).map(|h| h.to_string())
    }
    let mut next = Some(e);
    while let Some(e) = next {
        let help = help_of::<crate::data::DataError>(e)
            .or_else(|| help_of::<crate::backend::BackendError>(e))
            .or_else(|| help_of::<crate::vocab::VocabError>(e))
            .or_else(|| help_of::<crate::convert::ConvertError>(e))
            .or_else(|| help_of::<crate::store::StoreError>(e))
            .or_else(|| help_of::<crate::law::LawError>(e));
        if help.is_some() {
            return help;
        }
        next = e.source();
    }
    None
}

/// Stage implementations, one per kind.
pub trait Runner: Sync {
    /// Runs `ctx.stage`, writing into `ctx.out`; returns the values it computes for others.
    fn run(&self, ctx: &StageCtx<'_>) -> Result<serde_json::Value, StageFailure>;
}

/// Outcome of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub ran: Vec<String>,
    pub cached: Vec<String>,
    /// Published artifacts by stage id.
    pub artifacts: BTreeMap<String, PathBuf>,
}

/// Hashes external files once per process: plans and runs ask for the same files often.
#[derive(Default)]
pub struct FileHashes {
    cache: Mutex<HashMap<PathBuf, Digest>>,
}

impl FileHashes {
    fn get(&self, stage: &str, path: &Path) -> Result<Digest, ExecError> {
        if let Some(d) = self.cache.lock().ok().and_then(|c| c.get(path).copied()) {
            return Ok(d);
        }
        let digest = hash_file(path).map_err(|source| ExecError::InputFile {
            stage: stage.to_string(),
            path: path.display().to_string(),
            source,
        })?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(path.to_path_buf(), digest);
        }
        Ok(digest)
    }
}

/// Key parts of a stage once its inputs are published; `Err` names what it waits for.
fn key_parts(
    graph: &Graph,
    ix: NodeIndex,
    done: &HashMap<NodeIndex, Meta>,
    hashes: &FileHashes,
) -> Result<Result<KeyParts, String>, ExecError> {
    let stage = graph.stage(ix);
    // Run-time values first: a stage waiting for one is pending, whatever else it waits for.
    let mut values = BTreeMap::new();
    for deferred in &stage.deferred {
        let source = graph.find(&deferred.stage).and_then(|s| done.get(&s));
        match source.and_then(|m| m.values.get(&deferred.output)) {
            Some(v) => {
                values.insert(deferred.param.clone(), v.clone());
            }
            None => return Ok(Err(format!("{}.{}", deferred.stage, deferred.output))),
        }
    }
    let mut inputs = BTreeMap::new();
    for (role, input) in graph.inputs(ix) {
        match done.get(&input) {
            Some(meta) => {
                inputs.insert(role, meta.output);
            }
            None => return Ok(Err(graph.stage(input).id.clone())),
        }
    }
    let mut files = BTreeMap::new();
    for (i, path) in stage.files.iter().enumerate() {
        // Names, not absolute paths, keep keys portable across machines and checkouts.
        let name = path.file_name().map_or_else(|| i.to_string(), |n| n.to_string_lossy().into_owned());
        files.insert(format!("{i}:{name}"), hashes.get(&stage.id, path)?);
    }
    Ok(Ok(KeyParts {
        kind: stage.kind.name().to_string(),
        version: stage.kind.version(),
        params: stage.params.clone(),
        inputs,
        files,
        values,
    }))
}

fn resolved_params(parts: &KeyParts) -> serde_json::Value {
    let mut params = parts.params.clone();
    if let serde_json::Value::Object(map) = &mut params {
        for (k, v) in &parts.values {
            map.insert(k.clone(), v.clone());
        }
    }
    params
}

/// Status of every stage without running anything, in execution order.
pub fn plan(graph: &Graph, store: &Store, hashes: &FileHashes) -> Result<Vec<(NodeIndex, Status)>, ExecError> {
    let mut done: HashMap<NodeIndex, Meta> = HashMap::new();
    let mut out = Vec::new();
    for ix in graph.order() {
        let stage = graph.stage(ix);
        let status = match key_parts(graph, ix, &done, hashes)? {
            Ok(parts) => {
                let key = parts.cache_key();
                match store.lookup(stage.kind, &key) {
                    Some(meta) => {
                        done.insert(ix, meta.clone());
                        Status::Cached(Box::new(meta))
                    }
                    None => {
                        let why = store.last(&stage.id).map(|old| parts.diff(&old)).unwrap_or_default();
                        Status::WillRun { key: Some(key), why }
                    }
                }
            }
            Err(waiting) => {
                let is_value = waiting.contains('.') && stage.deferred.iter().any(|d| waiting.starts_with(&d.stage));
                if is_value {
                    Status::Pending { waiting_for: waiting }
                } else {
                    Status::WillRun { key: None, why: vec![format!("after {waiting}")] }
                }
            }
        };
        out.push((ix, status));
    }
    Ok(out)
}

fn select(graph: &Graph, names: &[String]) -> Result<Vec<NodeIndex>, ExecError> {
    names
        .iter()
        .map(|name| {
            graph.find(name).ok_or_else(|| {
                let ids: Vec<&str> = graph.graph.node_weights().map(|s| s.id.as_str()).collect();
                ExecError::UnknownStage { name: name.clone(), help: crate::suggest::help_for(name, &ids, "stage") }
            })
        })
        .collect()
}

/// Runs the graph against the (locked) store.
pub fn run(
    graph: &Graph,
    store: &Store,
    runner: &dyn Runner,
    options: &Options,
    log: &EventLog,
    verbose: bool,
) -> Result<Summary, ExecError> {
    let hashes = FileHashes::default();
    let mut wanted: HashSet<NodeIndex> = graph.graph.node_indices().collect();
    if !options.only.is_empty() {
        wanted = select(graph, &options.only)?.into_iter().flat_map(|ix| graph.ancestors(ix)).collect();
    }
    let mut forced: HashSet<NodeIndex> = select(graph, &options.force)?.into_iter().collect();
    forced.extend(select(graph, &options.from)?.into_iter().flat_map(|ix| graph.descendants(ix)));

    let order: Vec<NodeIndex> = graph.order().into_iter().filter(|ix| wanted.contains(ix)).collect();
    let multi = indicatif::MultiProgress::new();
    if options.dry_run {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let overall = multi.add(indicatif::ProgressBar::new(order.len() as u64));
    overall.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} stages {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    overall.set_prefix("cptc");

    let mut done: HashMap<NodeIndex, Meta> = HashMap::new();
    let mut summary = Summary::default();
    let mut remaining: Vec<NodeIndex> = order;
    while !remaining.is_empty() {
        // Everything whose inputs are published is ready; the rest waits for a later wave.
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for ix in remaining {
            let inputs_done = graph.inputs(ix).iter().all(|(_, i)| done.contains_key(i));
            if inputs_done { ready.push(ix) } else { waiting.push(ix) }
        }
        if ready.is_empty() {
            break; // inputs outside --only's selection are not produced: nothing more can run
        }
        let (exclusive, parallel): (Vec<NodeIndex>, Vec<NodeIndex>) =
            ready.into_iter().partition(|&ix| graph.stage(ix).kind.exclusive());
        let results: Vec<Result<(NodeIndex, Meta, bool), ExecError>> = parallel
            .par_iter()
            .map(|&ix| {
                step(graph, ix, store, runner, &done, &hashes, forced.contains(&ix), options, log, verbose, &multi)
            })
            .collect();
        let mut results = results;
        for &ix in &exclusive {
            results.push(step(
                graph,
                ix,
                store,
                runner,
                &done,
                &hashes,
                forced.contains(&ix),
                options,
                log,
                verbose,
                &multi,
            ));
        }
        let mut failure = None;
        for result in results {
            match result {
                Ok((ix, meta, ran)) => {
                    let id = graph.stage(ix).id.clone();
                    summary.artifacts.insert(id.clone(), store.artifact_dir(graph.stage(ix).kind, &meta.key));
                    if ran {
                        summary.ran.push(id)
                    } else {
                        summary.cached.push(id)
                    }
                    done.insert(ix, meta);
                    overall.inc(1);
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            overall.abandon();
            return Err(e);
        }
        remaining = waiting;
    }
    overall.finish_and_clear();
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn step(
    graph: &Graph,
    ix: NodeIndex,
    store: &Store,
    runner: &dyn Runner,
    done: &HashMap<NodeIndex, Meta>,
    hashes: &FileHashes,
    forced: bool,
    options: &Options,
    log: &EventLog,
    verbose: bool,
    multi: &indicatif::MultiProgress,
) -> Result<(NodeIndex, Meta, bool), ExecError> {
    let stage = graph.stage(ix);
    let parts = match key_parts(graph, ix, done, hashes)? {
        Ok(parts) => parts,
        Err(waiting) => {
            return Err(ExecError::Stage {
                stage: stage.id.clone(),
                message: format!("its input {waiting} is not available"),
                help: None,
            });
        }
    };
    let key = parts.cache_key();
    if !forced && let Some(meta) = store.lookup(stage.kind, &key) {
        log.event("cached", &stage.id, &key, serde_json::json!({}));
        return Ok((ix, meta, false));
    }
    let why = if forced {
        vec!["forced".to_string()]
    } else {
        store.last(&stage.id).map(|old| parts.diff(&old)).unwrap_or_else(|| vec!["never ran".to_string()])
    };
    if verbose {
        let _ = multi.println(format!(
            "run {}: {}",
            stage.id,
            if why.is_empty() { "new key".to_string() } else { why.join("; ") }
        ));
    }
    log.event("start", &stage.id, &key, serde_json::json!({ "why": why }));
    if options.dry_run {
        // A dry run reports what would run and stops the chain there.
        return Err(ExecError::Stage { stage: stage.id.clone(), message: "dry run".to_string(), help: None });
    }
    let inputs: BTreeMap<String, (PathBuf, Meta)> = graph
        .inputs(ix)
        .into_iter()
        .filter_map(|(role, input)| {
            let meta = done.get(&input)?.clone();
            Some((role, (store.artifact_dir(graph.stage(input).kind, &meta.key), meta)))
        })
        .collect();
    let staging = store.begin(stage.kind, &key)?;
    let bar = multi.add(indicatif::ProgressBar::new_spinner());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed_precise} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(stage.id.clone());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    if forced {
        // A forced rerun starts over: no checkpoint of an earlier, cut-short run of this key.
        store.clear_resume(stage.kind, &key)?;
    }
    let ctx = StageCtx {
        stage,
        params: resolved_params(&parts),
        out: &staging.dir,
        inputs,
        progress: &bar,
        resume_dir: store.resume_dir(stage.kind, &key),
        checkpoint_every: options.checkpoint_every,
    };
    let started = Instant::now();
    let result = runner.run(&ctx);
    bar.finish_and_clear();
    match result {
        Ok(values) => {
            let elapsed = started.elapsed().as_secs_f64();
            // A forced rerun replaces the old artifact of the same key.
            let meta = store.publish(staging, &stage.id, parts, values, elapsed, forced)?;
            // Published: what a resume would have needed is garbage now (left behind, it is
            // only disk: a published key never resumes, and `cache gc` removes it).
            if let Err(e) = store.clear_resume(stage.kind, &key) {
                log.event("warning", &stage.id, &key, serde_json::json!({ "error": e.to_string() }));
            }
            log.event("done", &stage.id, &key, serde_json::json!({ "elapsed_s": elapsed, "output": meta.output }));
            Ok((ix, meta, true))
        }
        Err(failure) => {
            // Failures are never cached: the staging folder goes, and the next run retries.
            store.abandon(staging);
            log.event("failed", &stage.id, &key, serde_json::json!({ "error": failure.message }));
            Err(ExecError::Stage { stage: stage.id.clone(), message: failure.message, help: failure.help })
        }
    }
}
