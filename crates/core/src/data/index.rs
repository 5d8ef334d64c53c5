//! The per-document index of a corpus (`docs.index`): where each kept document is in the source
//! files and its normalized content hash, in corpus order, without the text.
//!
//! Layout (little-endian): the magic `CPTCDOC1`, then one 52-byte record per document: u32 file
//! (index into the corpus' sorted file list), u64 record (1-based line or parquet row), u64
//! bytes (UTF-8 bytes of the document's text), 32 bytes blake3 of the normalized text
//! ([`super::split::doc_hash`]). Written aside and renamed into place; read as a stream, so a
//! corpus of any size is indexed and split in bounded memory.
//!
//! A corpus' index is its files' indexes one after the other: where `<path>.parts` exists, it
//! lists them (paths relative to its folder), each written with file 0, and the reader gives
//! each record its part's position as its file. The ingest stage lists its files' parts so
//! (hard links) instead of copying them into one file: 52 bytes a document, 6% of the store
//! on the benchmark corpora, and a second of each run at 20 GB.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::error::DataError;

const MAGIC: &[u8; 8] = b"CPTCDOC1";
const RECORD: usize = 4 + 8 + 8 + 32;

/// One document of the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocEntry {
    pub file: u32,
    pub record: u64,
    pub bytes: u64,
    pub hash: [u8; 32],
}

/// Writes `docs.index` record by record.
pub struct IndexWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    count: u64,
}

impl IndexWriter {
    pub fn create(path: &Path) -> Result<IndexWriter, DataError> {
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        let f = File::create(&tmp).map_err(|e| DataError::io("create", &tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        out.write_all(MAGIC).map_err(|e| DataError::io("write", &tmp, e))?;
        Ok(IndexWriter { path: path.to_path_buf(), tmp, out: Some(out), count: 0 })
    }

    pub fn push(&mut self, d: &DocEntry) -> Result<(), DataError> {
        let mut rec = [0u8; RECORD];
        rec[..4].copy_from_slice(&d.file.to_le_bytes());
        rec[4..12].copy_from_slice(&d.record.to_le_bytes());
        rec[12..20].copy_from_slice(&d.bytes.to_le_bytes());
        rec[20..].copy_from_slice(&d.hash);
        let tmp = &self.tmp;
        let out = self.out.as_mut().ok_or_else(|| DataError::io("write", tmp, std::io::Error::other("closed")))?;
        out.write_all(&rec).map_err(|e| DataError::io("write", tmp, e))?;
        self.count += 1;
        Ok(())
    }

    /// Flushes and renames into place; returns the number of documents.
    ///
    /// Not fsynced, like every file of the store (ARCHITECTURE.md: complete against a killed
    /// process, not a power cut; `cache verify` finds what a power cut damaged): a sync here
    /// waited on the shards' dirty pages too, up to 0.25 s per file on the 3 GB benchmark.
    pub fn finish(mut self) -> Result<u64, DataError> {
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(|e| DataError::io("write", &self.tmp, e))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| DataError::io("rename", &self.tmp, e))?;
        Ok(self.count)
    }
}

impl Drop for IndexWriter {
    fn drop(&mut self) {
        // Unfinished: leave no partial file behind.
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Streams the records of a `docs.index` (one file, or the parts its `.parts` lists).
pub struct IndexReader {
    path: PathBuf,
    /// `None`: an index of no parts.
    r: Option<BufReader<File>>,
    /// Parts still to read, after the current one; empty for a single file.
    rest: std::vec::IntoIter<PathBuf>,
    /// The current part's position (its records' file); `None` for a single file.
    part: Option<u32>,
}

impl IndexReader {
    pub fn open(path: &Path) -> Result<IndexReader, DataError> {
        IndexReader::open_at(path, 0)
    }

    /// [`open`](Self::open), positioned at document `first` (0-based).
    pub fn open_at(path: &Path, first: u64) -> Result<IndexReader, DataError> {
        let Some(listed) = super::parts_list::read(path)? else {
            let r = open_file(path, first)?;
            return Ok(IndexReader { path: path.to_path_buf(), r: Some(r), rest: Vec::new().into_iter(), part: None });
        };
        let parts: Vec<PathBuf> = listed.into_iter().map(|(_, p)| p).collect();
        // Whole parts before `first` are skipped by their sizes, unopened.
        let mut skip = first;
        let mut k = 0;
        while k + 1 < parts.len() {
            let len = std::fs::metadata(&parts[k]).map_err(|e| DataError::io("read", &parts[k], e))?.len();
            let records = len.saturating_sub(MAGIC.len() as u64) / RECORD as u64;
            if skip < records {
                break;
            }
            skip -= records;
            k += 1;
        }
        let list = super::parts_list::path(path);
        let part_no =
            u32::try_from(k).map_err(|_| DataError::io("read", &list, std::io::Error::other("too many parts")))?;
        let mut rest = parts.into_iter();
        let Some(path) = rest.nth(k) else {
            return Ok(IndexReader { path: list, r: None, rest, part: None });
        };
        let r = open_file(&path, skip)?;
        Ok(IndexReader { path, r: Some(r), rest, part: Some(part_no) })
    }

    /// Moves on to the next part; false when there is none.
    fn next_part(&mut self) -> Result<bool, DataError> {
        let Some(next) = self.rest.next() else { return Ok(false) };
        let r = open_file(&next, 0)?;
        self.r = Some(r);
        self.path = next;
        self.part = self.part.map(|k| k + 1);
        Ok(true)
    }
}

/// One index file, its magic checked, positioned at its record `first` (past its end when it
/// has fewer).
fn open_file(path: &Path, first: u64) -> Result<BufReader<File>, DataError> {
    use std::io::Seek as _;
    let f = File::open(path).map_err(|e| DataError::io("open", path, e))?;
    let len = f.metadata().map_err(|e| DataError::io("read", path, e))?.len();
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| DataError::io("read", path, e))?;
    if &magic != MAGIC {
        return Err(DataError::io("read", path, std::io::Error::other("not a cptc document index")));
    }
    let records = (len - MAGIC.len() as u64) / RECORD as u64;
    if first > 0 {
        let offset = first.min(records) * RECORD as u64 + MAGIC.len() as u64;
        r.seek(std::io::SeekFrom::Start(offset)).map_err(|e| DataError::io("seek", path, e))?;
    }
    Ok(r)
}

impl Iterator for IndexReader {
    type Item = Result<DocEntry, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut rec = [0u8; RECORD];
        let mut got = 0;
        while got < RECORD {
            let r = self.r.as_mut()?;
            match r.read(&mut rec[got..]) {
                Ok(0) if got == 0 => match self.next_part() {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                },
                Ok(0) => {
                    let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated record");
                    return Some(Err(DataError::io("read", &self.path, e)));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(DataError::io("read", &self.path, e))),
            }
        }
        let u64_at = |i: usize| u64::from_le_bytes(rec[i..i + 8].try_into().unwrap_or([0; 8]));
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&rec[20..]);
        Some(Ok(DocEntry {
            // A part's records say file 0: its position in the list is the file.
            file: self.part.unwrap_or_else(|| u32::from_le_bytes(rec[..4].try_into().unwrap_or([0; 4]))),
            record: u64_at(4),
            bytes: u64_at(12),
            hash,
        }))
    }
}
