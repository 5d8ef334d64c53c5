//! Tests of `cptc::data::{tokenize, shard}`: real corpus slices tokenized with GPT-2 (uint16
//! shards) and Qwen3 (int32 shards), read back by cptc and by megatron-core's own
//! `IndexedDataset` (`tests/python/data_megatron_read.py`), stats snapshotted, and damaged
//! indexes refused with diagnostics.

mod data_common;

use std::path::Path;
use std::process::Command;

use cptc::data::shard::{ShardReader, ShardWriter, TokenDtype};
use cptc::data::tokenize::{
    CorpusStats, TokenizeOptions, eos_from_config, eos_token, load_tokenizer, tokenize_corpus, write_json,
};
use data_common::{gpt2, qwen3, real_texts, render};
use serde_json::{Value, json};
use tokenizers::Tokenizer;

/// A mixed slice: Chinese poetry, medical definitions, a Python source file.
fn texts() -> Vec<String> {
    let mut t = real_texts("zh_poetry", 40);
    t.extend(real_texts("hpo", 40));
    t.extend(real_texts("pycode", 2));
    t
}

fn expected(tok: &Tokenizer, texts: &[String], eos: Option<u32>) -> Vec<Vec<u32>> {
    texts
        .iter()
        .map(|t| {
            let mut ids = tok.encode(t.as_str(), false).unwrap().get_ids().to_vec();
            ids.extend(eos);
            ids
        })
        .collect()
}

fn stats_view(s: &CorpusStats) -> Value {
    let mut v = serde_json::to_value(s).unwrap();
    // Temporary folders differ per run.
    v["bin"] = Value::from(s.bin.file_name().unwrap().to_str().unwrap());
    v["idx"] = Value::from(s.idx.file_name().unwrap().to_str().unwrap());
    v
}

#[test]
fn shards_match_tokenizer_and_megatron() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = texts();
    let mut prefixes = Vec::new();
    let mut want = Vec::new();
    let mut stats = Vec::new();
    for (name, tok) in [("gpt2", gpt2()), ("qwen3", qwen3())] {
        let eos = eos_token(tok.reference());
        assert!(eos.is_some(), "{name} has an end-of-text token");
        let prefix = tmp.path().join(name);
        // A small batch so several parallel batches are written.
        let opts = TokenizeOptions { eos, batch_bytes: 64 << 10, ..Default::default() };
        let st = tokenize_corpus(tok, "mixed", &texts, &prefix, &opts).unwrap();
        let ids = expected(tok.reference(), &texts, eos);
        assert_eq!(st.tokens, ids.iter().map(|d| d.len() as u64).sum::<u64>());
        assert_eq!(st.bytes, texts.iter().map(|t| t.len() as u64).sum::<u64>());
        let r = ShardReader::open(&prefix).unwrap();
        assert_eq!(r.len(), texts.len());
        for (i, d) in ids.iter().enumerate() {
            assert_eq!(&r.read_doc(i).unwrap(), d, "{name} doc {i}");
        }
        // Nothing written aside stays: no `.partial` of the ids, the index or the lengths.
        let aside: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(aside.is_empty(), "{aside:?}");
        let json = tmp.path().join(format!("{name}.stats.json"));
        write_json(&st, &json).unwrap();
        let back: CorpusStats = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(back, st);
        stats.push(stats_view(&st));
        prefixes.push(prefix);
        want.push(ids);
    }
    assert_eq!(ShardReader::open(&prefixes[0]).unwrap().dtype(), TokenDtype::U16);
    assert_eq!(ShardReader::open(&prefixes[1]).unwrap().dtype(), TokenDtype::I32);
    insta::assert_json_snapshot!(stats);

    let out = Command::new(".venv/bin/python")
        .arg("tests/python/data_megatron_read.py")
        .args(&prefixes)
        .output()
        .expect("run the megatron-core reader");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for ((v, ids), dtype) in lines.iter().zip(&want).zip(["uint16", "int32"]) {
        assert_eq!(v["dtype"], dtype);
        assert_eq!(v["sequences"], ids.len());
        let docs: Vec<u64> = (0..=ids.len() as u64).collect();
        assert_eq!(v["document_indices"], serde_json::json!(docs));
        let got: Vec<Vec<u32>> = serde_json::from_value(v["ids"].clone()).unwrap();
        assert_eq!(&got, ids);
        assert_eq!(v["first_partial"], serde_json::json!(&ids[0][1..4]));
    }
}

