//! The stage kinds: one file per kind with its typed parameters, implementation version and
//! `run`; this module is the contract between them and the executor (ids, input roles,
//! run-time values, the context a stage gets, how it fails).
//!
//! Adding a kind: its file here, its variant in [`StageKind`] and [`StageParams`] (the
//! compiler lists every `match` to extend), and `graph::lower` producing it. Adding a field:
//! the recipe IR (`crate::recipe`), `check` reading it, and the stage's `Params` using it
//! (`lower` copies recipe settings whole, so it needs no change). ARCHITECTURE.md says more.

pub mod choose;
mod context;
pub mod eval;
mod files;
pub mod fit;
pub mod hf_model;
pub mod import;
pub mod ingest;
pub mod mix;
mod per_file;
pub mod report;
pub mod resize;
pub mod split;
pub mod tokenize;
pub mod train;
pub mod vocab;
pub mod worker;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use context::chain_text;
pub use context::{InputChanged, InputFile, InputFiles, Message, Progress, StageCtx, StageFailure, Tier, threads};
pub use files::{model_dir, read_json, tokenizer_path, write_json};

/// What a stage does. Each kind has an implementation version (its file's `VERSION`): bump
/// it when the stage's output changes for the same inputs, and every cached artifact of that
/// kind is invalidated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// A GGUF file converted to a Hugging Face directory.
    Import,
    /// A Hugging Face directory given by the user, fingerprinted by its files' content.
    HfModel,
    /// Corpus files read into normalised documents.
    Ingest,
    /// Documents split into training and held-out sets.
    Split,
    /// A BPE trained on domain text and merged into the base tokenizer.
    Vocab,
    /// Embeddings resized for an expanded vocabulary.
    Resize,
    /// A split tokenized into Megatron shards.
    Tokenize,
    /// Training sequences drawn from the mixture (shares, ramp) and packed.
    Mix,
    Train,
    Eval,
    /// The D-CPT law fitted over a sweep.
    Fit,
    /// A ratio chosen from fitted laws; its value feeds later stages.
    Choose,
    Report,
    /// Deterministic stages for executor tests; never produced by `lower`.
    Test,
}

impl StageKind {
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Import => "import",
            StageKind::HfModel => "hf_model",
            StageKind::Ingest => "ingest",
            StageKind::Split => "split",
            StageKind::Vocab => "vocab",
            StageKind::Resize => "resize",
            StageKind::Tokenize => "tokenize",
            StageKind::Mix => "mix",
            StageKind::Train => "train",
            StageKind::Eval => "eval",
            StageKind::Fit => "fit",
            StageKind::Choose => "choose",
            StageKind::Report => "report",
            StageKind::Test => "test",
        }
    }

    /// How a stage id of this kind starts: the kind's name, except a user's model folder,
    /// which is `model:<name>` as the recipe writes it.
    pub fn id_prefix(self) -> &'static str {
        match self {
            StageKind::HfModel => "model",
            other => other.name(),
        }
    }

    /// Implementation version, part of every key of this kind.
    pub fn version(self) -> u64 {
        match self {
            StageKind::Import => import::VERSION,
            StageKind::HfModel => hf_model::VERSION,
            StageKind::Ingest => ingest::VERSION,
            StageKind::Split => split::VERSION,
            StageKind::Vocab => vocab::VERSION,
            StageKind::Resize => resize::VERSION,
            StageKind::Tokenize => tokenize::VERSION,
            StageKind::Mix => mix::VERSION,
            StageKind::Train => train::VERSION,
            StageKind::Eval => eval::VERSION,
            StageKind::Fit => fit::VERSION,
            StageKind::Choose => choose::VERSION,
            StageKind::Report => report::VERSION,
            StageKind::Test => 1,
        }
    }

    /// Stages that need the whole machine (accelerator or all cores) run one at a time.
    pub fn exclusive(self) -> bool {
        matches!(self, StageKind::Train | StageKind::Eval | StageKind::Resize | StageKind::Vocab)
    }
}

/// A stage's identity: its kind and a name unique within the kind (`train:cpt`,
/// `tokenize:poetry@smol`, `train:ratios[r=10%]`; the report has no name). Shown as text,
/// never parsed back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId {
    pub kind: StageKind,
    pub name: String,
}

