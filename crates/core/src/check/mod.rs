//! Checking: loads a recipe and its imports, resolves names and inheritance, types every
//! value with its unit, and checks what spans blocks (shares, ramps, cycles, files).
//!
//! Architecture invariant: the only way to obtain a [`Recipe`] is [`check`]; the stage graph
//! and the executor take `&Recipe`, so they never see an unchecked one.

mod build;
mod error;
mod fields;
mod fork;
mod resolve;
pub mod world;

use std::collections::HashMap;
use std::path::Path;

pub use crate::recipe::Recipe;
pub use build::{KINDS, parse_template};
pub use error::CheckError;
pub use world::{GlobError, RealWorld, World};

use crate::diag::Located;
use crate::recipe::{Deferred, ModelRef, RecipeParts};
use crate::source::{FileId, SourceMap, Span};
use crate::suggest::help_for;
use build::Builder;

/// The token that seals a [`Recipe`]: its field is private to `check`, so only `check` can
/// make one.
pub struct Seal(());

/// Checking failed: every error found, with the sources to render them against.
#[derive(Debug)]
pub struct Failed {
    pub sources: SourceMap,
    pub errors: Vec<Located>,
}

/// Checks the recipe at `path` and everything it imports.
pub fn check(path: &Path, world: &dyn World) -> Result<Recipe, Failed> {
    let loaded = resolve::load(path, world);
    let mut errors = loaded.errors;
    // Checking a tree with syntax errors would only add noise (fields that failed to parse
    // look missing): report the syntax and import errors alone.
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.file, first_offset(e)));
        return Err(Failed { sources: loaded.sources, errors });
    }
    let mut builder = Builder::new(world, &loaded.sources, &loaded.blocks);
    let mut recipe = RecipeParts { path: path.to_path_buf(), ..RecipeParts::default() };
    // Fits first: choose blocks check which loss each fit models.
    for block in loaded.blocks.iter().filter(|b| b.kind == "fit" && !b.template) {
        recipe.fits.extend(builder.fit(block));
    }
    for block in &loaded.blocks {
        // Templates are checked through the blocks that extend them.
        if block.template && KINDS.contains(&block.kind.as_str()) {
            continue;
        }
        match block.kind.as_str() {
            "model" => recipe.models.extend(builder.model(block)),
            "corpus" => recipe.corpora.extend(builder.corpus(block)),
            "vocab" => recipe.vocabs.extend(builder.vocab(block)),
            "mixture" => recipe.mixtures.extend(builder.mixture(block)),
            "schedule" => recipe.schedules.extend(builder.schedule(block)),
            "train" => recipe.trains.extend(builder.train(block)),
            "eval" => recipe.evals.extend(builder.eval(block)),
            "sweep" => recipe.sweeps.extend(builder.sweep(block)),
            "fit" => {}
            "choose" => {
                let fits = recipe.fits.clone();
                recipe.chooses.extend(builder.choose(block, &fits));
            }
            other => {
                let error = CheckError::UnknownKind {
                    kind: other.to_string(),
                    span: block.kind_span.into(),
                    help: help_for(other, &KINDS, "block kind"),
                };
                builder_error(&mut errors, block.file, error);
            }
        }
    }
    errors.append(&mut builder.errors);
    if errors.is_empty() {
        stage_cycles(&recipe, &mut errors);
    }
    if errors.is_empty() {
        recipe.sources = loaded.sources;
        return Ok(Recipe::seal(recipe, Seal(())));
    }
    errors.sort_by_key(|e| (e.file, first_offset(e)));
    errors.dedup();
    Err(Failed { sources: loaded.sources, errors })
}

fn builder_error(errors: &mut Vec<Located>, file: FileId, error: CheckError) {
    errors.push(Located::new(file, error));
}

fn first_offset(located: &Located) -> usize {
    use miette::Diagnostic;
    located.error.labels().and_then(|mut l| l.next()).map_or(0, |l| l.offset())
}

/// Stages that depend on each other in a circle can never run: report the circle.
fn stage_cycles(recipe: &RecipeParts, errors: &mut Vec<Located>) {
    let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut origins: HashMap<&str, (FileId, Span)> = HashMap::new();
    for train in &recipe.trains {
        let deps = edges.entry(&train.name).or_default();
        if let ModelRef::Train(t) = &train.model {
            deps.push(t);
        }
        if let Some(fork) = &train.fork {
            deps.push(&fork.parent);
        }
        if let Some(Deferred::From { stage, .. }) = &train.domain_share {
            deps.push(stage);
        }
        origins.insert(&train.name, (train.origin.file, train.origin.span));
    }
    for eval in &recipe.evals {
        if let ModelRef::Train(t) = &eval.model {
            edges.entry(&eval.name).or_default().push(t);
        }
    }
    for sweep in &recipe.sweeps {
        edges.entry(&sweep.name).or_default().push(&sweep.train);
        origins.insert(&sweep.name, (sweep.origin.file, sweep.origin.span));
    }
    for fit in &recipe.fits {
        edges.entry(&fit.name).or_default().push(&fit.sweep);
    }
    for choose in &recipe.chooses {
        let deps = edges.entry(&choose.name).or_default();
        deps.push(&choose.domain_fit);
        deps.extend(choose.general_fit.as_deref());
    }
    let mut names: Vec<&str> = edges.keys().copied().collect();
    names.sort_unstable();
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on the stack, 2 = done
    for start in names {
        let mut stack: Vec<&str> = Vec::new();
        if let Some(cycle) = visit(start, &edges, &mut state, &mut stack) {
            let first_train = cycle.iter().find_map(|n| origins.get(n)).copied();
            let (file, span) =
                first_train.unwrap_or((recipe.trains.first().map_or(FileId(0), |t| t.origin.file), Span::default()));
            let error = CheckError::Cycle {
                cycle: cycle.join(" -> "),
                span: span.into(),
                help: "each stage needs the one after it in this chain; a chosen ratio cannot feed the runs it is chosen from".to_string(),
            };
            errors.push(Located::new(file, error));
            return;
        }
    }
}

fn visit<'a>(
    node: &'a str,
    edges: &HashMap<&'a str, Vec<&'a str>>,
    state: &mut HashMap<&'a str, u8>,
    stack: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    match state.get(node) {
        Some(2) => return None,
        Some(1) => {
            let at = stack.iter().position(|n| *n == node).unwrap_or(0);
            let mut cycle = stack[at..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        _ => {}
    }
    state.insert(node, 1);
    stack.push(node);
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = visit(next, edges, state, stack) {
            return Some(cycle);
        }
    }
    stack.pop();
    state.insert(node, 2);
    None
}
