//! Token shards in Megatron's indexed-dataset format (`<prefix>.bin` + `<prefix>.idx`).
//!
//! `.idx` (all little-endian), as `megatron/core/datasets/indexed_dataset.py` reads it:
//! `b"MMIDIDX\x00\x00"`, u64 version = 1, u8 dtype code (uint16 = 8, int32 = 4), u64 sequence
//! count S, u64 document-index count D, then int32 lengths[S], int64 byte pointers[S], int64
//! document indices[D]. cptc writes one sequence per document, so the document indices are
//! `0, 1, ..., S` (D = S + 1, Megatron's convention of a leading 0). `.bin` holds the ids back to
//! back. Token dtype: uint16 when the vocabulary is below 65,500 (Megatron's
//! `DType.optimal_dtype`), else int32.
//!
//! A shard of SFT text may carry a loss mask, `<prefix>.mask`: one byte per token in `.bin`'s
//! order (1: a training target, 0: context only), so sequence `i`'s mask starts at its byte
//! pointer divided by the dtype's size. Megatron readers ignore it; a pair without one counts
//! every token.
//!
//! Both files are written under temporary names and renamed into place, an old `.idx` removed
//! first and `.bin` renamed before `.idx`, so an `.idx` that exists always describes its `.bin`.
//! A writer that fails or is dropped unfinished leaves neither temporary file behind.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::DataError;

const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
const HEADER_LEN: u64 = 9 + 8 + 1 + 8 + 8;

/// Storage type of token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenDtype {
    U16,
    I32,
}

impl TokenDtype {
    /// Megatron's choice for a vocabulary of `vocab` ids.
    pub fn for_vocab(vocab: u64) -> TokenDtype {
        if vocab < 65_500 { TokenDtype::U16 } else { TokenDtype::I32 }
    }
    pub fn code(self) -> u8 {
        match self {
            TokenDtype::U16 => 8,
            TokenDtype::I32 => 4,
        }
    }
    pub fn from_code(code: u8) -> Option<TokenDtype> {
        match code {
            8 => Some(TokenDtype::U16),
            4 => Some(TokenDtype::I32),
            _ => None,
        }
    }
    pub fn size(self) -> usize {
        match self {
            TokenDtype::U16 => 2,
            TokenDtype::I32 => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TokenDtype::U16 => "uint16",
            TokenDtype::I32 => "int32",
        }
    }
    fn max_id(self) -> u32 {
        match self {
            TokenDtype::U16 => u16::MAX as u32,
            TokenDtype::I32 => i32::MAX as u32,
        }
    }
}

/// `<prefix>.mask`: the loss mask beside a shard's pair.
pub fn mask_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".mask")
}

/// `<prefix>.bin` and `<prefix>.idx`.
pub fn shard_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    (with_suffix(prefix, ".bin"), with_suffix(prefix, ".idx"))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// What a finished shard holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShardSummary {
    pub bin: PathBuf,
    pub idx: PathBuf,
    pub dtype: TokenDtype,
    pub documents: u64,
    pub tokens: u64,
    /// Tokens the mask marks as targets (masked shards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<u64>,
}

/// A loss mask being written: the writer (taken when published), final and temporary paths.
struct MaskOut {
    w: Option<BufWriter<File>>,
    path: PathBuf,
    tmp: PathBuf,
}

/// Writes one shard, one sequence per document.
pub struct ShardWriter {
    bin_path: PathBuf,
    idx_path: PathBuf,
    bin_tmp: PathBuf,
    idx_tmp: PathBuf,
    bin: Option<BufWriter<File>>,
    /// The loss mask (masked shards only).
    mask: Option<MaskOut>,
    dtype: TokenDtype,
    vocab: u64,
    /// Each document's length, written aside as it comes (4 bytes each) and read back into the
    /// index by `finish`: the writer's memory does not grow with the shard.
    lengths: BufWriter<File>,
    lengths_tmp: PathBuf,
    documents: u64,
    tokens: u64,
    targets: u64,
    /// The ids of one document in the shard's dtype, little-endian.
    scratch16: Vec<u16>,
    scratch32: Vec<i32>,
}

