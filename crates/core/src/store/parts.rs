//! Per-file results a stage caches below the artifact level (`v1/parts/<space>/<key>/`), so a
//! corpus with one file appended re-reads that file only. A stage names a part by a key of what
//! the part is made from (one source file's content digest, the tokenizer, the split's decision
//! for that file...), builds it once, and assembles its artifact from the parts, hard-linking
//! their files where it can. The artifact lists the parts it used (`parts.json`), which is what
//! `cptc cache gc` keeps.
//!
//! Invariant (as for artifacts): a part folder exists only complete. It is built under `tmp/`
//! and renamed into place; a part some other stage of the same run published first wins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Store, StoreError, io_err};
use crate::graph::Digest;
use crate::graph::key::hash_file;

/// The file in an artifact that lists the parts it was assembled from.
pub const PARTS_LIST: &str = "parts.json";

/// The part cache of a store, as one stage uses it.
pub struct Parts {
    root: PathBuf,
    /// The store (unlocked): its `tmp/` names and its removal by rename aside.
    store: Store,
    /// Files the stage linked from parts into its output, with their size and digest: the
    /// store need not read them again to publish (a part's files are hashed once, when built).
    linked: Mutex<HashMap<PathBuf, (u64, Digest)>>,
}

/// A part's name: its space (the stage kind that makes it) and key.
pub fn part_name(space: &str, key: &Digest) -> String {
    format!("{space}/{}", key.hex())
}

impl Parts {
    /// The parts of the store whose layout folder is `store_root` (`.cptc/v1`).
    pub fn new(store_root: &Path) -> Parts {
        Parts {
            root: store_root.join("parts"),
            store: Store { root: store_root.to_path_buf(), lock: None },
            linked: Mutex::new(HashMap::new()),
        }
    }

    /// The folder of a part (which may not exist).
    pub fn dir(&self, space: &str, key: &Digest) -> PathBuf {
        self.root.join(space).join(key.hex())
    }

    /// The published part, if any, whose files still have the sizes they were built with (a
    /// truncated or damaged part is set aside, so it is built again).
    pub fn get(&self, space: &str, key: &Digest) -> Option<PathBuf> {
        let dir = self.dir(space, key);
        if !dir.is_dir() {
            return None;
        }
        let recorded = record(&dir);
        let now = sizes(&dir);
        if recorded
            .is_some_and(|r| r.len() == now.len() && r.iter().zip(&now).all(|((a, (n, _)), (b, m))| a == b && n == m))
        {
            return Some(dir);
        }
        let _ = self.store.remove(&dir);
        None
    }

    /// The part of `key`: published already, or built now by `build` into a fresh folder and
    /// renamed into place. A failed build leaves nothing.
    pub fn get_or_build<E: From<StoreError>>(
        &self,
        space: &str,
        key: &Digest,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(PathBuf, bool), E> {
        if let Some(dir) = self.get(space, key) {
            return Ok((dir, false));
        }
        let tmp = self.scratch(space, key)?;
        if let Err(e) = build(&tmp) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok((self.publish(space, key, &tmp)?, true))
    }

    /// A fresh folder to build the part of `key` in, for [`publish`](Self::publish): for a
    /// part built as a by-product of another (see the tokenize stage), where
    /// [`get_or_build`](Self::get_or_build)'s closure does not fit.
    pub fn scratch(&self, space: &str, key: &Digest) -> Result<PathBuf, StoreError> {
        let tmp = self.store.tmp_path(&format!("part-{space}-{}", key.short()));
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(tmp)
    }

    /// Publishes the part built in `tmp` (a [`scratch`](Self::scratch) folder) as the part of
    /// `key`: its files' sizes and digests recorded, the folder renamed into place.
    pub fn publish(&self, space: &str, key: &Digest, tmp: &Path) -> Result<PathBuf, StoreError> {
        let mut files = BTreeMap::new();
        for (name, size) in sizes(tmp) {
            let path = tmp.join(&name);
            let digest = hash_file(&path).map_err(io_err(&path))?;
            files.insert(name, (size, digest.hex()));
        }
        let listing = serde_json::to_string(&files).unwrap_or_default();
        let record_path = tmp.join(RECORD);
        fs::write(&record_path, listing).map_err(io_err(&record_path))?;
        let target = self.dir(space, key);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if let Err(e) = fs::rename(tmp, &target) {
            // Built meanwhile by another stage of this run: equal by construction.
            let _ = fs::remove_dir_all(tmp);
            if !target.is_dir() {
                return Err(io_err(&target)(e));
            }
        }
        Ok(target)
    }

    /// Every part in the store, by name.
    pub fn list(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        let Ok(spaces) = fs::read_dir(&self.root) else { return out };
        for space in spaces.filter_map(Result::ok) {
            let Ok(entries) = fs::read_dir(space.path()) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let name = format!("{}/{}", space.file_name().to_string_lossy(), entry.file_name().to_string_lossy());
                out.push((name, entry.path()));
            }
        }
        out.sort();
        out
    }

