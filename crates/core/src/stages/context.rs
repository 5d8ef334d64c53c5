//! What a stage gets from the executor (its folder, its inputs by role, a progress bar) and
//! how it fails: a phase diagnostic kept whole, with the tier that decides the exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use miette::Diagnostic;

use super::{Input, StageId};
use crate::graph::Digest;
use crate::store::Meta;
use crate::store::digests::{FileDigests, Stat};

/// What a stage implementation gets.
pub struct StageCtx<'a> {
    pub id: &'a StageId,
    /// External files of the stage (corpus files, a GGUF), in the order `lower` gave them.
    pub files: &'a [PathBuf],
    /// Their content digests and the stats those vouch for, in the same order (what the
    /// stage's key holds; none in the worker process, whose stages read no external files).
    pub digests: &'a InputFiles<'a>,
    /// The store's per-file cache (`None` in the worker process).
    pub parts: Option<&'a crate::store::Parts>,
    /// Folder to write the output into (published when the stage returns Ok).
    pub out: &'a Path,
    /// Published inputs: role, artifact folder and its meta.
    pub inputs: Vec<(Input, PathBuf, Meta)>,
    pub progress: &'a Progress,
    /// A folder of this stage's key that outlives a failed or killed run (checkpoints); the
    /// executor removes it once the stage publishes.
    pub resume_dir: PathBuf,
    /// How often to checkpoint into `resume_dir` (`None`: never).
    pub checkpoint_every: Option<std::time::Duration>,
    /// Where an FSDP training runs (`cptc run --nproc-per-node ...`); in no key.
    pub topology: &'a crate::fsdp::Topology,
}

impl StageCtx<'_> {
    /// Tells the user something about the run as it happens (a resume, a checkpoint refused),
    /// above the progress bars; unlike indicatif's `println`, also when stderr is not a terminal.
    pub fn notice(&self, line: &str) {
        self.progress.notice(&format!("{}: {line}", self.id));
    }

    /// The content digest of external file `i`: known when the key was made, or taken now. A
    /// stage takes it before it reads the file, so that [`unchanged`](Self::unchanged) then
    /// vouches for what it read.
    pub fn file_digest(&self, i: usize) -> Result<Digest, StageFailure> {
        self.digests.get(i).map(|(digest, _)| digest)
    }

    /// Fails unless external file `i` is still as its digest found it: what a stage built from
    /// it is published (a per-file part, the artifact) only while this holds, or a file
    /// rewritten during the run would be cached under its old content's key.
    pub fn unchanged(&self, i: usize) -> Result<(), StageFailure> {
        let (_, stamp) = self.digests.taken(i)?;
        match self.files.get(i) {
            Some(path) if !stamp.still(path) => {
                Err(StageFailure::of(InputChanged { path: path.display().to_string() }))
            }
            _ => Ok(()),
        }
    }

    /// The input in `role`; its absence is the executor's bug, not the user's.
    pub fn input(&self, role: &Input) -> Result<(&Path, &Meta), StageFailure> {
        self.optional(role).ok_or_else(|| StageFailure::internal(format!("stage `{}` has no `{role}` input", self.id)))
    }

    /// The input in `role`, if the graph gave one.
    pub fn optional(&self, role: &Input) -> Option<(&Path, &Meta)> {
        self.inputs.iter().find(|(r, _, _)| r == role).map(|(_, dir, meta)| (dir.as_path(), meta))
    }

    /// Inputs whose role `pick` accepts, with what it extracts (a corpus name...), in role order.
    pub fn inputs_where<'s, T: 's>(
        &'s self,
        pick: impl Fn(&'s Input) -> Option<T> + 's,
    ) -> impl Iterator<Item = (T, &'s Path, &'s Meta)> + 's {
        self.inputs.iter().filter_map(move |(role, dir, meta)| Some((pick(role)?, dir.as_path(), meta)))
    }
}

/// A stage's external files' digests, and the stat each vouches for: those known when its key
/// was made, the others taken when the stage first asks, just before it reads the file. A
/// per-file stage (tokenize, ingest) is keyed so on a file not seen before, and hashes each such
/// file right before reading it, while its pages are still in memory: its first run reads a
/// corpus from disk once, not once for the key and again for the stage (20 GB that the page
/// cache cannot hold, or a network file system).
pub struct InputFiles<'a> {
    paths: &'a [PathBuf],
    got: Vec<OnceLock<(Digest, Stat)>>,
    /// Where the others are hashed (and remembered); `None`: all are known.
    source: Option<&'a FileDigests>,
}