impl ShardWriter {
    /// Starts `<prefix>.bin`/`.idx` for a vocabulary of `vocab` ids (EOS included).
    pub fn create(prefix: &Path, vocab: u64) -> Result<ShardWriter, DataError> {
        let (bin_path, idx_path) = shard_paths(prefix);
        let bin_tmp = with_suffix(&bin_path, ".partial");
        let idx_tmp = with_suffix(&idx_path, ".partial");
        let lengths_tmp = with_suffix(&idx_path, ".lengths.partial");
        let f = File::create(&bin_tmp).map_err(|e| DataError::io("create", &bin_tmp, e))?;
        let lengths = File::create(&lengths_tmp).map_err(|e| {
            // No writer owns the first file yet to remove it on drop.
            let _ = std::fs::remove_file(&bin_tmp);
            DataError::io("create", &lengths_tmp, e)
        })?;
        Ok(ShardWriter {
            bin_path,
            idx_path,
            bin_tmp,
            idx_tmp,
            bin: Some(BufWriter::with_capacity(1 << 20, f)),
            mask: None,
            dtype: TokenDtype::for_vocab(vocab),
            vocab,
            lengths: BufWriter::with_capacity(1 << 16, lengths),
            lengths_tmp,
            documents: 0,
            tokens: 0,
            targets: 0,
            scratch16: Vec::new(),
            scratch32: Vec::new(),
        })
    }

    /// Starts a shard with a loss mask (`<prefix>.mask`) beside its pair.
    pub fn create_masked(prefix: &Path, vocab: u64) -> Result<ShardWriter, DataError> {
        let mut w = ShardWriter::create(prefix, vocab)?;
        let path = mask_path(prefix);
        let tmp = with_suffix(&path, ".partial");
        let f = File::create(&tmp).map_err(|e| DataError::io("create", &tmp, e))?;
        w.mask = Some(MaskOut { w: Some(BufWriter::with_capacity(1 << 18, f)), path, tmp });
        Ok(w)
    }

    pub fn dtype(&self) -> TokenDtype {
        self.dtype
    }

    /// Appends one document's ids and which of them are targets (one byte each, 0 or 1); a
    /// shard without a mask refuses it.
    pub fn add_masked(&mut self, ids: &[u32], mask: &[u8]) -> Result<(), DataError> {
        if mask.len() != ids.len() {
            return Err(DataError::BadShard {
                path: self.bin_path.clone(),
                reason: format!("a mask of {} bytes for {} tokens", mask.len(), ids.len()),
            });
        }
        let Some(MaskOut { w: Some(w), tmp, .. }) = self.mask.as_mut() else {
            return Err(DataError::BadShard {
                path: self.bin_path.clone(),
                reason: "a mask for an unmasked shard".into(),
            });
        };
        w.write_all(mask).map_err(|e| DataError::io("write", &*tmp, e))?;
        self.write_ids(ids)?;
        self.targets += mask.iter().filter(|&&m| m != 0).count() as u64;
        Ok(())
    }

    /// Appends one document's ids as one sequence (in a masked shard, every one a target).
    pub fn add_document(&mut self, ids: &[u32]) -> Result<(), DataError> {
        if let Some(MaskOut { w: Some(w), tmp, .. }) = self.mask.as_mut() {
            w.write_all(&vec![1u8; ids.len()]).map_err(|e| DataError::io("write", &*tmp, e))?;
        }
        self.write_ids(ids)?;
        self.targets += ids.len() as u64;
        Ok(())
    }

    fn write_ids(&mut self, ids: &[u32]) -> Result<(), DataError> {
        let len = i32::try_from(ids.len()).map_err(|_| DataError::BadShard {
            path: self.bin_path.clone(),
            reason: format!("a document of {} tokens exceeds the format's int32 length", ids.len()),
        })?;
        // `max` and plain casts vectorise; the byte-wise loop they replace cost as much as
        // writing the file.
        let max = self.dtype.max_id();
        if let Some(bad) = ids.iter().copied().max().filter(|&m| m > max) {
            return Err(DataError::TokenOutOfRange { id: bad, dtype: self.dtype.name(), vocab: self.vocab });
        }
        let Some(w) = self.bin.as_mut() else {
            return Err(DataError::BadShard { path: self.bin_path.clone(), reason: "writer already finished".into() });
        };
        let bytes: &[u8] = match self.dtype {
            TokenDtype::U16 => {
                self.scratch16.clear();
                self.scratch16.extend(ids.iter().map(|&t| (t as u16).to_le()));
                bytemuck::cast_slice(&self.scratch16)
            }
            TokenDtype::I32 => {
                self.scratch32.clear();
                self.scratch32.extend(ids.iter().map(|&t| (t as i32).to_le()));
                bytemuck::cast_slice(&self.scratch32)
            }
        };
        w.write_all(bytes).map_err(|e| DataError::io("write", &self.bin_tmp, e))?;
        self.lengths.write_all(&len.to_le_bytes()).map_err(|e| DataError::io("write", &self.lengths_tmp, e))?;
        self.documents += 1;
        self.tokens += ids.len() as u64;
        Ok(())
    }

