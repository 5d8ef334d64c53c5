//! Content digests of external files (corpora, models) and of the artifacts' files stages
//! read, remembered across commands by their stat: a file whose size, modification time, change
//! time, inode and device are unchanged is not read again. Misses are hashed in parallel.
//!
//! Kept in `v1/digests.json` of the store. A file changed within the same clock tick as its
//! last hashing could keep its stat, so a digest is kept across commands only for files last
//! modified more than [`SETTLE`] before hashing began (git's "racily clean" rule); within one
//! command every digest is remembered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::graph::Digest;
use crate::graph::key::hash_file_reporting;

/// How long a file must have been left alone before its stat vouches for its content.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What identifies a file's content without reading it. A stage's parts are published only
/// while each file's stat is still the one its digest was taken under ([`Stat::still`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
}

impl Stat {
    /// The file's stat now.
    pub fn of(path: &Path) -> std::io::Result<Stat> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path)?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(Stat {
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
            device: m.dev(),
        })
    }

    /// Whether the file was left alone for `settle` before `started`: by its change time too,
    /// which a copy that keeps the modification time (`cp -p`, `rsync -t`, `tar`) renews.
    fn settled(&self, started: SystemTime, settle: Duration) -> bool {
        let Ok(since) = started.duration_since(SystemTime::UNIX_EPOCH) else { return false };
        since.as_nanos() as i128 - self.mtime_ns.max(self.ctime_ns) > settle.as_nanos() as i128
    }

    /// Whether `path` still has this stat's content: its size, modification time, inode and
    /// device (a file gone or unreadable has not). Not its change time, which a hard link to it
    /// also moves (the model stage links weights into the store). Every write moves the
    /// modification time, unless the writer sets it back on purpose (`touch -r`, `cp -p` onto
    /// the same file): a same-size rewrite done so during a stage goes unseen by this check,
    /// though its change time makes the digests' cache hash the file again next time.
    pub fn still(&self, path: &Path) -> bool {
        Stat::of(path).is_ok_and(|now| self.still_content(&now))
    }

    /// Whether `now` is this stat but for its change time ([`still`](Self::still)).
    fn still_content(&self, now: &Stat) -> bool {
        Stat { ctime_ns: self.ctime_ns, ..*now } == *self
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    stat: Stat,
    digest: Digest,
    /// Whether the stat vouches for the content beyond this command (the file had settled).
    #[serde(skip, default = "settled")]
    keep: bool,
}

/// Entries read back from the store were kept because they had settled.
fn settled() -> bool {
    true
}

/// File digests by canonical path, remembered in the store (or only in memory).
#[derive(Default)]
pub struct FileDigests {
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<PathBuf, Entry>>,
    /// A lock per file being hashed: two stages reading the same new file at once (a corpus
    /// tokenized for two models) hash it once, the second waiting for the first.
    hashing: Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<Mutex<()>>>>,
    dirty: AtomicBool,
    /// How long a file must have been left alone to be remembered ([`SETTLE`]).
    settle: Duration,
}

impl FileDigests {
    /// Digests remembered for this process only.
    pub fn in_memory() -> FileDigests {
        FileDigests::default()
    }

