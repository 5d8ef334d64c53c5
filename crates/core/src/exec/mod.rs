//! The executor: computes each stage's key from its inputs' output digests, reuses published
//! artifacts, starts every other stage as soon as its inputs are published and a slot is free
//! (CPU stages side by side, one exclusive stage at a time), and publishes outputs atomically.
//! It schedules, keys and publishes; what a stage does is in `crate::stages`.
//!
//! Early cutoff falls out of the keys: a stage's key covers its inputs' *output digests*, so
//! a rerun input whose output is byte-identical leaves every downstream key unchanged.

mod error;
mod events;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use petgraph::graph::NodeIndex;

pub use error::{ExecError, StageError};
pub use events::EventLog;

use crate::graph::{CacheKey, Digest, Graph, KeyWriter, Stage};
use crate::stages::{StageCtx, StageFailure, StageParams, Tier, ValueRef};
use crate::store::{FileDigests, KeyParts, Meta, Store};

impl CacheKey for KeyParts {
    fn write_key(&self, w: &mut KeyWriter) {
        w.str(&self.kind);
        w.u64(self.version);
        // Run-time values are already resolved into the parameters.
        self.params.write_key(w);
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

/// Choices of `cptc run` (and of `cptc plan`, which reads the selections).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run only these stages and what they need.
    pub only: Vec<String>,
    /// Rerun these stages and everything downstream of them.
    pub from: Vec<String>,
    /// Rerun these stages even if cached.
    pub force: Vec<String>,
    /// Say what would run; run nothing.
    pub dry_run: bool,
    /// After a failure, keep running the stages that do not depend on it.
    pub keep_going: bool,
    /// How often a long stage (training) checkpoints, so a failed or killed run resumes where
    /// it was; `None` never. Results do not depend on it, so it is not part of any key.
    pub checkpoint_every: Option<std::time::Duration>,
    /// Where FSDP trainings run; like checkpoints, not part of any key.
    pub topology: crate::fsdp::Topology,
}

/// Stage implementations. The real one runs `crate::stages`; executor tests use a fake.
pub trait Runner: Sync {
    /// Runs `stage` with its resolved parameters, writing into `ctx.out`; returns the values
    /// it computes for others.
    fn run(&self, stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<serde_json::Value, StageFailure>;
}

/// The runner `cptc run` uses: every stage kind's own implementation.
pub struct RealRunner;

impl Runner for RealRunner {
    fn run(&self, _stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<serde_json::Value, StageFailure> {
        crate::stages::run(params, ctx)
    }
}

/// Outcome of a run: what ran, what was cached, what failed and what never started.
#[derive(Debug, Default)]
pub struct Summary {
    pub ran: Vec<String>,
    pub cached: Vec<String>,
    /// Failed stages, in the order they failed.
    pub failed: Vec<StageError>,
    /// Stages that did not start: after a failure, downstream of one, or waiting for a value
    /// no selected stage computes.
    pub not_started: Vec<String>,
    /// A dry run: what would run and why.
    pub would_run: Vec<(String, Vec<String>)>,
    /// Published artifacts by stage id.
    pub artifacts: BTreeMap<String, PathBuf>,
}

impl Summary {
    /// The exit code the run deserves: 0, or the first failure's tier.
    pub fn exit_code(&self) -> i32 {
        self.failed.first().map_or(0, |f| f.tier.exit_code())
    }
}

/// What a stage's key needs, or what it still waits for.
enum Prepared {
    Ready {
        /// Without the files not hashed yet, when `unhashed` is not 0.
        parts: Box<KeyParts>,
        params: Box<StageParams>,
        /// External files of a per-file stage whose digest is not known yet: the stage hashes
        /// each just before reading it, and its key is whole only then ([`InputFiles`]).
        unhashed: usize,
    },
    /// An input stage has not published.
    Input(String),
    /// A run-time value has not been computed.
    Value(ValueRef),
}

/// Key parts of a stage once its inputs are published, with run-time values resolved. With
/// `deferred`, a stage that hashes its files as it reads them ([`hashes_as_read`]) is not made
/// to hash them here: their digests stay out of the parts, counted as unhashed.
fn prepare(
    graph: &Graph,
    ix: NodeIndex,
    done: &HashMap<NodeIndex, Meta>,
    digests: &FileDigests,
    deferred: bool,
) -> Result<Prepared, StageError> {
    let stage = graph.stage(ix);
    let id = stage.id.to_string();
    // Run-time values first: a stage waiting for one is pending, whatever else it waits for.
    let mut params = stage.params.clone();
    let mut values = BTreeMap::new();
    for wanted in stage.params.waits_for() {
        let source = graph.find_id(&wanted.stage).and_then(|s| done.get(&s));
        let Some(value) = source.and_then(|m| m.values.get(&wanted.output)) else {
            return Ok(Prepared::Value(wanted.clone()));
        };
        params.resolve(wanted, value).map_err(|reason| {
            StageError::new(&id, StageFailure::internal(format!("run-time value {wanted}: {reason}")))
        })?;
        values.insert(wanted.to_string(), value.clone());
    }
    let mut inputs = BTreeMap::new();
    for (role, input) in graph.inputs(ix) {
        match done.get(&input) {
            Some(meta) => {
                inputs.insert(role.to_string(), meta.output);
            }
            None => return Ok(Prepared::Input(graph.stage(input).id.to_string())),
        }
    }
    let mut files = BTreeMap::new();
    let deferred = deferred && hashes_as_read(stage.kind());
    let mut unhashed = 0;
    for (i, path) in stage.files.iter().enumerate() {
        let known = if deferred {
            digests.known(path).map(|known| known.map(|(digest, _)| digest))
        } else {
            digests.digest(path).map(Some)
        };
        match known.map_err(|source| StageError::input_file(&id, path, source))? {
            Some(digest) => {
                files.insert(file_key(i, path), digest);
            }
            None => unhashed += 1,
        }
    }
    let parts = KeyParts {
        kind: stage.kind().name().to_string(),
        version: stage.kind().version(),
        params: params.to_json(),
        inputs,
        files,
        values: values.into_iter().collect(),
    };
    Ok(Prepared::Ready { parts: Box::new(parts), params: Box::new(params), unhashed })
}

/// Stages that read their external files one by one into per-file parts, and so can hash each
/// file right before reading it: the first run of a new corpus then reads it from disk once.
/// Any other stage's files are hashed, in parallel, before the run starts.
fn hashes_as_read(kind: crate::stages::StageKind) -> bool {
    matches!(kind, crate::stages::StageKind::Tokenize | crate::stages::StageKind::Ingest)
}

/// The stages `options` selects (`--only` and what it needs) in execution order, and those it
/// forces. Their external files are hashed first, in parallel, so keys then come from memory;
/// with `deferred`, but for those of the stages that hash them as they read them.
fn selection(
    graph: &Graph,
    options: &Options,
    digests: &FileDigests,
    deferred: bool,
) -> Result<(Vec<NodeIndex>, HashSet<NodeIndex>), ExecError> {
    let mut wanted: HashSet<NodeIndex> = graph.graph.node_indices().collect();
    if !options.only.is_empty() {
        wanted = select(graph, &options.only)?.into_iter().flat_map(|ix| graph.ancestors(ix)).collect();
    }
    let mut forced: HashSet<NodeIndex> = select(graph, &options.force)?.into_iter().collect();
    forced.extend(select(graph, &options.from)?.into_iter().flat_map(|ix| graph.descendants(ix)));
    let order: Vec<NodeIndex> = graph.order().into_iter().filter(|ix| wanted.contains(ix)).collect();
    let files: Vec<PathBuf> = order
        .iter()
        .map(|&ix| graph.stage(ix))
        .filter(|stage| !(deferred && hashes_as_read(stage.kind())))
        .flat_map(|stage| stage.files.iter().cloned())
        .collect();
    let bar = fingerprint_progress(digests.unknown(&files));
    // Errors surface per stage when its key is made.
    let _ = digests.digest_all(&files, &|n| bar.inc(n));
    bar.finish_and_clear();
    Ok((order, forced))
}

/// Inputs not seen before (or changed) past this many bytes are announced, with a bar while
/// they are read: tens of GB of corpus take a while (20 GB: about 25 s from disk on 2 cores).
const FINGERPRINT_NOTICE_BYTES: u64 = 1 << 30;

/// A line and a byte bar for reading `(files, bytes)` of unknown inputs, when they are many;
/// a hidden bar otherwise. The bar shows on a terminal only; the line always.
fn fingerprint_progress((files, bytes): (usize, u64)) -> indicatif::ProgressBar {
    if bytes < FINGERPRINT_NOTICE_BYTES {
        return indicatif::ProgressBar::hidden();
    }
    let s = if files == 1 { "" } else { "s" };
    eprintln!(
        "cptc: reading {files} input file{s} ({:.1} GB) for their digests: new, or changed since \
         last read",
        bytes as f64 / 1e9
    );
    let bar = indicatif::ProgressBar::new(bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix("digest");
    bar
}

/// Status of every selected stage without running anything, in execution order.
pub fn plan(
    graph: &Graph,
    store: &Store,
    digests: &FileDigests,
    options: &Options,
) -> Result<Vec<(NodeIndex, Status)>, ExecError> {
    // A preview reads every file: what is cached is its point.
    let (order, forced) = selection(graph, options, digests, false)?;
    let mut done: HashMap<NodeIndex, Meta> = HashMap::new();
    let mut out = Vec::new();
    for ix in order {
        let stage = graph.stage(ix);
        let status = match prepare(graph, ix, &done, digests, false).map_err(ExecError::Stage)? {
            Prepared::Ready { parts, .. } => {
                let key = parts.cache_key();
                match store.lookup(stage.kind(), &key) {
                    Some(meta) if !forced.contains(&ix) => {
                        done.insert(ix, meta.clone());
                        Status::Cached(Box::new(meta))
                    }
                    Some(_) => Status::WillRun { key: Some(key), why: vec!["forced".to_string()] },
                    None => {
                        let id = stage.id.to_string();
                        let why = store.last(&id).map(|old| parts.diff(&old)).unwrap_or_default();
                        Status::WillRun { key: Some(key), why }
                    }
                }
            }
            Prepared::Value(value) => Status::Pending { waiting_for: value.to_string() },
            Prepared::Input(input) => Status::WillRun { key: None, why: vec![format!("after {input}")] },
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
                let ids: Vec<String> = graph.graph.node_weights().map(|s| s.id.to_string()).collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                ExecError::UnknownStage { name: name.clone(), help: crate::suggest::help_for(name, &ids, "stage") }
            })
        })
        .collect()
}

/// Where each selected stage stands while the run goes on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
    /// Downstream of a failure: never starts.
    Blocked,
}

/// What a finished stage thread reports.
struct Finished {
    ix: NodeIndex,
    result: Result<(Meta, Ran), StageError>,
}

/// What a stage that finished did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// Published its artifact.
    Published,
    /// Found its artifact in the store once its files were hashed (same content, new stat:
    /// a corpus copied or touched): what it built is dropped.
    Found,
}

