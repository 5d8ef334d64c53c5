//! The reduced end-to-end run (CI's): `cptc run` on `tests/fixtures/e2e/edu_tiny.cpt`, which is
//! edu.cpt's shape with a handful of steps: real SmolLM2, real poetry and novels, vocabulary
//! expansion, replay with a ramp, evaluations and the report. Asserts that the domain held-out
//! loss falls, that the report is written, and that a rerun executes nothing and points at it.

use std::path::{Path, PathBuf};
use std::process::Output;

const RECIPE: &str = "tests/fixtures/e2e/edu_tiny.cpt";

mod cli_support;
mod py_support;

fn cptc(args: &[&str]) -> Output {
    cli_support::cptc(args)
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

    // The trained model carries the expanded tokenizer it was trained with.
    let models = trained_models(store);
    assert_eq!(models.len(), 1, "{models:?}");
    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models[0].join("tokenizer.json")).expect("tokenizer.json"))
            .expect("json");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models[0].join("config.json")).expect("config.json"))
            .expect("json");
    let vocab = tokenizer["model"]["vocab"].as_object().map_or(0, |v| v.len()) as u64;
    assert!(vocab > 49_152, "the tokenizer saved is the expanded one ({vocab} tokens)");
    assert!(config["vocab_size"].as_u64().is_some_and(|rows| rows >= vocab), "{config}");

    let verify = cptc(&["cache", "verify", "--store", store]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify).1);
}

/// The model folders of the train artifacts in a store.
fn trained_models(store: &str) -> Vec<PathBuf> {
    let root = Path::new(store).join("v1/artifacts");
    let mut found = Vec::new();
    for kind in std::fs::read_dir(&root).expect("artifacts").filter_map(Result::ok) {
        if kind.file_name().to_string_lossy().starts_with("train-") {
            found.extend(
                std::fs::read_dir(kind.path()).expect("train").filter_map(Result::ok).map(|a| a.path().join("model")),
            );
        }
    }
    found
}

const LONG: &str = "tests/fixtures/e2e/longctx_tiny.cpt";

/// The store of one uninterrupted run of [`LONG`] (checkpointing after every step, which no key
/// holds), shared by the tests that read it: each run is a minute of CI.
fn long_reference() -> &'static Path {
    static STORE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-long-reference");
        let _ = std::fs::remove_dir_all(&store);
        let out = cptc(&["run", LONG, "--checkpoint-minutes", "0", "--store", store.to_str().expect("utf-8")]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
        store
    })
}

#[test]
fn long_context_trains_and_saves_with_the_new_rope_base() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = long_reference().to_str().expect("utf-8");
    let models = trained_models(store);
    assert_eq!(models.len(), 1, "{models:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models[0].join("config.json")).expect("config.json"))
            .expect("json");
    assert_eq!(config["rope_theta"].as_f64(), Some(100_000.0), "the recipe's RoPE base is trained and saved");
    // YaRN x4 from SmolLM2's 8192 positions, in the names its config uses (transformers 4's).
    assert_eq!(config["rope_scaling"]["rope_type"], "yarn", "{config}");
    assert_eq!(config["rope_scaling"]["factor"].as_f64(), Some(4.0), "{config}");
    assert_eq!(config["rope_scaling"]["original_max_position_embeddings"].as_u64(), Some(8192), "{config}");
    assert_eq!(config["max_position_embeddings"].as_u64(), Some(32768), "{config}");
    // transformers reads the saved config back: its loss on the training's held-out windows is
    // the training's own final evaluation.
    let tokenized = std::fs::read_dir(Path::new(store).join("v1/artifacts"))
        .expect("artifacts")
        .filter_map(Result::ok)
        .filter(|k| k.file_name().to_string_lossy().starts_with("tokenize-"))
        .flat_map(|k| std::fs::read_dir(k.path()).expect("tokenize").filter_map(Result::ok).map(|a| a.path()))
        .next()
        .expect("the tokenized corpus");
    let (windows, _) = cptc::backend::heldout::heldout_windows(&tokenized, 256, 1000).expect("windows");
    let windows_file = dir.path().join("novels.windows");
    std::fs::write(&windows_file, cptc::backend::heldout::windows_bytes(&windows)).expect("windows");
    let reference = py_support::call(
        "fsdp_ref",
        &["heldout", models[0].to_str().expect("utf-8"), windows_file.to_str().expect("utf-8"), "256"],
    );
    let evals: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models[0].parent().expect("artifact").join("evals.json")).expect("evals.json"),
    )
    .expect("json");
    let last = &evals.as_array().expect("evals").last().expect("an evaluation")["sets"]["novels"];
    assert_eq!(reference["tokens"].as_u64(), last["tokens"].as_u64());
    let (theirs, ours) = (reference["nats"].as_f64().expect("nats"), last["nats"].as_f64().expect("nats"));
    assert!((theirs - ours).abs() / ours.abs() < 1e-5, "transformers {theirs} nats, cptc's evaluation {ours}");
    // A saved model is a complete Hugging Face folder: its tokenizer comes along.
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        assert!(models[0].join(file).is_file(), "{file} missing from {}", models[0].display());
    }
}

