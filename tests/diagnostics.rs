//! Every invalid fixture under `tests/fixtures/invalid/` fails to check, with coded diagnostics;
//! their rendering (no colour, 80 columns) is snapshotted with insta.

use std::path::Path;

use cptc::check::{RealWorld, check};
use cptc::diag;

#[test]
fn invalid_fixtures_render_coded_diagnostics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::glob!("fixtures/invalid/*.cpt", |path| {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let failure = match check(relative, &RealWorld) {
            Ok(_) => panic!("{} checked clean but is an invalid fixture", relative.display()),
            Err(failure) => failure,
        };
        assert!(!failure.errors.is_empty());
        for error in &failure.errors {
            let code = error.code();
            assert!(code.starts_with("cptc::parse::") || code.starts_with("cptc::check::"), "uncoded error: {code}");
        }
        let rendered = diag::render(&failure.errors, &failure.sources, false, 80);
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn there_are_at_least_thirty_invalid_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let count = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    assert!(count >= 30, "only {count} invalid fixtures");
}