impl<'a> InputFiles<'a> {
    /// `paths`, with `known[i]` the digest and stat of each already hashed; the others are
    /// hashed through `source` when asked for.
    pub fn new(paths: &'a [PathBuf], known: Vec<Option<(Digest, Stat)>>, source: &'a FileDigests) -> Self {
        let got = (0..paths.len())
            .map(|i| {
                let cell = OnceLock::new();
                if let Some(Some(pair)) = known.get(i) {
                    let _ = cell.set(*pair);
                }
                cell
            })
            .collect();
        InputFiles { paths, got, source: Some(source) }
    }

    /// No external files (the worker process).
    pub fn none() -> InputFiles<'static> {
        InputFiles { paths: &[], got: Vec::new(), source: None }
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// File `i`'s digest if it is known without reading the file.
    pub fn known(&self, i: usize) -> Option<Digest> {
        self.got.get(i)?.get().map(|(digest, _)| *digest)
    }

    /// File `i`'s digest and stat as taken before the stage read it: a file the stage read
    /// without asking for its digest first is the stage's bug (hashed only now, its digest
    /// would vouch for nothing it read).
    pub fn taken(&self, i: usize) -> Result<(Digest, Stat), StageFailure> {
        self.got
            .get(i)
            .and_then(|cell| cell.get().copied())
            .ok_or_else(|| StageFailure::internal(format!("external file {i} was read without its digest taken first")))
    }

    /// File `i`'s digest and stat, hashing the file if they are not known yet.
    pub fn get(&self, i: usize) -> Result<(Digest, Stat), StageFailure> {
        let (Some(path), Some(cell)) = (self.paths.get(i), self.got.get(i)) else {
            return Err(StageFailure::internal(format!("no external file {i}")));
        };
        if let Some(pair) = cell.get() {
            return Ok(*pair);
        }
        let source = self.source.ok_or_else(|| StageFailure::internal(format!("no digest for {}", path.display())))?;
        let pair = source
            .stamped(path)
            .map_err(|source| StageFailure::of(InputFile { path: path.display().to_string(), source }))?;
        // Each file is one worker's, so the cell is empty here; had it been filled meanwhile,
        // the first digest is the one every later question gets.
        Ok(*cell.get_or_init(|| pair))
    }
}

/// An external file of the stage could not be read to make its key.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("cannot read input file {path}")]
#[diagnostic(code(cptc::exec::input_file), help("the recipe names it; check that it still exists"))]
pub struct InputFile {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// An external file changed while the stage read it: what was read may mix old and new
/// content, so none of it is published under the old content's key.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{path} changed while the stage read it")]
#[diagnostic(
    code(cptc::exec::input_changed),
    help("nothing built from it was published; run again once the file is no longer being written")
)]
pub struct InputChanged {
    pub path: String,
}

/// Where a stage reports how far it is: the executor's progress bar, or (in the libtorch
/// worker) event lines on stdout that the executor applies to that bar.
pub struct Progress {
    sink: Sink,
}

enum Sink {
    Bar(indicatif::ProgressBar),
    Events(std::sync::Mutex<Box<dyn std::io::Write + Send>>),
}

impl Progress {
    pub fn bar(bar: indicatif::ProgressBar) -> Progress {
        Progress { sink: Sink::Bar(bar) }
    }

    /// Progress as [`super::worker::Event`] lines written to `out`; a write that fails means
    /// the executor is gone, so the worker exits (its resume folder keeps what a rerun needs).
    pub fn events(out: Box<dyn std::io::Write + Send>) -> Progress {
        Progress { sink: Sink::Events(std::sync::Mutex::new(out)) }
    }

    /// A bar that shows nothing (tests, tools).
    pub fn hidden() -> Progress {
        Progress::bar(indicatif::ProgressBar::hidden())
    }

    pub fn set_message(&self, message: impl Into<String>) {
        let text = message.into();
        match &self.sink {
            Sink::Bar(bar) => bar.set_message(text),
            Sink::Events(_) => self.send(&super::worker::Event::Message { text }),
        }
    }

    pub fn set_length(&self, n: u64) {
        match &self.sink {
            Sink::Bar(bar) => bar.set_length(n),
            Sink::Events(_) => self.send(&super::worker::Event::Length { n }),
        }
    }

    pub fn set_position(&self, n: u64) {
        match &self.sink {
            Sink::Bar(bar) => bar.set_position(n),
            Sink::Events(_) => self.send(&super::worker::Event::Position { n }),
        }
    }

    pub fn inc(&self, n: u64) {
        match &self.sink {
            Sink::Bar(bar) => bar.inc(n),
            Sink::Events(_) => self.send(&super::worker::Event::Inc { n }),
        }
    }

    pub fn reset_eta(&self) {
        match &self.sink {
            Sink::Bar(bar) => bar.reset_eta(),
            Sink::Events(_) => self.send(&super::worker::Event::ResetEta),
        }
    }