/// Runs the graph against the (locked) store. `Err` only for what stops a run before it
/// starts (an unknown stage name); stage failures are in the summary.
pub fn run(
    graph: &Graph,
    store: &Store,
    runner: &dyn Runner,
    options: &Options,
    log: &EventLog,
    verbose: bool,
) -> Result<Summary, ExecError> {
    let digests = FileDigests::persistent(store.root());
    let summary = if options.dry_run {
        dry_run(graph, store, &digests, options)
    } else {
        schedule(graph, store, runner, options, log, verbose, &digests)
    };
    // Only a cache: failing to remember digests costs time next run, nothing else.
    let _ = digests.save();
    summary
}

fn dry_run(graph: &Graph, store: &Store, digests: &FileDigests, options: &Options) -> Result<Summary, ExecError> {
    let mut summary = Summary::default();
    for (ix, status) in plan(graph, store, digests, options)? {
        let id = graph.stage(ix).id.to_string();
        match status {
            Status::Cached(meta) => {
                summary.artifacts.insert(id.clone(), store.artifact_dir(graph.stage(ix).kind(), &meta.key));
                summary.cached.push(id);
            }
            Status::WillRun { why, .. } => summary.would_run.push((id, why)),
            Status::Pending { waiting_for } => summary.would_run.push((id, vec![format!("after {waiting_for}")])),
        }
    }
    Ok(summary)
}