/// The checkpoint a train stage of `store` has written after `step`, if any.
fn checkpoint_at(store: &Path, step: u64) -> Option<PathBuf> {
    let resume = std::fs::read_dir(store.join("v1/resume")).ok()?;
    resume
        .filter_map(Result::ok)
        .map(|d| d.path().join("checkpoints").join(format!("step-{step:08}")))
        .find(|p| p.join("trainer_state.json").is_file())
}

#[test]
fn a_killed_training_run_resumes_and_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (reference, killed) = (long_reference().to_path_buf(), dir.path().join("killed"));
    let args = |store: &Path| -> Vec<String> {
        ["run", LONG, "--checkpoint-minutes", "0", "--store", store.to_str().expect("utf-8")]
            .iter()
            .map(|s| (*s).to_string())
            .collect()
    };
    assert!(
        !reference.join("v1/resume").read_dir().is_ok_and(|mut d| d.next().is_some()),
        "published: no checkpoint left"
    );

    // Killed (SIGKILL, no chance to clean up) once its first checkpoint is on disk.
    let killed_args = args(&killed);
    let killed_args: Vec<&str> = killed_args.iter().map(String::as_str).collect();
    let mut child = cli_support::cptc(&killed_args)
        .env("CPTC_THREADS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn cptc");
    let started = std::time::Instant::now();
    while checkpoint_at(&killed, 1).is_none() {
        assert!(child.try_wait().expect("poll").is_none(), "the run ended before its first checkpoint");
        assert!(started.elapsed().as_secs() < 600, "no checkpoint after 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");

    // Resumed, then killed again once training is over and its last checkpoint written, before
    // the export publishes: a failed export (a full disk) costs only the export, not the run.
    let meta = trained_models(reference.to_str().expect("utf-8"))[0].with_file_name("meta.json");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(meta).expect("meta")).expect("json");
    let steps = meta["values"]["steps"].as_u64().expect("steps");
    assert!(steps > 1, "the fixture trains {steps} step(s)");
    let mut child = cli_support::cptc(&killed_args)
        .env("CPTC_THREADS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cptc");
    let started = std::time::Instant::now();
    while checkpoint_at(&killed, steps).is_none() {
        assert!(child.try_wait().expect("poll").is_none(), "the run ended before its last checkpoint");
        assert!(started.elapsed().as_secs() < 600, "no last checkpoint after 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let output = child.wait_with_output().expect("reap");
    assert!(String::from_utf8_lossy(&output.stderr).contains("resuming at step 1"));

    let resumed = cptc(&args(&killed).iter().map(String::as_str).collect::<Vec<_>>());
    let (_, stderr) = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("resuming at step {steps}")), "{stderr}");
    let (a, b) = (trained_models(reference.to_str().expect("utf-8")), trained_models(killed.to_str().expect("utf-8")));
    assert_eq!((a.len(), b.len()), (1, 1));
    for file in ["model.safetensors", "config.json", "../evals.json"] {
        let (x, y) =
            (std::fs::read(a[0].join(file)).expect("reference"), std::fs::read(b[0].join(file)).expect("resumed"));
        assert!(x == y, "{file} differs between the resumed and the uninterrupted run");
    }
    let verify = cptc(&["cache", "verify", "--store", killed.to_str().expect("utf-8")]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify).1);
}