    /// Writes the index and renames both files into place.
    pub fn finish(mut self) -> Result<ShardSummary, DataError> {
        let Some(w) = self.bin.take() else {
            return Err(DataError::BadShard { path: self.bin_path.clone(), reason: "writer already finished".into() });
        };
        let published = self.publish(w);
        let _ = std::fs::remove_file(&self.lengths_tmp);
        if let Err(e) = published {
            // Nothing half-done stays: no temporary file, no `.bin` without its `.idx`.
            let _ = std::fs::remove_file(&self.bin_tmp);
            let _ = std::fs::remove_file(&self.idx_tmp);
            if let Some(m) = &self.mask {
                let _ = std::fs::remove_file(&m.tmp);
                if !self.idx_path.exists() {
                    let _ = std::fs::remove_file(&m.path);
                }
            }
            if !self.idx_path.exists() {
                let _ = std::fs::remove_file(&self.bin_path);
            }
            return Err(e);
        }
        Ok(ShardSummary {
            bin: self.bin_path.clone(),
            idx: self.idx_path.clone(),
            dtype: self.dtype,
            documents: self.documents,
            tokens: self.tokens,
            targets: self.mask.is_some().then_some(self.targets),
        })
    }

    /// Flushes `.bin`, writes `.idx` and renames both into place (see the module's order).
    fn publish(&mut self, w: BufWriter<File>) -> Result<(), DataError> {
        // No fsync: like every artifact, a shard is atomic against a killed process (rename),
        // not against power loss; `cptc cache verify` finds a damaged one.
        let f = w.into_inner().map_err(|e| DataError::io("write", &self.bin_tmp, e.into_error()))?;
        drop(f);
        // The mask is renamed before the pair, like `.bin` before `.idx`.
        if let Some(MaskOut { w, path, tmp }) = &mut self.mask
            && let Some(m) = w.take()
        {
            let f = m.into_inner().map_err(|e| DataError::io("write", &*tmp, e.into_error()))?;
            drop(f);
            std::fs::rename(&*tmp, &*path).map_err(|e| DataError::io("rename", &*tmp, e))?;
        }

        self.write_index()?;
        match std::fs::remove_file(&self.idx_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DataError::io("remove", &self.idx_path, e));
            }
            _ => {}
        }
        std::fs::rename(&self.bin_tmp, &self.bin_path).map_err(|e| DataError::io("rename", &self.bin_tmp, e))?;
        std::fs::rename(&self.idx_tmp, &self.idx_path).map_err(|e| DataError::io("rename", &self.idx_tmp, e))
    }
}

