//! Project hygiene: every Rust file opens with a `//!` line, and no placeholder (`todo!`,
//! `unimplemented!`, `dbg!`) or ignored test is left in the sources.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "crates/core/src", "crates/torch/src", "tests", "benches", "examples", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.push(root.join("build.rs"));
    assert!(files.len() > 100, "the sources moved: {} files found", files.len());
    files.sort();
    files
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).map_or(true, |t| !t.trim_start().starts_with("//!")))
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` first line: {missing:?}");
}

#[test]
fn no_placeholders_or_ignored_tests() {
    // Spelled in pieces so this file does not flag itself.
    let banned =
        [["todo", "!("].concat(), ["unimplemented", "!("].concat(), ["dbg", "!("].concat(), ["#[", "ignore"].concat()];
    let mut hits = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if banned.iter().any(|b| line.contains(b.as_str())) {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "placeholders left: {hits:#?}");
}

/// Lines of the files under `dirs` (relative to `crates/core/src/`, except those in `allowed`) that reach
/// the file system directly.
fn direct_io(dirs: &[&str], allowed: &[&str]) -> Vec<String> {
    // Spelled in pieces so this file does not flag itself.
    let banned = [
        ["std::", "fs"].concat(),
        ["fs_", "err"].concat(),
        [".is_", "file()"].concat(),
        [".is_", "dir()"].concat(),
        [".exists", "()"].concat(),
        ["read_", "dir("].concat(),
        ["canonic", "alize("].concat(),
        ["File::", "open("].concat(),
        ["File::", "create("].concat(),
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core/src");
    let mut hits = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        let path = src.join(dir);
        assert!(path.exists(), "{} moved: update this test", path.display());
        if path.is_dir() {
            rust_files(&path, &mut files)
        } else {
            files.push(path)
        }
        for file in files.iter().filter(|f| !allowed.iter().any(|a| f.ends_with(a))) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if banned.iter().any(|b| code.contains(b.as_str())) {
                    hits.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    hits
}

#[test]
fn parsing_checking_and_lowering_do_no_io_of_their_own() {
    // `check` reaches files only through `World`; `syntax` and the recipe IR never; `lower`
    // asks a `Probe` (graph/probe.rs) for what it needs to know about files.
    let hits = direct_io(&["syntax", "check", "recipe", "graph/lower.rs", "graph/mod.rs"], &["check/world.rs"]);
    assert!(hits.is_empty(), "direct IO outside the `World`/`Probe` doors: {hits:#?}");
}
