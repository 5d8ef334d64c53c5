//! Tests of `cptc::data::ingest`: data-driven error cases (fixture folders with a `case.json`,
//! reports and diagnostics snapshotted), compressed jsonl and parquet from real corpus slices.

mod data_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cptc::data::ingest::{IngestOptions, read_corpus};
use cptc::recipe::{Format, Template, TemplatePart, TextSource};
use data_common::{corpus, field, real, real_lines, real_texts, render};
use serde_json::{Value, json};

/// Parses `{name}` placeholders the way the checker does for these simple templates.
fn template(text: &str) -> TextSource {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').unwrap() + open;
        parts.push(TemplatePart::Field(rest[open + 1..close].to_string()));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    TextSource::Template(Template { text: text.to_string(), parts, loss_on: Vec::new() })
}

fn run_case(case: &Path) -> String {
    let dir = case.parent().unwrap();
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(case).unwrap()).unwrap();
    let format = match spec["format"].as_str().unwrap() {
        "jsonl" => Format::Jsonl,
        "text" => Format::Text,
        _ => Format::Parquet,
    };
    let text = match spec["template"].as_str() {
        Some(t) => template(t),
        None => field(spec["text"].as_str().unwrap()),
    };
    let files: Vec<PathBuf> = spec["files"].as_array().unwrap().iter().map(|f| dir.join(f.as_str().unwrap())).collect();
    let mut opts = IngestOptions { strict: spec["strict"].as_bool().unwrap_or(false), ..Default::default() };
    if let Some(m) = spec["max_record_bytes"].as_u64() {
        opts.max_record_bytes = m as usize;
    }
    let c = corpus(dir.file_name().unwrap().to_str().unwrap(), files, format, text);
    match read_corpus(&c, &opts) {
        Ok(ing) => {
            let docs: Vec<Value> =
                ing.docs.iter().map(|d| json!({"file": d.file, "line": d.line, "text": d.text})).collect();
            serde_json::to_string_pretty(&json!({"report": ing.report, "docs": docs})).unwrap()
        }
        Err(e) => render(&e),
    }
}

#[test]
fn ingest_cases() {
    insta::glob!("fixtures/data/ingest/*/case.json", |path| {
        // Paths in reports are relative to the crate root, as the tests run there.
        let rel = path.strip_prefix(std::env::current_dir().unwrap()).unwrap_or(path);
        insta::assert_snapshot!(run_case(rel));
    });
}

/// The same real documents read from plain, gzip and zstd jsonl (misnamed on purpose: the
/// compression is sniffed from the bytes).
#[test]
fn compressed_jsonl_reads_the_same() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let lines = real_lines("zh_poetry", 300).join("\n") + "\n";
    let plain = tmp.path().join("a.jsonl");
    std::fs::write(&plain, &lines).unwrap();
    let gz = tmp.path().join("b.jsonl");
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    e.write_all(lines.as_bytes()).unwrap();
    e.finish().unwrap();
    let zst = tmp.path().join("c.jsonl.zst");
    std::fs::write(&zst, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
    // As `zstd --long=28` streams it: a 256 MB window in the frame header, past the decoder's
    // default limit of 128 MB (the way large corpora are compressed well).
    let long = tmp.path().join("e.jsonl.zst");
    let mut e = zstd::stream::write::Encoder::new(std::fs::File::create(&long).unwrap(), 3).unwrap();
    e.long_distance_matching(true).unwrap();
    e.window_log(28).unwrap();
    e.write_all(lines.as_bytes()).unwrap();
    e.finish().unwrap();
    // As `pzstd` writes it: a skippable frame (the next frame's size) before the zstd frame.
    let skippable = tmp.path().join("f.jsonl.zst");
    let frame = zstd::encode_all(lines.as_bytes(), 3).unwrap();
    let mut bytes = vec![0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0];
    bytes.extend((frame.len() as u32).to_le_bytes());
    bytes.extend(frame);
    std::fs::write(&skippable, bytes).unwrap();
    // Two gzip members, then the zero padding a tape or block writer leaves (`gzip -d` reads it).
    let padded = tmp.path().join("d.jsonl.gz");
    let (first, second) = lines.split_at(lines.len() / 2);
    let mut bytes = Vec::new();
    for half in [first, second] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(half.as_bytes()).unwrap();
        bytes.extend(e.finish().unwrap());
    }
    bytes.extend([0u8; 512]);
    std::fs::write(&padded, &bytes).unwrap();

    let read = |p: &Path| {
        let c = corpus("poetry", vec![p.to_path_buf()], Format::Jsonl, field("text"));
        read_corpus(&c, &IngestOptions::default()).unwrap()
    };
    let want = real_texts("zh_poetry", 300);
    for p in [&plain, &gz, &zst, &padded, &long, &skippable] {
        let got = read(p);
        assert_eq!(got.docs.iter().map(|d| d.text.clone()).collect::<Vec<_>>(), want, "{}", p.display());
        assert_eq!(got.report.documents, 300);
        assert_eq!(got.report.skipped.total(), 0);
    }
}