    /// Every part whose files are not what its record says (missing, extra, another size or
    /// another digest): reuse checks sizes only, so bytes damaged in place are found here.
    pub fn verify(&self) -> Vec<StoreError> {
        let mut problems = Vec::new();
        for (_, dir) in self.list() {
            let corrupt = |reason: String| StoreError::Corrupt { path: dir.display().to_string(), reason };
            let Some(recorded) = record(&dir) else {
                problems.push(corrupt(format!("{RECORD} is missing or unreadable")));
                continue;
            };
            let names: Vec<String> = sizes(&dir).into_iter().map(|(n, _)| n).collect();
            if names != recorded.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() {
                problems.push(corrupt(format!("its files are not the ones {RECORD} lists")));
                continue;
            }
            for (name, (size, hex)) in &recorded {
                let path = dir.join(name);
                match hash_file(&path) {
                    Ok(d) if d.hex() == *hex && fs::metadata(&path).is_ok_and(|m| m.len() == *size) => {}
                    Ok(_) => problems.push(corrupt(format!("{name} does not match its recorded digest"))),
                    Err(e) => problems.push(corrupt(format!("{name}: {e}"))),
                }
            }
        }
        problems
    }

    /// Removes the parts not named in `keep`; returns (count, bytes) removed. The bytes count
    /// files no artifact shares (a hard-linked file stays on disk with its artifact).
    pub fn gc(&self, keep: &HashSet<String>) -> Result<(usize, u64), StoreError> {
        let mut removed = (0, 0);
        for (name, dir) in self.list() {
            if keep.contains(&name) {
                continue;
            }
            removed.1 += unshared_bytes(&dir);
            self.store.remove(&dir)?;
            removed.0 += 1;
        }
        Ok(removed)
    }
}

/// A part's record of its files' sizes (checked whenever it is reused) and digests.
const RECORD: &str = "files.json";

/// A part's record: file name -> (size, digest hex), sorted by name.
fn record(dir: &Path) -> Option<Vec<(String, (u64, String))>> {
    let text = fs::read_to_string(dir.join(RECORD)).ok()?;
    let map: BTreeMap<String, (u64, String)> = serde_json::from_str(&text).ok()?;
    Some(map.into_iter().collect())
}

/// The part's files (but the record) with their sizes, by name.
fn sizes(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, u64)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != RECORD)
        .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok()?.len())))
        .collect();
    out.sort();
    out
}

/// Bytes of the files under `dir` that have no other link.
fn unshared_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && m.nlink() == 1)
        .map(|m| m.len())
        .sum()
}

/// The parts an artifact folder lists (none when it has no `parts.json`).
pub fn listed(artifact: &Path) -> Vec<String> {
    fs::read_to_string(artifact.join(PARTS_LIST)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

impl Parts {
    /// Puts each file `name` of the part in `part` at its `to` in the stage's output: a hard
    /// link (a copy across file systems), remembered with its recorded digest for the publish.
    pub fn link(&self, part: &Path, files: &[(&str, PathBuf)]) -> Result<(), StoreError> {
        let recorded: BTreeMap<String, (u64, String)> = record(part).unwrap_or_default().into_iter().collect();
        for (name, to) in files {
            let from = part.join(name);
            if fs::hard_link(&from, to).is_err() {
                fs::copy(&from, to).map_err(io_err(to))?;
            }
            let known = recorded.get(*name).and_then(|(size, hex)| Some((*size, Digest::parse(hex)?)));
            if let (Some(known), Ok(mut linked)) = (known, self.linked.lock()) {
                linked.insert(to.clone(), known);
            }
        }
        Ok(())
    }

    /// What [`link`](Self::link) put in the output, by path: size and digest.
    pub fn linked(&self) -> HashMap<PathBuf, (u64, Digest)> {
        self.linked.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
