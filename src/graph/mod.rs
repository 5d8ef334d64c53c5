//! The stage graph: a checked recipe lowered into typed stages (petgraph), each with the
//! parameters, inputs and files that make up its cache key.
//!
//! Architecture invariant: `lower` takes a `&Recipe`, which only `check` can build, so the
//! graph (and everything downstream) never sees an unchecked recipe.

pub mod key;
mod lower;

use std::collections::BTreeMap;
use std::path::PathBuf;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

pub use key::{CacheKey, Digest, KeyWriter};
pub use lower::lower;

/// What a stage does. Each kind has an implementation version: bump it when the stage's
/// output changes for the same inputs, and every cached artifact of that kind is invalidated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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

    /// Implementation version, part of every key of this kind.
    pub fn version(self) -> u64 {
        match self {
            // v2: the folder's files linked into the artifact, not its path recorded.
            StageKind::HfModel => 2,
            // v2: long held-out documents cut into pieces of at most 4 KB.
            StageKind::Split => 2,
            // v2: per-document byte counts of each side, for bits per byte.
            // v3: a tokenizer.json's truncation and padding ignored; dtype from the largest id.
            StageKind::Tokenize => 3,
            // v2: a tokenizer.json's truncation and padding ignored when measuring candidates.
            StageKind::Vocab => 2,
            // v2: share windows sized to the run (about 40 per run), for the report's chart.
            StageKind::Mix => 2,
            // v2: a final evaluation when the data runs out early.
            // v3: saved with its tokenizer files; `rope_theta` applied; checkpoints and resume.
            StageKind::Train => 3,
            // v2: base losses per model size; a non-finite evaluation fails the fit.
            StageKind::Fit => 2,
            // v2: the search stays within the fitted ratios (r_max).
            StageKind::Choose => 2,
            _ => 1,
        }
    }

    /// Stages that need the whole machine (accelerator or all cores) run one at a time.
    pub fn exclusive(self) -> bool {
        matches!(self, StageKind::Train | StageKind::Eval | StageKind::Resize | StageKind::Vocab)
    }
}

/// A parameter whose value another stage computes at run time, e.g. `best.ratio`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeferredParam {
    /// Parameter name in this stage's `params`.
    pub param: String,
    /// Id of the stage that computes it.
    pub stage: String,
    /// Name of the output value, e.g. `ratio`.
    pub output: String,
}

/// One unit of cached work.
#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    /// Unique, stable, human-readable: `train:cpt`, `tokenize:poetry@smol`, `train:ratios[r=10%]`.
    pub id: String,
    pub kind: StageKind,
    /// Canonical parameters (part of the key).
    pub params: serde_json::Value,
    /// External files whose content is part of the key (corpus files, a GGUF).
    pub files: Vec<PathBuf>,
    pub deferred: Vec<DeferredParam>,
    /// Figures for `cptc plan`, not part of the key.
    pub estimate: Option<TrainEstimate>,
}

/// What a train stage will consume, for the plan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainEstimate {
    pub tokens: u64,
    pub steps: u64,
    /// Tokens per mixture part and, within it, per corpus (split by corpus size until
    /// tokenized). Empty while the domain share is computed at run time.
    pub parts: Vec<PartEstimate>,
    /// Set when the domain share comes from another stage, e.g. `choose:best.ratio`.
    pub share_from: Option<String>,
    /// Parameters of the model (before vocabulary growth).
    pub params: Option<u64>,
    pub flops: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PartEstimate {
    pub part: String,
    pub tokens: u64,
    pub corpora: BTreeMap<String, u64>,
}

/// The role an input plays for a stage (`model`, `tokenizer`, `train:poetry`...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub role: String,
}

/// The whole lowered recipe.
#[derive(Debug, Default)]
pub struct Graph {
    pub graph: DiGraph<Stage, Edge>,
}

impl Graph {
    pub fn stage(&self, ix: NodeIndex) -> &Stage {
        &self.graph[ix]
    }

    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        self.graph.node_indices().find(|&ix| self.graph[ix].id == id)
    }

    /// Inputs of a stage with their roles, in a stable order.
    pub fn inputs(&self, ix: NodeIndex) -> Vec<(String, NodeIndex)> {
        let mut inputs: Vec<(String, NodeIndex)> = self
            .graph
            .edges_directed(ix, petgraph::Direction::Incoming)
            .map(|e| (e.weight().role.clone(), petgraph::visit::EdgeRef::source(&e)))
            .collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| self.graph[a.1].id.cmp(&self.graph[b.1].id)));
        inputs
    }

    /// Stages in an execution order: dependencies first, ties broken by id for stable output.
    pub fn order(&self) -> Vec<NodeIndex> {
        let mut indegree: Vec<usize> = self
            .graph
            .node_indices()
            .map(|ix| self.graph.edges_directed(ix, petgraph::Direction::Incoming).count())
            .collect();
        let mut ready: std::collections::BTreeSet<(String, usize)> = self
            .graph
            .node_indices()
            .filter(|ix| indegree[ix.index()] == 0)
            .map(|ix| (self.graph[ix].id.clone(), ix.index()))
            .collect();
        let mut out = Vec::new();
        while let Some(first) = ready.iter().next().cloned() {
            ready.remove(&first);
            let ix = NodeIndex::new(first.1);
            out.push(ix);
            for next in self.graph.neighbors_directed(ix, petgraph::Direction::Outgoing) {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.insert((self.graph[next].id.clone(), next.index()));
                }
            }
        }
        out
    }

    /// Everything `ix` depends on, transitively, and `ix` itself.
    pub fn ancestors(&self, ix: NodeIndex) -> Vec<NodeIndex> {
        self.reachable(ix, petgraph::Direction::Incoming)
    }

    /// Everything that depends on `ix`, transitively, and `ix` itself.
    pub fn descendants(&self, ix: NodeIndex) -> Vec<NodeIndex> {
        self.reachable(ix, petgraph::Direction::Outgoing)
    }

    fn reachable(&self, ix: NodeIndex, direction: petgraph::Direction) -> Vec<NodeIndex> {
        let mut seen = vec![false; self.graph.node_count()];
        let mut stack = vec![ix];
        let mut out = Vec::new();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node.index()], true) {
                continue;
            }
            out.push(node);
            stack.extend(self.graph.neighbors_directed(node, direction));
        }
        out
    }

    /// Adds a stage; ids are unique, so adding one twice returns the first.
    pub fn add(&mut self, stage: Stage) -> NodeIndex {
        if let Some(ix) = self.find(&stage.id) {
            return ix;
        }
        self.graph.add_node(stage)
    }

    pub fn connect(&mut self, from: NodeIndex, to: NodeIndex, role: impl Into<String>) {
        self.graph.add_edge(from, to, Edge { role: role.into() });
    }
}
