//! The reduced end-to-end run (CI's): `cptc run` on `tests/fixtures/e2e/edu_tiny.cpt`, which is
//! edu.cpt's shape with a handful of steps: real SmolLM2, real poetry and novels, vocabulary
//! expansion, replay with a ramp, evaluations and the report. Asserts that the domain held-out
//! loss falls, that the report is written, and that a rerun executes nothing and points at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RECIPE: &str = "tests/fixtures/e2e/edu_tiny.cpt";

fn cptc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cptc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        // One intra-op thread: two collapse on a 2-core machine when anything else runs.
        .env("CPTC_THREADS", "1")
        .output()
        .expect("run cptc")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The report path printed by `cptc run`.
fn report_path(stdout: &str) -> PathBuf {
    let line = stdout.lines().find_map(|l| l.strip_prefix("report: ")).expect("a `report:` line");
    let path = PathBuf::from(line);
    if path.is_absolute() { path } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(path) }
}

#[test]
fn edu_tiny_trains_lowers_the_domain_loss_and_reports() {
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(gguf.is_file(), "{} is missing: run `scripts/setup.sh` first", gguf.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf-8");

    let out = cptc(&["run", RECIPE, "--store", store]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let html = report_path(&stdout);
    let page = std::fs::read_to_string(&html).expect("report.html");
    for section in ["Gain and forgetting", "train cpt", "vocab poetry_chars", "mixture: token shares", "<svg"] {
        assert!(page.contains(section), "the report lacks `{section}`");
    }
    assert!(stdout.contains("poetry (domain)") && stdout.contains("novels (general)"), "{stdout}");

    // The domain held-out loss falls over training (same tokenizer and windows at every step).
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(html.with_file_name("report.json")).expect("report.json"))
            .expect("json");
    let evals = data["trains"][0]["evals"].as_array().expect("train evals");
    let loss_at = |step: u64| {
        evals
            .iter()
            .find(|e| e["step"] == step && e["set"] == "poetry")
            .and_then(|e| e["loss"].as_f64())
            .unwrap_or_else(|| panic!("no poetry evaluation at step {step}: {evals:?}"))
    };
    let last = evals.iter().filter_map(|e| e["step"].as_u64()).max().expect("evaluations");
    assert_eq!(last, 4, "the run takes its 4 steps");
    let (first, after) = (loss_at(0), loss_at(last));
    eprintln!("poetry held-out loss: step 0 {first:.4} -> step {last} {after:.4}");
    assert!(after < first, "domain held-out loss did not fall: {first} -> {after}");
    // The realized mixture follows the ramp: the domain share of the last window exceeds the first's.
    let windows = data["trains"][0]["windows"].as_array().expect("share windows");
    let domain = |w: &serde_json::Value| w["realized"]["domain"].as_f64().unwrap_or(0.0);
    assert!(windows.len() >= 2, "{windows:?}");
    assert!(domain(windows.last().expect("a window")) > domain(&windows[0]), "{windows:?}");

    // An unchanged rerun executes nothing and says where the report is.
    let again = cptc(&["run", RECIPE, "--store", store]);
    let (stdout2, stderr2) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{stderr2}");
    assert!(stderr2.contains("nothing to run"), "{stderr2}");
    assert_eq!(report_path(&stdout2), html);

    let verify = cptc(&["cache", "verify", "--store", store]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify).1);
}