/// A compressed file damaged or cut short fails its corpus naming the codec, the file and the
/// lines read whole before the damage; so does anything but zero padding after a gzip member.
#[test]
fn damaged_compressed_files_name_where_they_break() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let lines = real_lines("zh_poetry", 2000).join("\n") + "\n";
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(lines.as_bytes()).unwrap();
    let gz = e.finish().unwrap();
    let zst = zstd::encode_all(lines.as_bytes(), 3).unwrap();
    let mut garbage = gz.clone();
    garbage.extend([0, 0, 0, 7]);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("cut.jsonl.gz", gz[..gz.len() / 2].to_vec(), "gzip"),
        ("cut.jsonl.zst", zst[..zst.len() / 2].to_vec(), "zstd"),
        ("garbage.jsonl.gz", garbage, "gzip"),
    ];
    for (name, bytes, codec) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let c = corpus("poetry", vec![path.clone()], Format::Jsonl, field("text"));
        let Err(e) = read_corpus(&c, &IngestOptions::default()) else { panic!("{name} read") };
        let text = e.to_string();
        assert!(text.starts_with(&format!("cannot decompress `{}` ({codec}) past line ", path.display())), "{text}");
        let line: u64 = text.rsplit(' ').next().unwrap().parse().unwrap();
        let whole = if name.starts_with("garbage") { 2000 } else { 1 };
        assert!(line >= whole && line <= 2000, "{name}: {text}");
    }
}

/// Several files keep their order and their 1-based line numbers.
#[test]
fn multi_file_lines_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.jsonl");
    let b = tmp.path().join("b.jsonl");
    std::fs::write(&a, real_lines("hpo", 5).join("\n")).unwrap();
    std::fs::write(&b, real_lines("austen", 2).join("\n")).unwrap();
    let c = corpus("mix", vec![a, b], Format::Jsonl, field("text"));
    let ing = read_corpus(&c, &IngestOptions::default()).unwrap();
    let where_: Vec<(u32, u64)> = ing.docs.iter().map(|d| (d.file, d.line)).collect();
    assert_eq!(where_, vec![(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 1), (1, 2)]);
    let bytes: u64 = ing.docs.iter().map(|d| d.text.len() as u64).sum();
    assert_eq!(ing.report.bytes, bytes);
}

