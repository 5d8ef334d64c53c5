//! The recipe IR: the checked recipe, every name resolved, every value typed and in range.
//!
//! Architecture invariant: a [`Recipe`] can only be built by `check::check` (sealing needs a
//! [`crate::check::Seal`]), and its fields are private, so every later phase (graph, plan,
//! executor, stages, backend, data) reads a recipe that passed checking and cannot change it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::source::{SourceMap, Span};

/// Where a definition was written, for diagnostics in later phases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(skip)]
    pub file: crate::source::FileId,
    #[serde(skip)]
    pub span: Span,
}

/// The checked recipe. Its fields are private: later phases read it, nothing changes it, and
/// only `check` can make one (see [`Recipe::seal`]).
#[derive(Debug)]
pub struct Recipe {
    path: PathBuf,
    models: Vec<Model>,
    corpora: Vec<Corpus>,
    vocabs: Vec<Vocab>,
    mixtures: Vec<Mixture>,
    schedules: Vec<Schedule>,
    trains: Vec<Train>,
    evals: Vec<Eval>,
    sweeps: Vec<Sweep>,
    fits: Vec<Fit>,
    chooses: Vec<Choose>,
    sources: SourceMap,
}

/// What `check` assembles before sealing it into a [`Recipe`].
#[derive(Debug, Default)]
pub struct RecipeParts {
    /// The file given on the command line.
    pub path: PathBuf,
    pub models: Vec<Model>,
    pub corpora: Vec<Corpus>,
    pub vocabs: Vec<Vocab>,
    pub mixtures: Vec<Mixture>,
    pub schedules: Vec<Schedule>,
    pub trains: Vec<Train>,
    pub evals: Vec<Eval>,
    pub sweeps: Vec<Sweep>,
    pub fits: Vec<Fit>,
    pub chooses: Vec<Choose>,
    /// The recipe's and its imports' sources, for diagnostics of later phases.
    pub sources: SourceMap,
}

macro_rules! finder {
    ($fn_name:ident, $all:ident, $field:ident, $ty:ty) => {
        pub fn $fn_name(&self, name: &str) -> Option<&$ty> {
            self.$field.iter().find(|x| x.name == name)
        }

        pub fn $all(&self) -> &[$ty] {
            &self.$field
        }
    };
}

impl Recipe {
    /// Seals checked parts. The [`crate::check::Seal`] argument can only be made by `check`,
    /// so no other module can build a `Recipe`.
    pub fn seal(parts: RecipeParts, _seal: crate::check::Seal) -> Recipe {
        let RecipeParts {
            path,
            models,
            corpora,
            vocabs,
            mixtures,
            schedules,
            trains,
            evals,
            sweeps,
            fits,
            chooses,
            sources,
        } = parts;
        Recipe { path, models, corpora, vocabs, mixtures, schedules, trains, evals, sweeps, fits, chooses, sources }
    }

