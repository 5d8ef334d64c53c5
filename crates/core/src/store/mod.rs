//! The content-addressed artifact store under `.cptc/` (or `--store DIR`).
//!
//! Layout (version 1; bump `LAYOUT` and the test `store_layout_is_versioned` together):
//!
//! ```text
//! v1/lock                                  held by one `cptc run` at a time
//! v1/tmp/<kind>-<key>-<pid>-<nanos>/       a stage writing its output
//! v1/artifacts/<kind>-v<ver>/<key>/        published outputs, each with meta.json
//! v1/stages/<stage id>.json                the key parts a stage last ran with (for -v)
//! v1/runs/<run id>.jsonl                   one event log per run
//! v1/digests.json                          external files' digests by stat (`digests.rs`)
//! v1/parts/<space>/<key>/                  per-file results stages reuse (`parts.rs`)
//! ```
//!
//! Invariant: an artifact directory exists only complete. Stages write under `tmp/`, the
//! store writes `meta.json` last, and one `rename` publishes the directory; a killed run
//! leaves only `tmp/` entries, which the next run removes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::graph::{Digest, StageKind, key::hash_file};

pub mod digests;
pub mod parts;
pub use digests::FileDigests;
pub use parts::Parts;

/// Store layout version: the folder name under the store root.
pub const LAYOUT: &str = "v1";

#[derive(Debug, Error, Diagnostic)]
pub enum StoreError {
    #[error("cannot use the store at {path}: {source}")]
    #[diagnostic(code(cptc::store::io), help("check that the folder is writable, or pass --store DIR"))]
    Io { path: String, source: io::Error },

    #[error("another cptc run holds the store at {path}")]
    #[diagnostic(code(cptc::store::locked), help("wait for it to finish, or use another --store"))]
    Locked { path: String },

    #[error("artifact {path} is corrupt: {reason}")]
    #[diagnostic(
        code(cptc::store::corrupt),
        help("`cptc cache verify --fix` removes it and everything built from it; the next run rebuilds them")
    )]
    Corrupt { path: String, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// Everything a stage's key was computed from, kept to explain cache misses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyParts {
    pub kind: String,
    pub version: u64,
    pub params: serde_json::Value,
    /// Input role -> the input's output digest.
    pub inputs: BTreeMap<String, Digest>,
    /// External file -> content digest.
    pub files: BTreeMap<String, Digest>,
    /// Run-time values resolved into parameters (e.g. a chosen ratio).
    pub values: BTreeMap<String, serde_json::Value>,
}

impl KeyParts {
    /// What differs from `old`, in words, for `cptc run -v`.
    pub fn diff(&self, old: &KeyParts) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind != old.kind || self.version != old.version {
            out.push(format!("implementation {} v{} (was v{})", self.kind, self.version, old.version));
        }
        if self.params != old.params {
            out.extend(json_diff("params", &self.params, &old.params));
        }
        for (what, new, old) in [("input", &self.inputs, &old.inputs), ("file", &self.files, &old.files)] {
            for (name, digest) in new {
                match old.get(name) {
                    None => out.push(format!("new {what} {name}")),
                    Some(d) if d != digest => {
                        out.push(format!("{what} {name} changed ({} -> {})", d.short(), digest.short()))
                    }
                    Some(_) => {}
                }
            }
            for name in old.keys().filter(|k| !new.contains_key(*k)) {
                out.push(format!("{what} {name} removed"));
            }
        }
        for (name, value) in &self.values {
            if old.values.get(name) != Some(value) {
                out.push(format!("value {name} = {value}"));
            }
        }
        out
    }
}

fn json_diff(path: &str, new: &serde_json::Value, old: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match (new, old) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    json_diff(
                        &format!("{path}.{k}"),
                        a.get(k).unwrap_or(&Value::Null),
                        b.get(k).unwrap_or(&Value::Null),
                    )
                })
                .collect()
        }
        (a, b) if a == b => Vec::new(),
        (a, b) => vec![format!("{path}: {b} -> {a}")],
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub digest: Digest,
}

/// `meta.json` of a published artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub stage: String,
    pub kind: String,
    pub version: u64,
    pub key: Digest,
    pub key_parts: KeyParts,
    /// Digest of the payload (paths and contents): equal outputs give equal digests, which
    /// is what stops invalidation early.
    pub output: Digest,
    pub files: Vec<FileEntry>,
    /// Values computed by the stage for others (`{"ratio": 0.42}`).
    pub values: serde_json::Value,
    pub created: u64,
    pub elapsed_s: f64,
}

pub struct Store {
    root: PathBuf,
    lock: Option<fs::File>,
}

/// A stage's output being written.
pub struct Staging {
    pub dir: PathBuf,
    kind: StageKind,
    key: Digest,
}

