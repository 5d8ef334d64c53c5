//! `cptc run` end to end with the real stages, on the real SmolLM2 GGUF: a run publishes its
//! artifacts, an unchanged rerun executes nothing, and runs killed with SIGKILL at random
//! moments never leave a corrupt store; the resumed run ends with the same artifacts as an
//! uninterrupted one.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Instant;

mod cli_support;

use cli_support::cptc;

fn output(args: &[&str]) -> Output {
    cptc(args).output().expect("run cptc")
}

fn gguf_present() -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    true
}

/// (stage, output digest) of every artifact in a store, sorted.
fn artifacts(store: &Path) -> Vec<(String, String)> {
    let out = output(&["cache", "ls", "--store", store.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0));
    let root = store.join("v1/artifacts");
    let mut found = Vec::new();
    // A run killed before it created the store leaves none: an empty store.
    let Ok(kinds) = std::fs::read_dir(root) else { return found };
    for kind in kinds.filter_map(Result::ok) {
        for dir in std::fs::read_dir(kind.path()).expect("kind").filter_map(Result::ok) {
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.path().join("meta.json")).expect("meta"))
                    .expect("json");
            found.push((
                meta["stage"].as_str().unwrap_or("").to_string(),
                meta["output"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    found.sort();
    found
}

fn run_args(store: &Path) -> Vec<String> {
    ["run", "recipes/edu.cpt", "--only", "import:smol", "--store", store.to_str().expect("utf-8")]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
}

#[test]
fn real_import_runs_then_is_cached() {
    assert!(gguf_present());
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    let args = run_args(&store);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = output(&args);
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("ran 1 stages"));
    let second = output(&args);
    assert_eq!(second.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("nothing to run"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let verify = output(&["cache", "verify", "--store", store.to_str().expect("utf-8")]);
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stderr));
    let plan = output(&["plan", "recipes/edu.cpt", "--store", store.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.lines().any(|l| l.contains("import:smol") && l.contains("cached")), "{text}");
    let model: PathBuf = artifacts(&store).iter().map(|(s, _)| s.clone()).take(1).collect();
    assert_eq!(model, PathBuf::from("import:smol"));
}

#[test]
fn sigkill_at_random_moments_never_corrupts_the_store() {
    assert!(gguf_present());
    let dir = tempfile::tempdir().expect("temp dir");
    // The reference: one uninterrupted run.
    let reference = dir.path().join("reference");
    let args = run_args(&reference);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    assert_eq!(output(&args).status.code(), Some(0));
    let full = started.elapsed();
    let expected = artifacts(&reference);

    let store = dir.path().join("killed");
    let args = run_args(&store);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A fixed LCG: random-looking moments, the same on every run of the test.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    let mut attempts = 0;
    // Load on the machine changes how long a run takes: try until 12 runs died mid-stage.
    while kills < 12 && attempts < 36 {
        attempts += 1;
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let fraction = (state >> 33) as f64 / (1u64 << 31) as f64;
        let delay = full.mul_f64(fraction * if attempts > 12 { 0.5 } else { 0.9 });
        let mut child = cptc(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(delay);
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        let verify = output(&["cache", "verify", "--store", store.to_str().expect("utf-8")]);
        assert_eq!(
            verify.status.code(),
            Some(0),
            "corrupt after a kill at {delay:?}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        // Whatever is published is complete: it matches the reference.
        for artifact in artifacts(&store) {
            assert!(expected.contains(&artifact), "{artifact:?} differs from the uninterrupted run");
        }
        // Start over, so every attempt kills a run mid-stage.
        let _ = std::fs::remove_dir_all(&store);
    }
    assert_eq!(kills, 12, "only {kills} runs were still running when killed, in {attempts} attempts");
    // A killed run, then a resumed one: the same artifacts as the uninterrupted run.
    let mut child = cptc(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    std::thread::sleep(full.mul_f64(0.5));
    let _ = child.kill();
    let _ = child.wait();
    let resumed = output(&args);
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(artifacts(&store), expected);
}

#[test]
fn a_hugging_face_folder_becomes_a_portable_artifact() {
    // The same model folder in two checkouts: one artifact content, nothing of either path in it.
    // The second holds it as the Hugging Face cache does: relative symlinks into `blobs/`.
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec");
    let mut outputs = Vec::new();
    for checkout in ["a", "deeper/b"] {
        let root = dir.path().join(checkout);
        std::fs::create_dir_all(root.join("hf")).expect("mkdir");
        for name in ["recipe.cpt", "web.jsonl", "law.jsonl"] {
            std::fs::copy(src.join(name), root.join(name)).expect("copy");
        }
        if checkout == "a" {
            std::fs::copy(src.join("hf/config.json"), root.join("hf/config.json")).expect("copy");
        } else {
            std::fs::create_dir_all(root.join("blobs")).expect("mkdir");
            std::fs::copy(src.join("hf/config.json"), root.join("blobs/5f3a")).expect("copy");
            std::os::unix::fs::symlink("../blobs/5f3a", root.join("hf/config.json")).expect("symlink");
        }
        let store = root.join("store");
        let store = store.to_str().expect("utf-8");
        let out = cptc(&["run", "recipe.cpt", "--only", "model:base", "--store", store])
            .current_dir(&root)
            .output()
            .expect("run cptc");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let found = artifacts(Path::new(store));
        assert_eq!(found.len(), 1, "{found:?}");
        outputs.push(found[0].1.clone());
        let artifact = std::fs::read_dir(root.join("store/v1/artifacts"))
            .expect("kinds")
            .filter_map(Result::ok)
            .flat_map(|k| std::fs::read_dir(k.path()).expect("kind").filter_map(Result::ok))
            .next()
            .expect("the artifact")
            .path();
        assert!(artifact.join("model/config.json").is_file(), "{}", artifact.display());
        assert!(!artifact.join("source.json").exists(), "no path of the checkout is recorded");
    }
    assert_eq!(outputs[0], outputs[1], "the output does not depend on where the checkout is");
}
