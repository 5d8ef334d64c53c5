//! The executor over a deterministic test runner: hits, misses, early cutoff, run-time values,
//! failures that leave nothing behind, store verification and the store lock.
//!
//! The runner here is a fake on purpose (it tests scheduling, not stages); `tests/run_real.rs`
//! drives the real stages through the `cptc` binary.

mod cli_support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cptc::check::{RealWorld, check};
use cptc::exec::{EventLog, Options, Runner, Summary, run};
use cptc::graph::{Digest, ModelInfo, Probe, RealProbe, Stage, StageKind, StageParams, lower};
use cptc::stages::{DeviceClass, StageCtx, StageFailure};
use cptc::store::{Store, StoreError};
use serde_json::{Value, json};

/// Writes a digest of (kind, params, input outputs, file contents); `choose` picks a ratio.
#[derive(Default)]
struct FakeRunner {
    ratio: f64,
    fail: Option<String>,
    /// A stage whose first external file another program appends to while the stage reads it.
    rewrite: Option<String>,
    /// A stage whose first external file another program writes again, with the same bytes,
    /// while the stage reads it (the stage may have read it half-written).
    rewrite_same: Option<String>,
    calls: Mutex<Vec<String>>,
}

impl Runner for FakeRunner {
    fn run(&self, stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
        let id = stage.id.to_string();
        self.calls.lock().map_err(|e| e.to_string())?.push(id.clone());
        if self.fail.as_deref() == Some(id.as_str()) {
            std::fs::write(ctx.out.join("partial.bin"), b"half")?;
            return Err(StageFailure::input("injected failure", None));
        }
        let inputs: Vec<String> = ctx.inputs.iter().map(|(role, _, meta)| format!("{role}={}", meta.output)).collect();
        // As every stage that reads its files: each one's digest first (a per-file stage's key
        // may be completed from them).
        for i in 0..ctx.files.len() {
            ctx.file_digest(i)?;
        }
        let files: Vec<String> = stage
            .files
            .iter()
            .map(|f| std::fs::read(f).map(|b| Digest::of_bytes(&b).hex()).unwrap_or_default())
            .collect();
        if self.rewrite.as_deref() == Some(id.as_str()) {
            let mut file = std::fs::OpenOptions::new().append(true).open(&stage.files[0])?;
            std::io::Write::write_all(&mut file, b"{\"text\": \"written meanwhile\"}\n")?;
        }
        if self.rewrite_same.as_deref() == Some(id.as_str()) {
            std::fs::write(&stage.files[0], std::fs::read(&stage.files[0])?)?;
        }
        let record = json!({ "kind": stage.kind(), "params": params.to_json(), "inputs": inputs, "files": files });
        std::fs::write(ctx.out.join("out.json"), record.to_string())?;
        Ok(if stage.kind() == StageKind::Choose { json!({ "ratio": self.ratio }) } else { Value::Null })
    }
}

/// A machine whose device class the test chooses; files as they are.
struct Machine(DeviceClass);

impl Probe for Machine {
    fn device(&self) -> DeviceClass {
        self.0
    }

    fn model_info(&self, source: &cptc::recipe::ModelSource) -> ModelInfo {
        RealProbe.model_info(source)
    }

    fn file_size(&self, path: &Path) -> u64 {
        RealProbe.file_size(path)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec");
        for name in ["recipe.cpt", "web.jsonl", "law.jsonl"] {
            std::fs::copy(src.join(name), root.join(name)).expect("copy");
        }
        std::fs::create_dir_all(root.join("hf")).expect("mkdir");
        std::fs::copy(src.join("hf/config.json"), root.join("hf/config.json")).expect("copy");
        Fixture { _dir: dir, root }
    }

    fn run(&self, runner: &dyn Runner, options: &Options) -> Result<Summary, cptc::exec::ExecError> {
        self.run_on(runner, options, DeviceClass::Cpu)
    }

