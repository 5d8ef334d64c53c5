//! The streaming data path (ingest -> split -> tokenize straight from the source files) through
//! `cptc run` on the real corpora: its shards equal the in-memory reference path's, a document
//! held out in one corpus is drawn for training from no other (normalized hashes: CRLF and
//! spacing do not matter), the tokenize stage's peak memory does not grow with the corpus, and
//! a file appended to a corpus of many is the only one read and tokenized again.

mod cli_support;
mod rss_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cptc::data::ingest::{IngestOptions, read_corpus};
use cptc::data::shard::ShardReader;
use cptc::data::split::{DocKey, MAX_HELDOUT_PIECE_BYTES, SplitRule, doc_hash, doc_key, pieces};
use cptc::data::tokenize::{TokenizeOptions, eos_token, load_tokenizer, tokenize_corpus};
use cptc::recipe::{Corpus, Format, Heldout, Origin, TextSource};

const CORPORA: [&str; 9] =
    ["austen", "hpo", "mobydick", "pycode", "pydocs", "zh_man", "zh_news", "zh_poetry", "zh_reviews"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn material(rel: &str) -> PathBuf {
    let path = repo().join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    path
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// A model folder with GPT-2's real tokenizer (no weights: only tokenize stages run).
fn model_folder(root: &Path) {
    std::fs::create_dir_all(root.join("hf")).expect("mkdir");
    std::fs::copy(repo().join("tests/fixtures/exec/hf/config.json"), root.join("hf/config.json")).expect("config");
    std::fs::copy(material("data/tokenizers/gpt2/tokenizer.json"), root.join("hf/tokenizer.json")).expect("tok");
}

/// `corpus NAME { files = "FILE" heldout = HELDOUT }` for each, an eval of all of them.
fn recipe(corpora: &[(&str, &Path, &str)]) -> String {
    let mut out = String::from("model base {\n  hf = \"hf\"\n}\n");
    for (name, file, heldout) in corpora {
        out += &format!("corpus {name} {{\n  files = \"{}\"\n  heldout = {heldout}\n}}\n", file.display());
    }
    let names: Vec<&str> = corpora.iter().map(|c| c.0).collect();
    out += &format!("eval all {{\n  model = base\n  sets = [{}]\n}}\n", names.join(", "));
    out
}

/// [`recipe`] plus a train stage `t` whose mixture draws half from each of two corpora.
fn recipe_with_training(corpora: &[(&str, &Path, &str)]) -> String {
    format!(
        "import \"std/schedules\"\n{}mixture m {{\n  part general {{\n    corpora = [{}]\n    share = 50%\n  }}\n  part domain {{\n    corpora = [{}]\n    share = 50%\n  }}\n}}\ntrain t {{\n  model = base\n  mixture = m\n  tokens = 256k tokens\n  seq_len = 128\n  batch = 8k tokens\n  lr = cosine_rewarm\n}}\n",
        recipe(corpora),
        corpora[0].0,
        corpora[1].0
    )
}

/// Runs the data path of `corpora` in `root` (their tokenize and split stages, and what those
/// need); returns stderr.
fn tokenize(root: &Path, corpora: &[&str]) -> String {
    let stages: Vec<String> =
        corpora.iter().flat_map(|c| [format!("tokenize:{c}@base"), format!("split:{c}")]).collect();
    run_only(root, &stages)
}

/// Runs `stages` (and what they need) in `root`; returns stderr.
fn run_only(root: &Path, stages: &[String]) -> String {
    run_on_threads(root, stages, None)
}

/// [`run_only`] with `threads` cores for the data stages (rayon's pool), when given.
fn run_on_threads(root: &Path, stages: &[String], threads: Option<usize>) -> String {
    let mut args = vec!["run".to_string(), "recipe.cpt".to_string()];
    for s in stages {
        args.extend(["--only".to_string(), s.clone()]);
    }
    let mut cmd = cli_support::cptc(&args.iter().map(String::as_str).collect::<Vec<_>>());
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    let out = cmd.current_dir(root).output().expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    stderr
}

/// The newest published artifact folder of `stage`.
fn artifact(root: &Path, stage: &str) -> PathBuf {
    let mut found = Vec::new();
    for kind in std::fs::read_dir(root.join(".cptc/v1/artifacts")).expect("artifacts").filter_map(Result::ok) {
        for a in std::fs::read_dir(kind.path()).expect("kind").filter_map(Result::ok) {
            let meta = a.path().join("meta.json");
            if json(&meta)["stage"] == stage {
                found.push((std::fs::metadata(&meta).and_then(|m| m.modified()).expect("mtime"), a.path()));
            }
        }
    }
    found.into_iter().max().map(|(_, dir)| dir).unwrap_or_else(|| panic!("no artifact of {stage}"))
}

/// Every document's ids of the shard at `prefix` (a pair or a list of parts).
fn shard_docs(prefix: &Path) -> Vec<Vec<u32>> {
    let shard = ShardReader::open(prefix).expect("shard");
    (0..shard.len()).map(|i| shard.read_doc(i).expect("doc")).collect()
}

fn corpus(name: &str, file: &Path, heldout: Heldout) -> Corpus {
    Corpus {
        name: name.to_string(),
        patterns: Vec::new(),
        files: vec![file.to_path_buf()],
        format: Format::Jsonl,
        text: TextSource::Field("text".into()),
        heldout,
        split_by: None,
        strict: false,
        max_epochs: cptc::recipe::DEFAULT_MAX_EPOCHS,
        origin: Origin::default(),
    }
}

#[test]
fn streamed_shards_equal_the_in_memory_path_on_every_real_corpus() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    // Two corpora hold out a count (the split reads the index twice), the others a fraction.
    let heldout = |c: &str| match c {
        "hpo" | "zh_poetry" => ("40 docs", Heldout::Docs(40)),
        _ => ("5%", Heldout::Fraction(0.05)),
    };
    let files: Vec<(&str, PathBuf)> =
        CORPORA.iter().map(|c| (*c, material(&format!("data/corpora/{c}.jsonl")))).collect();
    let decl: Vec<(&str, &Path, &str)> = files.iter().map(|(c, f)| (*c, f.as_path(), heldout(c).0)).collect();
    std::fs::write(root.join("recipe.cpt"), recipe(&decl)).expect("recipe");
    tokenize(root, &CORPORA);

    // The reference: every corpus in memory, split by the same rules, tokenized as documents.
    let read: Vec<(Vec<String>, SplitRule)> = files
        .iter()
        .map(|(c, f)| {
            let docs: Vec<String> = read_corpus(&corpus(c, f, heldout(c).1), &IngestOptions::default())
                .expect("read")
                .docs
                .into_iter()
                .map(|d| d.text)
                .collect();
            let hashes: Vec<[u8; 32]> = docs.iter().map(|d| doc_hash(d)).collect();
            let rule = SplitRule::new(heldout(c).1, &hashes).expect("rule");
            (docs, rule)
        })
        .collect();
    let tok = load_tokenizer(&root.join("hf/tokenizer.json")).expect("tokenizer");
    let opts = TokenizeOptions { eos: eos_token(tok.reference()), ..Default::default() };
    let expected = root.join("expected");
    std::fs::create_dir_all(&expected).expect("mkdir");
    for (i, (name, _)) in files.iter().enumerate() {
        let (docs, rule) = &read[i];
        let mut train: Vec<&str> = Vec::new();
        let mut heldout_pieces: Vec<&str> = Vec::new();
        for d in docs {
            let h = doc_hash(d);
            if rule.is_heldout(&h) {
                heldout_pieces.extend(pieces(d, MAX_HELDOUT_PIECE_BYTES));
            } else {
                train.push(d);
            }
        }
        let got = artifact(root, &format!("tokenize:{name}@base"));
        for (side, texts) in [("train", &train), ("heldout", &heldout_pieces)] {
            let prefix = expected.join(format!("{name}.{side}"));
            let stats = tokenize_corpus(&tok, name, texts, &prefix, &opts).expect("tokenize");
            assert!(
                shard_docs(&prefix) == shard_docs(&got.join(side)),
                "{name}: the {side} shard's ids differ from the in-memory path's"
            );
            let said = &json(&got.join("stats.json"))[side];
            assert_eq!(said["documents"], stats.documents, "{name} {side}");
            assert_eq!(said["tokens"], stats.tokens, "{name} {side}");
        }
        let bytes: Vec<u64> = heldout_pieces.iter().map(|p| p.len() as u64).collect();
        assert_eq!(json(&got.join("heldout.doc_bytes.json")), serde_json::json!(bytes), "{name}");
        assert!(!heldout_pieces.is_empty() && train.len() > heldout_pieces.len() / 4, "{name}: both sides used");
    }
}

#[test]
fn a_document_held_out_in_one_corpus_is_trained_on_in_no_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    // `original`: 400 real documents; `variant`: the same with CRLF line ends and doubled
    // spaces, in reverse order. Half of `original` is held out, 10 documents of `variant`.
    let text = std::fs::read_to_string(material("data/corpora/hpo.jsonl")).expect("corpus");
    let docs: Vec<String> = text
        .lines()
        .take(400)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["text"].as_str().expect("text").into())
        .collect();
    let variants: Vec<String> = docs.iter().rev().map(|d| d.replace('\n', "\r\n").replace(' ', "  ")).collect();
    let write = |name: &str, texts: &[String]| {
        let lines: String = texts.iter().map(|t| format!("{}\n", serde_json::json!({ "text": t }))).collect();
        std::fs::write(root.join(name), lines).expect("write");
    };
    write("original.jsonl", &docs);
    write("variant.jsonl", &variants);
    // The mix cycles through these small corpora many times: allowed here.
    let decl = [
        ("original", Path::new("original.jsonl"), "50%\n  max_epochs = 100"),
        ("variant", Path::new("variant.jsonl"), "10 docs\n  max_epochs = 100"),
    ];
    std::fs::write(root.join("recipe.cpt"), recipe_with_training(&decl)).expect("recipe");
    run_only(root, &["mix:t".to_string()]);

    let hashes: Vec<[u8; 32]> = docs.iter().map(|d| doc_hash(d)).collect();
    for (d, v) in docs.iter().zip(variants.iter().rev()) {
        assert_eq!(doc_hash(d), doc_hash(v), "spacing and line ends do not change a document's hash");
    }
    let half = SplitRule::new(Heldout::Fraction(0.5), &hashes).expect("rule");
    let ten = SplitRule::new(Heldout::Docs(10), &hashes).expect("rule");
    let in_original: HashSet<DocKey> = hashes.iter().filter(|h| half.is_heldout(h)).map(doc_key).collect();
    let in_variant: HashSet<DocKey> = hashes.iter().filter(|h| ten.is_heldout(h)).map(doc_key).collect();
    assert!(in_original.len() > 150 && in_variant.len() == 10, "{} {}", in_original.len(), in_variant.len());
    let trained_nowhere: HashSet<DocKey> = in_original.union(&in_variant).copied().collect();

    let mix = artifact(root, "mix:t");
    let stats = json(&mix.join("stats.json"));
    // Each corpus' shard holds what its own rule keeps; the mix skips what the other holds out.
    let mut keys = std::collections::HashMap::new();
    for (name, own, other) in [("original", &in_original, &in_variant), ("variant", &in_variant, &in_original)] {
        let tokenized = artifact(root, &format!("tokenize:{name}@base"));
        let shard_keys: Vec<DocKey> = std::fs::read(tokenized.join("train.hashes"))
            .expect("train.hashes")
            .chunks_exact(16)
            .map(|c| c.try_into().expect("16 bytes"))
            .collect();
        assert_eq!(shard_keys.len(), docs.len() - own.len(), "{name}: its own held-out side only");
        // (A count's held-out documents have the smallest hashes: `original` holds them out too.)
        let excluded = stats["excluded"][name].as_u64().unwrap_or(0);
        assert_eq!(excluded, other.difference(own).count() as u64, "{name}: {}", stats["excluded"]);
        keys.insert(name.to_string(), shard_keys);
    }
    let mut drawn = 0;
    for line in std::fs::read_to_string(mix.join("spans.jsonl")).expect("spans").lines() {
        let seq: serde_json::Value = serde_json::from_str(line).expect("json");
        let corpus = seq["corpus"].as_str().expect("corpus");
        for span in seq["spans"].as_array().expect("spans") {
            let key = keys[corpus][span["doc"].as_u64().expect("doc") as usize];
            assert!(!trained_nowhere.contains(&key), "{corpus}: a held-out document was drawn");
            drawn += 1;
        }
    }
    assert!(drawn > 400, "the mix drew {drawn} spans: the corpora were cycled through");
}