    /// Digests remembered in the store at `store_root` (`Store::root`); an unreadable or
    /// corrupt file starts empty (it is only a cache).
    pub fn persistent(store_root: &Path) -> FileDigests {
        let path = store_root.join("digests.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BTreeMap<PathBuf, Entry>>(&bytes).ok())
            .unwrap_or_default();
        FileDigests { path: Some(path), entries: Mutex::new(entries), settle: SETTLE, ..FileDigests::default() }
    }

    /// Remembers files left alone for `settle` (tests: a file's change time cannot be set back).
    #[cfg(test)]
    fn settling(self, settle: Duration) -> FileDigests {
        FileDigests { settle, ..self }
    }

    /// The content digest of `path`: remembered when its stat is unchanged, else hashed.
    pub fn digest(&self, path: &Path) -> std::io::Result<Digest> {
        self.stamped(path).map(|(digest, _)| digest)
    }

    /// [`digest`](Self::digest), and the stat it vouches for: the file's content is the
    /// digest's while [`Stat::still`] holds (a stat that changed during the hashing vouches for
    /// nothing, and never holds again).
    pub fn stamped(&self, path: &Path) -> std::io::Result<(Digest, Stat)> {
        self.digest_reporting(path, &|_| {})
    }

    /// The file's canonical path, its stat and its digest if remembered for that stat.
    fn remembered(&self, path: &Path) -> std::io::Result<(PathBuf, Stat, Option<Digest>)> {
        let key = std::fs::canonicalize(path)?;
        let stat = Stat::of(&key)?;
        let known = self.lock_entries().get(&key).filter(|e| e.stat == stat).map(|e| e.digest);
        Ok((key, stat, known))
    }

    /// The digest of `path` and the stat it vouches for, if remembered for its stat now: no
    /// read of the file.
    pub fn known(&self, path: &Path) -> std::io::Result<Option<(Digest, Stat)>> {
        let (_, stat, known) = self.remembered(path)?;
        Ok(known.map(|digest| (digest, stat)))
    }

    /// How many distinct files among `paths` are not remembered, and their bytes: what
    /// [`digest_all`](Self::digest_all) will read. A file that cannot be
    /// read counts for nothing here (its error comes with its digest).
    pub fn unknown(&self, paths: &[PathBuf]) -> (usize, u64) {
        let mut seen = std::collections::HashSet::new();
        paths
            .iter()
            .filter_map(|p| self.remembered(p).ok())
            .filter(|(key, _, known)| known.is_none() && seen.insert(key.clone()))
            .fold((0, 0), |(n, bytes), (_, stat, _)| (n + 1, bytes + stat.size))
    }

    /// [`stamped`](Self::stamped), telling `read` each block's size as a file is hashed.
    fn digest_reporting(&self, path: &Path, read: &dyn Fn(u64)) -> std::io::Result<(Digest, Stat)> {
        let started = SystemTime::now();
        let (key, stat, known) = self.remembered(path)?;
        if let Some(digest) = known {
            return Ok((digest, stat));
        }
        let lock = {
            let mut hashing = self.hashing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            hashing.entry(key.clone()).or_default().clone()
        };
        let _hashing = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Hashed by another thread while this one waited.
        let (key, stat, known) = self.remembered(&key)?;
        if let Some(digest) = known {
            return Ok((digest, stat));
        }
        let digest = hash_file_reporting(&key, read)?;
        // The stat taken before hashing vouches only if nothing changed meanwhile.
        let after = Stat::of(&key)?;
        if after == stat {
            let keep = stat.settled(started, self.settle);
            self.dirty.fetch_or(keep, Ordering::Relaxed);
            self.lock_entries().insert(key, Entry { stat, digest, keep });
            return Ok((digest, stat));
        }
        // Only the change time moved (a hard link, a chmod): the content is the digest's, and
        // the stat after vouches for it in this command, not beyond.
        if stat.still_content(&after) {
            self.lock_entries().insert(key, Entry { stat: after, digest, keep: false });
            return Ok((digest, after));
        }
        // Changed while hashed: a stat no later look will find, so any check against it fails.
        Ok((digest, Stat { mtime_ns: i128::MIN, ..after }))
    }

    /// Digests many files, hashing the misses in parallel and telling `read` the bytes hashed
    /// as they go; the first error wins.
    pub fn digest_all(&self, paths: &[PathBuf], read: &(dyn Fn(u64) + Sync)) -> std::io::Result<Vec<Digest>> {
        // Each file once, whatever spelling reaches it: a corpus is often the input of several
        // stages, and two threads missing the same file at once would both hash it.
        let keys: Vec<PathBuf> =
            paths.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())).collect();
        let mut unique: Vec<&PathBuf> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let digests: std::collections::HashMap<&PathBuf, Digest> = unique
            .into_par_iter()
            .map(|k| Ok((k, self.digest_reporting(k, read)?.0)))
            .collect::<std::io::Result<_>>()?;
        Ok(keys.iter().map(|k| digests[k]).collect())
    }

    /// Writes what was learnt back to the store (atomically: a concurrent command loses at
    /// most its own additions). Nothing to do in memory or when nothing changed.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(dir) = path.parent() else { return Ok(()) };
        if !dir.is_dir() {
            return Ok(()); // no store yet: `plan` of a recipe never run creates none
        }
        let entries = self.lock_entries();
        // The store's own files (the artifacts stages read) come and go: a gone one is dropped.
        let own = std::fs::canonicalize(dir).ok();
        let gone = |key: &PathBuf| own.as_ref().is_some_and(|own| key.starts_with(own)) && !key.exists();
        let kept: BTreeMap<&PathBuf, &Entry> = entries.iter().filter(|(key, e)| e.keep && !gone(key)).collect();
        let bytes = serde_json::to_vec(&kept).map_err(std::io::Error::other)?;
        crate::store::write_atomic(path, &bytes).map_err(std::io::Error::other)
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(path: &Path) {
        // Backdate the file's modification time (its change time becomes now).
        let f = std::fs::File::options().write(true).open(path).expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(60)).expect("set mtime");
    }

    #[test]
    fn remembered_digests_survive_a_new_process_and_a_changed_file_is_rehashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("corpus.jsonl");
        std::fs::write(&file, b"{\"text\": \"one\"}\n").expect("write");
        let first = FileDigests::persistent(dir.path()).settling(Duration::ZERO);
        let d1 = first.digest(&file).expect("digest");
        first.save().expect("save");
        assert!(dir.path().join("digests.json").is_file());

        let second = FileDigests::persistent(dir.path());
        assert_eq!(second.lock_entries().len(), 1, "the digest was remembered");
        assert_eq!(second.digest(&file).expect("digest"), d1);

        // Same size, new content: the stat (mtime, ctime) differs, so it is hashed again.
        std::fs::write(&file, b"{\"text\": \"two\"}\n").expect("rewrite");
        let d2 = second.digest(&file).expect("digest");
        assert_ne!(d1, d2);
        assert_eq!(d2, crate::graph::key::hash_file(&file).expect("hash"));
    }

    #[test]
    fn unknown_counts_each_file_not_remembered_once_with_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        std::fs::write(&a, b"aaaa").expect("write");
        std::fs::write(&b, b"bbbbbbbbbb").expect("write");
        let digests = FileDigests::in_memory();
        // `b` twice, once through another spelling of its path: one file.
        let b_again = dir.path().join(".").join("b.jsonl");
        let all = [a.clone(), b.clone(), b_again, dir.path().join("missing")];
        assert_eq!(digests.unknown(&all), (2, 14));
        let read = std::sync::atomic::AtomicU64::new(0);
        // Each file listed by several stages, `b` under two spellings: each is read once.
        let listed: Vec<PathBuf> = all[..3].iter().chain(&all[..3]).cloned().collect();
        let got = digests
            .digest_all(&listed, &|n| {
                read.fetch_add(n, Ordering::Relaxed);
            })
            .expect("digests");
        assert_eq!(read.load(Ordering::Relaxed), 14, "each file read once");
        assert_eq!(got.len(), 6, "a digest for every path given");
        assert_eq!((got[1], got[2]), (got[4], got[4]));
        assert_eq!(digests.unknown(&all), (0, 0), "all remembered");
        std::fs::write(&a, b"changed!").expect("rewrite");
        assert_eq!(digests.unknown(&all), (1, 8), "a changed file is unknown again");
    }

    /// Whether a command after the one that hashed `file` (its digests saved in `store`)
    /// finds it remembered.
    fn remembered_next_time(store: &Path, file: &Path) -> bool {
        let digests = FileDigests::persistent(store);
        digests.digest(file).expect("digest");
        digests.save().expect("save");
        !FileDigests::persistent(store).lock_entries().is_empty()
    }

    #[test]
    fn a_file_copied_with_its_old_modification_time_is_not_remembered_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("copied.txt");
        std::fs::write(&file, b"copied").expect("write");
        old(&file);
        assert!(!remembered_next_time(dir.path(), &file), "its change time is fresh: not trusted by its stat yet");
    }

    #[test]
    fn a_stamp_holds_through_a_hard_link_and_fails_on_a_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("model.safetensors");
        std::fs::write(&file, b"weights").expect("write");
        old(&file);
        let (_, stamp) = FileDigests::in_memory().stamped(&file).expect("digest");
        // The model stage links weights into the store: the change time moves, not the content.
        std::fs::hard_link(&file, dir.path().join("linked")).expect("link");
        assert!(stamp.still(&file));
        std::fs::write(&file, b"weights").expect("rewrite");
        assert!(!stamp.still(&file), "written again (the same bytes): no longer the stamp's");
    }

    #[test]
    fn a_file_modified_just_now_is_not_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("fresh.txt");
        std::fs::write(&file, b"fresh").expect("write");
        assert!(!remembered_next_time(dir.path(), &file), "a racily clean file must not be trusted by its stat");
    }

    #[test]
    fn two_stages_asking_for_a_new_file_at_once_hash_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("corpus.jsonl");
        let bytes = vec![b'x'; 4 << 20];
        std::fs::write(&file, &bytes).expect("write");
        let digests = FileDigests::in_memory();
        assert_eq!(digests.known(&file).expect("stat"), None, "not hashed yet");
        let read = std::sync::atomic::AtomicU64::new(0);
        // Slow enough that, but for the lock, the threads would all be reading at once.
        let slow = |n| {
            read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let got: Vec<Digest> = std::thread::scope(|s| {
            let threads: Vec<_> =
                (0..4).map(|_| s.spawn(|| digests.digest_reporting(&file, &slow).expect("digest").0)).collect();
            threads.into_iter().map(|t| t.join().expect("thread")).collect()
        });
        assert!(got.iter().all(|d| *d == got[0]));
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), bytes.len() as u64, "read once");
        assert_eq!(digests.known(&file).expect("stat").map(|(d, _)| d), Some(got[0]));
    }
}
