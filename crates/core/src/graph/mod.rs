//! The stage graph: a checked recipe lowered into typed stages (petgraph), each with the
//! parameters, inputs and files that make up its cache key.
//!
//! Architecture invariant: `lower` takes a `&Recipe`, which only `check` can build, so the
//! graph (and everything downstream) never sees an unchecked recipe.

pub mod key;
mod lower;
mod probe;

use std::collections::BTreeMap;
use std::path::PathBuf;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

pub use key::{CacheKey, Digest, KeyWriter};
pub use lower::lower;
pub use probe::{ModelInfo, Probe, RealProbe};

pub use crate::stages::{Input, StageId, StageKind, StageParams, ValueRef};

/// One unit of cached work.
#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    /// Unique, stable, human-readable: `train:cpt`, `tokenize:poetry@smol`, `train:ratios[r=10%]`.
    pub id: StageId,
    /// Typed parameters (their kind is the stage's); canonical JSON of them enters the key.
    pub params: StageParams,
    /// External files whose content is part of the key (corpus files, a GGUF, a model's files).
    pub files: Vec<PathBuf>,
    /// Figures for `cptc plan`, not part of the key.
    pub estimate: Option<TrainEstimate>,
    /// The recipe block it comes from, for pointing a failure at it; not part of the key.
    #[serde(skip)]
    pub origin: Option<crate::recipe::Origin>,
}

impl Stage {
    pub fn new(id: StageId, params: StageParams) -> Stage {
        debug_assert_eq!(id.kind, params.kind());
        Stage { id, params, files: Vec::new(), estimate: None, origin: None }
    }

    /// This stage, from the recipe block at `origin`.
    pub fn at(mut self, origin: crate::recipe::Origin) -> Stage {
        self.origin = Some(origin);
        self
    }

    pub fn kind(&self) -> StageKind {
        self.id.kind
    }
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

/// The role an input plays for a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub role: Input,
}

/// The whole lowered recipe.
#[derive(Debug, Default)]
pub struct Graph {
    pub graph: DiGraph<Stage, Edge>,
    /// (first, then): when both run, `then` starts after `first` has finished. An order, not
    /// an input: not in `then`'s key, not pulled in by `--only`. A one-pass tokenize stage and
    /// its corpus' ingest stage, which then assembles the index parts that pass filed.
    pub after: Vec<(NodeIndex, NodeIndex)>,
}

impl Graph {
    pub fn stage(&self, ix: NodeIndex) -> &Stage {
        &self.graph[ix]
    }

    /// The stage named `id` as the user writes it (`train:cpt`, `report`).
    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        self.graph.node_indices().find(|&ix| self.graph[ix].id.to_string() == id)
    }

    pub fn find_id(&self, id: &StageId) -> Option<NodeIndex> {
        self.graph.node_indices().find(|&ix| &self.graph[ix].id == id)
    }

    /// Inputs of a stage with their roles, in a stable order: by the role's text, the order
    /// stages have always read them in (a mixture's corpora, held-out sets).
    pub fn inputs(&self, ix: NodeIndex) -> Vec<(Input, NodeIndex)> {
        let mut inputs: Vec<(String, Input, NodeIndex)> = self
            .graph
            .edges_directed(ix, petgraph::Direction::Incoming)
            .map(|e| (e.weight().role.to_string(), e.weight().role.clone(), petgraph::visit::EdgeRef::source(&e)))
            .collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| self.graph[a.2].id.cmp(&self.graph[b.2].id)));
        inputs.into_iter().map(|(_, role, ix)| (role, ix)).collect()
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
            .map(|ix| (self.graph[ix].id.to_string(), ix.index()))
            .collect();
        let mut out = Vec::new();
        while let Some(first) = ready.iter().next().cloned() {
            ready.remove(&first);
            let ix = NodeIndex::new(first.1);
            out.push(ix);
            for next in self.graph.neighbors_directed(ix, petgraph::Direction::Outgoing) {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.insert((self.graph[next].id.to_string(), next.index()));
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
        if let Some(ix) = self.find_id(&stage.id) {
            return ix;
        }
        self.graph.add_node(stage)
    }

    pub fn connect(&mut self, from: NodeIndex, to: NodeIndex, role: Input) {
        self.graph.add_edge(from, to, Edge { role });
    }

    /// Orders `then` after `first` when both run (see [`Graph::after`]).
    pub fn run_after(&mut self, first: NodeIndex, then: NodeIndex) {
        self.after.push((first, then));
    }

    /// The stages `ix` starts after, when they run.
    pub fn waits_for(&self, ix: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.after.iter().filter(move |(_, then)| *then == ix).map(|(first, _)| *first)
    }
}