#[test]
fn a_mix_past_max_epochs_is_refused_and_the_plan_says_so_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    // Two small real corpora (about 40k tokens each): 128k tokens drawn from each is ~3 passes
    // over `small` (half of it), ~6 over `smaller` (a quarter).
    let text = std::fs::read_to_string(material("data/corpora/hpo.jsonl")).expect("corpus");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let write = |name: &str, from: usize, n: usize| {
        let body: String = lines[from..from + n].iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(root.join(name), body).expect("write");
    };
    write("small.jsonl", 0, 1200);
    write("smaller.jsonl", 1200, 600);
    let limited = |limit: &str| {
        let decl = [
            ("small", Path::new("small.jsonl"), "2%".to_string()),
            ("smaller", Path::new("smaller.jsonl"), format!("2%{limit}")),
        ];
        let decl: Vec<(&str, &Path, &str)> = decl.iter().map(|(n, f, h)| (*n, *f, h.as_str())).collect();
        std::fs::write(root.join("recipe.cpt"), recipe_with_training(&decl)).expect("recipe");
    };
    limited("");
    run_only(root, &["tokenize:small@base".to_string(), "tokenize:smaller@base".to_string()]);
    let tokens = |c: &str| {
        json(&artifact(root, &format!("tokenize:{c}@base")).join("stats.json"))["train"]["tokens"]
            .as_u64()
            .expect("tokens")
    };
    let (small, smaller) = (tokens("small"), tokens("smaller"));
    assert!(128_000 < 4 * small && 128_000 > 4 * smaller, "the fixture's sizes: {small}, {smaller}");

    // Once tokenized, the plan knows the passes and warns before anything trains.
    let plan = cli_support::cptc(&["plan", "recipe.cpt"]).current_dir(root).output().expect("plan");
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.contains(&format!("of {}", small.div_ceil(1000))) || plan.contains("epochs"), "{plan}");
    let warning = plan.lines().find(|l| l.contains("warning: smaller is read")).unwrap_or_else(|| panic!("{plan}"));
    assert!(warning.contains("max_epochs (4)"), "{warning}");
    assert!(!plan.contains("warning: small is read"), "{plan}");

    // `run` refuses the mix, naming the corpus and the setting; nothing is published.
    let out = cli_support::cptc(&["run", "recipe.cpt", "--only", "mix:t"]).current_dir(root).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a recipe error: {stderr}");
    assert!(stderr.contains("corpus `smaller` more than 4 times over (max_epochs)"), "{stderr}");
    assert!(!stderr.contains("`small` more"), "{stderr}");

    // Allowed by the recipe: it runs, and the artifact says how many passes each source took.
    limited("\n  max_epochs = 8");
    run_only(root, &["mix:t".to_string()]);
    let sources = &json(&artifact(root, "mix:t").join("stats.json"))["sources"];
    let epochs = |c: &str| sources[c]["epochs"].as_f64().expect("epochs");
    assert!(epochs("smaller") > 4.0 && epochs("smaller") < 8.0, "{sources}");
    assert!(epochs("small") > 1.0 && epochs("small") < 4.0, "{sources}");
}