impl ShardWriter {
    /// Writes `.idx` aside (the module's layout) from the lengths written so far, a block at a
    /// time: the lengths, then each document's byte pointer, then the document index.
    fn write_index(&mut self) -> Result<(), DataError> {
        let (lengths_tmp, idx_tmp) = (&self.lengths_tmp, &self.idx_tmp);
        self.lengths.flush().map_err(|e| DataError::io("write", lengths_tmp, e))?;
        let n = self.documents;
        let f = File::create(idx_tmp).map_err(|e| DataError::io("create", idx_tmp, e))?;
        let mut idx = BufWriter::with_capacity(1 << 20, f);
        let write = |idx: &mut BufWriter<File>, bytes: &[u8]| {
            idx.write_all(bytes).map_err(|e| DataError::io("write", idx_tmp, e))
        };
        write(&mut idx, MAGIC)?;
        write(&mut idx, &1u64.to_le_bytes())?;
        write(&mut idx, &[self.dtype.code()])?;
        write(&mut idx, &n.to_le_bytes())?;
        write(&mut idx, &(n + 1).to_le_bytes())?;
        // Two passes over the lengths: copied as they are, then summed into pointers.
        let size = self.dtype.size() as i64;
        let mut ptr = 0i64;
        for pass in 0..2 {
            let f = File::open(lengths_tmp).map_err(|e| DataError::io("open", lengths_tmp, e))?;
            let mut r = std::io::BufReader::with_capacity(1 << 16, f);
            let mut out = Vec::with_capacity(1 << 16);
            let mut read = 0u64;
            let mut len = [0u8; 4];
            while read < n {
                r.read_exact(&mut len).map_err(|e| DataError::io("read", lengths_tmp, e))?;
                read += 1;
                if pass == 0 {
                    out.extend_from_slice(&len);
                } else {
                    out.extend_from_slice(&ptr.to_le_bytes());
                    ptr += i64::from(i32::from_le_bytes(len)) * size;
                }
                if out.len() >= 1 << 16 {
                    write(&mut idx, &out)?;
                    out.clear();
                }
            }
            write(&mut idx, &out)?;
        }
        for i in 0..=n {
            write(&mut idx, &(i as i64).to_le_bytes())?;
        }
        let f = idx.into_inner().map_err(|e| DataError::io("write", idx_tmp, e.into_error()))?;
        drop(f);
        Ok(())
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        // An unfinished writer leaves nothing behind (best effort: errors have nowhere to go).
        let _ = std::fs::remove_file(&self.lengths_tmp);
        if self.bin.is_some() {
            let _ = std::fs::remove_file(&self.bin_tmp);
            let _ = std::fs::remove_file(&self.idx_tmp);
            if let Some(m) = &self.mask {
                let _ = std::fs::remove_file(&m.tmp);
            }
        }
    }
}

/// Reads a shard: the sequences' lengths in memory (4 bytes each, and 8 bytes per [`MARK`]
/// sequences for where they start), tokens by positioned reads.
///
/// A shard is one Megatron pair `<prefix>.bin`/`.idx`, or, where `<prefix>.parts` exists, the
/// concatenation of the pairs it lists (one prefix per line, relative to its folder): what a
/// stage assembled from per-file parts. Each listed pair is a Megatron shard of its own.
#[derive(Debug)]
pub struct ShardReader {
    /// Each pair's `.bin` (path, open file); `starts[k]` is the first sequence of pair `k`.
    bins: Vec<(PathBuf, File)>,
    /// Each pair's loss mask, where it has one.
    masks: Vec<Option<(PathBuf, File)>>,
    starts: Vec<usize>,
    dtype: TokenDtype,
    lengths: Vec<u32>,
    offsets: Offsets,
    tokens: u64,
}

/// Sequences per offset kept where a shard's sequences lie back to back.
const MARK: usize = 64;

/// Where each sequence starts in its own pair's `.bin`, in tokens.
#[derive(Debug)]
enum Offsets {
    /// Every pair's sequences back to back, as cptc writes them: the offset of every [`MARK`]-th
    /// sequence, the others summed from the lengths before them. Every offset kept took 8 bytes
    /// a sequence: 200 MB for a 20 GB corpus, in every stage reading its shards.
    Packed(Vec<u64>),
    /// Any other layout the format allows: every offset.
    Listed(Vec<u64>),
}

/// One `.bin`/`.idx` pair, read and checked.
struct Pair {
    bin: (PathBuf, File),
    dtype: TokenDtype,
    lengths: Vec<u32>,
    /// Each sequence's offset in tokens, where the sequences do not lie back to back.
    listed: Option<Vec<u64>>,
    tokens: u64,
    /// Tokens up to the end of the furthest sequence: what a mask must cover.
    extent: u64,
}

impl ShardReader {
    /// Opens the shard at `prefix` (a pair, or the pairs its `.parts` lists), validating every
    /// index against its files' sizes.
    pub fn open(prefix: &Path) -> Result<ShardReader, DataError> {
        let (pairs, manifest) = match super::parts_list::read(prefix)? {
            Some(pairs) => (pairs, Some(super::parts_list::path(prefix))),
            None => (vec![(String::new(), prefix.to_path_buf())], None),
        };
        let mut out = ShardReader {
            bins: Vec::new(),
            masks: Vec::new(),
            starts: Vec::new(),
            dtype: TokenDtype::U16,
            lengths: Vec::new(),
            offsets: Offsets::Packed(Vec::new()),
            tokens: 0,
        };
        let mut listed: Vec<Option<Vec<u64>>> = Vec::new();
        for (k, (line, pair)) in pairs.iter().enumerate() {
            let p = ShardReader::open_pair(pair)?;
            out.masks.push(open_mask(pair, p.extent)?);
            if k > 0 && p.dtype != out.dtype {
                return Err(DataError::BadShard {
                    path: manifest.clone().unwrap_or_else(|| pair.clone()),
                    reason: format!("{line} holds {} tokens, the parts before it {}", p.dtype.name(), out.dtype.name()),
                });
            }
            out.dtype = p.dtype;
            out.starts.push(out.lengths.len());
            out.bins.push(p.bin);
            out.lengths.extend(p.lengths);
            out.tokens += p.tokens;
            listed.push(p.listed);
        }
        if out.bins.is_empty() {
            return Err(DataError::BadShard {
                path: manifest.unwrap_or_else(|| prefix.to_path_buf()),
                reason: "lists no shard".into(),
            });
        }
        out.offsets = out.offsets_of(listed);
        Ok(out)
    }