    /// A line above the bars; unlike indicatif's `println`, also when stderr is not a terminal.
    pub fn notice(&self, line: &str) {
        match &self.sink {
            Sink::Bar(bar) => bar.suspend(|| eprintln!("{line}")),
            Sink::Events(_) => self.send(&super::worker::Event::Notice { text: line.to_string() }),
        }
    }

    /// Writes one event line (the worker's side).
    pub fn send(&self, event: &super::worker::Event) {
        let Sink::Events(out) = &self.sink else { return };
        let line = serde_json::to_string(event).unwrap_or_default();
        let mut out = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The executor is gone (killed or interrupted): nobody will publish what we make.
            std::process::exit(super::worker::ORPHANED);
        }
    }
}

/// Why a stage failed, as far as the person running it is concerned; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The recipe, a data file or a model file is wrong: exit 1.
    Input,
    /// The machine: out of memory, disk full, no CUDA, libtorch missing: exit 3.
    Environment,
    /// A bug in cptc: exit 2.
    Internal,
}

impl Tier {
    pub fn exit_code(self) -> i32 {
        match self {
            Tier::Input => 1,
            Tier::Internal => 2,
            Tier::Environment => 3,
        }
    }
}

/// A failed stage: the phase's diagnostic itself (code, help, labels) and its tier.
#[derive(Debug)]
pub struct StageFailure {
    pub tier: Tier,
    pub diagnostic: Box<dyn Diagnostic + Send + Sync + 'static>,
}

/// A failure that is only a message (a malformed artifact file, an unexpected state).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(cptc::stage::failed))]
pub struct Message {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

impl StageFailure {
    /// A bad-input failure with a message and help.
    pub fn input(message: impl Into<String>, help: Option<String>) -> StageFailure {
        StageFailure { tier: Tier::Input, diagnostic: Box::new(Message { message: message.into(), help }) }
    }

    /// A cptc bug.
    pub fn internal(message: impl Into<String>) -> StageFailure {
        let help = Some("this is a bug in cptc; please report it with the event log".to_string());
        StageFailure { tier: Tier::Internal, diagnostic: Box::new(Message { message: message.into(), help }) }
    }

    /// A phase error kept as its diagnostic, its tier read from its cause chain.
    pub fn of<D: Diagnostic + Send + Sync + 'static>(d: D) -> StageFailure {
        let tier = classify(&d);
        StageFailure { tier, diagnostic: Box::new(d) }
    }

    /// The message with its whole cause chain.
    pub fn message(&self) -> String {
        chain_text(self.diagnostic.as_ref())
    }
}

/// The error's text followed by every cause not already in it.
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    message
}

/// Environment failures are recognised by their cause: the OS's error kinds for a full disk,
/// exhausted memory or a read-only file system; the backend's own (no device, libtorch out of
/// memory or failing in CUDA).
pub(crate) fn classify(e: &(dyn std::error::Error + 'static)) -> Tier {
    use std::io::ErrorKind;
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let environment = matches!(
                io.kind(),
                ErrorKind::StorageFull
                    | ErrorKind::QuotaExceeded
                    | ErrorKind::OutOfMemory
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::PermissionDenied
                    | ErrorKind::FileTooLarge
            );
            if environment {
                return Tier::Environment;
            }
        }
        if crate::backend::is_environment_error(e) {
            return Tier::Environment;
        }
        next = e.source();
    }
    Tier::Input
}

/// Any phase error becomes a failure that keeps its diagnostic; other errors (an `io::Error`
/// from a helper, a message) keep their text and cause chain.
impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for StageFailure {
    fn from(e: E) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        macro_rules! keep {
            ($boxed:ident, $($ty:ty),*) => {
                $(
                    let $boxed = match $boxed.downcast::<$ty>() {
                        Ok(d) => return StageFailure::of(*d),
                        Err(other) => other,
                    };
                )*
            };
        }
        keep!(
            boxed,
            crate::data::DataError,
            crate::backend::BackendError,
            crate::vocab::VocabError,
            crate::convert::ConvertError,
            crate::store::StoreError,
            crate::law::LawError,
            Message
        );
        let tier = classify(boxed.as_ref());
        StageFailure { tier, diagnostic: Box::new(Message { message: chain_text(boxed.as_ref()), help: None }) }
    }
}

/// Intra-op threads for the engines: `CPTC_THREADS` (a positive count), else the cores available.
pub fn threads() -> Result<i32, StageFailure> {
    match std::env::var("CPTC_THREADS") {
        Ok(v) => v.trim().parse::<i32>().ok().filter(|&n| n > 0).ok_or_else(|| {
            StageFailure::input(
                format!("CPTC_THREADS={v} is not a positive number of threads"),
                Some("unset it to use every core, or give a count such as CPTC_THREADS=4".into()),
            )
        }),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as i32)),
    }
}