/// The passes over `corpus` a plan's `tokens by source` line gives (`en 396k of 159k = 2.50 epochs`).
fn planned_passes(plan: &str, corpus: &str) -> f64 {
    let line = plan.lines().find(|l| l.contains("tokens by source")).unwrap_or_else(|| panic!("{plan}"));
    let after = line.split(&format!("{corpus} ")).nth(1).unwrap_or_else(|| panic!("no {corpus} in {line}"));
    let epochs = after.split(" = ").nth(1).and_then(|e| e.split(' ').next()).unwrap_or_else(|| panic!("{line}"));
    epochs.parse().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn the_plan_counts_the_passes_the_mix_makes() {
    let dir = with_model();
    let root = dir.path();
    // One part over English definitions and Chinese poems (far more tokens per byte: a split
    // by file size would be off); half of the English is held out by a corpus over the same
    // file (never drawn); short documents are thinned by long context (fewer tokens a pass).
    write_lines(&root.join("en.jsonl"), "data/corpora/hpo.jsonl", 0, 1500);
    write_lines(&root.join("zh.jsonl"), "data/corpora/zh_poetry.jsonl", 0, 400);
    let recipe = |repeat: &str| {
        format!(
            "import \"std/schedules\"\nmodel base {{\n  hf = \"hf\"\n}}\n\
             corpus en {{\n  files = \"en.jsonl\"\n  heldout = 2%\n  max_epochs = 100\n}}\n\
             corpus zh {{\n  files = \"zh.jsonl\"\n  heldout = 2%\n  max_epochs = 100\n}}\n\
             corpus probe {{\n  files = \"en.jsonl\"\n  heldout = 50%\n}}\n\
             mixture m {{\n{repeat}  part general {{\n    corpora = [en, zh]\n    share = 100%\n  }}\n}}\n\
             train t {{\n  model = base\n  mixture = m\n  tokens = 256k tokens\n  seq_len = 256\n  batch = 8k tokens\n  lr = cosine_rewarm\n\
             \x20 long_context {{\n    short_below = 48 tokens\n    keep_short = 30%\n  }}\n}}\n\
             eval e {{\n  model = base\n  sets = [probe]\n}}\n"
        )
    };
    std::fs::write(root.join("recipe.cpt"), recipe("")).expect("recipe");
    run_only(root, &["tokenize:en@base".into(), "tokenize:zh@base".into(), "split:probe".into()]);
    let plan = cli_support::cptc(&["plan", "recipe.cpt"]).current_dir(root).output().expect("plan");
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    run_only(root, &["mix:t".into()]);
    let stats = json(&artifact(root, "mix:t").join("stats.json"));
    for corpus in ["en", "zh"] {
        let (planned, made) =
            (planned_passes(&plan, corpus), stats["sources"][corpus]["epochs"].as_f64().expect("epochs"));
        assert!(
            (planned - made).abs() < 0.1 * made,
            "{corpus}: the plan says {planned} passes, the mix made {made}\n{plan}"
        );
        assert!(made > 1.5, "{corpus}: {made} passes, the fixture draws each more than once");
    }
    assert!(stats["excluded"]["en"].as_u64().is_some_and(|n| n > 500), "{stats}");
    // The JSON plan carries the same figures.
    let out = cli_support::cptc(&["plan", "recipe.cpt", "--format", "json"]).current_dir(root).output().expect("plan");
    let plan_json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let train = plan_json["stages"].as_array().expect("stages").iter().find(|s| s["kind"] == "train").expect("train");
    for source in train["data"]["sources"].as_array().expect("sources") {
        let corpus = source["corpus"].as_str().expect("corpus");
        assert_eq!(source["epochs"].as_f64(), Some(planned_passes_exact(&train["data"], corpus)), "{source}");
        assert!((source["epochs"].as_f64().expect("epochs") - planned_passes(&plan, corpus)).abs() < 0.01, "{source}");
    }

    // A mixture that does not repeat a source: the plan says `run` will run out.
    std::fs::write(root.join("recipe.cpt"), recipe("  repeat = false\n")).expect("recipe");
    let plan = cli_support::cptc(&["plan", "recipe.cpt"]).current_dir(root).output().expect("plan");
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan.contains("warning: en is read") && plan.contains("does not repeat a source (`repeat = false`)"),
        "{plan}"
    );
}

