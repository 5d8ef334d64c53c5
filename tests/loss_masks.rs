//! Loss masks (`loss_on = [answer]`) on the real path: question-answer records of the
//! ontology (`hpo_qa`, built by the setup), GPT-2's real tokenizer, a tiny random Llama. The
//! tokenized shards hold exactly the prompt-then-answer ids and masks an independent Python
//! encoding gives; held-out windows count the answers only; the mix carries each document's
//! mask into its sequences; the SFT run's evaluations count the same targets.

mod cli_support;
mod py_support;

use std::path::{Path, PathBuf};

use cptc::backend::heldout::{IGNORE_INDEX, heldout_windows};
use cptc::data::shard::ShardReader;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Records of the instruction set in the project.
const RECORDS: usize = 200;

/// The fixture recipe, a tiny random Llama with GPT-2's tokenizer, the first records of `hpo_qa`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::copy(repo().join("tests/fixtures/masks/recipe.cpt"), root.join("recipe.cpt")).expect("recipe");
    let hf = root.join("hf");
    py_support::call("fsdp_ref", &["make", "llama", hf.to_str().expect("utf-8"), "7"]);
    std::fs::copy(repo().join("data/tokenizers/gpt2/tokenizer.json"), hf.join("tokenizer.json")).expect("tokenizer");
    for (corpus, file) in [("qa", "hpo_qa"), ("defs", "hpo")] {
        let text =
            std::fs::read_to_string(repo().join(format!("data/corpora/{file}.jsonl"))).expect("scripts/setup.sh");
        let head: String = text.lines().take(RECORDS).map(|l| format!("{l}\n")).collect();
        std::fs::write(root.join(format!("{corpus}.jsonl")), head).expect("write corpus");
    }
    dir
}

/// `cptc ARGS` in `root`, which must succeed; its stdout.
fn cptc(root: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = cli_support::run_in(root, args);
    assert_eq!(code, 0, "cptc {args:?} failed:\n{stderr}");
    stdout
}

/// The artifact folder of `stage`, from the plan's keys.
fn artifact(root: &Path, stage: &str) -> PathBuf {
    cli_support::artifact(root, "recipe.cpt", stage)
}

/// One record as the reference encodes it.
struct Reference {
    ids: Vec<u32>,
    mask: Vec<u8>,
    answer_bytes: u64,
}