#[test]
fn eos_is_optional() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = real_texts("hpo", 10);
    let prefix = tmp.path().join("noeos");
    let st = tokenize_corpus(gpt2(), "hpo", &texts, &prefix, &TokenizeOptions::default()).unwrap();
    let r = ShardReader::open(&prefix).unwrap();
    assert_eq!(r.read_doc(3).unwrap(), expected(gpt2().reference(), &texts[3..4], None)[0]);
    assert_eq!(st.eos, None);
}

#[test]
fn eos_from_a_model_config() {
    assert_eq!(eos_from_config(&json!({ "eos_token_id": 2 })), Some(2));
    assert_eq!(eos_from_config(&json!({ "eos_token_id": [128_001, 128_009] })), Some(128_001));
    assert_eq!(eos_from_config(&json!({ "eos_token_id": null })), None);
    assert_eq!(eos_from_config(&json!({ "bos_token_id": 1 })), None);
}

#[test]
fn ids_past_a_gap_choose_the_dtype() {
    // New tokens placed after spare embedding rows leave a gap in the ids: the dtype follows
    // the largest id (70,000 here), not the count of tokens (GPT-2's 50,257).
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string("data/tokenizers/gpt2/tokenizer.json").unwrap()).unwrap();
    json["model"]["vocab"]["Ġthe"] = json!(70_000);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let tok = load_tokenizer(&path).unwrap();
    let texts = real_texts("hpo", 20);
    let prefix = tmp.path().join("gap");
    let opts = TokenizeOptions { eos: eos_token(tok.reference()), ..Default::default() };
    let st = tokenize_corpus(&tok, "hpo", &texts, &prefix, &opts).unwrap();
    assert_eq!((st.dtype.as_str(), st.vocab_size), ("int32", 70_001));
    let r = ShardReader::open(&prefix).unwrap();
    let docs: Vec<Vec<u32>> = (0..r.len()).map(|i| r.read_doc(i).unwrap()).collect();
    assert!(docs.iter().any(|d| d.contains(&70_000)), "\" the\" is in the text");
    assert_eq!(docs, expected(tok.reference(), &texts, opts.eos));
}

#[test]
fn a_failed_finish_leaves_nothing_half_done() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("s");
    // A directory where the index goes: the old index cannot be removed, so nothing is renamed.
    std::fs::create_dir(tmp.path().join("s.idx")).unwrap();
    let mut w = ShardWriter::create(&prefix, 1000).unwrap();
    w.add_document(&[1, 2, 3]).unwrap();
    let e = w.finish().unwrap_err();
    assert!(e.to_string().contains("s.idx"), "{e}");
    let left: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["s.idx"], "no .bin without its .idx, no temporary file");
}

#[test]
fn a_writer_that_cannot_start_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory where the lengths go aside: the ids' file is created first, then removed.
    std::fs::create_dir(tmp.path().join("s.idx.lengths.partial")).unwrap();
    let Err(e) = ShardWriter::create(&tmp.path().join("s"), 1000) else { panic!("the writer started") };
    assert!(e.to_string().contains("s.idx.lengths.partial"), "{e}");
    let left: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["s.idx.lengths.partial"], "no .bin.partial left behind");
}

#[test]
fn writer_refuses_ids_beyond_dtype_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("small");
    let mut w = ShardWriter::create(&prefix, 50_257).unwrap();
    w.add_document(&[1, 2, 3]).unwrap();
    let e = w.add_document(&[1, 70_000]).unwrap_err();
    insta::assert_snapshot!(render(&e));
    drop(w);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "an unfinished shard leaves no file");
}

