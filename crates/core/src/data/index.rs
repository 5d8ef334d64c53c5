//! The per-document index of a corpus (`docs.index`): where each kept document is in the source
//! files and its normalized content hash, in corpus order, without the text.
//!
//! Layout (little-endian): the magic `CPTCDOC1`, then one 52-byte record per document: u32 file
//! (index into the corpus' sorted file list), u64 record (1-based line or parquet row), u64
//! bytes (UTF-8 bytes of the document's text), 32 bytes blake3 of the normalized text
//! ([`super::split::doc_hash`]). Written aside and renamed into place; read as a stream, so a
//! corpus of any size is indexed and split in bounded memory.

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

    /// Appends every record of the index at `part` with its file set to `file`, a block at a
    /// time (a corpus' index is its files' parts one after the other).
    pub fn append_part(&mut self, part: &Path, file: u32) -> Result<u64, DataError> {
        let mut r = IndexReader::open(part)?;
        let mut block = vec![0u8; RECORD * 16 * 1024];
        let mut added = 0;
        loop {
            let mut got = 0;
            while got < block.len() {
                match r.r.read(&mut block[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(DataError::io("read", part, e)),
                }
            }
            if got % RECORD != 0 {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated record");
                return Err(DataError::io("read", part, e));
            }
            for rec in block[..got].chunks_exact_mut(RECORD) {
                rec[..4].copy_from_slice(&file.to_le_bytes());
            }
            let tmp = &self.tmp;
            let out = self.out.as_mut().ok_or_else(|| DataError::io("write", tmp, std::io::Error::other("closed")))?;
            out.write_all(&block[..got]).map_err(|e| DataError::io("write", tmp, e))?;
            let n = (got / RECORD) as u64;
            self.count += n;
            added += n;
            if got < block.len() {
                return Ok(added);
            }
        }
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

/// Streams the records of a `docs.index`.
pub struct IndexReader {
    path: PathBuf,
    r: BufReader<File>,
}

impl IndexReader {
    pub fn open(path: &Path) -> Result<IndexReader, DataError> {
        let f = File::open(path).map_err(|e| DataError::io("open", path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|e| DataError::io("read", path, e))?;
        if &magic != MAGIC {
            return Err(DataError::io("read", path, std::io::Error::other("not a cptc document index")));
        }
        Ok(IndexReader { path: path.to_path_buf(), r })
    }

    /// [`open`](Self::open), positioned at document `first` (0-based).
    pub fn open_at(path: &Path, first: u64) -> Result<IndexReader, DataError> {
        use std::io::Seek as _;
        let mut reader = IndexReader::open(path)?;
        let offset = first.checked_mul(RECORD as u64).and_then(|o| o.checked_add(MAGIC.len() as u64));
        let offset = offset.ok_or_else(|| DataError::io("seek", path, std::io::Error::other("offset overflows")))?;
        reader.r.seek(std::io::SeekFrom::Start(offset)).map_err(|e| DataError::io("seek", path, e))?;
        Ok(reader)
    }
}

impl Iterator for IndexReader {
    type Item = Result<DocEntry, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut rec = [0u8; RECORD];
        let mut got = 0;
        while got < RECORD {
            match self.r.read(&mut rec[got..]) {
                Ok(0) if got == 0 => return None,
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
            file: u32::from_le_bytes(rec[..4].try_into().unwrap_or([0; 4])),
            record: u64_at(4),
            bytes: u64_at(12),
            hash,
        }))
    }
}