fn reference(root: &Path) -> Vec<Reference> {
    let tokenizer = root.join("hf/tokenizer.json");
    let eos = "50256"; // GPT-2's <|endoftext|>
    let got = py_support::call(
        "sft_ref",
        &["encode", tokenizer.to_str().unwrap(), root.join("qa.jsonl").to_str().unwrap(), &RECORDS.to_string(), eos],
    );
    got.as_array()
        .expect("records")
        .iter()
        .map(|r| Reference {
            ids: r["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect(),
            mask: r["mask"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect(),
            answer_bytes: r["answer_bytes"].as_u64().unwrap(),
        })
        .collect()
}

#[test]
fn answers_are_the_only_targets_from_tokenization_to_training() {
    let dir = project();
    let root = dir.path();
    let expected = reference(root);
    cptc(root, &["run", "recipe.cpt"]);

    // Tokenization: every record is on one side, in file order, with the reference's ids and
    // mask: prompt tokens 0, answer tokens and the EOS 1.
    let tokenized = artifact(root, "tokenize:qa@base");
    let (train, held) = (
        ShardReader::open(&tokenized.join("train")).expect("train shard"),
        ShardReader::open(&tokenized.join("heldout")).expect("held-out shard"),
    );
    assert!(train.masked() && held.masked(), "both sides carry a mask");
    assert_eq!(train.len() + held.len(), RECORDS);
    assert_eq!(held.len(), 30, "heldout = 30 docs");
    let (mut t, mut h) = (0, 0);
    let mut held_records = Vec::new();
    for (n, r) in expected.iter().enumerate() {
        if t < train.len() && train.read_doc(t).unwrap() == r.ids {
            assert_eq!(train.read_mask(t).unwrap(), r.mask, "record {n}: its mask");
            t += 1;
        } else {
            assert_eq!(held.read_doc(h).unwrap(), r.ids, "record {n} is in neither shard as the reference encodes it");
            assert_eq!(held.read_mask(h).unwrap(), r.mask, "record {n}: its held-out mask");
            held_records.push(n);
            h += 1;
        }
    }
    assert_eq!((t, h), (train.len(), held.len()));
    // A hand-countable record: the first one's targets are its answer's tokens and the EOS.
    let first = &expected[0];
    let prompt = first.mask.iter().take_while(|&&m| m == 0).count();
    assert!(prompt > 3 && first.mask[prompt..].iter().all(|&m| m == 1), "prompt, then answer and EOS");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(tokenized.join("stats.json")).unwrap()).unwrap();
    let train_targets: usize = expected
        .iter()
        .enumerate()
        .filter(|(n, _)| !held_records.contains(n))
        .map(|(_, r)| r.mask.iter().filter(|&&m| m == 1).count())
        .sum();
    assert_eq!(stats["train"]["targets"].as_u64(), Some(train_targets as u64));

    // Held-out windows: targets are the answers (and EOS) of the first held-out records up to
    // the byte budget; bytes are their answers' bytes.
    let budget = 2000;
    let (windows, _) = heldout_windows(&tokenized, 64, budget).expect("windows");
    let (mut bytes, mut targets) = (0u64, 0usize);
    for &n in &held_records {
        if bytes >= budget && targets > 0 {
            break;
        }
        bytes += expected[n].answer_bytes;
        targets += expected[n].mask.iter().filter(|&&m| m == 1).count();
    }
    let counted: usize = windows.iter().map(|w| w.target.iter().filter(|&&t| t != IGNORE_INDEX).count()).sum();
    assert_eq!(counted, targets, "held-out targets are the answers");
    assert_eq!(windows.iter().map(|w| w.bytes).sum::<u64>(), bytes, "bits per byte divide by the answers' bytes");

    // The mix: each sequence's mask is its documents' masks at its spans.
    let mix = artifact(root, "mix:t");
    let seqs = ShardReader::open(&mix.join("train")).expect("mix shard");
    assert!(seqs.masked(), "the mix of a masked corpus is masked");
    let spans = std::fs::read_to_string(mix.join("spans.jsonl")).unwrap();
    let mut in_targets = 0u64;
    for (i, line) in spans.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let mut want = Vec::new();
        for s in v["spans"].as_array().unwrap() {
            let (doc, start, len) =
                (s["doc"].as_u64().unwrap(), s["doc_start"].as_u64().unwrap(), s["len"].as_u64().unwrap());
            train.read_mask_range(doc as usize, start as u32, len as u32, &mut want).unwrap();
        }
        let got = seqs.read_mask(i).unwrap();
        assert_eq!(got, want, "sequence {i}: the mask of its spans");
        in_targets += got.iter().skip(1).filter(|&&m| m == 1).count() as u64;
    }
    let mix_stats: Value = serde_json::from_str(&std::fs::read_to_string(mix.join("stats.json")).unwrap()).unwrap();
    assert_eq!(mix_stats["targets"].as_u64(), Some(in_targets));
    let (tokens, sequences) = (mix_stats["tokens"].as_u64().unwrap(), mix_stats["sequences"].as_u64().unwrap());
    assert!(in_targets > 0 && in_targets < tokens - sequences, "{in_targets} targets: the prompts are not");

    // The SFT run evaluates the same targets at every evaluation, and the report has the probe.
    let run = artifact(root, "train:t");
    let evals: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(run.join("evals.json")).unwrap()).unwrap();
    assert!(evals.len() >= 2);
    for e in &evals {
        assert_eq!(e["sets"]["qa"]["tokens"].as_u64(), Some(targets as u64), "step {}", e["step"]);
        assert_eq!(e["sets"]["qa"]["bytes"].as_u64(), Some(bytes));
    }
    // Once tokenized, the plan says which share of the corpus' tokens are targets.
    let plan = cptc(root, &["plan", "recipe.cpt"]);
    let share = 100.0 * train_targets as f64 / stats["train"]["tokens"].as_u64().unwrap() as f64;
    assert!(plan.contains(&format!("{share:.0}% of them targets (loss_on)")), "{plan}");
    let report = artifact(root, "report");
    let summary = std::fs::read_to_string(report.join("summary.txt")).unwrap();
    assert!(summary.contains("post-SFT probe, held-out `qa`"), "{summary}");
    assert!(summary.contains("t from base (base)"), "{summary}");
    assert!(summary.contains("t_cpt from cpt (trained here)"), "{summary}");
    assert!(summary.contains("cpt vs base: "), "{summary}");

    // Split by the term: the definitions held out are terms whose questions are held out too
    // (the 20 lowest hashes of the same terms are among their 30 lowest), and the 10 more
    // terms the questions hold out are trained on nowhere: the CPT skips their definitions.
    let held_sources = |corpus: &str| -> Vec<String> {
        let split = artifact(root, &format!("split:{corpus}"));
        let rule = cptc::stages::split::decision(&split).expect("decision").rule;
        let index = artifact(root, &format!("ingest:{corpus}")).join("docs.index");
        let lines: Vec<String> = std::fs::read_to_string(root.join(format!("{corpus}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["source"].as_str().unwrap().to_owned())
            .collect();
        cptc::data::index::IndexReader::open(&index)
            .unwrap()
            .map(Result::unwrap)
            .filter(|d| rule.is_heldout(&d.hash))
            .map(|d| lines[d.record as usize - 1].clone())
            .collect()
    };
    let (defs, qa) = (held_sources("defs"), held_sources("qa"));
    assert_eq!((defs.len(), qa.len()), (20, 30));
    assert!(defs.iter().all(|s| qa.contains(s)), "held-out definitions {defs:?} are held-out questions");
    let cpt_mix = artifact(root, "mix:cpt");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(cpt_mix.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["excluded"]["defs"].as_u64(), Some(10), "{stats}");
}
