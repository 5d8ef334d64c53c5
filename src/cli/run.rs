//! `cptc run`: checks the recipe, lowers it, and executes the stage graph against the store.

use std::path::Path;

use super::{EXIT_INTERNAL, EXIT_USER, load};
use crate::exec::{self, EventLog, ExecError, Options, stages::RealRunner};
use crate::graph::lower;
use crate::store::{Store, StoreError};

pub(crate) fn run(file: &Path, store_dir: &Path, options: &Options, verbose: bool) -> i32 {
    let Some(recipe) = load(file) else { return EXIT_USER };
    let graph = lower(&recipe);
    let mut store = match Store::open(store_dir) {
        Ok(s) => s,
        Err(e) => return report(e.into()),
    };
    if let Err(e) = store.lock() {
        return report(e.into());
    }
    let log = if options.dry_run { EventLog::none() } else { EventLog::create(&store.runs_dir()) };
    match exec::run(&graph, &store, &RealRunner, options, &log, verbose) {
        Ok(summary) => {
            if summary.ran.is_empty() {
                eprintln!("nothing to run: all {} stages are cached", summary.cached.len());
            } else {
                eprintln!("ran {} stages, {} cached", summary.ran.len(), summary.cached.len());
            }
            if let Some(report) = summary.artifacts.get("report") {
                // The terminal summary goes to stdout (it is the result); the rest is progress.
                if let Ok(text) = std::fs::read_to_string(report.join("summary.txt")) {
                    print!("\n{text}");
                }
                println!("report: {}", report.join("report.html").display());
            }
            if !options.dry_run {
                eprintln!("event log: {}", log.path().display());
            }
            0
        }
        Err(ExecError::Stage { message, .. }) if options.dry_run && message == "dry run" => {
            eprintln!("dry run: stopped at the first stage that would run (see `cptc plan` for all)");
            0
        }
        Err(e) => report(e),
    }
}

fn report(e: ExecError) -> i32 {
    let code = match &e {
        ExecError::Store(StoreError::Io { .. } | StoreError::Corrupt { .. }) => EXIT_INTERNAL,
        _ => EXIT_USER,
    };
    eprintln!("{:?}", miette::Report::new(e));
    code
}
