//! A corpus' document index as a list of its files' indexes (`docs.index.parts`): read in
//! order, each record's file its part's position, positioned anywhere, and errors that name the
//! part at fault.

use std::path::Path;

use cptc::data::index::{DocEntry, IndexReader, IndexWriter};
use cptc::data::parts_list::write as write_parts;

/// A part's index: `n` documents, all of file 0 (as parts are written), records 1..=n, each
/// hash telling its part `tag` and record apart.
fn part(path: &Path, tag: u8, n: u64) {
    let mut w = IndexWriter::create(path).expect("create");
    for record in 1..=n {
        let mut hash = [tag; 32];
        hash[31] = record as u8;
        w.push(&DocEntry { file: 0, record, bytes: 10 * record, hash }).expect("push");
    }
    w.finish().expect("finish");
}

fn read(path: &Path, first: u64) -> Vec<(u32, u64, u8)> {
    IndexReader::open_at(path, first)
        .expect("open")
        .map(|d| d.expect("record"))
        .map(|d| (d.file, d.record, d.hash[0]))
        .collect()
}

#[test]
fn parts_read_in_order_each_record_with_its_files_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("index")).expect("mkdir");
    // The middle file had no documents.
    for (k, n) in [3, 0, 2].into_iter().enumerate() {
        part(&dir.path().join(format!("index/{k:05}.index")), k as u8 + 1, n);
    }
    let index = dir.path().join("docs.index");
    write_parts(&index, &["index/00000.index".into(), "index/00001.index".into(), "index/00002.index".into()])
        .expect("list");
    let all = vec![(0, 1, 1), (0, 2, 1), (0, 3, 1), (2, 1, 3), (2, 2, 3)];
    assert_eq!(read(&index, 0), all);
    for first in 0..=all.len() + 2 {
        assert_eq!(read(&index, first as u64), all[first.min(all.len())..], "from document {first}");
    }
    // The bytes and hashes come through whole.
    let last = IndexReader::open_at(&index, 4).expect("open").next().expect("one").expect("record");
    assert_eq!((last.bytes, last.hash[31]), (20, 2));
}

#[test]
fn a_single_file_keeps_its_own_file_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = dir.path().join("docs.index");
    let mut w = IndexWriter::create(&index).expect("create");
    for file in [0u32, 4, 7] {
        w.push(&DocEntry { file, record: 1, bytes: 1, hash: [9; 32] }).expect("push");
    }
    w.finish().expect("finish");
    assert_eq!(read(&index, 0), vec![(0, 1, 9), (4, 1, 9), (7, 1, 9)]);
    assert_eq!(read(&index, 2), vec![(7, 1, 9)]);
}

#[test]
fn an_empty_list_is_an_empty_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = dir.path().join("docs.index");
    write_parts(&index, &[]).expect("list");
    assert!(read(&index, 0).is_empty());
}

#[test]
fn a_missing_or_cut_part_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    part(&dir.path().join("a.index"), 1, 2);
    part(&dir.path().join("b.index"), 2, 2);
    let index = dir.path().join("docs.index");
    write_parts(&index, &["a.index".into(), "gone.index".into()]).expect("list");
    let err = IndexReader::open(&index).expect("open").find_map(Result::err).expect("an error");
    assert!(err.to_string().contains("gone.index"), "{err}");

    // Cut inside its last record.
    let b = dir.path().join("b.index");
    let len = std::fs::metadata(&b).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&b).and_then(|f| f.set_len(len - 5)).expect("cut");
    write_parts(&index, &["a.index".into(), "b.index".into()]).expect("list");
    let err = IndexReader::open(&index).expect("open").find_map(Result::err).expect("an error");
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(err.to_string().contains("b.index") && cause.contains("truncated"), "{err}: {cause}");
}