    /// Runs as on a machine whose training device is `device`.
    fn run_on(
        &self,
        runner: &dyn Runner,
        options: &Options,
        device: DeviceClass,
    ) -> Result<Summary, cptc::exec::ExecError> {
        let recipe = match check(&self.root.join("recipe.cpt"), &RealWorld) {
            Ok(r) => r,
            Err(f) => panic!("{}", cptc::diag::render(&f.errors, &f.sources, false, 100)),
        };
        let graph = lower(&recipe, &Machine(device));
        let mut store = Store::open(&self.root.join(".cptc")).expect("store");
        store.lock().expect("lock");
        run(&graph, &store, runner, options, &EventLog::none(), false)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.root.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{from} not in {file}");
        std::fs::write(&path, text.replace(from, to)).expect("write");
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn unchanged_rerun_executes_nothing() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    let first = fx.run(&runner, &Options::default()).expect("first run");
    assert_eq!(first.ran.len(), 20, "{:?}", first.ran);
    assert!(first.cached.is_empty());
    let second = fx.run(&runner, &Options::default()).expect("second run");
    assert!(second.ran.is_empty(), "reran {:?}", second.ran);
    assert_eq!(second.cached.len(), first.ran.len());
}

#[test]
fn a_changed_stage_reruns_with_its_dependents_only() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    fx.run(&runner, &Options::default()).expect("first run");
    // Only the final run's budget changes: its mix and train, then the eval and the report.
    fx.edit(
        "recipe.cpt",
        "train final extends probe {\n  domain_share = best.ratio\n}",
        "train final extends probe {\n  domain_share = best.ratio\n  tokens = 128k tokens\n}",
    );
    let second = fx.run(&runner, &Options::default()).expect("second run");
    assert_eq!(sorted(second.ran), ["eval:after", "mix:final", "report", "train:final"]);
}

#[test]
fn a_changed_input_file_reruns_what_reads_it() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    fx.run(&runner, &Options::default()).expect("first run");
    fx.edit("law.jsonl", "legal text", "new legal text");
    let second = fx.run(&runner, &Options::default()).expect("second run");
    assert!(second.ran.contains(&"ingest:law".to_string()));
    assert!(!second.ran.contains(&"ingest:web".to_string()));
    assert!(!second.ran.iter().any(|s| s.starts_with("model:")));
}

#[test]
fn byte_identical_output_stops_invalidation() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    fx.run(&runner, &Options::default()).expect("first run");
    let options = Options { force: vec!["ingest:law".to_string()], ..Default::default() };
    let second = fx.run(&runner, &options).expect("forced run");
    assert_eq!(second.ran, ["ingest:law"], "downstream of an identical output reran");
}

#[test]
fn from_reruns_the_stage_and_everything_downstream() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    fx.run(&runner, &Options::default()).expect("first run");
    let options = Options { from: vec!["choose:best".to_string()], ..Default::default() };
    let second = fx.run(&runner, &options).expect("run --from");
    assert_eq!(sorted(second.ran), ["choose:best", "eval:after", "mix:final", "report", "train:final"]);
}

#[test]
fn only_runs_a_stage_and_what_it_needs() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    let options = Options { only: vec!["split:law".to_string()], ..Default::default() };
    let summary = fx.run(&runner, &options).expect("run --only");
    assert_eq!(sorted(summary.ran), ["ingest:law", "split:law"]);
}

#[test]
fn chosen_values_flow_into_downstream_keys() {
    let fx = Fixture::new();
    let first = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("first run");
    let mix = first.artifacts.get("mix:final").expect("mix:final ran");
    let out = std::fs::read_to_string(mix.join("out.json")).expect("mix output");
    assert!(out.contains("\"domain_share\":0.3"), "{out}");
    // The choice changes: only the choose stage's consumers rerun.
    let options = Options { force: vec!["choose:best".to_string()], ..Default::default() };
    let second = fx.run(&FakeRunner { ratio: 0.6, ..Default::default() }, &options).expect("second run");
    assert_eq!(sorted(second.ran), ["choose:best", "eval:after", "mix:final", "report", "train:final"]);
}

