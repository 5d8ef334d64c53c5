//! The `cptc` binary end to end: exit codes (0 ok, 1 user error, 2 internal), coded
//! diagnostics on stderr, `fmt --check`, and no panic on any malformed input.

use std::path::Path;
use std::process::Output;

mod cli_support;

fn cptc(args: &[&str]) -> Output {
    cli_support::cptc(args).output().expect("run cptc")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_accepts_every_recipe() {
    let out = cptc(&[
        "check",
        "recipes/edu.cpt",
        "recipes/zh.cpt",
        "recipes/medical.cpt",
        "recipes/longctx.cpt",
        "recipes/dcpt.cpt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn check_reports_user_errors_with_exit_code_1() {
    let out = cptc(&["check", "tests/fixtures/invalid/check_many_errors.cpt"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    for code in [
        "cptc::check::out_of_range",
        "cptc::check::type_mismatch",
        "cptc::check::unknown_value",
        "cptc::check::unknown_name",
    ] {
        assert!(text.contains(code), "missing {code} in:\n{text}");
    }
    assert!(text.contains("has 5 errors"), "{text}");
}

#[test]
fn short_format_prints_file_line_column() {
    let out = cptc(&["check", "--format", "short", "tests/fixtures/invalid/check_unknown_kind.cpt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "tests/fixtures/invalid/check_unknown_kind.cpt:4:1: cptc::check::unknown_kind: unknown block kind `trian`"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_file_is_a_user_error() {
    let out = cptc(&["check", "recipes/does-not-exist.cpt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cptc::check::read"), "{}", stderr(&out));
}

#[test]
fn malformed_inputs_never_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary", (0..=255u8).cycle().take(4096).collect()),
        ("nul", b"model m {\0\0\0}".to_vec()),
        ("deep_lists", format!("a b {{ x = {} }}", "[".repeat(100_000)).into_bytes()),
        ("deep_blocks", "a {\n".repeat(100_000).into_bytes()),
        ("many_errors", "= = =\n".repeat(200_000).into_bytes()),
        ("empty", Vec::new()),
        ("bom", b"\xEF\xBB\xBFmodel m { hf = \"x\" }".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.cpt"));
        std::fs::write(&path, &bytes).expect("write");
        let path = path.to_str().expect("utf-8 temp path");
        for args in [vec!["check", path], vec!["fmt", "--check", path]] {
            let out = cptc(&args);
            let text = stderr(&out);
            assert!(!text.contains("panicked"), "{name}: {text}");
            let expected = if name == "empty" { 0 } else { 1 };
            assert_eq!(out.status.code(), Some(expected), "{name} {args:?}: {text}");
        }
    }
}

#[test]
fn fmt_check_flags_unformatted_files_and_fmt_fixes_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("messy.cpt");
    std::fs::write(&path, "schedule s{shape=constant;lr=1e-3 # keep\n}\n").expect("write");
    let p = path.to_str().expect("utf-8");
    assert_eq!(cptc(&["fmt", "--check", p]).status.code(), Some(1));
    assert_eq!(cptc(&["fmt", p]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "schedule s {\n  shape = constant\n  lr = 1e-3  # keep\n}\n"
    );
    assert_eq!(cptc(&["fmt", "--check", p]).status.code(), Some(0));
    assert!(!Path::new(&format!("{p}.fmt-tmp")).exists());
}

#[test]
fn help_and_usage_errors() {
    let help = cptc(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["check", "fmt", "import", "Exit codes"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    assert_eq!(cptc(&["frobnicate"]).status.code(), Some(1));
}

#[test]
fn a_missing_store_is_an_error_not_an_empty_one() {
    for sub in ["verify", "ls"] {
        let out = cptc(&["cache", sub, "--store", "target/no-such-store"]);
        assert_eq!(out.status.code(), Some(1), "cache {sub}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("cptc::cache::no_store"), "{err}");
        assert!(err.contains("there is no store at target/no-such-store"), "{err}");
    }
}
