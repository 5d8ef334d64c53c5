//! Corpus globs: each file once however it is spelled or reached, and a symlink cycle under a
//! `**` pattern reported (never walked), on real folders with real links.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use cptc::check::{RealWorld, check};

/// A recipe with one corpus over `files` (a list of patterns), in `dir`.
fn recipe(dir: &Path, files: &str) -> PathBuf {
    let path = dir.join("recipe.cpt");
    std::fs::write(&path, format!("corpus web {{\n  files = {files}\n}}\n")).expect("write recipe");
    path
}

fn corpus_files(dir: &Path, files: &str) -> Vec<String> {
    let recipe = match check(&recipe(dir, files), &RealWorld) {
        Ok(r) => r,
        Err(f) => panic!("{}", cptc::diag::render(&f.errors, &f.sources, false, 100)),
    };
    let corpus = recipe.corpus("web").expect("corpus web");
    corpus.files.iter().map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string()).collect()
}

fn data_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).expect("mkdir");
    std::fs::write(data.join("a.jsonl"), "{\"text\": \"a\"}\n").expect("write");
    std::fs::write(data.join("sub/b.jsonl"), "{\"text\": \"b\"}\n").expect("write");
    dir
}

#[test]
fn a_file_reached_twice_is_read_once() {
    let dir = data_folder();
    symlink("a.jsonl", dir.path().join("data/alias.jsonl")).expect("symlink");
    // Three spellings of a.jsonl and a link to it: one file, under its first spelling.
    let files =
        corpus_files(dir.path(), r#"["data/a.jsonl", "data/./a.jsonl", "data/*.jsonl", "data/sub/../a.jsonl"]"#);
    assert_eq!(files, vec!["data/a.jsonl"]);
    let files = corpus_files(dir.path(), r#""data/**/*.jsonl""#);
    assert_eq!(files, vec!["data/a.jsonl", "data/sub/b.jsonl"]);
}

#[test]
fn a_symlink_cycle_is_reported_not_walked() {
    let dir = data_folder();
    symlink("..", dir.path().join("data/sub/loop")).expect("symlink");
    let failed = match check(&recipe(dir.path(), r#""data/**/*.jsonl""#), &RealWorld) {
        Ok(_) => panic!("a pattern reaching a symlink cycle passed check"),
        Err(f) => f,
    };
    let text = cptc::diag::render(&failed.errors, &failed.sources, false, 200);
    assert!(text.contains("cptc::check::symlink_cycle"), "{text}");
    assert!(text.contains("data/sub/loop` leads back to"), "{text}");
    // A pattern that does not walk into the link is fine.
    let files = corpus_files(dir.path(), r#""data/*.jsonl""#);
    assert_eq!(files, vec!["data/a.jsonl"]);
}