/// The passes over `corpus` a JSON plan's train `data` gives, worked out from its parts.
fn planned_passes_exact(data: &serde_json::Value, corpus: &str) -> f64 {
    let drawn: u64 =
        data["parts"].as_array().expect("parts").iter().filter_map(|p| p["corpora"][corpus].as_u64()).sum();
    let source = data["sources"].as_array().expect("sources").iter().find(|s| s["corpus"] == corpus).expect("source");
    drawn as f64 / source["per_pass"].as_u64().expect("per_pass").max(1) as f64
}

/// `max_epochs` bounds a corpus' passes over the whole run: a phase continuing another counts
/// what the phases before it drew from the same stream, in the plan and in the mix.
#[test]
fn max_epochs_counts_the_passes_of_every_phase() {
    let dir = with_model();
    let root = dir.path();
    write_lines(&root.join("small.jsonl"), "data/corpora/hpo.jsonl", 0, 1200);
    let recipe = |limit: &str, repeat: &str, tokens: &str| {
        format!(
            "import \"std/schedules\"\nmodel base {{\n  hf = \"hf\"\n}}\n\
             corpus small {{\n  files = \"small.jsonl\"\n  heldout = 2%\n{limit}}}\n\
             mixture m {{\n{repeat}  part general {{\n    corpora = [small]\n    share = 100%\n  }}\n}}\n\
             train p1 {{\n  model = base\n  mixture = m\n  tokens = {tokens}\n  seq_len = 128\n  batch = 8k tokens\n  lr = cosine_rewarm\n}}\n\
             train p2 {{\n  model = p1\n  mixture = m\n  tokens = {tokens}\n  seq_len = 128\n  batch = 8k tokens\n  lr = cosine_rewarm\n}}\n"
        )
    };
    std::fs::write(root.join("recipe.cpt"), recipe("", "", "96k tokens")).expect("recipe");
    run_only(root, &["tokenize:small@base".into()]);
    let passes = json(&artifact(root, "tokenize:small@base").join("stats.json"))["train"]["tokens"]
        .as_f64()
        .map(|t| 96_000.0 / t)
        .expect("tokens");
    assert!(passes > 2.0 && passes < 4.0, "each phase alone stays under the limit: {passes}");
    let plan = cli_support::cptc(&["plan", "recipe.cpt"]).current_dir(root).output().expect("plan");
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let warnings: Vec<&str> = plan.lines().filter(|l| l.contains("warning: small is read")).collect();
    assert_eq!(warnings.len(), 1, "{plan}");
    assert!(warnings[0].contains("with the phases before this one"), "{plan}");
    run_only(root, &["mix:p1".into()]);
    let out = cli_support::cptc(&["run", "recipe.cpt", "--only", "mix:p2"]).current_dir(root).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The message as one line (miette wraps it).
    let flat = stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(flat.contains("(with the phases before this one) were drawn"), "{stderr}");
    // Allowed by the recipe: both phases run.
    std::fs::write(root.join("recipe.cpt"), recipe("  max_epochs = 8\n", "", "96k tokens")).expect("recipe");
    run_only(root, &["mix:p2".into()]);

    // A mixture that does not repeat: the second phase goes on in the first one's pass, so two
    // phases of 0.6 pass each run out; the plan says so on the second.
    std::fs::write(root.join("recipe.cpt"), recipe("", "  repeat = false\n", "24k tokens")).expect("recipe");
    let plan = cli_support::cptc(&["plan", "recipe.cpt"]).current_dir(root).output().expect("plan");
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let warnings: Vec<&str> = plan.lines().filter(|l| l.contains("does not repeat a source")).collect();
    assert_eq!(warnings.len(), 1, "{plan}");
    assert!(warnings[0].contains("with the phases before this one"), "{plan}");
}