/// The ready queue: each turn starts every stage whose inputs are published while a slot is
/// free, then waits for one to finish.
#[allow(clippy::too_many_arguments)]
fn schedule(
    graph: &Graph,
    store: &Store,
    runner: &dyn Runner,
    options: &Options,
    log: &EventLog,
    verbose: bool,
    digests: &FileDigests,
) -> Result<Summary, ExecError> {
    let (order, forced) = selection(graph, options, digests, true)?;
    let cpu_slots = std::thread::available_parallelism().map_or(1, |n| n.get());

    let multi = indicatif::MultiProgress::new();
    let overall = multi.add(indicatif::ProgressBar::new(order.len() as u64));
    overall.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} stages {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    overall.set_prefix("cptc");

    let mut state: HashMap<NodeIndex, State> = order.iter().map(|&ix| (ix, State::Waiting)).collect();
    // Each stage's inputs, sorted once rather than on every turn.
    let inputs_of: HashMap<NodeIndex, Vec<(crate::stages::Input, NodeIndex)>> =
        order.iter().map(|&ix| (ix, graph.inputs(ix))).collect();
    let mut done: HashMap<NodeIndex, Meta> = HashMap::new();
    let mut summary = Summary::default();
    let (tx, rx) = mpsc::channel::<Finished>();
    let checked = std::sync::Mutex::new(HashSet::new());
    let (mut cpu_busy, mut exclusive_busy) = (0usize, false);

    std::thread::scope(|scope| {
        loop {
            let stopping = !summary.failed.is_empty() && !options.keep_going;
            let mut started = false;
            for &ix in order.iter().filter(|_| !stopping) {
                if state[&ix] != State::Waiting {
                    continue;
                }
                let inputs = &inputs_of[&ix];
                if inputs.iter().any(|(_, i)| matches!(state.get(i), Some(State::Failed | State::Blocked))) {
                    state.insert(ix, State::Blocked);
                    continue;
                }
                if !inputs.iter().all(|(_, i)| done.contains_key(i)) {
                    continue;
                }
                // Ordered after a stage of this run that has not finished (an order, not an input).
                if graph.waits_for(ix).any(|first| matches!(state.get(&first), Some(State::Waiting | State::Running))) {
                    continue;
                }
                let stage = graph.stage(ix);
                let exclusive = stage.kind().exclusive();
                if (exclusive && exclusive_busy) || (!exclusive && cpu_busy >= cpu_slots) {
                    continue;
                }
                let id = stage.id.to_string();
                let (parts, params, unhashed) = match prepare(graph, ix, &done, digests, true) {
                    Ok(Prepared::Ready { parts, params, unhashed }) => (*parts, *params, unhashed),
                    // A value no selected stage computes (`--only`): it never comes.
                    Ok(Prepared::Value(_) | Prepared::Input(_)) => continue,
                    Err(e) => {
                        log.event("failed", &id, &Digest([0; 32]), serde_json::json!({ "error": e.message() }));
                        state.insert(ix, State::Failed);
                        summary.failed.push(e);
                        overall.inc(1);
                        continue;
                    }
                };
                // Not whole while files are unhashed: the job completes it, and looks it up then.
                let key = parts.cache_key();
                let is_forced = forced.contains(&ix);
                if !is_forced
                    && unhashed == 0
                    && let Some(meta) = store.lookup(stage.kind(), &key)
                {
                    log.event("cached", &id, &key, serde_json::json!({}));
                    summary.artifacts.insert(id.clone(), store.artifact_dir(stage.kind(), &meta.key));
                    summary.cached.push(id);
                    done.insert(ix, meta);
                    state.insert(ix, State::Done);
                    overall.inc(1);
                    started = true; // its dependents may be ready now
                    continue;
                }
                let why = if is_forced {
                    vec!["forced".to_string()]
                } else {
                    // Files not hashed yet are neither changed nor the same: left out of the diff.
                    let unhashed_files: HashSet<String> = (stage.files.iter().enumerate())
                        .map(|(i, path)| file_key(i, path))
                        .filter(|k| !parts.files.contains_key(k))
                        .collect();
                    let mut why = store
                        .last(&id)
                        .map(|mut old| {
                            old.files.retain(|k, _| !unhashed_files.contains(k));
                            parts.diff(&old)
                        })
                        .unwrap_or_else(|| vec!["never ran".to_string()]);
                    if unhashed > 0 {
                        let s = if unhashed == 1 { "" } else { "s" };
                        why.push(format!("{unhashed} input file{s} not hashed since last changed: hashed as read"));
                    }
                    why
                };
                if verbose {
                    let reason = if why.is_empty() { "new key".to_string() } else { why.join("; ") };
                    let _ = multi.println(format!("run {id}: {reason}"));
                }
                // With unhashed files, `key` is partial: the done event has the whole one.
                log.event("start", &id, &key, serde_json::json!({ "why": why, "unhashed": unhashed }));
                let inputs: Vec<_> = inputs
                    .iter()
                    .filter_map(|(role, input)| {
                        let meta = done.get(input)?.clone();
                        Some((role.clone(), store.artifact_dir(graph.stage(*input).kind(), &meta.key), meta))
                    })
                    .collect();
                state.insert(ix, State::Running);
                if exclusive {
                    exclusive_busy = true;
                } else {
                    cpu_busy += 1;
                }
                started = true;
                let tx = tx.clone();
                let (multi, checked) = (&multi, &checked);
                scope.spawn(move || {
                    let job =
                        Job { graph, ix, store, runner, options, log, multi, forced: is_forced, digests, checked };
                    let result = job.run(parts, params, key, unhashed, inputs);
                    let _ = tx.send(Finished { ix, result });
                });
            }
            if started {
                continue; // cached stages may have made others ready
            }
            if cpu_busy == 0 && !exclusive_busy {
                break; // nothing running, nothing startable
            }
            let Ok(finished) = rx.recv() else { break };
            let stage = graph.stage(finished.ix);
            if stage.kind().exclusive() {
                exclusive_busy = false;
            } else {
                cpu_busy -= 1;
            }
            overall.inc(1);
            let id = stage.id.to_string();
            match finished.result {
                Ok((meta, ran)) => {
                    summary.artifacts.insert(id.clone(), store.artifact_dir(stage.kind(), &meta.key));
                    if ran == Ran::Published {
                        summary.ran.push(id);
                    } else {
                        log.event("cached", &id, &meta.key, serde_json::json!({ "found": "after hashing its files" }));
                        summary.cached.push(id);
                    }
                    done.insert(finished.ix, meta);
                    state.insert(finished.ix, State::Done);
                }
                Err(e) => {
                    summary.failed.push(e);
                    state.insert(finished.ix, State::Failed);
                }
            }
        }
    });
    summary.not_started = order
        .iter()
        .filter(|ix| matches!(state[ix], State::Waiting | State::Blocked))
        .map(|&ix| graph.stage(ix).id.to_string())
        .collect();
    if summary.failed.is_empty() {
        overall.finish_and_clear();
    } else {
        overall.abandon();
    }
    Ok(summary)
}