impl StageId {
    pub fn new(kind: StageKind, name: impl Into<String>) -> StageId {
        StageId { kind, name: name.into() }
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.kind.id_prefix();
        if self.name.is_empty() { f.write_str(prefix) } else { write!(f, "{prefix}:{}", self.name) }
    }
}

impl Serialize for StageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The role an input plays for a stage. Its text form (`corpus:web`, `model`...) enters the
/// stage's key; stages match on the variants.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Input {
    /// split <- ingest: the documents.
    Docs,
    /// tokenize <- split: the corpus' held-out rule.
    Split,
    /// mix <- every corpus's split: documents it holds out are trained on nowhere.
    Exclude(String),
    /// tokenize <- a model or vocab stage: whose `tokenizer.json` encodes.
    Tokenizer,
    /// vocab <- the base model.
    Base,
    /// vocab <- a domain corpus's split, to train the BPE on.
    TrainOn(String),
    /// vocab <- a general corpus's split, for the compression report.
    General(String),
    /// resize, train, eval <- the model they start from.
    Model,
    /// resize <- the vocab stage.
    Vocab,
    /// mix <- a tokenized corpus of the mixture.
    Corpus(String),
    /// mix <- the stage computing a run-time value it waits for.
    Value,
    /// mix <- the mix of the train stage its own continues: the data ledger it goes on from.
    Ledger,
    /// train <- its mix.
    Data,
    /// A fork's train <- its parent's train: the state at the fork's step.
    Fork,
    /// A fork's mix <- its parent's mix: the data streams at the fork's step.
    ForkData,
    /// train, eval <- a tokenized corpus whose held-out side is evaluated.
    Heldout(String),
    /// fit <- a train stage of its sweep.
    Point(StageId),
    /// choose <- its domain and general fits.
    DomainLaw,
    GeneralLaw,
    /// report <- a stage it reports on.
    Reported(StageId),
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Docs => f.write_str("docs"),
            Input::Split => f.write_str("split"),
            Input::Exclude(c) => write!(f, "exclude:{c}"),
            Input::Tokenizer => f.write_str("tokenizer"),
            Input::Base => f.write_str("base"),
            Input::TrainOn(c) => write!(f, "train_on:{c}"),
            Input::General(c) => write!(f, "general:{c}"),
            Input::Model => f.write_str("model"),
            Input::Vocab => f.write_str("vocab"),
            Input::Corpus(c) => write!(f, "corpus:{c}"),
            Input::Value => f.write_str("value"),
            Input::Ledger => f.write_str("ledger"),
            Input::Data => f.write_str("data"),
            Input::Fork => f.write_str("fork"),
            Input::ForkData => f.write_str("fork_data"),
            Input::Heldout(c) => write!(f, "heldout:{c}"),
            Input::Point(id) => write!(f, "point:{id}"),
            Input::DomainLaw => f.write_str("domain_law"),
            Input::GeneralLaw => f.write_str("general_law"),
            Input::Reported(id) => write!(f, "{id}"),
        }
    }
}

impl Serialize for Input {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A value another stage computes at run time, e.g. `choose:best`'s `ratio`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValueRef {
    pub stage: StageId,
    pub output: String,
}

impl fmt::Display for ValueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.stage, self.output)
    }
}

/// A parameter known when lowering, or computed by another stage before this one runs. The
/// key is made from the value either way, so a ratio written in the recipe and the same ratio
/// chosen by a law share one artifact.
#[derive(Clone, Debug, PartialEq)]
pub enum Runtime<T> {
    Known(T),
    From(ValueRef),
}

impl<T: Serialize> Serialize for Runtime<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Runtime::Known(v) => v.serialize(s),
            // Never part of a key: the executor resolves it first.
            Runtime::From(r) => s.collect_str(&format_args!("<{r}>")),
        }
    }
}

impl<T> Runtime<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Runtime::Known(v) => Some(v),
            Runtime::From(_) => None,
        }
    }
}

