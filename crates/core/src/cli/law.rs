//! `cptc law show`: the fitted D-CPT laws and the chosen ratio of a recipe, from the store.

use std::path::Path;

use super::planned;
use crate::exec::Status;
use crate::graph::StageKind;
use crate::store::Store;

pub(crate) fn show(file: &Path, store_dir: &Path) -> i32 {
    let (graph, statuses) = match planned(file, store_dir, &crate::exec::Options::default()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut shown = 0;
    for (ix, status) in statuses {
        let stage = graph.stage(ix);
        if !matches!(stage.kind(), StageKind::Fit | StageKind::Choose) {
            continue;
        }
        let Status::Cached(meta) = status else {
            println!("{}: not computed yet (run the recipe first)", stage.id);
            continue;
        };
        let dir = Store::at(store_dir).artifact_dir(stage.kind(), &meta.key);
        let name = if stage.kind() == StageKind::Fit { "law.txt" } else { "choice.txt" };
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => {
                println!("== {}\n{text}", stage.id);
                shown += 1;
            }
            Err(e) => eprintln!("error: {}: {e}", dir.join(name).display()),
        }
    }
    if shown == 0 {
        eprintln!("no fitted law in {} yet", file.display());
    }
    0
}