    /// The [`Offsets`] of this reader's pairs, given those listed by pairs not back to back.
    fn offsets_of(&self, listed: Vec<Option<Vec<u64>>>) -> Offsets {
        let packed = listed.iter().all(Option::is_none);
        let mut offsets =
            Vec::with_capacity(if packed { self.lengths.len().div_ceil(MARK) } else { self.lengths.len() });
        for (k, own) in listed.into_iter().enumerate() {
            let (from, to) = (self.starts[k], self.starts.get(k + 1).copied().unwrap_or(self.lengths.len()));
            match own {
                Some(own) => offsets.extend(own),
                None => {
                    let mut at = 0u64;
                    for i in from..to {
                        if !packed || i % MARK == 0 {
                            offsets.push(at);
                        }
                        at += u64::from(self.lengths[i]);
                    }
                }
            }
        }
        if packed { Offsets::Packed(offsets) } else { Offsets::Listed(offsets) }
    }

    /// Where sequence `i` of pair `pair` starts in that pair's `.bin`, in tokens.
    fn offset(&self, pair: usize, i: usize) -> Option<u64> {
        match &self.offsets {
            Offsets::Listed(all) => all.get(i).copied(),
            Offsets::Packed(marks) => {
                let mark = i / MARK * MARK;
                // A mark in an earlier pair counts from this pair's first sequence instead.
                let (from, base) =
                    if mark >= self.starts[pair] { (mark, *marks.get(i / MARK)?) } else { (self.starts[pair], 0) };
                let before: u64 = self.lengths.get(from..i)?.iter().map(|&l| u64::from(l)).sum();
                Some(base + before)
            }
        }
    }