#[test]
fn a_failed_stage_leaves_nothing_that_looks_valid() {
    let fx = Fixture::new();
    let failing = FakeRunner { ratio: 0.3, fail: Some("split:law".to_string()), ..Default::default() };
    let failed = fx.run(&failing, &Options::default()).expect("a run with a failure");
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].stage, "split:law");
    assert!(failed.failed[0].to_string().contains("injected failure"), "{}", failed.failed[0]);
    assert_eq!(failed.exit_code(), 1, "bad input exits 1");
    let store = Store::at(&fx.root.join(".cptc"));
    assert!(store.verify().is_empty());
    assert!(store.list().iter().all(|(_, m)| m.as_ref().is_some_and(|m| m.stage != "split:law")));
    // The next run retries it (failures are never cached) and finishes.
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    let summary = fx.run(&runner, &Options::default()).expect("retry");
    assert!(summary.ran.contains(&"split:law".to_string()));
    let tmp = std::fs::read_dir(store.root().join("tmp")).expect("tmp").count();
    assert_eq!(tmp, 0, "staging folders left behind");
}

#[test]
fn a_file_rewritten_while_read_fails_its_stage_and_publishes_nothing() {
    let fx = Fixture::new();
    let racing = FakeRunner { ratio: 0.3, rewrite: Some("ingest:web".to_string()), ..Default::default() };
    let failed = fx.run(&racing, &Options::default()).expect("a run with a failure");
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].stage, "ingest:web");
    assert_eq!(failed.failed[0].code_text().as_deref(), Some("cptc::exec::input_changed"));
    assert!(failed.failed[0].to_string().contains("web.jsonl changed while the stage read it"), "{}", failed.failed[0]);
    let store = Store::at(&fx.root.join(".cptc"));
    assert!(store.list().iter().all(|(_, m)| m.as_ref().is_some_and(|m| m.stage != "ingest:web")));
    // Once the file is left alone, the stage runs on what the file now holds.
    let summary = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("rerun");
    let ingest = summary.artifacts.get("ingest:web").expect("ingest:web");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(ingest.join("out.json")).expect("out")).expect("json");
    let now = Digest::of_bytes(&std::fs::read(fx.root.join("web.jsonl")).expect("read")).hex();
    assert_eq!(record["files"], json!([now]));
}

#[test]
fn a_file_written_again_with_its_own_bytes_while_read_fails_its_stage_too() {
    let fx = Fixture::new();
    // Left alone for an hour: the rewrite moves its modification time.
    let web = std::fs::File::options().write(true).open(fx.root.join("web.jsonl")).expect("open");
    web.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).expect("backdate");
    let racing = FakeRunner { ratio: 0.3, rewrite_same: Some("ingest:web".to_string()), ..Default::default() };
    let failed = fx.run(&racing, &Options::default()).expect("a run with a failure");
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].stage, "ingest:web");
    assert_eq!(failed.failed[0].code_text().as_deref(), Some("cptc::exec::input_changed"));
    let store = Store::at(&fx.root.join(".cptc"));
    assert!(store.list().iter().all(|(_, m)| m.as_ref().is_some_and(|m| m.stage != "ingest:web")));
    let summary = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("rerun");
    assert!(summary.failed.is_empty() && summary.ran.contains(&"ingest:web".to_string()), "{summary:?}");
}