/// A corpus none of whose records gives a document is refused by the tokenize stage that reads
/// it first (under a held-out fraction, before the ingest stage), with the ingest stage's
/// report, and leaves no tokenize artifact behind.
#[test]
fn a_corpus_without_a_document_fails_its_tokenize_stage() {
    let dir = with_model();
    let root = dir.path();
    let records = repo().join("tests/fixtures/data/ingest/empty_corpus/data.jsonl");
    std::fs::write(root.join("recipe.cpt"), recipe(&[("none", &records, "1%")])).expect("recipe");
    let (code, _, stderr) = cli_support::run_in(root, &["run", "recipe.cpt", "--only", "tokenize:none@base"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cptc::data::empty_corpus"), "{stderr}");
    assert!(
        stderr.contains(
            "stage `tokenize:none@base` failed: corpus `none` has no usable document (1 files read, 3 records skipped"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("the first skipped record: data.jsonl:1: missing field `text`"), "{stderr}");
    // The failure points at the recipe block the stage comes from.
    assert!(stderr.contains("the stage comes from recipe.cpt:4:1 (`corpus none {`)"), "{stderr}");
    let kinds: Vec<String> = std::fs::read_dir(root.join(".cptc/v1/artifacts"))
        .expect("artifacts")
        .filter_map(Result::ok)
        .map(|k| k.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(kinds.iter().all(|k| !k.starts_with("tokenize")), "{kinds:?}");
}

/// A file whose every record is skipped (here, the wrong field) is named on its own line by
/// every run, cached or not: its records are a few among the corpus' skipped ones.
#[test]
fn a_file_that_gives_no_document_is_named_by_every_run() {
    let dir = with_model();
    let root = dir.path();
    std::fs::create_dir_all(root.join("mixed")).expect("mkdir");
    write_lines(&root.join("mixed/a.jsonl"), "data/corpora/hpo.jsonl", 0, 50);
    std::fs::copy(repo().join("tests/fixtures/data/ingest/empty_corpus/data.jsonl"), root.join("mixed/b.jsonl"))
        .expect("copy");
    std::fs::write(root.join("recipe.cpt"), recipe(&[("mixed", Path::new("mixed/*.jsonl"), "10%")])).expect("recipe");
    let line = "ingest:mixed: b.jsonl gave no document (every record skipped)";
    for _ in 0..2 {
        let (code, _, stderr) = cli_support::run_in(root, &["run", "recipe.cpt", "--only", "split:mixed"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(line), "{stderr}");
    }
}

/// Once a corpus is tokenized with no held-out document (1% of a few), the plan warns at each
/// stage that evaluates it, in text and JSON: the run would fail there.
#[test]
fn the_plan_warns_of_an_evaluated_corpus_that_holds_out_nothing() {
    let dir = with_model();
    let root = dir.path();
    write_lines(&root.join("few.jsonl"), "data/corpora/hpo.jsonl", 0, 5);
    std::fs::write(root.join("recipe.cpt"), recipe(&[("few", Path::new("few.jsonl"), "1%")])).expect("recipe");
    let (code, _, stderr) = cli_support::run_in(root, &["run", "recipe.cpt", "--only", "tokenize:few@base"]);
    assert_eq!(code, 0, "{stderr}");
    let warning = "few holds out none of its 5 documents: `cptc run` fails at this stage's first evaluation";
    let (code, text, stderr) = cli_support::run_in(root, &["plan", "recipe.cpt"]);
    assert_eq!(code, 0, "{stderr}");
    let eval_at = text.find("eval:all").expect("eval stage");
    assert!(text[eval_at..].contains(warning), "{text}");
    let (_, plan, _) = cli_support::run_in(root, &["plan", "recipe.cpt", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("json plan");
    let eval = plan["stages"].as_array().expect("stages").iter().find(|s| s["id"] == "eval:all").expect("eval");
    assert!(eval["heldout_warnings"][0].as_str().is_some_and(|w| w.starts_with(warning)), "{eval}");
}

/// A project folder holding [`model_folder`]'s model.
fn with_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    model_folder(dir.path());
    dir
}

/// Lines `from..from + n` of a real corpus into `path`.
fn write_lines(path: &Path, corpus: &str, from: usize, n: usize) {
    let text = std::fs::read_to_string(material(corpus)).expect("corpus");
    let body: String = text.lines().skip(from).take(n).map(|l| format!("{l}\n")).collect();
    std::fs::write(path, body).expect("write");
}

/// Peak resident memory (bytes) of `cptc run --only tokenize:big@base` over `mb` MB of text.
fn tokenize_peak_rss(mb: usize) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    // The real corpora's lines, cycled with a counter so no two documents are the same.
    let lines = real_lines();
    let mut out = std::io::BufWriter::new(std::fs::File::create(root.join("big.jsonl")).expect("create"));
    let (mut written, mut n) = (0, 0usize);
    while written < mb << 20 {
        let doc: serde_json::Value = serde_json::from_str(&lines[n % lines.len()]).expect("json");
        let line =
            format!("{}\n", serde_json::json!({ "text": format!("{n}: {}", doc["text"].as_str().unwrap_or("")) }));
        std::io::Write::write_all(&mut out, line.as_bytes()).expect("write");
        written += line.len();
        n += 1;
    }
    drop(out);
    std::fs::write(root.join("recipe.cpt"), recipe(&[("big", Path::new("big.jsonl"), "1%")])).expect("recipe");
    let child = cli_support::cptc(&["run", "recipe.cpt", "--only", "tokenize:big@base"])
        .current_dir(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cptc run");
    let (status, rss) = rss_support::wait_peak_rss(child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "cptc run failed: {status}");
    let stats = json(&artifact(root, "tokenize:big@base").join("stats.json"));
    assert!(stats["train"]["bytes"].as_u64().expect("bytes") > (mb as u64 * 9 / 10) << 20, "{stats}");
    rss
}

#[test]
fn tokenize_memory_does_not_grow_with_the_corpus() {
    let small = tokenize_peak_rss(64);
    let large = tokenize_peak_rss(320);
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!("peak RSS: {:.0} MiB at 64 MB, {:.0} MiB at 320 MB", mib(small), mib(large));
    // Held in memory even once, the 256 MB more text would add 256 MB. Streamed, what grows is
    // the allocator's fragmentation, slowly (about 40 MiB here; 300 MiB in all at 5 GB: see
    // docs/benchmarks.md), so a quarter of the added text is the bound.
    assert!(large < small + (64 << 20), "peak RSS {:.0} MiB at 64 MB, {:.0} MiB at 320 MB", mib(small), mib(large));
    assert!(large < 1536 << 20, "peak RSS {:.0} MiB", mib(large));
}

/// The real corpora's non-blank jsonl lines, read once for all the tests of this file.
fn real_lines() -> &'static [String] {
    static LINES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let mut lines = Vec::new();
        for c in CORPORA {
            let text = std::fs::read_to_string(material(&format!("data/corpora/{c}.jsonl"))).expect("corpus");
            lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
        }
        lines
    })
}

/// Writes `docs` of the real corpora's lines (from line `from` on, cycled) as one jsonl file.
fn write_real_docs(path: &Path, from: usize, docs: usize) {
    let lines = real_lines();
    let text: String = (from..from + docs).map(|i| format!("{}\n", lines[(i * 7919) % lines.len()])).collect();
    std::fs::write(path, text).expect("write");
}

/// `root/many/part-F.jsonl` for F in `0..files`, `docs` real documents each (file F from line
/// `F * docs` on).
fn many_files(root: &Path, files: usize, docs: usize) {
    std::fs::create_dir(root.join("many")).expect("mkdir");
    for f in 0..files {
        write_real_docs(&root.join(format!("many/part-{f}.jsonl")), f * docs, docs);
    }
}

/// The `output` a stage's artifact records in its `meta.json`.
fn output_of(root: &Path, stage: &str) -> serde_json::Value {
    json(&artifact(root, stage).join("meta.json"))["output"].clone()
}

/// A fresh folder with the model, the first `files` files of `root`'s `many` corpus and `recipe`.
fn copy_of(root: &Path, files: usize, recipe: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    model_folder(dir.path());
    std::fs::create_dir(dir.path().join("many")).expect("mkdir");
    for f in 0..files {
        let name = format!("many/part-{f}.jsonl");
        std::fs::copy(root.join(&name), dir.path().join(&name)).expect("copy");
    }
    std::fs::write(dir.path().join("recipe.cpt"), recipe).expect("recipe");
    dir
}

/// The part folders an artifact lists.
fn parts_of(root: &Path, stage: &str) -> Vec<String> {
    serde_json::from_value(json(&artifact(root, stage).join("parts.json"))).expect("parts.json")
}

/// A file copied into a corpus twice is tokenized once, and the stage says why it tokenized
/// fewer files than the corpus has on a fresh store.
#[test]
fn a_file_repeated_in_a_corpus_is_tokenized_once() {
    let dir = with_model();
    let root = dir.path();
    many_files(root, 2, 100);
    std::fs::copy(root.join("many/part-0.jsonl"), root.join("many/part-2.jsonl")).expect("copy");
    let recipe = recipe(&[("many", Path::new("many/*.jsonl"), "10%")]);
    std::fs::write(root.join("recipe.cpt"), &recipe).expect("recipe");
    let out = tokenize(root, &["many"]);
    assert!(out.contains("tokenized 2 of 3 files; 1 repeats another file's content\n"), "{out}");
}

#[test]
fn a_file_appended_to_a_corpus_is_the_only_one_read_and_tokenized_again() {
    for heldout in ["10%", "40 docs"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        model_folder(root);
        many_files(root, 6, 300);
        let recipe = recipe(&[("many", Path::new("many/*.jsonl"), heldout)]);
        std::fs::write(root.join("recipe.cpt"), &recipe).expect("recipe");
        let first = tokenize(root, &["many"]);
        assert!(
            !first.contains("in the store") && !first.contains("content"),
            "a fresh store reads every file: {first}"
        );
        let (ingest_before, tok_before) = (parts_of(root, "ingest:many"), parts_of(root, "tokenize:many@base"));
        assert_eq!((ingest_before.len(), tok_before.len()), (6, 6));

        write_real_docs(&root.join("many/part-6.jsonl"), 6 * 300, 300);
        let second = tokenize(root, &["many"]);
        let (ingest_after, tok_after) = (parts_of(root, "ingest:many"), parts_of(root, "tokenize:many@base"));
        // A fraction: the one-pass tokenize stage read the new file and filed its index, so the
        // ingest stage read nothing. A count: ingest read the new file, tokenize after it.
        if heldout == "10%" {
            assert!(
                second.contains("tokenized 1 of 7 files; 6 were in the store") && !second.contains("read 1 of 7"),
                "{second}"
            );
        } else {
            assert!(second.contains("read 1 of 7 files; 6 were in the store"), "{heldout}: {second}");
        }
        assert_eq!(ingest_after[..6], ingest_before[..], "{heldout}: the first six files' index parts are reused");
        // A held-out fraction decides each document alone: only the new file is tokenized. A
        // held-out count moves its threshold: an old file is tokenized again exactly when one
        // of its documents changed side.
        let retokenized = tok_after.iter().filter(|p| !tok_before.contains(p)).count();
        let hashes: Vec<Vec<[u8; 32]>> = (0..7)
            .map(|f| {
                let c = corpus("many", &root.join(format!("many/part-{f}.jsonl")), Heldout::Fraction(0.0));
                let docs = read_corpus(&c, &IngestOptions::default()).expect("read").docs;
                docs.iter().map(|d| doc_hash(&d.text)).collect()
            })
            .collect();
        let setting = if heldout == "10%" { Heldout::Fraction(0.1) } else { Heldout::Docs(40) };
        let rule = |files: usize| SplitRule::new(setting, &hashes[..files].concat()).expect("rule");
        let (before, after) = (rule(6), rule(7));
        let moved =
            hashes[..6].iter().filter(|h| h.iter().any(|h| before.is_heldout(h) != after.is_heldout(h))).count();
        assert_eq!(retokenized, moved + 1, "{heldout}: files tokenized again: {second}");
        if heldout == "10%" {
            assert_eq!(moved, 0);
        }

        // What the reused parts assembled equals a fresh store's artifact, byte for byte.
        let reused = artifact(root, "tokenize:many@base");
        let fresh_dir = copy_of(root, 7, &recipe);
        let fresh = fresh_dir.path();
        tokenize(fresh, &["many"]);
        let meta = |dir: &Path| json(&dir.join("meta.json"))["output"].clone();
        assert_eq!(meta(&reused), meta(&artifact(fresh, "tokenize:many@base")), "{heldout}: same output digest");
        assert!(shard_docs(&reused.join("train")).len() > 1500, "{heldout}");

        // gc keeps the parts the current artifacts list and removes the superseded ones.
        let gc = cli_support::cptc(&["cache", "gc", "recipe.cpt"]).current_dir(root).output().expect("gc");
        assert_eq!(gc.status.code(), Some(0), "{}", String::from_utf8_lossy(&gc.stderr));
        let mut left: Vec<String> = Vec::new();
        for space in ["ingest", "tokenize"] {
            for e in std::fs::read_dir(root.join(".cptc/v1/parts").join(space)).expect("parts").filter_map(Result::ok) {
                left.push(format!("{space}/{}", e.file_name().to_string_lossy()));
            }
        }
        left.sort();
        let mut listed: Vec<String> = ingest_after.iter().chain(&tok_after).cloned().collect();
        listed.sort();
        assert_eq!(left, listed, "{heldout}: parts after gc");
        assert_eq!(
            shard_docs(&artifact(root, "tokenize:many@base").join("train")).len(),
            shard_docs(&reused.join("train")).len()
        );
    }
}

/// Per sequence of `corpus` in a mix artifact's `spans.jsonl`: its index and documents.
fn spans_of(mix: &Path, corpus: &str) -> Vec<(u64, Vec<u64>)> {
    std::fs::read_to_string(mix.join("spans.jsonl"))
        .expect("spans.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("span line"))
        .filter(|v| v["corpus"] == corpus)
        .map(|v| {
            let docs = v["spans"].as_array().expect("spans").iter().map(|s| s["doc"].as_u64().expect("doc")).collect();
            (v["index"].as_u64().expect("index"), docs)
        })
        .collect()
}

#[test]
fn a_continuing_phase_reads_what_its_parent_left_and_turns_one_epoch_when_the_corpus_is_done() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    let corpora = [
        ("hpo", &*material("data/corpora/hpo.jsonl"), "5%"),
        ("austen", &*material("data/corpora/austen.jsonl"), "5%"),
    ];
    std::fs::write(root.join("recipe.cpt"), recipe(&corpora)).expect("recipe");
    tokenize(root, &["hpo"]);
    let hpo_tokens =
        json(&artifact(root, "tokenize:hpo@base").join("stats.json"))["train"]["tokens"].as_u64().expect("tokens");
    // Half of every phase is hpo: two phases of 1.2x its tokens read it 1.2 times in all, so
    // the second phase exhausts it once. `again` starts from the base model: no ledger.
    let tokens = hpo_tokens * 12 / 10 / 1024 * 1024;
    let train = |name: &str, model: &str, tokens: u64| {
        format!(
            "train {name} {{\n  model = {model}\n  mixture = m\n  tokens = {tokens} tokens\n  seq_len = 128\n  batch = 1k tokens\n  lr = cosine_rewarm\n}}\n"
        )
    };
    let text = format!(
        "import \"std/schedules\"\n{}mixture m {{\n  part general {{\n    corpora = [austen]\n    share = 50%\n  }}\n  part domain {{\n    corpora = [hpo]\n    share = 50%\n  }}\n}}\n{}{}{}",
        recipe(&corpora),
        train("p1", "base", tokens),
        train("p2", "p1", tokens),
        // Another budget, so not the same key (and artifact) as p1's mix.
        train("again", "base", tokens * 2)
    );
    std::fs::write(root.join("recipe.cpt"), text).expect("recipe");
    run_only(root, &["mix:p2".to_string(), "mix:again".to_string()]);
    let (p1, p2, again) = (artifact(root, "mix:p1"), artifact(root, "mix:p2"), artifact(root, "mix:again"));

    let first: HashSet<u64> = spans_of(&p1, "hpo").into_iter().flat_map(|(_, d)| d).collect();
    let stats = json(&p2.join("stats.json"));
    let turns: Vec<&serde_json::Value> =
        stats["epochs"].as_array().expect("epochs").iter().filter(|e| e["new_epoch"]["corpus"] == "hpo").collect();
    assert_eq!(turns.len(), 1, "one epoch boundary in the second phase: {}", stats["epochs"]);
    assert_eq!(turns[0]["new_epoch"]["epoch"], 1);
    let turn_at = turns[0]["new_epoch"]["at_sequence"].as_u64().expect("at_sequence");
    let second = spans_of(&p2, "hpo");
    let before_turn: HashSet<u64> = second.iter().filter(|(i, _)| *i < turn_at).flat_map(|(_, d)| d.clone()).collect();
    let overlap = first.intersection(&before_turn).count();
    eprintln!(
        "hpo: {} documents, the first phase read {}, the second {} before its epoch turn (at sequence {turn_at}), {overlap} of them again",
        json(&artifact(root, "tokenize:hpo@base").join("stats.json"))["train"]["documents"],
        first.len(),
        before_turn.len()
    );
    // The phases may share the one document the first left half read.
    assert!(overlap <= 1, "the second phase read {overlap} documents of the first's again before the corpus was done");
    let at_turn: HashSet<u64> = second.iter().filter(|(i, _)| *i == turn_at).flat_map(|(_, d)| d.clone()).collect();
    let docs = json(&artifact(root, "tokenize:hpo@base").join("stats.json"))["train"]["documents"]
        .as_u64()
        .expect("documents");
    let read: HashSet<u64> = first.union(&before_turn).chain(&at_turn).copied().collect();
    assert!(read.len() as u64 >= docs - 1, "the first epoch read {} of {docs} documents", read.len());

    // Without the ledger the same mixture reads the first phase's documents first: the check
    // above would fail.
    let fresh: HashSet<u64> = spans_of(&again, "hpo").into_iter().take(second.len() / 2).flat_map(|(_, d)| d).collect();
    assert!(first.intersection(&fresh).count() > fresh.len() / 2, "a phase from the base starts its stream over");

    let ledger = json(&p2.join("ledger.json"));
    let phases: Vec<&str> =
        ledger["phases"].as_array().expect("phases").iter().map(|p| p["stage"].as_str().unwrap_or("")).collect();
    assert_eq!(phases, ["p1", "p2"]);
    assert_eq!(ledger["sources"]["hpo"]["epoch"], 1);
    let p1_docs = ledger["phases"][0]["sources"]["hpo"]["documents"].as_u64().expect("documents");
    assert!((first.len() as u64).abs_diff(p1_docs) <= 1, "{p1_docs} documents counted, {} read", first.len());
}

/// A part's bytes damaged in place (its artifact shares them through a hard link): `cache
/// verify` names the part, `--fix` removes it with the artifact, and the rerun rebuilds both as
/// they were. (Reuse checks a part's sizes only; without this the damaged part would be linked
/// into the rebuilt artifact again.)
#[test]
fn a_damaged_part_is_found_removed_and_rebuilt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    std::fs::write(root.join("recipe.cpt"), recipe(&[("hpo", &*material("data/corpora/hpo.jsonl"), "5%")]))
        .expect("recipe");
    tokenize(root, &["hpo"]);
    let original = shard_docs(&artifact(root, "tokenize:hpo@base").join("train"));
    let parts = std::fs::read_dir(root.join(".cptc/v1/parts/tokenize")).expect("tokenize parts");
    let part = parts.filter_map(Result::ok).map(|e| e.path()).next().expect("a part");
    let bin = part.join("train.bin");
    let mut bytes = std::fs::read(&bin).expect("train.bin");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&bin, bytes).expect("damage in place");
    let cache = |args: &[&str]| {
        let out = cli_support::cptc(&[&["cache"], args].concat()).current_dir(root).output().expect("cptc cache");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = cache(&["verify"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("train.bin does not match its recorded digest"), "{stderr}");
    let (code, stderr) = cache(&["verify", "--fix"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!part.exists(), "the damaged part is removed: {stderr}");
    tokenize(root, &["hpo"]);
    let (code, stderr) = cache(&["verify"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("parts verified"), "{stderr}");
    assert_eq!(shard_docs(&artifact(root, "tokenize:hpo@base").join("train")), original, "rebuilt as it was");
}

/// The newest run log's events of `stage`: (event, time).
fn events_of(root: &Path, stage: &str) -> Vec<(String, f64)> {
    let runs = root.join(".cptc/v1/runs");
    let newest = std::fs::read_dir(&runs).expect("runs").filter_map(Result::ok).map(|e| e.path()).max().expect("a run");
    std::fs::read_to_string(newest)
        .expect("run log")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["stage"] == stage)
        .map(|v| (v["event"].as_str().unwrap_or("").to_string(), v["t"].as_f64().unwrap_or(0.0)))
        .collect()
}

#[test]
fn a_corpus_split_by_a_fraction_is_read_once_and_indexed_as_ingest_alone_would() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    many_files(root, 3, 200);
    let recipe = recipe(&[("many", Path::new("many/*.jsonl"), "10%")]);
    std::fs::write(root.join("recipe.cpt"), &recipe).expect("recipe");
    tokenize(root, &["many"]);
    // The tokenize stage filed every file's index part, then the ingest stage started: it read
    // nothing (each part is older than its start).
    let at = |stage: &str, event: &str| {
        events_of(root, stage).into_iter().find(|(e, _)| e == event).map(|(_, t)| t).expect("an event")
    };
    assert!(at("tokenize:many@base", "done") <= at("ingest:many", "start"));
    let ingest_start = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(at("ingest:many", "start"));
    for part in parts_of(root, "ingest:many") {
        let dir = root.join(".cptc/v1/parts").join(&part);
        let written = std::fs::metadata(dir.join("docs.index")).and_then(|m| m.modified()).expect("mtime");
        assert!(written <= ingest_start, "{part} was written by the ingest stage, not the one pass");
    }

    // The ingest stage alone (`--only split`, nothing tokenized) reads the files and builds the
    // same index, report and split, byte for byte.
    let alone_dir = copy_of(root, 3, &recipe);
    let alone = alone_dir.path();
    let stderr = run_only(alone, &["split:many".to_string()]);
    assert!(events_of(alone, "tokenize:many@base").is_empty(), "--only split tokenized: {stderr}");
    for stage in ["ingest:many", "split:many"] {
        assert_eq!(output_of(root, stage), output_of(alone, stage), "{stage}");
    }
}

#[test]
fn files_built_side_by_side_give_the_artifacts_of_files_built_one_at_a_time() {
    // Twelve files: on 2 cores each core takes whole files in turn (12 >= 4 per core); on 4
    // cores they go one at a time over the whole pool (12 < 16). Both paths of the data stages
    // (a fraction: one pass; a count: ingest, split, then tokenize) give the same artifacts.
    for heldout in ["10%", "40 docs"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        model_folder(root);
        many_files(root, 12, 150);
        let recipe = recipe(&[("many", Path::new("many/*.jsonl"), heldout)]);
        std::fs::write(root.join("recipe.cpt"), &recipe).expect("recipe");
        let stages = ["tokenize:many@base".to_string(), "split:many".to_string()];
        run_on_threads(root, &stages, Some(2));
        let pooled_dir = copy_of(root, 12, &recipe);
        let pooled = pooled_dir.path();
        run_on_threads(pooled, &stages, Some(4));
        for stage in ["ingest:many", "split:many", "tokenize:many@base"] {
            assert_eq!(output_of(root, stage), output_of(pooled, stage), "{heldout}: {stage}");
        }
        assert_eq!(parts_of(root, "tokenize:many@base").len(), 12);
    }
}

#[test]
fn a_bad_record_in_files_built_side_by_side_names_the_first_bad_file_and_keeps_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    model_folder(root);
    many_files(root, 10, 100);
    // Two broken records (files 6 and 8), in strict mode: the error is the first file's.
    let break_line = |f: usize, line: usize| {
        let path = root.join(format!("many/part-{f}.jsonl"));
        let text = std::fs::read_to_string(&path).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        lines[line - 1] = "{\"text\": ";
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    };
    break_line(6, 37);
    break_line(8, 5);
    let recipe = format!(
        "{}\n",
        recipe(&[("many", Path::new("many/*.jsonl"), "10%")])
            .replace("heldout = 10%", "heldout = 10%\n  strict = true")
    );
    std::fs::write(root.join("recipe.cpt"), &recipe).expect("recipe");
    let run = || {
        let out = cli_support::cptc(&["run", "recipe.cpt", "--only", "tokenize:many@base"])
            .env("RAYON_NUM_THREADS", "2")
            .current_dir(root)
            .output()
            .expect("cptc run");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run();
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("part-6.jsonl:37"), "{stderr}");
    assert!(!stderr.contains("part-8.jsonl"), "{stderr}");
    let kinds = std::fs::read_dir(root.join(".cptc/v1/artifacts")).into_iter().flatten().filter_map(Result::ok);
    let published: Vec<String> = kinds.map(|k| k.file_name().to_string_lossy().into_owned()).collect();
    assert!(!published.iter().any(|k| k.starts_with("tokenize")), "a tokenize artifact: {published:?}");

    // Fixed, the run tokenizes the files the failure stopped, not those built before it.
    write_real_docs(&root.join("many/part-6.jsonl"), 600, 100);
    write_real_docs(&root.join("many/part-8.jsonl"), 800, 100);
    let (code, stderr) = run();
    assert_eq!(code, Some(0), "{stderr}");
    let built: usize = stderr
        .split("tokenized ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no notice of cached files: {stderr}"));
    assert!((2..=4).contains(&built), "files 0-5 were kept: {stderr}");
}
