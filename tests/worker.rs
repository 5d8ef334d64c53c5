//! The hand-off to `cptc-torch`: every train and eval stage of the shipped recipes crosses the
//! process boundary unchanged, and a worker that is missing, killed or silent fails its stage
//! with the right tier (the real worker's own runs are in `e2e`, `run_real`, `keys`, `tiers`).

mod cli_support;

use std::path::{Path, PathBuf};

use cptc::check::{RealWorld, check};
use cptc::graph::{Input, RealProbe, StageId, StageKind, StageParams, lower};
use cptc::stages::worker::{Event, PROTOCOL, Request, WireInput, WorkerParams};
use cptc::store::Meta;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn meta() -> Meta {
    let digest = cptc::graph::Digest::of_bytes(b"artifact");
    Meta {
        stage: "tokenize:web@base".into(),
        kind: "tokenize".into(),
        version: 1,
        key: digest,
        key_parts: cptc::store::KeyParts::default(),
        output: digest,
        files: vec![cptc::store::FileEntry { path: "train.bin".into(), size: 4, digest }],
        values: serde_json::json!({ "old_vocab": 49152 }),
        created: 1,
        elapsed_s: 0.5,
    }
}

#[test]
fn every_train_and_eval_stage_of_the_recipes_crosses_unchanged() {
    let point = StageId::new(StageKind::Train, "ratios[r=10%]");
    let every_role = vec![
        Input::Docs,
        Input::Split,
        Input::Tokenizer,
        Input::Base,
        Input::TrainOn("web".into()),
        Input::General("web".into()),
        Input::Model,
        Input::Vocab,
        Input::Corpus("poetry".into()),
        Input::Value,
        Input::Data,
        Input::Heldout("novels".into()),
        Input::Point(point.clone()),
        Input::DomainLaw,
        Input::GeneralLaw,
        Input::Reported(point),
    ];
    let mut crossed = 0;
    for recipe in ["edu", "dcpt", "longctx", "medical", "zh"] {
        let path = root().join(format!("recipes/{recipe}.cpt"));
        let recipe = match check(&path, &RealWorld) {
            Ok(r) => r,
            Err(f) => panic!("{}", cptc::diag::render(&f.errors, &f.sources, false, 100)),
        };
        let graph = lower(&recipe, &RealProbe);
        for ix in graph.order() {
            let stage = graph.stage(ix);
            let params = match &stage.params {
                StageParams::Train(p) => WorkerParams::Train(p.clone()),
                StageParams::Eval(p) => WorkerParams::Eval(p.clone()),
                _ => continue,
            };
            let request = Request {
                protocol: PROTOCOL,
                id: stage.id.clone(),
                params: params.clone(),
                files: stage.files.clone(),
                out: PathBuf::from("/store/tmp/out"),
                inputs: every_role
                    .iter()
                    .map(|role| WireInput { role: role.clone(), dir: PathBuf::from("/a"), meta: meta() })
                    .collect(),
                resume_dir: PathBuf::from("/store/resume"),
                checkpoint_every: Some(std::time::Duration::from_millis(1500)),
            };
            let wire = serde_json::to_string(&request).expect("encode");
            let back: Request = serde_json::from_str(&wire).expect("decode");
            assert_eq!(back.id, stage.id);
            assert_eq!(back.params, params, "{}", stage.id);
            assert_eq!(back.files, stage.files);
            assert!(back.inputs.iter().all(|i| i.meta == meta()));
            let roles: Vec<Input> = back.inputs.into_iter().map(|i| i.role).collect();
            assert_eq!(roles, every_role);
            assert_eq!(back.checkpoint_every, request.checkpoint_every);
            crossed += 1;
        }
    }
    assert!(crossed >= 10, "only {crossed} train/eval stages in the recipes");
}

