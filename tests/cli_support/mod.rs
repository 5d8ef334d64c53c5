//! The one way tests start the `cptc` binary: from the repository root, without colour.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `cptc ARGS` in the repository root (tests change the folder or environment as they need).
pub(crate) fn cptc(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cptc"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env("NO_COLOR", "1");
    cmd
}

/// `cptc ARGS` in `root` on one thread, its output as wide as it likes: exit code, stdout, stderr.
pub(crate) fn run_in(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = cptc(args).current_dir(root).env("COLUMNS", "1000").env("CPTC_THREADS", "1").output().expect("cptc");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The published artifact folder of `stage` of `recipe` in `root`'s store (`.cptc`), found by
/// the key `cptc plan` gives it.
pub(crate) fn artifact(root: &Path, recipe: &str, stage: &str) -> PathBuf {
    let out = cptc(&["plan", recipe, "--format", "json"]).current_dir(root).output().expect("cptc plan");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let s = plan["stages"].as_array().expect("stages").iter().find(|s| s["id"] == stage).expect("stage in plan");
    let (key, kind) = (s["key"].as_str().expect("key"), s["kind"].as_str().expect("kind"));
    std::fs::read_dir(root.join(".cptc/v1/artifacts"))
        .expect("artifacts")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{kind}-v")))
        .map(|e| e.path().join(key))
        .find(|p| p.is_dir())
        .expect("published artifact")
}
