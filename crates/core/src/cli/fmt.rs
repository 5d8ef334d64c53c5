//! `cptc fmt`: rewrites recipes in the canonical layout, or with `--check` reports which are not.

use std::path::PathBuf;

use super::{EXIT_INTERNAL, EXIT_USER, color, width};
use crate::diag::{self, Located};
use crate::source::SourceMap;

pub(crate) fn run(files: &[PathBuf], check_only: bool) -> i32 {
    let mut code = 0;
    for path in files {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("error: cannot read {}: {err}", path.display());
                code = code.max(EXIT_USER);
                continue;
            }
        };
        let (text, errors) = match String::from_utf8(text) {
            Ok(text) => {
                let formatted = crate::fmt::format(&text);
                (text, formatted)
            }
            Err(err) => {
                let (_, errors) = crate::syntax::parse_bytes(err.as_bytes());
                (String::from_utf8_lossy(err.as_bytes()).into_owned(), Err(errors))
            }
        };
        match errors {
            Ok(formatted) if formatted == text => {}
            Ok(_) if check_only => {
                eprintln!("not formatted: {}", path.display());
                code = code.max(EXIT_USER);
            }
            Ok(formatted) => {
                // Written aside and renamed, so an interrupted fmt never truncates a recipe.
                let tmp = path.with_extension("cpt.fmt-tmp");
                let written = std::fs::write(&tmp, formatted).and_then(|()| std::fs::rename(&tmp, path));
                if let Err(err) = written {
                    let _ = std::fs::remove_file(&tmp);
                    eprintln!("error: cannot write {}: {err}", path.display());
                    code = EXIT_INTERNAL;
                } else {
                    eprintln!("formatted: {}", path.display());
                }
            }
            Err(errors) => {
                let mut sources = SourceMap::default();
                let file = sources.add(path.display().to_string(), Some(path.clone()), text);
                let located: Vec<Located> = errors.into_iter().map(|e| Located::new(file, e)).collect();
                eprint!("{}", diag::render(&located, &sources, color(), width()));
                code = code.max(EXIT_USER);
            }
        }
    }
    code
}
