//! Corpus globs: each file once however it is spelled or reached, a symlink cycle under a `**`
//! pattern reported (never walked), a broken link or a name that is not UTF-8 refused, glob
//! syntax in the recipe's own folder read as a name, on real folders with real links.

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

/// The error `check` gives for the recipe in `dir` over `files`, rendered.
fn check_error(dir: &Path, files: &str) -> String {
    match check(&recipe(dir, files), &RealWorld) {
        Ok(_) => panic!("check passed over {files}"),
        Err(f) => cptc::diag::render(&f.errors, &f.sources, false, 200),
    }
}

#[test]
fn a_broken_link_the_pattern_reaches_is_refused() {
    let dir = data_folder();
    symlink("../elsewhere/c.jsonl", dir.path().join("data/c.jsonl")).expect("symlink");
    let broken = |files: &str, link: &str| {
        let text = check_error(dir.path(), files);
        assert!(text.contains("cptc::check::broken_link"), "{files}: {text}");
        assert!(text.contains(&format!("{link}`, a symlink to `../elsewhere/")), "{files}: {text}");
    };
    broken(r#""data/*.jsonl""#, "data/c.jsonl");
    broken(r#""./data/*.jsonl""#, "data/c.jsonl");
    broken(r#""data/c.jsonl""#, "data/c.jsonl");
    // One the pattern does not reach is none of the corpus' business.
    assert_eq!(corpus_files(dir.path(), r#""data/a.*""#), vec!["data/a.jsonl"]);
    std::fs::remove_file(dir.path().join("data/c.jsonl")).expect("rm");
    // A folder the pattern would walk into: a disk not mounted, a folder half synced.
    symlink("../elsewhere/s2", dir.path().join("data/s2")).expect("symlink");
    broken(r#""data/*/*.jsonl""#, "data/s2");
    broken(r#""data/**/*.jsonl""#, "data/s2");
    assert_eq!(corpus_files(dir.path(), r#""data/sub/*.jsonl""#), vec!["data/sub/b.jsonl"]);
}

#[test]
fn a_pattern_spelled_with_a_leading_dot_matches_from_any_folder() {
    let dir = data_folder();
    // (`corpus_files` strips the recipe's folder, and with it the `./`.)
    assert_eq!(corpus_files(dir.path(), r#""./data/*.jsonl""#), vec!["data/a.jsonl"]);
    assert_eq!(corpus_files(dir.path(), r#""./data/**/*.jsonl""#), vec!["data/a.jsonl", "data/sub/b.jsonl"]);
    assert_eq!(corpus_files(dir.path(), r#""./*/a.jsonl""#), vec!["data/a.jsonl"]);
}

#[test]
fn a_file_name_that_is_not_utf8_is_refused_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let dir = data_folder();
    let odd = std::ffi::OsStr::from_bytes(b"bad\xffname.jsonl");
    std::fs::write(dir.path().join("data").join(odd), "{\"text\": \"c\"}\n").expect("write");
    let text = check_error(dir.path(), r#""data/*.jsonl""#);
    assert!(text.contains("cptc::check::file_name"), "{text}");
    assert!(
        text.contains("matches a path that is not UTF-8: `") && text.contains("/data/bad\u{FFFD}name.jsonl`"),
        "{text}"
    );
    // A folder's name, not the file's: the whole path says which.
    std::fs::remove_file(dir.path().join("data").join(odd)).expect("rm");
    let folder = dir.path().join("data").join(std::ffi::OsStr::from_bytes(b"\xfe"));
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("c.jsonl"), "{\"text\": \"c\"}\n").expect("write");
    let text = check_error(dir.path(), r#""data/*/*.jsonl""#);
    assert!(text.contains("/data/\u{FFFD}/c.jsonl`"), "{text}");
}

#[test]
fn glob_syntax_in_the_recipe_folder_is_a_name_and_a_literal_name_is_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The recipe's own folder holds glob syntax, as `set [v2]` or `{a}` folders do.
    let root = dir.path().join("set [v2]").join("{a}");
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    std::fs::write(root.join("data/a.jsonl"), "{\"text\": \"a\"}\n").expect("write");
    std::fs::write(root.join("data/part[1].jsonl"), "{\"text\": \"p\"}\n").expect("write");
    assert_eq!(corpus_files(&root, r#""data/*.jsonl""#), vec!["data/a.jsonl", "data/part[1].jsonl"]);
    // A pattern that matches nothing but names a file as written gives that file, as a shell does.
    assert_eq!(corpus_files(&root, r#""data/part[1].jsonl""#), vec!["data/part[1].jsonl"]);
    // An absolute pattern is not joined to the folder.
    let absolute = format!(r#""{}/data/a.*""#, root.display());
    let files = corpus_files(&root, &absolute);
    assert_eq!(files, vec!["data/a.jsonl"]);
}