/// One stage run on its own thread: staging folder, the stage, publish or abandon.
struct Job<'a> {
    graph: &'a Graph,
    ix: NodeIndex,
    store: &'a Store,
    runner: &'a dyn Runner,
    options: &'a Options,
    log: &'a EventLog,
    multi: &'a indicatif::MultiProgress,
    forced: bool,
    digests: &'a FileDigests,
    /// Input artifacts already checked against their meta in this command.
    checked: &'a std::sync::Mutex<HashSet<Digest>>,
}

impl Job<'_> {
    /// Runs the stage and publishes it under `key`; with `unhashed` files, `key` is not whole
    /// yet (it names the staging folder only): the stage hashes them as it reads them, and the
    /// key is made whole, and looked up in the store, once it has.
    fn run(
        &self,
        mut parts: KeyParts,
        params: StageParams,
        key: Digest,
        unhashed: usize,
        inputs: Vec<(crate::stages::Input, PathBuf, Meta)>,
    ) -> Result<(Meta, Ran), StageError> {
        let stage = self.graph.stage(self.ix);
        let id = stage.id.to_string();
        let fail = |failure: StageFailure| {
            self.log.event(
                "failed",
                &id,
                &key,
                serde_json::json!({ "error": failure.message(), "tier": failure.tier }),
            );
            StageError::new(&id, failure)
        };
        // Inputs are what their digests say: a damaged artifact (a hand edit, a truncation)
        // fails its consumer instead of poisoning it. Each is checked once per command, and a
        // file is read only where its stat no longer vouches for its digest.
        for (_, dir, meta) in &inputs {
            if let Err(e) = self.check_input(dir, meta) {
                return Err(fail(StageFailure { tier: Tier::Environment, diagnostic: Box::new(e) }));
            }
        }
        // Remembered when the key was made: no file is read again here. Those not in the key
        // yet are the stage's to hash.
        let known = stage
            .files
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let known = if unhashed > 0 && !parts.files.contains_key(&file_key(i, path)) {
                    None
                } else {
                    Some(self.digests.stamped(path).map_err(|source| StageError::input_file(&id, path, source))?)
                };
                Ok(known)
            })
            .collect::<Result<Vec<_>, StageError>>()?;
        // A file changed since its key was made would build parts of another content than the key's.
        if let Some(path) = stage.files.iter().zip(&known).enumerate().find_map(|(i, (path, known))| {
            let key_has = parts.files.get(&file_key(i, path));
            known.is_some_and(|(digest, _)| key_has != Some(&digest)).then_some(path)
        }) {
            return Err(fail(StageFailure::of(crate::stages::InputChanged { path: path.display().to_string() })));
        }
        let file_digests = crate::stages::InputFiles::new(&stage.files, known, self.digests);
        let staging = self.store.begin(stage.kind(), &key).map_err(|e| fail(StageFailure::of(e)))?;
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed_precise} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(id.clone());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        if self.forced {
            // A forced rerun starts over: no checkpoint of an earlier, cut-short run of this key.
            self.store.clear_resume(stage.kind(), &key).map_err(|e| fail(StageFailure::of(e)))?;
        }
        let progress = crate::stages::Progress::bar(bar.clone());
        let part_cache = self.store.parts();
        let ctx = StageCtx {
            id: &stage.id,
            files: &stage.files,
            digests: &file_digests,
            parts: Some(&part_cache),
            out: &staging.dir,
            inputs,
            progress: &progress,
            resume_dir: self.store.resume_dir(stage.kind(), &key),
            checkpoint_every: self.options.checkpoint_every,
            topology: &self.options.topology,
        };
        let started = Instant::now();
        // A panic in a stage is a bug: it fails that stage (tier internal), not the process.
        let result = crate::stages::catching_panics(|| self.runner.run(stage, &params, &ctx));
        bar.finish_and_clear();
        // Inputs are what the key says: a file rewritten while the stage read it fails the stage.
        let result = result.and_then(|values| {
            (0..stage.files.len()).try_for_each(|i| ctx.unchanged(i))?;
            Ok(values)
        });
        // The key made whole with the digests the stage took (each file's, before reading it).
        let result = result.and_then(|values| {
            if unhashed > 0 {
                for (i, path) in stage.files.iter().enumerate() {
                    parts.files.insert(file_key(i, path), file_digests.taken(i)?.0);
                }
            }
            Ok(values)
        });
        let whole = parts.cache_key();
        if unhashed > 0
            && result.is_ok()
            && !self.forced
            && let Some(meta) = self.store.lookup(stage.kind(), &whole)
        {
            // Built already, from files of the same content: the store's artifact stands.
            self.store.abandon(staging);
            let _ = self.store.clear_resume(stage.kind(), &key);
            return Ok((meta, Ran::Found));
        }
        match result {
            Ok(values) => {
                let elapsed = started.elapsed().as_secs_f64();
                // A forced rerun replaces the old artifact of the same key.
                let staging = staging.with_key(whole);
                let meta = self
                    .store
                    .publish(staging, &id, parts, values, elapsed, self.forced, &part_cache.linked())
                    .map_err(|e| fail(StageFailure::of(e)))?;
                // Its digests were taken just now: a stage reading it later in this command
                // need not read it again.
                self.mark_checked(meta.key);
                // Published: what a resume would have needed is garbage now (left behind, it is
                // only disk: a published key never resumes, and `cache gc` removes it).
                if let Err(e) = self.store.clear_resume(stage.kind(), &key) {
                    self.log.event("warning", &id, &key, serde_json::json!({ "error": e.to_string() }));
                }
                self.log.event(
                    "done",
                    &id,
                    &meta.key,
                    serde_json::json!({ "elapsed_s": elapsed, "output": meta.output }),
                );
                Ok((meta, Ran::Published))
            }
            Err(failure) => {
                // Failures are never cached: the staging folder goes, and the next run retries.
                self.store.abandon(staging);
                Err(fail(failure))
            }
        }
    }
}