/// The parameters of one stage, typed per kind. Serialized canonically into the key and into
/// `cptc plan --format json`; handed to the stage as its own type.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StageParams {
    Import(import::Params),
    HfModel(hf_model::Params),
    Ingest(ingest::Params),
    Split(split::Params),
    Vocab(vocab::Params),
    Resize(resize::Params),
    Tokenize(tokenize::Params),
    Mix(Box<mix::Params>),
    Train(Box<train::Params>),
    Eval(eval::Params),
    Fit(fit::Params),
    Choose(choose::Params),
    Report(report::Params),
    /// Executor tests only.
    Test(serde_json::Value),
}

impl StageParams {
    pub fn kind(&self) -> StageKind {
        match self {
            StageParams::Import(_) => StageKind::Import,
            StageParams::HfModel(_) => StageKind::HfModel,
            StageParams::Ingest(_) => StageKind::Ingest,
            StageParams::Split(_) => StageKind::Split,
            StageParams::Vocab(_) => StageKind::Vocab,
            StageParams::Resize(_) => StageKind::Resize,
            StageParams::Tokenize(_) => StageKind::Tokenize,
            StageParams::Mix(_) => StageKind::Mix,
            StageParams::Train(_) => StageKind::Train,
            StageParams::Eval(_) => StageKind::Eval,
            StageParams::Fit(_) => StageKind::Fit,
            StageParams::Choose(_) => StageKind::Choose,
            StageParams::Report(_) => StageKind::Report,
            StageParams::Test(_) => StageKind::Test,
        }
    }

    /// The canonical JSON form (the key's, the plan's).
    pub fn to_json(&self) -> serde_json::Value {
        // Plain data (numbers, strings, enums): serialization cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Run-time values this stage waits for.
    pub fn waits_for(&self) -> Vec<&ValueRef> {
        match self {
            StageParams::Mix(p) => p.waits_for(),
            _ => Vec::new(),
        }
    }

    /// Fills in a run-time value; `Err` says why the value does not fit.
    pub fn resolve(&mut self, value: &ValueRef, got: &serde_json::Value) -> Result<(), String> {
        match self {
            StageParams::Mix(p) => p.resolve(value, got),
            _ => Ok(()),
        }
    }
}

/// Runs a stage of any kind with its own parameters.
pub fn run(params: &StageParams, ctx: &StageCtx<'_>) -> Result<serde_json::Value, StageFailure> {
    // Training and evaluation run long, in another process, and read no tokenizer here: the
    // ones kept loaded are let go.
    if matches!(params, StageParams::Train(_) | StageParams::Eval(_)) {
        crate::data::encoder::release_shared();
    }
    match params {
        StageParams::Import(p) => import::run(p, ctx),
        StageParams::HfModel(p) => hf_model::run(p, ctx),
        StageParams::Ingest(p) => ingest::run(p, ctx),
        StageParams::Split(p) => split::run(p, ctx),
        StageParams::Vocab(p) => vocab::run(p, ctx),
        StageParams::Resize(p) => resize::run(p, ctx),
        StageParams::Tokenize(p) => tokenize::run(p, ctx),
        StageParams::Mix(p) => mix::run(p, ctx),
        // libtorch's stages run in the worker process, the only one that links it.
        // The FSDP engine is torchrun's: started from here, no libtorch in this process.
        StageParams::Train(p) if p.engine == train::Engine::Fsdp => crate::fsdp::run(p, ctx),
        StageParams::Train(p) => worker::run(worker::WorkerParams::Train(p.clone()), ctx),
        StageParams::Eval(p) => worker::run(worker::WorkerParams::Eval(p.clone()), ctx),
        StageParams::Fit(p) => fit::run(p, ctx),
        StageParams::Choose(p) => choose::run(p, ctx),
        StageParams::Report(p) => report::run(p, ctx),
        StageParams::Test(_) => {
            Err(StageFailure::internal(format!("stage `{}`: `test` stages exist for executor tests only", ctx.id)))
        }
    }
}

/// Runs a stage; a panic in it is a bug that fails the stage (tier internal) with its message,
/// not the process (the executor's threads and the worker alike).
pub fn catching_panics(
    run: impl FnOnce() -> Result<serde_json::Value, StageFailure>,
) -> Result<serde_json::Value, StageFailure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        Err(StageFailure::internal(format!("the stage panicked: {}", crate::diag::panic_message(&*panic))))
    })
}

/// Where training and evaluation run: results differ between device classes (kernels,
/// precision defaults), so it is part of their keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    Cpu,
    Cuda,
}