    /// One `<prefix>.bin`/`.idx` pair, its index read a block at a time (a single file's pair
    /// of a 20 GB corpus has a 500 MB index).
    fn open_pair(prefix: &Path) -> Result<Pair, DataError> {
        let (bin_path, idx_path) = shard_paths(prefix);
        let bad = |reason: String| DataError::BadShard { path: idx_path.clone(), reason };
        let f = File::open(&idx_path).map_err(|e| DataError::io("open", &idx_path, e))?;
        let idx_len = f.metadata().map_err(|e| DataError::io("stat", &idx_path, e))?.len();
        let mut f = std::io::BufReader::with_capacity(1 << 20, f);
        let mut head = [0u8; HEADER_LEN as usize];
        if idx_len < HEADER_LEN {
            return Err(bad(format!("{idx_len} bytes, shorter than the {HEADER_LEN}-byte header")));
        }
        f.read_exact(&mut head).map_err(|e| DataError::io("read", &idx_path, e))?;
        if &head[..9] != MAGIC {
            return Err(bad(format!("magic {:?} instead of MMIDIDX", String::from_utf8_lossy(&head[..9]))));
        }
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let version = u64_at(9);
        if version != 1 {
            return Err(bad(format!("version {version}, only 1 is supported")));
        }
        let dtype = TokenDtype::from_code(head[17])
            .ok_or_else(|| bad(format!("token dtype code {} (cptc reads uint16 = 8 and int32 = 4)", head[17])))?;
        let seqs = u64_at(18);
        let docs = u64_at(26);
        // Sizes are checked before allocating, so a corrupt count cannot exhaust memory.
        let need = seqs
            .checked_mul(12)
            .and_then(|x| docs.checked_mul(8).and_then(|y| x.checked_add(y)))
            .and_then(|x| x.checked_add(HEADER_LEN));
        match need {
            Some(n) if n <= idx_len => {}
            _ => return Err(bad(format!("{seqs} sequences and {docs} document indices do not fit {idx_len} bytes"))),
        }
        let read_err = |e| DataError::io("read", &idx_path, e);
        let s = seqs as usize;
        let mut lengths = Vec::with_capacity(s);
        each_value::<4>(&mut f, s, read_err, |c| {
            let l = i32::from_le_bytes(c);
            lengths.push(u32::try_from(l).map_err(|_| bad(format!("negative sequence length {l}")))?);
            Ok(())
        })?;
        let bin = File::open(&bin_path).map_err(|e| DataError::io("open", &bin_path, e))?;
        let bin_len = bin.metadata().map_err(|e| DataError::io("stat", &bin_path, e))?.len();
        let size = dtype.size() as u64;
        // Offsets are kept only while a pointer is not where the sequences before it end.
        let (mut listed, mut i, mut end, mut extent) = (None::<Vec<u64>>, 0usize, 0u64, 0u64);
        each_value::<8>(&mut f, s, read_err, |c| {
            let p = i64::from_le_bytes(c);
            let p = u64::try_from(p).map_err(|_| bad(format!("negative byte pointer {p}")))?;
            let l = lengths[i];
            let stop = p.checked_add(u64::from(l) * size);
            if stop.is_none_or(|e| e > bin_len) {
                return Err(DataError::BadShard {
                    path: bin_path.clone(),
                    reason: format!("sequence {i} (offset {p}, {l} tokens) runs past the end ({bin_len} bytes)"),
                });
            }
            if listed.is_none() && p != end * size {
                // The first out of place: the offsets so far are the sums of the lengths.
                let mut offsets = Vec::with_capacity(s);
                let mut at = 0u64;
                for &before in &lengths[..i] {
                    offsets.push(at);
                    at += u64::from(before);
                }
                listed = Some(offsets);
            }
            if let Some(v) = listed.as_mut() {
                v.push(p / size);
            }
            end += u64::from(l);
            extent = extent.max(p / size + u64::from(l));
            i += 1;
            Ok(())
        })?;
        let (mut prev, mut j) = (0i64, 0usize);
        each_value::<8>(&mut f, docs as usize, read_err, |c| {
            let v = i64::from_le_bytes(c);
            if v < prev || v as u64 > seqs || (j == 0 && v != 0) {
                return Err(bad(format!("document index {j} is {v}, not ascending within 0..={seqs}")));
            }
            prev = v;
            j += 1;
            Ok(())
        })?;
        Ok(Pair { bin: (bin_path, bin), dtype, lengths, listed, tokens: end, extent })
    }

    pub fn dtype(&self) -> TokenDtype {
        self.dtype
    }
    /// Number of sequences (= documents for shards cptc writes).
    pub fn len(&self) -> usize {
        self.lengths.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
    pub fn num_tokens(&self) -> u64 {
        self.tokens
    }
    /// Token count of sequence `i` (0 when out of range).
    pub fn doc_len(&self, i: usize) -> u32 {
        self.lengths.get(i).copied().unwrap_or(0)
    }
    pub fn lengths(&self) -> &[u32] {
        &self.lengths
    }

    /// Appends tokens `start..start+len` of sequence `i` to `out`.
    pub fn read_range(&self, i: usize, start: u32, len: u32, out: &mut Vec<u32>) -> Result<(), DataError> {
        let (pair, at) = self.locate(i, start, len, "tokens")?;
        let (bin_path, bin) = &self.bins[pair];
        let size = self.dtype.size();
        let mut buf = vec![0u8; len as usize * size];
        bin.read_exact_at(&mut buf, at * size as u64).map_err(|e| DataError::io("read", bin_path, e))?;
        match self.dtype {
            TokenDtype::U16 => out.extend(buf.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))),
            // Values were checked non-negative when written; a damaged file reads as large ids.
            TokenDtype::I32 => out.extend(buf.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        }
        Ok(())
    }