#[test]
fn an_input_left_alone_is_vouched_for_by_its_stat_and_an_edit_is_still_caught() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    let first = fx.run(&runner, &Options::default()).expect("run");
    let split = first.artifacts.get("split:web").expect("split:web").clone();
    let consumer = first.ran.iter().find(|id| id.starts_with("mix:")).expect("a mix").clone();
    let forced = Options { force: vec![consumer.clone()], ..Default::default() };
    let out = std::fs::canonicalize(split.join("out.json")).expect("canonical path");
    let digests = fx.root.join(".cptc/v1/digests.json");
    let remembered = || std::fs::read_to_string(&digests).unwrap_or_default().contains(&*out.to_string_lossy());
    // Its digests were taken as it was published: its consumers in that run did not read it.
    assert!(!remembered(), "the split was read again in the run that built it");
    // Read by the next command once it has settled, then vouched for by its stat.
    std::thread::sleep(cptc::store::digests::SETTLE + std::time::Duration::from_millis(200));
    let again = fx.run(&runner, &forced).expect("forced rerun");
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(remembered(), "the split's files are not remembered by their stat");
    // The same size and the modification time set back: the change time, which no program can
    // set back, still gives the edit away.
    let modified = std::fs::metadata(&out).and_then(|m| m.modified()).expect("mtime");
    let size = std::fs::metadata(&out).expect("stat").len() as usize;
    std::fs::write(&out, vec![b'x'; size]).expect("tamper");
    std::fs::File::options().write(true).open(&out).and_then(|f| f.set_modified(modified)).expect("set back");
    let failed = fx.run(&runner, &forced).expect("a run with a failure");
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].stage, consumer);
    assert_eq!(failed.failed[0].code_text().as_deref(), Some("cptc::store::corrupt"));
}

#[test]
fn a_corrupted_input_fails_its_consumer_and_verify_fix_removes_what_was_built_from_it() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    let first = fx.run(&runner, &Options::default()).expect("run");
    let split = first.artifacts.get("split:web").expect("split:web").clone();
    // Every mix reads every split (what it holds out is trained on nowhere).
    let consumer = first.ran.iter().find(|id| id.starts_with("mix:")).expect("a mix").clone();
    std::fs::write(split.join("out.json"), "bit rot").expect("tamper");
    // A forced rerun of its consumer reads it: it fails, naming the artifact, and publishes nothing.
    let forced = Options { force: vec![consumer.clone()], ..Default::default() };
    let failed = fx.run(&runner, &forced).expect("a run with a failure");
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].stage, consumer);
    assert_eq!(failed.failed[0].code_text().as_deref(), Some("cptc::store::corrupt"));
    assert!(failed.failed[0].to_string().contains(&split.display().to_string()), "{}", failed.failed[0]);
    assert_eq!(failed.exit_code(), 3, "a corrupted store is the environment");
    // `verify --fix` removes it and everything built from it (the rebuilt split would have the
    // same digest, so their keys would still match).
    let store_dir = fx.root.join(".cptc");
    let out = cli_support::cptc(&["cache", "verify", "--fix", "--store", store_dir.to_str().expect("utf-8")])
        .output()
        .expect("cptc cache verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("removed {}\n", split.display())), "{stderr}");
    assert!(stderr.contains("(built from a corrupt artifact)"), "{stderr}");
    let again = fx.run(&runner, &Options::default()).expect("rerun");
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(again.ran.contains(&"split:web".to_string()) && again.ran.contains(&consumer), "{:?}", again.ran);
    assert!(!again.ran.iter().any(|id| id.contains("law")), "only what came from web reruns: {:?}", again.ran);
    assert!(Store::at(&store_dir).verify().is_empty());
}

#[test]
fn verify_finds_a_tampered_artifact() {
    let fx = Fixture::new();
    let summary = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("run");
    let split = summary.artifacts.get("split:web").expect("split:web");
    std::fs::write(split.join("out.json"), "tampered").expect("tamper");
    let problems = Store::at(&fx.root.join(".cptc")).verify();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].to_string().contains("out.json"), "{}", problems[0]);
}

