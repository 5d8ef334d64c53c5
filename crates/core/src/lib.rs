//! cptc: compiles declarative continued-pretraining recipes (`.cpt`) into a cached stage graph.
//!
//! The modules follow the pipeline: `syntax` (pure parse) → `check` (names, types, units;
//! the only producer of a [`recipe::Recipe`]) → later phases. `diag` renders every phase's
//! errors; `cli` is the only place that prints or exits. libtorch is not here: train and eval
//! stages run in the `cptc-torch` worker (`stages::worker`). See ARCHITECTURE.md.

pub mod backend;
pub mod check;
pub mod cli;
pub mod convert;
pub mod data;
pub mod diag;
pub mod exec;
pub mod fmt;
pub mod fsdp;
pub mod graph;
pub mod law;
pub mod random;
pub mod recipe;
pub mod report;
pub mod source;
pub mod stages;
pub mod stdlib;
pub mod store;
pub mod suggest;
pub mod svg;
pub mod syntax;
pub mod vocab;