    /// Asks the kernel to read sequence `i` (its tokens, and its mask where it has one) in the
    /// background. A reader that knows which sequences come next keeps many reads in flight
    /// this way, where reads one after another would each wait for the disk: a mix drawing 2 M
    /// documents from a 20 GB corpus the page cache does not hold waited 75 s. Best effort.
    pub fn prefetch(&self, i: usize) {
        let len = self.doc_len(i);
        let Ok((pair, at)) = self.locate(i, 0, len, "tokens") else { return };
        let size = self.dtype.size() as u64;
        let advice = rustix::fs::Advice::WillNeed;
        let _ = rustix::fs::fadvise(
            &self.bins[pair].1,
            at * size,
            std::num::NonZeroU64::new(u64::from(len) * size),
            advice,
        );
        if let Some((_, mask)) = &self.masks[pair] {
            let _ = rustix::fs::fadvise(mask, at, std::num::NonZeroU64::new(u64::from(len)), advice);
        }
    }

    /// Whether any pair carries a loss mask.
    pub fn masked(&self) -> bool {
        self.masks.iter().any(Option::is_some)
    }

    /// Appends the loss mask of tokens `start..start+len` of sequence `i` to `out` (all 1 where
    /// its pair has no mask).
    pub fn read_mask_range(&self, i: usize, start: u32, len: u32, out: &mut Vec<u8>) -> Result<(), DataError> {
        let (pair, at) = self.locate(i, start, len, "mask of tokens")?;
        let Some((path, file)) = &self.masks[pair] else {
            out.extend(std::iter::repeat_n(1u8, len as usize));
            return Ok(());
        };
        let from = out.len();
        out.resize(from + len as usize, 0);
        file.read_exact_at(&mut out[from..], at).map_err(|e| DataError::io("read", path, e))
    }

    /// Where tokens `start..start+len` of sequence `i` are: its pair, and the first one's index
    /// in that pair's `.bin` (a token offset, which is also its byte offset in the mask).
    fn locate(&self, i: usize, start: u32, len: u32, what: &str) -> Result<(usize, u64), DataError> {
        let pair = self.starts.partition_point(|&s| s <= i).saturating_sub(1).min(self.bins.len() - 1);
        let bad = |reason: String| DataError::BadShard { path: self.bins[pair].0.clone(), reason };
        let (Some(&l), Some(at)) = (self.lengths.get(i), self.offset(pair, i)) else {
            return Err(bad(format!("no sequence {i}")));
        };
        let end = u64::from(start) + u64::from(len);
        if end > u64::from(l) {
            return Err(bad(format!("{what} {start}..{end} of sequence {i} requested; it has {l}")));
        }
        Ok((pair, at + u64::from(start)))
    }

    /// The loss mask of sequence `i`.
    pub fn read_mask(&self, i: usize) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::with_capacity(self.doc_len(i) as usize);
        self.read_mask_range(i, 0, self.doc_len(i), &mut out)?;
        Ok(out)
    }

    /// All tokens of sequence `i`.
    pub fn read_doc(&self, i: usize) -> Result<Vec<u32>, DataError> {
        let mut out = Vec::with_capacity(self.doc_len(i) as usize);
        self.read_range(i, 0, self.doc_len(i), &mut out)?;
        Ok(out)
    }
}

/// Calls `each` with `count` values of `N` bytes read from `r`, a block at a time (`read_err`
/// says what a failed read means): fixed-size records of files too large to hold whole.
pub(crate) fn each_value<const N: usize>(
    r: &mut impl Read,
    count: usize,
    read_err: impl Fn(std::io::Error) -> DataError,
    mut each: impl FnMut([u8; N]) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut block = vec![0u8; N * 8192];
    let mut left = count;
    while left > 0 {
        let n = left.min(8192);
        r.read_exact(&mut block[..n * N]).map_err(&read_err)?;
        for c in block[..n * N].chunks_exact(N) {
            let mut value = [0u8; N];
            value.copy_from_slice(c);
            each(value)?;
        }
        left -= n;
    }
    Ok(())
}

/// A pair's loss mask, if it has one, checked to cover every token its index points at.
fn open_mask(prefix: &Path, need: u64) -> Result<Option<(PathBuf, File)>, DataError> {
    let path = mask_path(prefix);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io("open", &path, e)),
    };
    let len = file.metadata().map_err(|e| DataError::io("stat", &path, e))?.len();
    if len < need {
        return Err(DataError::BadShard {
            path,
            reason: format!("{len} mask bytes for a shard of {need} tokens: the mask is damaged"),
        });
    }
    Ok(Some((path, file)))
}

/// Raises this process' soft limit of open files to its hard limit: a shard assembled from a
/// corpus of many files keeps one file open per part (Go's runtime does the same at start).
/// Best effort: a limit that cannot be raised stays as it was.
#[allow(unsafe_code)]
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