impl Staging {
    /// The same folder, to be published under `key`: a stage that hashes its files as it reads
    /// them learns its whole key only at its end.
    pub fn with_key(self, key: Digest) -> Staging {
        Staging { key, ..self }
    }
}

fn kind_dir(kind: StageKind) -> String {
    format!("{}-v{}", kind.name(), kind.version())
}

/// A file name for a stage id: its safe characters, and past 150 of them a digest of the
/// whole id instead of the rest (file names stop at 255 bytes; ids have no limit).
fn sanitize(stage_id: &str) -> String {
    let safe: String =
        stage_id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=@".contains(c) { c } else { '_' }).collect();
    if safe.len() <= 150 {
        return safe;
    }
    format!("{}-{}", &safe[..150], Digest::of_bytes(stage_id.as_bytes()).short())
}

impl Store {
    /// Opens (and creates) the store at `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let root = dir.join(LAYOUT);
        for sub in ["tmp", "artifacts", "stages", "runs"] {
            fs::create_dir_all(root.join(sub)).map_err(io_err(&root))?;
        }
        Ok(Store { root, lock: None })
    }

    /// The store at `dir` for reading only: nothing is created, a missing store is empty.
    pub fn at(dir: &Path) -> Store {
        Store { root: dir.join(LAYOUT), lock: None }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store's exclusive lock, then removes what killed runs left in `tmp/`.
    pub fn lock(&mut self) -> Result<(), StoreError> {
        let path = self.root.join("lock");
        let file =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { path: self.root.display().to_string() });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        self.lock = Some(file);
        self.clean_tmp()?;
        Ok(())
    }

    fn clean_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))?.filter_map(Result::ok) {
            let path = entry.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Where a stage of `key` keeps what lets a later run resume it (training checkpoints):
    /// outside `tmp/`, so it survives a failed or killed run; cleared once the key publishes.
    pub fn resume_dir(&self, kind: StageKind, key: &Digest) -> PathBuf {
        self.root.join("resume").join(format!("{}-{}", kind_dir(kind), key.hex()))
    }

    /// Removes the resume folder of `key`, if any (its stage has published).
    pub fn clear_resume(&self, kind: StageKind, key: &Digest) -> Result<(), StoreError> {
        let dir = self.resume_dir(kind, key);
        if dir.exists() { self.remove(&dir) } else { Ok(()) }
    }

    /// Resume folders whose key is not in `keep` (their stage changed or is gone); removes
    /// them and returns how many.
    pub fn gc_resume(&self, keep: &HashSet<Digest>) -> Result<usize, StoreError> {
        let mut removed = 0;
        let Ok(entries) = fs::read_dir(self.root.join("resume")) else { return Ok(0) };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = name.rsplit('-').next().and_then(Digest::parse);
            if key.is_none_or(|k| !keep.contains(&k)) {
                self.remove(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn artifact_dir(&self, kind: StageKind, key: &Digest) -> PathBuf {
        self.root.join("artifacts").join(kind_dir(kind)).join(key.hex())
    }

    /// The published artifact for `key`, if any.
    pub fn lookup(&self, kind: StageKind, key: &Digest) -> Option<Meta> {
        let text = fs::read_to_string(self.artifact_dir(kind, key).join("meta.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// A fresh folder for a stage to write its output into.
    pub fn begin(&self, kind: StageKind, key: &Digest) -> Result<Staging, StoreError> {
        let dir = self.tmp_path(&format!("{}-{}", kind.name(), key.short()));
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Staging { dir, kind, key: *key })
    }

    /// Removes a staging folder after a failed stage: nothing of it stays.
    pub fn abandon(&self, staging: Staging) {
        let _ = fs::remove_dir_all(&staging.dir);
    }

    /// A fresh name under `tmp/`: `label`, this process and the time, so no two ever meet.
    fn tmp_path(&self, label: &str) -> PathBuf {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        self.root.join("tmp").join(format!("{label}-{}-{nanos}", std::process::id()))
    }

    /// Unpublishes an artifact folder: one rename takes it out of `artifacts/` (into `tmp/`),
    /// then it is deleted. A deletion cut short never leaves a partial artifact in place: what is
    /// left sits in `tmp/`, which the next locked run empties.
    pub fn remove(&self, dir: &Path) -> Result<(), StoreError> {
        let name = dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let aside = self.tmp_path(&format!("removed-{name}"));
        fs::rename(dir, &aside).map_err(io_err(dir))?;
        fs::remove_dir_all(&aside).map_err(io_err(&aside))
    }

    /// Publishes a finished stage output: digests its files, writes `meta.json`, renames.
    /// `replace` (a forced rerun) puts it in place of a published artifact of the same key; a
    /// damaged one (no readable `meta.json`) is always replaced. `known`: the digests of files
    /// the stage linked from parts (`Parts::linked`), not read again if their size matches.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &self,
        staging: Staging,
        stage: &str,
        key_parts: KeyParts,
        values: serde_json::Value,
        elapsed_s: f64,
        replace: bool,
        known: &HashMap<PathBuf, (u64, Digest)>,
    ) -> Result<Meta, StoreError> {
        let files = manifest_known(&staging.dir, known)?;
        let output = output_digest(&files);
        let meta = Meta {
            stage: stage.to_string(),
            kind: staging.kind.name().to_string(),
            version: staging.kind.version(),
            key: staging.key,
            key_parts,
            output,
            files,
            values,
            created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            elapsed_s,
        };
        let meta_path = staging.dir.join("meta.json");
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        fs::write(&meta_path, text).map_err(io_err(&meta_path))?;
        let target = self.artifact_dir(staging.kind, &staging.key);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        // The old artifact leaves by one rename, so until the new one is renamed in, the key
        // simply has no artifact (a crash in between costs a rerun, never a wrong artifact).
        if target.exists() && (replace || self.lookup(staging.kind, &staging.key).is_none()) {
            self.remove(&target)?;
        }
        // Another stage with the same key (same kind, parameters and input contents) may have
        // published first, even in this very wave: its output is equal by construction.
        if target.exists() {
            let _ = fs::remove_dir_all(&staging.dir);
        } else if let Err(e) = fs::rename(&staging.dir, &target) {
            if !target.join("meta.json").is_file() {
                return Err(io_err(&target)(e));
            }
            let _ = fs::remove_dir_all(&staging.dir);
        }
        self.record_last(stage, &meta.key_parts)?;
        Ok(meta)
    }

    fn record_last(&self, stage: &str, parts: &KeyParts) -> Result<(), StoreError> {
        let path = self.root.join("stages").join(format!("{}.json", sanitize(stage)));
        write_atomic(&path, serde_json::to_string_pretty(parts).unwrap_or_default().as_bytes())
    }

    /// The key parts `stage` last ran with, to explain a miss.
    pub fn last(&self, stage: &str) -> Option<KeyParts> {
        let path = self.root.join("stages").join(format!("{}.json", sanitize(stage)));
        serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
    }

    /// Every published artifact, by kind then creation time.
    pub fn list(&self) -> Vec<(PathBuf, Option<Meta>)> {
        let mut out = Vec::new();
        let Ok(kinds) = fs::read_dir(self.root.join("artifacts")) else { return out };
        for kind in kinds.filter_map(Result::ok) {
            let Ok(entries) = fs::read_dir(kind.path()) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let dir = entry.path();
                let meta = fs::read_to_string(dir.join("meta.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
                out.push((dir, meta));
            }
        }
        out.sort_by(|a, b| {
            let ka = a.1.as_ref().map(|m| (m.kind.clone(), m.created));
            let kb = b.1.as_ref().map(|m| (m.kind.clone(), m.created));
            ka.cmp(&kb).then_with(|| a.0.cmp(&b.0))
        });
        out
    }

    /// Re-hashes every artifact against its meta; returns the problems found.
    pub fn verify(&self) -> Vec<StoreError> {
        let mut problems = Vec::new();
        for (dir, meta) in self.list() {
            let corrupt = |reason: String| StoreError::Corrupt { path: dir.display().to_string(), reason };
            let Some(meta) = meta else {
                problems.push(corrupt("meta.json is missing or unreadable".to_string()));
                continue;
            };
            if dir.file_name().and_then(|n| n.to_str()) != Some(meta.key.hex().as_str()) {
                problems.push(corrupt("stored under the wrong key".to_string()));
                continue;
            }
            if let Err(e) = check_artifact(&dir, &meta) {
                problems.push(e);
            }
        }
        problems
    }

    /// Every artifact built, directly or not, from an artifact whose output digest is in
    /// `outputs` (their keys name inputs by output digest), so removing a corrupt artifact
    /// also removes what was made from its bad bytes: a rebuilt input with the same digest
    /// would otherwise leave them cached.
    pub fn built_from(&self, outputs: &HashSet<Digest>) -> Vec<PathBuf> {
        let artifacts: Vec<(PathBuf, Meta)> =
            self.list().into_iter().filter_map(|(dir, meta)| Some((dir, meta?))).collect();
        let mut bad = outputs.clone();
        let mut found: Vec<PathBuf> = Vec::new();
        loop {
            let before = found.len();
            for (dir, meta) in &artifacts {
                if !found.contains(dir) && meta.key_parts.inputs.values().any(|d| bad.contains(d)) {
                    found.push(dir.clone());
                    bad.insert(meta.output);
                }
            }
            if found.len() == before {
                return found;
            }
        }
    }

    /// Removes artifacts whose keys are not in `keep`, except those of a stage in `keep_stages`
    /// (stages whose key cannot be known yet); returns (count, bytes) removed.
    pub fn gc(&self, keep: &HashSet<Digest>, keep_stages: &HashSet<String>) -> Result<(usize, u64), StoreError> {
        let mut removed = (0, 0);
        for (dir, meta) in self.list() {
            if meta.as_ref().is_some_and(|m| keep.contains(&m.key) || keep_stages.contains(&m.stage)) {
                continue;
            }
            let bytes = meta.as_ref().map_or(0, |m| m.files.iter().map(|f| f.size).sum());
            self.remove(&dir)?;
            removed.0 += 1;
            removed.1 += bytes;
        }
        Ok(removed)
    }

    /// The store's part cache.
    pub fn parts(&self) -> Parts {
        Parts::new(&self.root)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }
}

/// Whether the files of the artifact in `dir` are still the ones its `meta` lists (sizes and
/// digests, every file read): what `cache verify` asks.
pub fn check_artifact(dir: &Path, meta: &Meta) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { path: dir.display().to_string(), reason };
    let files = manifest(dir).map_err(|e| corrupt(e.to_string()))?;
    compare_artifact(dir, files, meta)
}

/// [`check_artifact`], taking each file's digest from `digests` where its stat still vouches
/// for it (unchanged since it was last hashed, as for corpus files) and hashing the others, in
/// parallel: what a stage asks of its inputs. An edit moves a file's change time, which no
/// program can set back, so it is read again and caught; only damage below the file system
/// (bit rot) waits for `cache verify`. Reading every input whole before every stage that uses it
/// cost a full read of a 20 GB corpus' shards (10-24 s) per command.
pub fn check_artifact_vouched(dir: &Path, meta: &Meta, digests: &FileDigests) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { path: dir.display().to_string(), reason };
    let listed = listing(dir).map_err(|e| corrupt(e.to_string()))?;
    let paths: Vec<PathBuf> = listed.iter().map(|(_, path, _)| path.clone()).collect();
    let found = digests.digest_all(&paths, &|_| {}).map_err(|e| corrupt(e.to_string()))?;
    let mut files: Vec<FileEntry> =
        listed.into_iter().zip(found).map(|((path, _, size), digest)| FileEntry { path, size, digest }).collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    compare_artifact(dir, files, meta)
}

/// `files` (sorted) against those `meta` lists: a [`StoreError::Corrupt`] naming each file
/// that differs.
fn compare_artifact(dir: &Path, files: Vec<FileEntry>, meta: &Meta) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { path: dir.display().to_string(), reason };
    if files == meta.files && output_digest(&files) == meta.output {
        return Ok(());
    }
    let changed: Vec<String> = files
        .iter()
        .filter(|f| !meta.files.contains(f))
        .map(|f| f.path.clone())
        .chain(
            meta.files
                .iter()
                .filter(|f| !files.iter().any(|g| g.path == f.path))
                .map(|f| format!("{} (missing)", f.path)),
        )
        .collect();
    Err(corrupt(format!("content differs from meta.json: {}", changed.join(", "))))
}

fn manifest(dir: &Path) -> Result<Vec<FileEntry>, StoreError> {
    manifest_known(dir, &HashMap::new())
}

/// Files of an artifact folder (except meta.json), sorted, with sizes and digests, taking the
/// digest of a file in `known` whose size still matches.
fn manifest_known(dir: &Path, known: &HashMap<PathBuf, (u64, Digest)>) -> Result<Vec<FileEntry>, StoreError> {
    let mut out = Vec::new();
    for (relative, path, size) in listing(dir)? {
        let digest = match known.get(&path) {
            Some(&(n, d)) if n == size => d,
            _ if size == 0 => Digest::of_bytes(b""),
            _ => hash_file(&path).map_err(io_err(&path))?,
        };
        out.push(FileEntry { path: relative, size, digest });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Every file of an artifact folder but meta.json: its path relative to `dir` (with `/`), its
/// path and its size.
fn listing(dir: &Path) -> Result<Vec<(String, PathBuf, u64)>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).map_err(io_err(&current))?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if relative == "meta.json" {
                continue;
            }
            let size = entry.metadata().map_err(io_err(&path))?.len();
            out.push((relative, path, size));
        }
    }
    Ok(out)
}

fn output_digest(files: &[FileEntry]) -> Digest {
    let mut w = crate::graph::KeyWriter::new();
    w.seq(files.len());
    for f in files {
        w.str(&f.path);
        w.digest(&f.digest);
    }
    w.finish()
}

/// Writes a file aside and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}