/// A shard listing its pairs (`.parts`), as the tokenize stage assembles it: sequences are
/// found across pairs whose sizes are not multiples of the reader's offset marks, in files
/// whose dtype is int32 (ids past uint16).
#[test]
fn a_shard_of_parts_reads_every_sequence_where_it_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut written: Vec<Vec<u32>> = Vec::new();
    let mut names = Vec::new();
    for (k, docs) in [50usize, 100, 1, 77].into_iter().enumerate() {
        let name = format!("part{k}");
        let mut w = ShardWriter::create(&tmp.path().join(&name), 100_000).unwrap();
        for d in 0..docs {
            let doc: Vec<u32> = (0..(d * 7 + k) % 23 + 1).map(|t| (70_000 + k * 1000 + d * 31 + t) as u32).collect();
            w.add_document(&doc).unwrap();
            written.push(doc);
        }
        w.finish().unwrap();
        names.push(name);
    }
    let prefix = tmp.path().join("train");
    cptc::data::parts_list::write(&prefix, &names).unwrap();
    let r = ShardReader::open(&prefix).unwrap();
    assert_eq!((r.len(), r.dtype()), (written.len(), TokenDtype::I32));
    assert_eq!(r.num_tokens(), written.iter().map(|d| d.len() as u64).sum::<u64>());
    for (i, doc) in written.iter().enumerate() {
        assert_eq!(&r.read_doc(i).unwrap(), doc, "sequence {i}");
    }
    let mut tail = Vec::new();
    r.read_range(130, 2, written[130].len() as u32 - 2, &mut tail).unwrap();
    assert_eq!(tail, written[130][2..]);
}

/// Megatron's format lets pointers put sequences anywhere in `.bin`; a shard whose sequences
/// are not back to back is read where its pointers say.
#[test]
fn sequences_out_of_order_are_read_where_their_pointers_say() {
    let tmp = tempfile::tempdir().unwrap();
    let (prefix, idx) = two_documents(tmp.path());
    // The same `.bin`, indexed the other way round: [8] first, then [5, 6, 7].
    let mut bytes = std::fs::read(&idx).unwrap();
    bytes[34..38].copy_from_slice(&1i32.to_le_bytes());
    bytes[38..42].copy_from_slice(&3i32.to_le_bytes());
    bytes[42..50].copy_from_slice(&6i64.to_le_bytes());
    bytes[50..58].copy_from_slice(&0i64.to_le_bytes());
    std::fs::write(&idx, bytes).unwrap();
    let r = ShardReader::open(&prefix).unwrap();
    assert_eq!((r.read_doc(0).unwrap(), r.read_doc(1).unwrap()), (vec![8], vec![5, 6, 7]));
}

/// Writes the shard `dir/s` of two documents, [5, 6, 7] and [8] (uint16); returns its prefix
/// and its `.idx`.
fn two_documents(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let prefix = dir.join("s");
    let mut w = ShardWriter::create(&prefix, 1000).unwrap();
    w.add_document(&[5, 6, 7]).unwrap();
    w.add_document(&[8]).unwrap();
    w.finish().unwrap();
    (prefix, dir.join("s.idx"))
}

/// Writes a valid two-document shard, applies `damage` to its index, and renders the refusal.
fn damaged(damage: impl Fn(&mut Vec<u8>)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let (prefix, idx) = two_documents(tmp.path());
    let mut bytes = std::fs::read(&idx).unwrap();
    damage(&mut bytes);
    std::fs::write(&idx, bytes).unwrap();
    let e = ShardReader::open(&prefix).unwrap_err();
    render(&e).replace(&tmp.path().display().to_string(), "<tmp>")
}

#[test]
fn damaged_indexes() {
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("bad_magic", Box::new(|b| b[0] = b'X')),
        ("truncated_header", Box::new(|b| b.truncate(20))),
        ("version_2", Box::new(|b| b[9] = 2)),
        ("dtype_float", Box::new(|b| b[17] = 6)),
        ("huge_count", Box::new(|b| b[18..26].copy_from_slice(&u64::MAX.to_le_bytes()))),
        ("negative_length", Box::new(|b| b[34..38].copy_from_slice(&(-1i32).to_le_bytes()))),
        ("pointer_past_end", Box::new(|b| b[50..58].copy_from_slice(&1000i64.to_le_bytes()))),
        (
            "document_indices_descending",
            Box::new(|b| {
                b[66..74].copy_from_slice(&2i64.to_le_bytes());
                b[74..82].copy_from_slice(&1i64.to_le_bytes());
            }),
        ),
    ];
    let mut out = String::new();
    for (name, f) in cases {
        out.push_str(&format!("## {name}\n{}\n", damaged(f)));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn missing_shard_is_io_error() {
    let e = ShardReader::open(Path::new("tests/fixtures/data/no_such_shard")).unwrap_err();
    insta::assert_snapshot!(render(&e));
}