#[test]
fn the_store_admits_one_run_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = Store::open(dir.path()).expect("open");
    first.lock().expect("first lock");
    let mut second = Store::open(dir.path()).expect("open again");
    assert!(matches!(second.lock(), Err(StoreError::Locked { .. })));
    drop(first);
    second.lock().expect("free after the first is gone");
}

#[test]
fn store_layout_is_versioned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.root(), dir.path().join(cptc::store::LAYOUT));
    assert_eq!(cptc::store::LAYOUT, "v1");
}

#[test]
fn a_damaged_artifact_is_rebuilt_in_place() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    let summary = fx.run(&runner, &Options::default()).expect("run");
    // A deletion cut short (or a damaged disk) left the folder without its meta.json.
    let split = summary.artifacts.get("split:web").expect("split:web").clone();
    std::fs::remove_file(split.join("meta.json")).expect("damage");
    let again = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("rerun");
    assert_eq!(again.ran, ["split:web"], "only the damaged stage reruns (its output is unchanged)");
    assert!(split.join("meta.json").is_file(), "the new artifact is published where the damaged one was");
    assert!(Store::at(&fx.root.join(".cptc")).verify().is_empty());
}

#[test]
fn gc_keeps_what_waits_for_a_missing_upstream_artifact() {
    let fx = Fixture::new();
    let summary = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("run");
    let store_dir = fx.root.join(".cptc");
    let store = Store::at(&store_dir);
    let before = store.list().len();
    // As `cache verify --fix` does with a corrupt artifact: everything below it keeps its key
    // only once it is rebuilt, and may well be hit again then (early cutoff).
    store.remove(summary.artifacts.get("ingest:web").expect("ingest:web")).expect("remove");
    // Checkpoints of a key no stage of the recipe has any more go too.
    let stale = store.root().join("resume").join(format!("train-v2-{}", "0".repeat(64)));
    std::fs::create_dir_all(stale.join("checkpoints")).expect("mkdir");
    let gc = cli_support::cptc(&["cache", "gc", "recipe.cpt", "--store", ".cptc"])
        .current_dir(&fx.root)
        .output()
        .expect("cptc cache gc");
    assert_eq!(gc.status.code(), Some(0), "{}", String::from_utf8_lossy(&gc.stderr));
    assert_eq!(store.list().len(), before - 1, "{}", String::from_utf8_lossy(&gc.stderr));
    assert!(!stale.exists(), "stale checkpoints are removed");
    let rerun = fx.run(&FakeRunner { ratio: 0.3, ..Default::default() }, &Options::default()).expect("rerun");
    assert_eq!(rerun.ran, ["ingest:web"], "everything downstream is found again");
}

#[test]
fn precision_and_device_are_part_of_training_and_evaluation_keys() {
    let fx = Fixture::new();
    let runner = FakeRunner { ratio: 0.3, ..Default::default() };
    fx.run(&runner, &Options::default()).expect("first run");
    // The same recipe on a GPU machine: its models are not the CPU's, nothing downstream of
    // data preparation is shared.
    let gpu = fx.run_on(&runner, &Options::default(), DeviceClass::Cuda).expect("as on a GPU");
    assert!(gpu.ran.iter().any(|s| s.starts_with("train:")), "{:?}", gpu.ran);
    assert!(gpu.ran.contains(&"eval:after".to_string()), "{:?}", gpu.ran);
    // Data preparation is shared (mix:final reruns only because the law it reads changed).
    let prep = |s: &String| ["ingest:", "split:", "tokenize:", "mix:ratios"].iter().any(|p| s.starts_with(p));
    assert!(!gpu.ran.iter().any(prep), "{:?}", gpu.ran);
    // Back on the CPU, asking for bf16 explicitly reruns every train stage, and nothing upstream.
    fx.edit("recipe.cpt", "  lr = cosine_rewarm\n}", "  lr = cosine_rewarm\n  precision = bf16\n}");
    let bf16 = fx.run(&runner, &Options::default()).expect("bf16 run");
    let trains = bf16.ran.iter().filter(|s| s.starts_with("train:")).count();
    assert_eq!(trains, 4, "three sweep points and the final run: {:?}", bf16.ran);
    assert!(!bf16.ran.iter().any(prep), "{:?}", bf16.ran);
}