/// A Hugging Face style parquet file (optional string columns) written from real documents,
/// with one null text and one invalid UTF-8 value, read by field and by template.
#[test]
fn parquet_hf_layout() {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train-00000-of-00001.parquet");
    let schema = Arc::new(
        parse_message_type("message schema { optional binary text (UTF8); optional binary source (UTF8); }").unwrap(),
    );
    let texts = real_texts("hpo", 40);
    let mut w = SerializedFileWriter::new(
        std::fs::File::create(&path).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    // Two row groups of 20 rows; row 5 is null, row 27 holds invalid UTF-8.
    for group in 0..2 {
        let mut rg = w.next_row_group().unwrap();
        let rows = group * 20..group * 20 + 20;
        let mut col = rg.next_column().unwrap().unwrap();
        let mut vals = Vec::new();
        let mut defs = Vec::new();
        for r in rows.clone() {
            if r == 4 {
                defs.push(0);
            } else if r == 26 {
                defs.push(1);
                vals.push(ByteArray::from(vec![b'o', b'k', 0xff, 0xfe]));
            } else {
                defs.push(1);
                vals.push(ByteArray::from(texts[r].as_str()));
            }
        }
        col.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None).unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let src: Vec<ByteArray> = rows.map(|r| ByteArray::from(format!("hpo/{r}").as_str())).collect();
        col.typed::<ByteArrayType>().write_batch(&src, Some(&[1; 20]), None).unwrap();
        col.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();

    let c = corpus("hpo", vec![path.clone()], Format::Parquet, field("text"));
    let ing = read_corpus(&c, &IngestOptions::default()).unwrap();
    let want: Vec<&String> = texts.iter().enumerate().filter(|(i, _)| *i != 4 && *i != 26).map(|(_, t)| t).collect();
    assert_eq!(ing.docs.iter().map(|d| &d.text).collect::<Vec<_>>(), want);
    assert_eq!(ing.docs[4].line, 6, "rows are numbered from 1 and skip nothing");
    assert_eq!(ing.report.skipped.missing_field, 1);
    assert_eq!(ing.report.skipped.invalid_utf8, 1);
    let issues: Vec<(u64, String)> = ing.report.issues.iter().map(|i| (i.line, i.detail.clone())).collect();
    assert_eq!(
        issues,
        vec![(5, "field `text` is null".to_string()), (27, "invalid UTF-8 in field `text` at byte 3".to_string())]
    );

    let c = corpus("hpo", vec![path.clone()], Format::Parquet, template("[{source}] {text}"));
    let ing = read_corpus(&c, &IngestOptions::default()).unwrap();
    assert_eq!(ing.docs[0].text, format!("[hpo/0] {}", texts[0]));

    // A column that does not exist: every row counted, one issue listed, then an empty corpus.
    let c = corpus("hpo", vec![path.clone()], Format::Parquet, field("content"));
    let err = read_corpus(&c, &IngestOptions::default()).unwrap_err();
    insta::assert_snapshot!(render(&err));
    let strict = IngestOptions { strict: true, ..Default::default() };
    let err = read_corpus(&c, &strict).unwrap_err();
    assert!(
        err.to_string().ends_with(".parquet:1: missing field `content` (40 rows; the columns are `text`, `source`)"),
        "{err}"
    );

    // A file of no rows skips nothing, whatever its columns lack.
    let empty = tmp.path().join("train-00001-of-00002.parquet");
    let schema = Arc::new(parse_message_type("message schema { optional binary source (UTF8); }").unwrap());
    SerializedFileWriter::new(
        std::fs::File::create(&empty).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap()
    .close()
    .unwrap();
    let c = corpus("hpo", vec![path.clone(), empty], Format::Parquet, field("text"));
    let ing = read_corpus(&c, &IngestOptions::default()).unwrap();
    assert_eq!((ing.report.documents, ing.report.skipped.total()), (38, 2), "{:?}", ing.report);
}

/// A parquet file of schema `message` and one row group, its columns written by `write`.
fn one_row_group(
    path: &Path,
    message: &str,
    write: &dyn Fn(&mut parquet::file::writer::SerializedRowGroupWriter<'_, std::fs::File>),
) -> PathBuf {
    let schema = Arc::new(parquet::schema::parser::parse_message_type(message).unwrap());
    let props = Arc::new(parquet::file::properties::WriterProperties::builder().build());
    let mut w =
        parquet::file::writer::SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    write(&mut rg);
    rg.close().unwrap();
    w.close().unwrap();
    path.to_path_buf()
}

/// Writes the row group's next column (required, flat).
fn next_column<T: parquet::data_type::DataType>(
    rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, std::fs::File>,
    values: &[T::T],
) {
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<T>().write_batch(values, None, None).unwrap();
    col.close().unwrap();
}

/// A parquet file in a jsonl corpus is refused naming what it is and the setting that reads it,
/// not read as lines of invalid text.
#[test]
fn a_parquet_file_in_a_jsonl_corpus_is_named() {
    use parquet::data_type::{ByteArray, ByteArrayType};

    let tmp = tempfile::tempdir().unwrap();
    let texts: Vec<ByteArray> = real_texts("hpo", 10).iter().map(|t| ByteArray::from(t.as_str())).collect();
    let path = one_row_group(&tmp.path().join("train.jsonl"), "message m { required binary text (UTF8); }", &|rg| {
        next_column::<ByteArrayType>(rg, &texts)
    });
    let c = corpus("hpo", vec![path.clone()], Format::Jsonl, field("text"));
    let Err(e) = read_corpus(&c, &IngestOptions::default()) else { panic!("a parquet file read as jsonl") };
    assert_eq!(e.to_string(), format!("`{}` is a parquet file: cptc cannot read it as jsonl", path.display()));
    let help = miette::Diagnostic::help(&e).map(|h| h.to_string()).unwrap_or_default();
    assert!(help.contains("format = parquet"), "{help}");
}

/// Number and boolean columns serve a split key and a template as a jsonl record's numbers
/// and booleans do: the same documents, the same keys, from either format.
#[test]
fn parquet_scalars_read_as_jsonl_numbers_do() {
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};

    let tmp = tempfile::tempdir().unwrap();
    let texts = real_texts("hpo", 30);
    let ids: Vec<i64> = (0..30).map(|i| 1_000_000_007 * (i % 7)).collect();
    let scores: Vec<f64> = (0..30).map(|i| f64::from(i) / 8.0).collect();
    let flags: Vec<bool> = (0..30).map(|i| i % 3 == 0).collect();
    let jsonl = tmp.path().join("a.jsonl");
    let lines: Vec<String> = (0..30)
        .map(|i| json!({ "text": texts[i], "id": ids[i], "score": scores[i], "flag": flags[i] }).to_string())
        .collect();
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let text: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(t.as_str())).collect();
    let parquet = one_row_group(
        &tmp.path().join("a.parquet"),
        "message schema { required binary text (UTF8); required int64 id; required double score; required boolean flag; }",
        &|rg| {
            next_column::<ByteArrayType>(rg, &text);
            next_column::<Int64Type>(rg, &ids);
            next_column::<DoubleType>(rg, &scores);
            next_column::<BoolType>(rg, &flags);
        },
    );

    let opts = IngestOptions { split_by: Some("id".into()), ..Default::default() };
    let read = |path: &Path, format: Format| {
        let c = corpus("hpo", vec![path.to_path_buf()], format, template("{text} (score {score}, flag {flag})"));
        let ing = read_corpus(&c, &opts).unwrap();
        ing.docs.iter().map(|d| (d.text.clone(), d.split_key.clone())).collect::<Vec<_>>()
    };
    let (from_jsonl, from_parquet) = (read(&jsonl, Format::Jsonl), read(&parquet, Format::Parquet));
    assert_eq!(from_jsonl.len(), 30);
    assert_eq!(from_parquet, from_jsonl);
    assert_eq!(from_parquet[1].1.as_deref(), Some("1000000007"));
    assert!(from_parquet[2].0.ends_with("(score 0.25, flag false)"), "{}", from_parquet[2].0);

    // Annotations count: an unsigned int32 past 2^31, a float as its own shortest digits; a
    // date stored as an int32 is refused, naming its column.
    use parquet::data_type::{FloatType, Int32Type};
    let scalars = one_row_group(
        &tmp.path().join("u.parquet"),
        "message schema { required int32 u (UINT_32); required float f; }",
        &|rg| {
            next_column::<Int32Type>(rg, &[3_000_000_000u32 as i32]);
            next_column::<FloatType>(rg, &[0.1]);
        },
    );
    let c = corpus("typed", vec![scalars], Format::Parquet, template("{u} {f}"));
    assert_eq!(read_corpus(&c, &IngestOptions::default()).unwrap().docs[0].text, "3000000000 0.1");
    let dates = one_row_group(&tmp.path().join("d.parquet"), "message schema { required int32 d (DATE); }", &|rg| {
        next_column::<Int32Type>(rg, &[19_000]);
    });
    let c = corpus("typed", vec![dates], Format::Parquet, template("{d}"));
    let err = read_corpus(&c, &IngestOptions::default()).unwrap_err().to_string();
    assert!(err.contains("column `d` is Date, not a flat string, number or boolean column"), "{err}");
}

#[test]
fn a_corpus_without_usable_documents_says_why_and_what_the_records_hold() {
    // Real records whose text sits under another name than the recipe says.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("renamed.jsonl");
    let lines: String = real_lines("hpo", 5)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!("{}\n", json!({ "content": v["text"], "source": v["source"] }))
        })
        .collect();
    std::fs::write(&path, lines + "not json\n").unwrap();
    let c = corpus("renamed", vec![path], Format::Jsonl, field("text"));
    let err = read_corpus(&c, &IngestOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("6 records skipped: 5 missing field, 1 invalid JSON"), "{message}");
    let help = miette::Diagnostic::help(&err).map(|h| h.to_string()).unwrap_or_default();
    assert!(help.contains("renamed.jsonl:1: missing field `text` (the record has `content`, `source`)"), "{help}");
}

