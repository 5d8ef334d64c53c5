//! `cptc check`: checks each recipe and prints every error found.

use std::path::PathBuf;

use super::{DiagFormat, EXIT_USER, color, width};
use crate::check::{RealWorld, check};
use crate::diag;

pub(crate) fn run(files: &[PathBuf], format: DiagFormat) -> i32 {
    let mut failed = 0;
    for file in files {
        match check(file, &RealWorld) {
            Ok(recipe) => {
                let stages = recipe.trains().len() + recipe.evals().len() + recipe.sweeps().len();
                eprintln!("ok: {} ({} train/eval/sweep blocks)", file.display(), stages);
            }
            Err(failure) => {
                failed += 1;
                let text = match format {
                    DiagFormat::Human => diag::render(&failure.errors, &failure.sources, color(), width()),
                    DiagFormat::Short => diag::render_short(&failure.errors, &failure.sources),
                };
                eprint!("{text}");
                let n = failure.errors.len();
                eprintln!("error: {} has {n} error{}", file.display(), if n == 1 { "" } else { "s" });
            }
        }
    }
    if failed > 0 { EXIT_USER } else { 0 }
}