    /// The file given on the command line.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The recipe's and its imports' sources, for diagnostics of later phases.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    finder!(model, models, models, Model);
    finder!(corpus, corpora, corpora, Corpus);
    finder!(vocab, vocabs, vocabs, Vocab);
    finder!(mixture, mixtures, mixtures, Mixture);
    finder!(schedule, schedules, schedules, Schedule);
    finder!(train, trains, trains, Train);
    finder!(eval, evals, evals, Eval);
    finder!(sweep, sweeps, sweeps, Sweep);
    finder!(fit, fits, fits, Fit);
    finder!(choose, chooses, chooses, Choose);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub source: ModelSource,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A Hugging Face directory (config.json, *.safetensors, tokenizer.json) and its files,
    /// sorted: their content is part of the model's key.
    Hf { dir: PathBuf, files: Vec<PathBuf> },
    /// A GGUF file, imported into the HF layout by an import stage.
    Gguf(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jsonl,
    Text,
    Parquet,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Corpus {
    pub name: String,
    /// The patterns as written (after resolution against the recipe's folder).
    pub patterns: Vec<String>,
    /// Files matched, sorted; never empty.
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub text: TextSource,
    pub heldout: Heldout,
    /// The record field that decides a document's side (`split_by = source`), instead of its
    /// text: records sharing it are held out together, in every corpus split by the same
    /// field (a question-answer set and the definitions its answers come from).
    pub split_by: Option<String>,
    /// Fail on the first bad record instead of skipping and counting it.
    pub strict: bool,
    /// How many passes over its training side a train stage may draw (`run` refuses more).
    pub max_epochs: f64,
    pub origin: Origin,
}

/// A corpus' `max_epochs` unless the recipe says otherwise: past about 4 repeats, more passes
/// over the same tokens stop helping (Muennighoff et al., 2023).
pub const DEFAULT_MAX_EPOCHS: f64 = 4.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSource {
    /// The record field holding the text (jsonl, parquet); ignored for plain text.
    Field(String),
    /// An SFT template such as `{question}\n{answer}`.
    Template(Template),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub text: String,
    pub parts: Vec<TemplatePart>,
    /// The fields whose tokens are training targets (`loss_on = [answer]`); the rest is context
    /// only. Empty: every token is a target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loss_on: Vec<String>,
}

impl TextSource {
    /// Whether some tokens of a document are context only (a template with `loss_on`).
    pub fn masked(&self) -> bool {
        matches!(self, TextSource::Template(t) if !t.loss_on.is_empty())
    }

    /// The same text without its loss marks: what the stages that only read the text (ingest,
    /// vocab) are keyed by, so changing `loss_on` reruns tokenization and what follows only.
    pub fn unmarked(&self) -> TextSource {
        match self {
            TextSource::Template(t) => TextSource::Template(Template { loss_on: Vec::new(), ..t.clone() }),
            other => other.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplatePart {
    Literal(String),
    Field(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Heldout {
    Fraction(f64),
    Docs(u64),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    pub name: String,
    pub base: String,
    pub train_on: Vec<String>,
    pub size: u64,
    pub min_frequency: u64,
    pub select: Selection,
    pub init: EmbedInit,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    TopK(u64),
    MinGain(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedInit {
    MeanOfPieces,
    MeanOfAll,
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    General,
    Domain,
    Sft,
}

impl Role {
    pub const ALL: [(&'static str, Role); 3] =
        [("general", Role::General), ("domain", Role::Domain), ("sft", Role::Sft)];

    pub fn name(self) -> &'static str {
        match self {
            Role::General => "general",
            Role::Domain => "domain",
            Role::Sft => "sft",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    pub name: String,
    pub parts: Vec<Part>,
    pub ramp: Option<Ramp>,
    /// Whether a source that runs out may be repeated (a new epoch) or the stage must fail.
    pub repeat: bool,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub role: Role,
    pub corpora: Vec<String>,
    /// Share of training tokens at the end of the ramp (or throughout without one).
    pub share: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RampShape {
    Linear,
    Cosine,
    Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ramp {
    pub shape: RampShape,
    /// Domain share at the start and at the end of the window.
    pub from: f64,
    pub to: f64,
    /// Window of training progress, fractions in [0, 1].
    pub window: (f64, f64),
}

impl Ramp {
    /// Domain share at training progress `t` in [0, 1].
    pub fn share_at(&self, t: f64) -> f64 {
        let (a, b) = self.window;
        let x = if t <= a {
            0.0
        } else if t >= b || b <= a {
            1.0
        } else {
            (t - a) / (b - a)
        };
        let w = match self.shape {
            RampShape::Linear => x,
            RampShape::Cosine => 0.5 - 0.5 * (std::f64::consts::PI * x).cos(),
            RampShape::Step => {
                if x >= 1.0 {
                    1.0
                } else {
                    0.0
                }
            }
        };
        self.from + (self.to - self.from) * w
    }
}

/// An amount of training measured in one of the ways users think about it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// A fraction of the stage's training, in [0, 1].
    Fraction(f64),
    Steps(u64),
    Tokens(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayShape {
    Linear,
    Cosine,
    Exponential,
    Sqrt,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub lr: LrSchedule,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "shape")]
pub enum LrSchedule {
    /// Keep one LR (the base's, typically), after an optional linear warmup.
    Constant { lr: f64, warmup: Amount },
    /// Linear warmup to `peak`, then linear decay to `min` (a fraction of `peak`).
    Linear { peak: f64, warmup: Amount, min: f64 },
    /// Linear warmup to `peak`, then cosine decay to `min` (a fraction of `peak`).
    Cosine { peak: f64, warmup: Amount, min: f64 },
    /// Warmup-stable-decay: the last `decay` fraction of training decays to `min`.
    Wsd { peak: f64, warmup: Amount, decay: f64, min: f64, decay_shape: DecayShape },
    /// Re-warm from `start` (the base's final LR) to `peak`, then re-decay to `min`.
    Rewarm { start: f64, peak: f64, warmup: Amount, min: f64, decay_shape: DecayShape },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRef {
    /// A declared base model.
    Model(String),
    /// The output of a train stage: continue from it.
    Train(String),
}

/// A value known when checking, or one that a stage computes at run time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deferred<T> {
    Value(T),
    /// `choose.output`, e.g. `best.ratio`.
    From {
        stage: String,
        output: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Train {
    pub name: String,
    pub model: ModelRef,
    pub vocab: Option<String>,
    pub mixture: String,
    /// Overrides the mixture's final domain share, e.g. with a chosen ratio.
    pub domain_share: Option<Deferred<f64>>,
    pub tokens: u64,
    pub seq_len: u64,
    pub batch_tokens: u64,
    pub schedule: String,
    pub eval_every: Option<Amount>,
    /// Corpora whose held-out splits are evaluated during training.
    pub eval_sets: Vec<String>,
    /// Held-out text per set at each evaluation, in bytes (the first documents up to it).
    pub eval_bytes: u64,
    pub seed: u64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub long_context: Option<LongContext>,
    pub groups: Vec<ParamGroup>,
    /// `None`: the device's default (see [`Precision`]).
    pub precision: Option<Precision>,
    pub divergence: Divergence,
    pub engine: Engine,
    /// RoPE scaling of long-context training (`long_context { rope = yarn ... }`).
    pub rope: Option<RopeExtension>,
    /// `from = parent at point`: this train is a fork of another's run.
    pub fork: Option<Fork>,
    pub origin: Origin,
}

/// A fork: a train that starts from another train's state at one of its steps (weights,
/// AdamW moments, data positions) and goes on with its own mixture, budget and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fork {
    pub parent: String,
    /// The parent's step whose state the fork starts from (1 to the parent's last).
    pub step: u64,
    pub clock: Clock,
}

/// Whose steps a fork's LR schedule and mixture ramp count: `continue` goes on with the
/// parent's (the schedule spans the parent's steps before the fork plus the fork's own, so the
/// fork's first step has the LR the parent had there); `restart` spans the fork's own steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    #[default]
    Continue,
    Restart,
}

impl Clock {
    pub const ALL: [(&'static str, Clock); 2] = [("continue", Clock::Continue), ("restart", Clock::Restart)];
}

/// What trains: the built-in libtorch engine (one device) or torchrun + FSDP2 over the
/// `transformers` model (any number of devices and nodes, any architecture transformers has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    #[default]
    Builtin,
    Fsdp,
}

impl Engine {
    pub const ALL: [(&'static str, Engine); 2] = [("builtin", Engine::Builtin), ("fsdp", Engine::Fsdp)];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Builtin => "builtin",
            Engine::Fsdp => "fsdp",
        }
    }
}

/// When a training has diverged: its loss stayed above `ratio` x the first step's loss for
/// `steps` steps in a row. The stage then fails (publishing nothing) instead of caching a
/// model that learned nothing. A guard only decides whether a result is published, never what
/// it is, so its default stays out of keys.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub ratio: f64,
    pub steps: u64,
}

impl Divergence {
    pub const DEFAULT: Divergence = Divergence { ratio: 2.0, steps: 20 };

    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
}

impl Default for Divergence {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Arithmetic of training and evaluation. Parameters stay float32 either way (master weights);
/// `bf16` runs matmuls and attention in bfloat16. Default: `bf16` on a CUDA device, `fp32` on
/// a CPU (where bf16 matmuls are slow and gain nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    Bf16,
}

impl Precision {
    pub const ALL: [(&'static str, Precision); 2] = [("fp32", Precision::Fp32), ("bf16", Precision::Bf16)];
}

/// Held-out text per set and evaluation when a recipe does not say (about 16k tokens of
/// English): a bits per byte stable to about 1% on the real corpora, cheap enough for a CPU.
pub const DEFAULT_EVAL_BYTES: u64 = 64_000;

/// Evaluation window when an `eval` block does not say.
pub const DEFAULT_EVAL_SEQ_LEN: u64 = 512;

/// How a token budget becomes optimizer steps: the one rule the plan, the mix stage (how many
/// sequences to draw) and the trainer share, so the data never runs out one step early.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepGeometry {
    pub seq_len: u64,
    pub seqs_per_step: u64,
    pub steps: u64,
}

impl StepGeometry {
    /// Sequences per step: the batch (in tokens) over the sequence length, rounded, at least one.
    pub fn seqs_per_step(batch_tokens: u64, seq_len: u64) -> u64 {
        ((batch_tokens as f64 / seq_len.max(1) as f64).round() as u64).max(1)
    }

    /// Enough whole steps to cover `tokens`.
    pub fn new(tokens: u64, seq_len: u64, batch_tokens: u64) -> Self {
        let seqs_per_step = Self::seqs_per_step(batch_tokens, seq_len);
        let steps = tokens.div_ceil(seqs_per_step * seq_len.max(1)).max(1);
        Self { seq_len, seqs_per_step, steps }
    }

    pub fn tokens_per_step(&self) -> u64 {
        self.seqs_per_step * self.seq_len
    }

    /// Tokens the steps consume: the budget rounded up to whole steps.
    pub fn tokens(&self) -> u64 {
        self.steps * self.tokens_per_step()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongContext {
    pub target_len: u64,
    pub group_similar: bool,
    /// Documents shorter than this many tokens are kept with probability `keep_short`.
    pub short_below: u64,
    pub keep_short: f64,
    pub rope_theta: Option<f64>,
}

/// How long-context training rescales RoPE beyond a new base (`long_context { rope = ... }`):
/// the scaling transformers knows by that name, written into the trained model's config.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeExtension {
    pub kind: RopeKind,
    /// How many times longer the context becomes.
    pub factor: f64,
    /// The context the base was trained on; `None`: its `max_position_embeddings`.
    pub original: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeKind {
    Linear,
    Dynamic,
    Yarn,
    Llama3,
}

impl RopeKind {
    pub fn name(self) -> &'static str {
        match self {
            RopeKind::Linear => "linear",
            RopeKind::Dynamic => "dynamic",
            RopeKind::Yarn => "yarn",
            RopeKind::Llama3 => "llama3",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    pub name: String,
    pub params: ParamSelector,
    pub frozen: bool,
    pub lr_mult: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamSelector {
    Embeddings,
    /// Only the rows added by vocabulary expansion.
    NewEmbeddings,
    Head,
    Norms,
    /// Decoder layers `from..=to`.
    Layers {
        from: u64,
        to: u64,
    },
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Loss,
    Ppl,
    Bpb,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    pub name: String,
    pub model: ModelRef,
    pub sets: Vec<String>,
    pub metrics: Vec<Metric>,
    /// Held-out text per set in bytes: the first documents of each held-out split up to it,
    /// the same documents whatever the tokenizer, so vocabularies compare fairly.
    pub bytes: u64,
    /// Window length; compare models at the same one (capped at the model's context).
    pub seq_len: u64,
    /// `None`: the device's default (see [`Precision`]).
    pub precision: Option<Precision>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub name: String,
    /// The train stage each grid point copies.
    pub train: String,
    pub ratios: Vec<f64>,
    /// Models of the grid; the template's model when not given.
    pub models: Vec<String>,
    /// Token budgets of the grid; the template's when not given.
    pub tokens: Vec<u64>,
    /// Fractions of each run at which to evaluate (several D points per run).
    pub eval_at: Vec<f64>,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    Domain,
    General,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub name: String,
    pub sweep: String,
    pub loss: LossKind,
    pub huber_delta: f64,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choose {
    pub name: String,
    pub domain_fit: String,
    pub general_fit: Option<String>,
    pub objective: Objective,
    /// Token budget D at which the law is evaluated (usage 1).
    pub tokens: Option<u64>,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Usage 1: minimise domain loss with general loss rising at most this fraction.
    MaxGeneralIncrease(f64),
    /// Usage 2: a fixed number of domain tokens, so D = D_dom / r.
    DomainTokens(u64),
}

/// A fraction as a percentage with at most `decimals` decimals and no trailing zeros:
/// `percent(0.125, 4)` is `12.5%`.
pub fn percent(fraction: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, fraction * 100.0);
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}%")
}

/// Outputs a choose stage computes, usable as `name.output`.
pub const CHOOSE_OUTPUTS: [&str; 1] = ["ratio"];