#[test]
fn events_cross_unchanged() {
    let events = vec![
        Event::Message { text: "loss 3.1".into() },
        Event::Length { n: 8 },
        Event::Position { n: 3 },
        Event::Inc { n: 1 },
        Event::ResetEta,
        Event::Notice { text: "resuming at step 3".into() },
        Event::Done { output: serde_json::json!({ "steps": 8 }) },
        Event::Failed {
            tier: cptc::stages::Tier::Environment,
            code: Some("cptc::backend::torch".into()),
            message: "out of memory".into(),
            help: None,
        },
    ];
    for event in events {
        let line = serde_json::to_string(&event).expect("encode");
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Event>(&line).expect("decode"), event);
    }
}

/// A project whose run reaches the worker quickly: a tiny random-weight model, 50 documents.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root_dir = dir.path();
    let fixtures = root().join("tests/fixtures");
    std::fs::copy(fixtures.join("keys/recipe.cpt"), root_dir.join("recipe.cpt")).expect("copy recipe");
    std::fs::create_dir_all(root_dir.join("hf")).expect("mkdir");
    std::fs::copy(fixtures.join("exec/hf/config.json"), root_dir.join("hf/config.json")).expect("copy config");
    let tokenizer = root().join("data/tokenizers/gpt2/tokenizer.json");
    assert!(tokenizer.is_file(), "{} is missing: run `scripts/setup.sh` first", tokenizer.display());
    std::fs::copy(tokenizer, root_dir.join("hf/tokenizer.json")).expect("copy");
    let text = std::fs::read_to_string(root().join("data/corpora/hpo.jsonl")).expect("corpus");
    let head: String = text.lines().take(50).map(|l| format!("{l}\n")).collect();
    std::fs::write(root_dir.join("corpus.jsonl"), head).expect("write corpus");
    dir
}

/// `cptc run` with `worker` standing in for `cptc-torch`: exit code and stderr.
fn run_with_worker(dir: &Path, worker: &Path) -> (Option<i32>, String) {
    let out = cli_support::cptc(&["run", "recipe.cpt"])
        .current_dir(dir)
        .env("COLUMNS", "1000")
        .env("CPTC_TORCH", worker)
        .output()
        .expect("cptc run");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("worker.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn a_missing_worker_is_the_environment_and_names_the_path() {
    let dir = project();
    let (code, stderr) = run_with_worker(dir.path(), Path::new("/nonexistent/cptc-torch"));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("cannot start the libtorch worker `/nonexistent/cptc-torch`"), "{stderr}");
    assert!(stderr.contains("failed: eval:both"), "{stderr}");
    assert!(stderr.contains("not started: report"), "{stderr}");
}

#[test]
fn a_killed_worker_is_the_environment_and_publishes_nothing() {
    let dir = project();
    let worker = script(dir.path(), "kill -KILL $$");
    let (code, stderr) = run_with_worker(dir.path(), &worker);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("killed by signal 9 (out of memory?"), "{stderr}");
    let evals = dir.path().join(".cptc/v1/artifacts");
    let published: Vec<String> = std::fs::read_dir(&evals)
        .expect("artifacts")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("eval-") || n.starts_with("train-"))
        .collect();
    assert!(published.is_empty(), "published {published:?}");
}

#[test]
fn a_worker_ending_without_a_verdict_is_a_bug_and_its_output_is_shown() {
    let dir = project();
    let worker = script(dir.path(), "echo 'a line from libtorch'\nexit 0");
    let (code, stderr) = run_with_worker(dir.path(), &worker);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a line from libtorch"), "{stderr}");
    assert!(stderr.contains("without reporting the stage's result"), "{stderr}");
}

#[test]
fn a_worker_of_another_protocol_says_so() {
    let dir = project();
    let line = r#"{"event":"failed","tier":"internal","code":null,"message":"cptc sent protocol 1, this cptc-torch speaks 2","help":null}"#;
    let worker = script(dir.path(), &format!("cat > /dev/null\necho '{line}'"));
    let (code, stderr) = run_with_worker(dir.path(), &worker);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("this cptc-torch speaks 2"), "{stderr}");
}