#[test]
fn unreadable_files_are_io_errors() {
    let c = corpus("gone", vec![PathBuf::from("tests/fixtures/data/no_such_file.jsonl")], Format::Jsonl, field("text"));
    insta::assert_snapshot!(render(&read_corpus(&c, &IngestOptions::default()).unwrap_err()));
    let c = corpus("notparquet", vec![real("hpo")], Format::Parquet, field("text"));
    let e = read_corpus(&c, &IngestOptions::default()).unwrap_err();
    assert!(render(&e).contains("cptc::data::parquet"), "{}", render(&e));
}

/// The instruction set the setup builds from the ontology (`hpo_qa`): one question per term of
/// the `hpo` corpus, answered by that term's definition; read through an SFT template, each
/// record renders as the question, a line break and the `hpo` document's definition.
#[test]
fn the_ontology_instruction_set_answers_each_term_with_its_definition() {
    let read = |path: PathBuf| -> Vec<Value> {
        let text = std::fs::read_to_string(path).expect("run scripts/setup.sh to extract the corpora");
        text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
    };
    let (qa, hpo) = (read(real("hpo_qa")), read(real("hpo")));
    assert_eq!(qa.len(), hpo.len(), "one question per term");
    for (q, h) in qa.iter().zip(&hpo) {
        assert_eq!(q["source"], h["source"]);
        let (name, definition) = h["text"].as_str().expect("text").split_once('\n').expect("name, then definition");
        assert_eq!(q["answer"].as_str(), Some(definition), "{}", q["source"]);
        assert!(q["question"].as_str().is_some_and(|s| s.contains(name)), "{q}");
    }
    let c = corpus("qa", vec![real("hpo_qa")], Format::Jsonl, template("{question}\n{answer}"));
    let ing = read_corpus(&c, &IngestOptions::default()).unwrap();
    assert_eq!(ing.docs.len(), qa.len());
    assert_eq!(
        ing.docs[0].text,
        format!("{}\n{}", qa[0]["question"].as_str().unwrap(), qa[0]["answer"].as_str().unwrap())
    );
}
