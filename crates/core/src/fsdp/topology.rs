//! Where an FSDP training runs: processes per node, nodes, this node's rank and the rendezvous
//! endpoint, under torchrun's own names. Not part of the recipe (nor of any key): it changes
//! where a run happens, not its result.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// torchrun's topology options; the default is one process on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Topology {
    #[serde(default = "one")]
    pub nproc_per_node: u32,
    #[serde(default = "one")]
    pub nnodes: u32,
    #[serde(default)]
    pub node_rank: u32,
    /// `HOST:PORT` of the c10d rendezvous; needed past one node, chosen by torchrun on one.
    #[serde(default)]
    pub rdzv_endpoint: Option<String>,
}

fn one() -> u32 {
    1
}

impl Topology {
    /// One process on one node.
    pub const SINGLE: Topology = Topology { nproc_per_node: 1, nnodes: 1, node_rank: 0, rdzv_endpoint: None };
}

impl Default for Topology {
    fn default() -> Self {
        Topology::SINGLE
    }
}

/// A topology that cannot be launched.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TopologyError {
    #[error("cannot read the cluster file {}", path.display())]
    #[diagnostic(code(cptc::fsdp::cluster_file))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {message}", path.display())]
    #[diagnostic(
        code(cptc::fsdp::cluster_file),
        help("a cluster file holds torchrun's keys: nproc-per-node, nnodes, node-rank, rdzv-endpoint")
    )]
    Parse { path: PathBuf, message: String },

    #[error("{message}")]
    #[diagnostic(code(cptc::fsdp::topology))]
    Invalid {
        message: String,
        #[help]
        help: Option<String>,
    },
}

impl Topology {
    /// Reads a `--cluster` YAML file holding the same keys as the command line.
    pub fn from_file(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read { path: path.into(), source })?;
        let topology: Topology = serde_yaml::from_str(&text)
            .map_err(|e| TopologyError::Parse { path: path.into(), message: e.to_string() })?;
        topology.validate()?;
        Ok(topology)
    }

    pub fn world_size(&self) -> u32 {
        self.nproc_per_node * self.nnodes
    }

    /// True when nothing but the default was asked for.
    pub fn is_single(&self) -> bool {
        self.world_size() == 1
    }

    pub fn validate(&self) -> Result<(), TopologyError> {
        let invalid = |message: String, help: Option<&str>| {
            Err(TopologyError::Invalid { message, help: help.map(str::to_owned) })
        };
        if self.nproc_per_node == 0 || self.nnodes == 0 {
            return invalid("`nproc-per-node` and `nnodes` must be at least 1".into(), None);
        }
        if self.node_rank >= self.nnodes {
            return invalid(
                format!("`node-rank` {} is not below `nnodes` {}", self.node_rank, self.nnodes),
                Some("node ranks count from 0: 0 and 1 for two nodes"),
            );
        }
        match &self.rdzv_endpoint {
            None if self.nnodes > 1 => invalid(
                format!("{} nodes need a rendezvous endpoint", self.nnodes),
                Some("give every node the same `--rdzv-endpoint HOST:PORT`, HOST being the first node's address"),
            ),
            Some(e) if !e.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) => invalid(
                format!("the rendezvous endpoint `{e}` is not HOST:PORT"),
                Some("e.g. `--rdzv-endpoint 10.0.0.1:29500`"),
            ),
            _ => Ok(()),
        }
    }

    /// torchrun's arguments for this topology; one node without an endpoint is `--standalone`
    /// (torchrun picks a free port, so two runs on one machine never collide).
    pub fn torchrun_args(&self) -> Vec<String> {
        let mut args = vec![format!("--nproc-per-node={}", self.nproc_per_node), format!("--nnodes={}", self.nnodes)];
        match &self.rdzv_endpoint {
            None => args.push("--standalone".into()),
            Some(endpoint) => {
                args.push(format!("--node-rank={}", self.node_rank));
                args.push("--rdzv-backend=c10d".into());
                args.push(format!("--rdzv-endpoint={endpoint}"));
            }
        }
        args
    }

    /// `2 nodes x 8 processes`, `1 process`.
    pub fn describe(&self) -> String {
        let procs = |n: u32| if n == 1 { "1 process".to_owned() } else { format!("{n} processes") };
        if self.nnodes == 1 {
            procs(self.nproc_per_node)
        } else {
            format!("{} nodes x {}", self.nnodes, procs(self.nproc_per_node))
        }
    }
}