/// Records when each stage ran; exclusive stages take 300 ms, others 30 ms.
struct TimingRunner {
    inner: FakeRunner,
    /// (exclusive, start, end) per stage.
    spans: Mutex<Vec<(bool, std::time::Instant, std::time::Instant)>>,
}

impl Runner for TimingRunner {
    fn run(&self, stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
        let exclusive = stage.kind().exclusive();
        let start = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(if exclusive { 300 } else { 30 }));
        let out = self.inner.run(stage, params, ctx);
        self.spans.lock().map_err(|e| e.to_string())?.push((exclusive, start, std::time::Instant::now()));
        out
    }
}

#[test]
fn a_cpu_stage_runs_while_an_exclusive_stage_runs() {
    let fx = Fixture::new();
    let runner = TimingRunner { inner: FakeRunner { ratio: 0.3, ..Default::default() }, spans: Default::default() };
    let summary = fx.run(&runner, &Options::default()).expect("run");
    assert!(summary.failed.is_empty());
    let spans = runner.spans.lock().expect("spans").clone();
    let overlaps = |a: &(bool, std::time::Instant, std::time::Instant),
                    b: &(bool, std::time::Instant, std::time::Instant)| { a.1 < b.2 && b.1 < a.2 };
    // A wave scheduler runs a wave's exclusive stages only after its CPU stages: never both.
    let side_by_side = spans.iter().filter(|s| s.0).any(|x| spans.iter().filter(|s| !s.0).any(|c| overlaps(x, c)));
    assert!(side_by_side, "no CPU stage (a sweep point's mix) ran while a train stage ran");
    // One exclusive stage at a time.
    let exclusive: Vec<_> = spans.iter().filter(|s| s.0).collect();
    for (i, a) in exclusive.iter().enumerate() {
        assert!(!exclusive[i + 1..].iter().any(|b| overlaps(a, b)), "two exclusive stages ran at once");
    }
}

#[test]
fn after_a_failure_nothing_new_starts_and_the_summary_says_what_did_not() {
    let fx = Fixture::new();
    let failing = FakeRunner { ratio: 0.3, fail: Some("ingest:law".to_string()), ..Default::default() };
    let summary = fx.run(&failing, &Options::default()).expect("run");
    assert_eq!(summary.failed.iter().map(|f| f.stage.as_str()).collect::<Vec<_>>(), ["ingest:law"]);
    for stage in ["split:law", "train:final", "report"] {
        assert!(summary.not_started.contains(&stage.to_string()), "{stage} not in {:?}", summary.not_started);
    }
    assert!(
        !summary.ran.iter().any(|s| s.starts_with("train:")),
        "a stage started after the failure: {:?}",
        summary.ran
    );
    let everything = summary.ran.len() + summary.cached.len() + summary.failed.len() + summary.not_started.len();
    assert_eq!(everything, 20, "every stage is accounted for");
}

#[test]
fn keep_going_runs_the_branches_a_failure_does_not_reach() {
    let fx = Fixture::new();
    let failing = FakeRunner { ratio: 0.3, fail: Some("ingest:law".to_string()), ..Default::default() };
    let options = Options { keep_going: true, ..Default::default() };
    let summary = fx.run(&failing, &options).expect("run");
    assert_eq!(summary.failed.len(), 1);
    for stage in ["ingest:web", "split:web", "tokenize:web@base"] {
        assert!(summary.ran.contains(&stage.to_string()), "{stage} did not run: {:?}", summary.ran);
    }
    assert!(summary.not_started.contains(&"split:law".to_string()), "{:?}", summary.not_started);
}