/// How an external file enters a key: its position and name. Names, not absolute paths, keep
/// keys portable across machines and checkouts.
fn file_key(i: usize, path: &std::path::Path) -> String {
    let name = path.file_name().map_or_else(|| i.to_string(), |n| n.to_string_lossy().into_owned());
    format!("{i}:{name}")
}

impl Job<'_> {
    fn check_input(&self, dir: &std::path::Path, meta: &Meta) -> Result<(), crate::store::StoreError> {
        let seen = |s: &Self| s.checked.lock().map(|c| c.contains(&meta.key)).unwrap_or(false);
        if seen(self) {
            return Ok(());
        }
        crate::store::check_artifact_vouched(dir, meta, self.digests)?;
        self.mark_checked(meta.key);
        Ok(())
    }

    /// The artifact of `key` is known to match its meta for the rest of this command.
    fn mark_checked(&self, key: Digest) {
        if let Ok(mut c) = self.checked.lock() {
            c.insert(key);
        }
    }
}

/// The tier of an executor-level failure (the store), for exit codes.
pub fn tier_of(e: &ExecError) -> Tier {
    match e {
        ExecError::Stage(s) => s.tier,
        // The store's folder, lock or disk: the machine's state, not the recipe's.
        ExecError::Store(_) => Tier::Environment,
        ExecError::UnknownStage { .. } => Tier::Input,
    }
}
