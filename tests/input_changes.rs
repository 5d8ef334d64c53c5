//! A source file rewritten while the real data stages read it: nothing built from it is cached,
//! not the stage's artifact and not the file's per-file parts, even when the file ends up with
//! the very bytes its key names (a half-read file would otherwise be served under the whole
//! file's key, by every later run).

use std::path::Path;
use std::time::{Duration, SystemTime};

use cptc::check::{RealWorld, check};
use cptc::exec::{EventLog, Options, RealRunner, Runner, Status, Summary, plan, run};
use cptc::graph::{RealProbe, Stage, StageParams, lower};
use cptc::stages::{StageCtx, StageFailure};
use cptc::store::{FileDigests, Store};

fn material(rel: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    path
}

/// The real stages; once `stage` has its files' digests and stamps (taken for its key, or by
/// the stage just before it reads a file not seen before), `file` is written again with the
/// same bytes, as a data-preparation script rewriting it would.
struct Rewriting<'a> {
    stage: &'a str,
    file: &'a Path,
}

impl Runner for Rewriting<'_> {
    fn run(&self, stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<serde_json::Value, StageFailure> {
        if stage.id.to_string() == self.stage {
            for i in 0..ctx.files.len() {
                ctx.file_digest(i)?;
            }
            let bytes = std::fs::read(self.file)?;
            std::fs::write(self.file, bytes)?;
        }
        RealRunner.run(stage, params, ctx)
    }
}

/// The real stages, noting for each corpus stage which of its files' digests it got known.
struct Noting<'a> {
    known: &'a std::sync::Mutex<Vec<(String, Vec<bool>)>>,
}

impl Runner for Noting<'_> {
    fn run(&self, stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<serde_json::Value, StageFailure> {
        if !ctx.files.is_empty() && ctx.files.iter().all(|f| f.extension().is_some_and(|e| e == "jsonl")) {
            let known = (0..ctx.files.len()).map(|i| ctx.digests.known(i).is_some()).collect();
            self.known.lock().expect("lock").push((stage.id.to_string(), known));
        }
        RealRunner.run(stage, params, ctx)
    }
}

fn run_with(root: &Path, runner: &dyn Runner) -> Summary {
    let (graph, store) = open(root);
    let options = Options { only: vec!["tokenize:c@base".into(), "ingest:c".into()], ..Default::default() };
    run(&graph, &store, runner, &options, &EventLog::none(), false).expect("run")
}

fn open(root: &Path) -> (cptc::graph::Graph, Store) {
    let recipe = match check(&root.join("recipe.cpt"), &RealWorld) {
        Ok(r) => r,
        Err(f) => panic!("{}", cptc::diag::render(&f.errors, &f.sources, false, 100)),
    };
    let graph = lower(&recipe, &RealProbe);
    let mut store = Store::open(&root.join(".cptc")).expect("store");
    store.lock().expect("lock");
    (graph, store)
}

fn parts(root: &Path, space: &str) -> usize {
    std::fs::read_dir(root.join(".cptc/v1/parts").join(space)).map_or(0, |d| d.filter_map(Result::ok).count())
}

/// A recipe over two files of a real corpus, left alone for an hour (a rewrite now moves
/// their times), and GPT-2's tokenizer.
fn setup(root: &Path) {
    std::fs::write(
        root.join("recipe.cpt"),
        "model base {\n  hf = \"hf\"\n}\ncorpus c {\n  files = \"corpus/*.jsonl\"\n  heldout = 10%\n}\neval all {\n  model = base\n  sets = [c]\n}\n",
    )
    .expect("recipe");
    std::fs::create_dir_all(root.join("hf")).expect("mkdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("exec/hf/config.json"), root.join("hf/config.json")).expect("config");
    std::fs::copy(material("data/tokenizers/gpt2/tokenizer.json"), root.join("hf/tokenizer.json")).expect("tokenizer");
    // Two files of a real corpus, left alone for an hour (a rewrite now moves their times).
    std::fs::create_dir_all(root.join("corpus")).expect("mkdir");
    let text = std::fs::read_to_string(material("data/corpora/hpo.jsonl")).expect("corpus");
    let lines: Vec<&str> = text.lines().take(400).collect();
    for (name, half) in [("a.jsonl", &lines[..200]), ("b.jsonl", &lines[200..])] {
        let path = root.join("corpus").join(name);
        std::fs::write(&path, half.join("\n") + "\n").expect("write");
        let file = std::fs::File::options().write(true).open(&path).expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(3600)).expect("backdate");
    }
}

#[test]
fn a_file_rewritten_with_its_own_bytes_while_tokenized_leaves_no_part_of_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    setup(root);

    let b = root.join("corpus/b.jsonl");
    let failed = run_with(root, &Rewriting { stage: "tokenize:c@base", file: &b });
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].code_text().as_deref(), Some("cptc::exec::input_changed"));
    assert!(failed.failed[0].to_string().contains("b.jsonl changed while the stage read it"), "{}", failed.failed[0]);
    // a.jsonl was left alone: its parts are kept; b.jsonl's are not, though its bytes are the same.
    assert_eq!((parts(root, "tokenize"), parts(root, "ingest")), (1, 1));

    // Left alone, the file is read again (its content, and so its key, unchanged): whole.
    let rerun = run_with(root, &RealRunner);
    assert!(rerun.failed.is_empty(), "{:?}", rerun.failed);
    assert_eq!((parts(root, "tokenize"), parts(root, "ingest")), (2, 2));
    let ingest = rerun.artifacts.get("ingest:c").expect("ingest:c");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ingest.join("report.json")).expect("report")).expect("json");
    assert_eq!(report["documents"], 400);
}

#[test]
fn a_corpus_not_seen_before_is_hashed_by_its_stage_under_the_key_a_preview_gives_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    setup(root);
    let known = std::sync::Mutex::new(Vec::new());
    let first = run_with(root, &Noting { known: &known });
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert!(first.ran.contains(&"tokenize:c@base".to_string()), "{:?}", first.ran);
    // The tokenize stage, the files' first reader, got them unhashed: it hashed each itself,
    // right before reading it; the ingest stage after it found them hashed.
    assert_eq!(
        *known.lock().expect("lock"),
        [("tokenize:c@base".to_string(), vec![false, false]), ("ingest:c".to_string(), vec![true, true])]
    );

    // A preview hashes every file before making any key: it finds each stage the run
    // published, so the keys the stages completed as they read are the keys.
    let (graph, store) = open(root);
    let options = Options { only: vec!["tokenize:c@base".into(), "ingest:c".into()], ..Default::default() };
    let planned = plan(&graph, &store, &FileDigests::in_memory(), &options).expect("plan");
    let not_cached: Vec<String> = planned
        .iter()
        .filter(|(_, status)| !matches!(status, Status::Cached(_)))
        .map(|(ix, _)| graph.stage(*ix).id.to_string())
        .collect();
    assert!(not_cached.is_empty(), "not cached: {not_cached:?}");
    drop(store);

    // The same bytes under new times (a corpus copied again): the stage hashes them, finds
    // its artifact and every part, and builds nothing.
    for name in ["a.jsonl", "b.jsonl"] {
        let file = std::fs::File::options().write(true).open(root.join("corpus").join(name)).expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(1800)).expect("set mtime");
    }
    let again = run_with(root, &RealRunner);
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(again.ran.is_empty(), "ran: {:?}", again.ran);
    assert!(again.cached.contains(&"tokenize:c@base".to_string()), "{:?}", again.cached);
    assert_eq!((parts(root, "tokenize"), parts(root, "ingest")), (2, 2));
}
