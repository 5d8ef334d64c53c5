//! `cptc cache ls|verify|gc`: inspect, check and prune the artifact store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{EXIT_INTERNAL, EXIT_USER, planned};
use crate::exec::Status;
use crate::store::Store;

pub(crate) fn ls(store_dir: &Path) -> i32 {
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
    let store = Store::at(store_dir);
    let problems = store.verify();
    if problems.is_empty() {
        eprintln!("{} artifacts verified", store.list().len());
        return 0;
    }
    for problem in &problems {
        eprintln!("{:?}", miette::Report::msg(problem.to_string()));
    }
    if fix {
        let _store = match locked(store_dir) {
            Ok(s) => s,
            Err(code) => return code,
        };
        for problem in &problems {
            if let crate::store::StoreError::Corrupt { path, .. } = problem {
                let _ = std::fs::remove_dir_all(path);
                eprintln!("removed {path}");
            }
        }
        return 0;
    }
    EXIT_USER
}

pub(crate) fn gc(store_dir: &Path, recipes: &[PathBuf]) -> i32 {
    let mut keep = HashSet::new();
    for file in recipes {
        let statuses = match planned(file, store_dir) {
            Ok((_, statuses)) => statuses,
            Err(code) => return code,
        };
        keep.extend(statuses.into_iter().filter_map(|(_, s)| match s {
            Status::Cached(meta) => Some(meta.key),
            _ => None,
        }));
    }
    let store = match locked(store_dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match store.gc(&keep) {
        Ok((n, bytes)) => {
            eprintln!("removed {n} artifacts ({}); kept {}", human_bytes(bytes), keep.len());
            0
        }
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            EXIT_INTERNAL
        }
    }
}

/// The store, opened and locked for changes; `Err` is the exit code after printing why.
fn locked(store_dir: &Path) -> Result<Store, i32> {
    let mut store = Store::open(store_dir).map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
        EXIT_INTERNAL
    })?;
    store.lock().map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
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
