//! `cptc cache ls|verify|gc`: inspect, check and prune the artifact store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{EXIT_INTERNAL, EXIT_USER, planned};
use crate::exec::Status;
use crate::store::Store;

/// A store folder that does not exist is a mistyped `--store` (or a folder where nothing ran):
/// said so, not reported as an empty or verified store.
fn existing(store_dir: &Path) -> Result<(), i32> {
    if store_dir.is_dir() {
        return Ok(());
    }
    let report = miette::miette!(
        code = "cptc::cache::no_store",
        help = "the store is `.cptc` beside where `cptc run` ran, or the folder `--store` names",
        "there is no store at {}",
        store_dir.display()
    );
    eprint!("{}", super::report(report.as_ref()));
    Err(EXIT_USER)
}

pub(crate) fn ls(store_dir: &Path) -> i32 {
    if let Err(code) = existing(store_dir) {
        return code;
    }
    let store = Store::at(store_dir);
    let artifacts = store.list();
    if artifacts.is_empty() {
        eprintln!("the store at {} is empty", store_dir.display());
        return 0;
    }
    let mut total = 0;
    for (dir, meta) in &artifacts {
        match meta {
            Some(m) => {
                let bytes: u64 = m.files.iter().map(|f| f.size).sum();
                total += bytes;
                println!(
                    "{:<10} {:<40} {}  {:>10}  {:.1}s",
                    m.kind,
                    m.stage,
                    m.key.short(),
                    human_bytes(bytes),
                    m.elapsed_s
                );
            }
            None => println!("{:<10} {:<40} (no meta.json)", "?", dir.display()),
        }
    }
    println!("{} artifacts, {}", artifacts.len(), human_bytes(total));
    0
}

pub(crate) fn verify(store_dir: &Path, fix: bool) -> i32 {
    if let Err(code) = existing(store_dir) {
        return code;
    }
    // With --fix, the store is locked first: no run publishes while it is checked and repaired.
    let store = if fix {
        match locked(store_dir) {
            Ok(s) => s,
            Err(code) => return code,
        }
    } else {
        Store::at(store_dir)
    };
    // Parts too: an artifact's hard links share their bytes, and a damaged part left in place
    // would be linked into the rebuilt artifact again.
    let parts = store.parts();
    let mut problems = store.verify();
    problems.extend(parts.verify());
    if problems.is_empty() {
        eprintln!("{} artifacts and {} parts verified", store.list().len(), parts.list().len());
        return 0;
    }
    for problem in &problems {
        eprint!("{}", super::report(problem));
    }
    if !fix {
        return EXIT_USER;
    }
    let corrupt: Vec<PathBuf> = problems
        .iter()
        .filter_map(|p| match p {
            crate::store::StoreError::Corrupt { path, .. } => Some(PathBuf::from(path)),
            _ => None,
        })
        .collect();
    // What was built from a corrupt artifact goes too: rebuilt byte-identical, the artifact
    // would keep its digest, and its consumers' keys with it.
    let outputs: HashSet<crate::graph::Digest> = store
        .list()
        .into_iter()
        .filter(|(dir, _)| corrupt.contains(dir))
        .filter_map(|(_, meta)| meta.map(|m| m.output))
        .collect();
    let downstream: Vec<PathBuf> = store.built_from(&outputs).into_iter().filter(|d| !corrupt.contains(d)).collect();
    let mut code = 0;
    for (dir, why) in
        corrupt.iter().map(|d| (d, "")).chain(downstream.iter().map(|d| (d, " (built from a corrupt artifact)")))
    {
        match store.remove(dir) {
            Ok(()) => eprintln!("removed {}{why}", dir.display()),
            Err(e) => {
                eprint!("{}", super::report(&e));
                code = EXIT_INTERNAL;
            }
        }
    }
    code
}

pub(crate) fn gc(store_dir: &Path, recipes: &[PathBuf]) -> i32 {
    // Locked before planning: a run finishing meanwhile could otherwise publish what gc then
    // judges unreferenced.
    let store = match locked(store_dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (mut keep, mut keep_stages, mut keep_resume) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut to_run = HashSet::new();
    for file in recipes {
        let (graph, statuses) = match planned(file, store_dir, &crate::exec::Options::default()) {
            Ok(planned) => planned,
            Err(code) => return code,
        };
        for (ix, status) in statuses {
            if !matches!(status, Status::Cached(_)) {
                to_run.insert(graph.stage(ix).id.to_string());
            }
            match status {
                Status::Cached(meta) => {
                    keep.insert(meta.key);
                }
                // Its key waits for an upstream artifact or value: whatever it last produced may
                // be hit again once that is rebuilt (early cutoff), so it stays.
                Status::WillRun { key: None, .. } | Status::Pending { .. } => {
                    keep_stages.insert(graph.stage(ix).id.to_string());
                }
                // Its checkpoints (a run cut short) are what the next run resumes from.
                Status::WillRun { key: Some(key), .. } => {
                    keep_resume.insert(key);
                }
            }
        }
    }
    match store.gc_resume(&keep_resume) {
        Ok(0) => {}
        Ok(n) => eprintln!("removed {n} checkpoint folders of stages no recipe given runs"),
        Err(e) => {
            eprint!("{}", super::report(&e));
            return EXIT_INTERNAL;
        }
    }
    // Per-file parts stay while an artifact kept lists them, or an artifact of a stage that
    // will run again: a stage whose corpus grew by a file reuses the others' parts next run.
    let parts_kept: HashSet<String> = store
        .list()
        .into_iter()
        .filter(|(_, meta)| meta.as_ref().is_some_and(|m| keep.contains(&m.key) || to_run.contains(&m.stage)))
        .flat_map(|(dir, _)| crate::store::parts::listed(&dir))
        .collect();
    let removed_parts = match store.parts().gc(&parts_kept) {
        Ok(removed) => removed,
        Err(e) => {
            eprint!("{}", super::report(&e));
            return EXIT_INTERNAL;
        }
    };
    match store.gc(&keep, &keep_stages) {
        Ok((n, bytes)) => {
            eprintln!("removed {n} artifacts ({}); kept {}", human_bytes(bytes), keep.len());
            if removed_parts.0 > 0 {
                eprintln!(
                    "removed {} per-file parts ({}) no kept stage uses",
                    removed_parts.0,
                    human_bytes(removed_parts.1)
                );
            }
            0
        }
        Err(e) => {
            eprint!("{}", super::report(&e));
            EXIT_INTERNAL
        }
    }
}

/// The store, opened and locked for changes; `Err` is the exit code after printing why.
fn locked(store_dir: &Path) -> Result<Store, i32> {
    let mut store = Store::open(store_dir).map_err(|e| {
        eprint!("{}", super::report(&e));
        EXIT_INTERNAL
    })?;
    store.lock().map_err(|e| {
        eprint!("{}", super::report(&e));
        EXIT_USER
    })?;
    Ok(store)
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
