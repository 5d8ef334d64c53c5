//! Every shipped recipe and stdlib module parses, checks clean and is already in `fmt` layout;
//! formatting is idempotent.

use std::path::{Path, PathBuf};

use cptc::check::{RealWorld, check};
use cptc::{diag, fmt, stdlib, syntax};

fn recipes() -> Vec<PathBuf> {
    let dir = Path::new("recipes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "cpt")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn recipes_check_clean() {
    let files = recipes();
    assert!(files.len() >= 5, "expected the five shipped recipes, found {files:?}");
    for path in files {
        if let Err(failure) = check(&path, &RealWorld) {
            panic!(
                "{} fails to check:\n{}",
                path.display(),
                diag::render(&failure.errors, &failure.sources, false, 100)
            );
        }
    }
}

#[test]
fn stdlib_modules_check_clean_on_their_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in stdlib::names() {
        let path = dir.path().join(format!("uses_{name}.cpt"));
        std::fs::write(&path, format!("import \"std/{name}\"\n")).expect("write");
        if let Err(failure) = check(&path, &RealWorld) {
            panic!("std/{name} fails to check:\n{}", diag::render(&failure.errors, &failure.sources, false, 100));
        }
    }
}

#[test]
fn recipes_and_stdlib_are_formatted_and_fmt_is_idempotent() {
    let mut texts: Vec<(String, String)> =
        recipes().into_iter().map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("read"))).collect();
    texts.extend(stdlib::MODULES.iter().map(|(n, t)| (format!("std/{n}"), (*t).to_string())));
    for (name, text) in texts {
        let (_, errors) = syntax::parse(&text);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let once = fmt::format(&text).expect("formats");
        assert_eq!(once, text, "{name} is not in canonical layout (run `cptc fmt`)");
        let twice = fmt::format(&once).expect("formats again");
        assert_eq!(twice, once, "{name}: fmt is not idempotent");
    }
}

#[test]
fn fmt_keeps_comments_and_normalises_layout() {
    let messy = "# head\nimport \"std/schedules\"\n\n\n\nschedule s   extends cosine_rewarm{peak=1e-3 # fast\n\n\n  # why\n warmup = 2%;min=5%}\n# tail\n";
    let formatted = fmt::format(messy).expect("formats");
    insta::assert_snapshot!(formatted);
    assert_eq!(fmt::format(&formatted).expect("again"), formatted);
}
