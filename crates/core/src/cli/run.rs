//! `cptc run`: checks the recipe, lowers it, and executes the stage graph against the store.

use std::path::Path;

use super::{EXIT_USER, load};
use crate::exec::{self, EventLog, ExecError, Options, RealRunner};
use crate::graph::{RealProbe, lower};
use crate::store::Store;

pub(crate) fn run(file: &Path, store_dir: &Path, options: &Options, verbose: bool) -> i32 {
    let Some(recipe) = load(file) else { return EXIT_USER };
    let graph = lower(&recipe, &RealProbe);
    let mut store = match Store::open(store_dir) {
        Ok(s) => s,
        Err(e) => return report(e.into()),
    };
    if let Err(e) = store.lock() {
        return report(e.into());
    }
    let log = if options.dry_run { EventLog::none() } else { EventLog::create(&store.runs_dir()) };
    let mut summary = match exec::run(&graph, &store, &RealRunner, options, &log, verbose) {
        Ok(summary) => summary,
        Err(e) => return report(e),
    };
    if options.dry_run {
        if summary.would_run.is_empty() {
            eprintln!("dry run: nothing would run; all {} stages are cached", summary.cached.len());
        } else {
            eprintln!("dry run: {} stages would run, {} are cached:", summary.would_run.len(), summary.cached.len());
            for (stage, why) in &summary.would_run {
                let why = if why.is_empty() { "never ran".to_string() } else { why.join("; ") };
                eprintln!("  {stage}: {why}");
            }
        }
        return 0;
    }
    let code = summary.exit_code();
    let failed: Vec<String> = summary.failed.iter().map(|f| f.stage.clone()).collect();
    for failure in std::mem::take(&mut summary.failed) {
        let from = defined_at(&graph, recipe.sources(), &failure.stage);
        eprint!("{}", super::report(&ExecError::Stage(failure)));
        if let Some(from) = from {
            eprintln!("  the stage comes from {from}\n");
        }
    }
    if failed.is_empty() {
        if summary.ran.is_empty() {
            eprintln!("nothing to run: all {} stages are cached", summary.cached.len());
        } else {
            eprintln!("ran {} stages, {} cached", summary.ran.len(), summary.cached.len());
        }
    } else {
        eprintln!(
            "ran {} stages, {} cached; failed: {}; not started: {}",
            summary.ran.len(),
            summary.cached.len(),
            failed.join(", "),
            if summary.not_started.is_empty() { "none".to_string() } else { summary.not_started.join(", ") },
        );
    }
    for line in skipped_records(&summary) {
        eprintln!("{line}");
    }
    if let Some(report) = summary.artifacts.get("report") {
        // The terminal summary goes to stdout (it is the result); the rest is progress.
        if let Ok(text) = std::fs::read_to_string(report.join("summary.txt")) {
            print!("\n{text}");
        }
        println!("report: {}", report.join("report.html").display());
    }
    eprintln!("event log: {}", log.path().display());
    code
}

/// Where the recipe block of stage `id` begins: `recipes/edu.cpt:12:1 (\`corpus poetry {\`)`.
fn defined_at(graph: &crate::graph::Graph, sources: &crate::source::SourceMap, id: &str) -> Option<String> {
    let ix = graph.graph.node_indices().find(|&ix| graph.stage(ix).id.to_string() == id)?;
    let origin = graph.stage(ix).origin?;
    let file = sources.get(origin.file);
    let (line, col) = file.line_col(origin.span.start);
    let header = file.text.get(origin.span.start as usize..)?.lines().next()?.trim();
    Some(format!("{}:{line}:{col} (`{header}`)", file.name))
}

/// One line per corpus whose ingest skipped records (run now or cached): they are data the
/// run did not use, so every run says so, not only the one that read them.
fn skipped_records(summary: &exec::Summary) -> Vec<String> {
    // In stage order (the artifacts are), a corpus' lines together.
    let mut lines = Vec::new();
    for (id, dir) in summary.artifacts.iter().filter(|(id, _)| id.starts_with("ingest:")) {
        let Ok(text) = std::fs::read_to_string(dir.join("report.json")) else { continue };
        let Ok(report) = serde_json::from_str::<crate::data::ingest::IngestReport>(&text) else { continue };
        let counts = &report.skipped;
        if counts.total() > 0 {
            lines.push(format!(
                "{id}: skipped {} records{} (listed in {})",
                counts.total(),
                counts.reasons(),
                dir.join("report.json").display()
            ));
        }
        // A file lost whole is worth its own line: its records are a few among many above.
        let lost = &report.no_document;
        let named = match lost.as_slice() {
            [] => continue,
            [one] => format!("{one} gave"),
            [a, b] => format!("2 files, {a} and {b}, gave"),
            [a, b, ..] => format!("{} files, {a}, {b} and {} more, gave", lost.len(), lost.len() - 2),
        };
        lines.push(format!("{id}: {named} no document (every record skipped)"));
    }
    lines
}

fn report(e: ExecError) -> i32 {
    let code = exec::tier_of(&e).exit_code();
    eprint!("{}", super::report(&e));
    code
}
