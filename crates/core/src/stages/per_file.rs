//! How a corpus stage schedules its per-file parts: many files side by side, one whole file per
//! core; a few files one after another, each spread over every core.
//!
//! A file read, parsed, hashed and encoded on one thread keeps everything it touches in that
//! core's caches and allocator, and waits on nobody; spreading one file over the cores costs a
//! hand-off per batch (each a barrier where a core may idle). With at least
//! [`FILES_PER_WORKER`] files to build per core, each core takes whole files in turn (a worker
//! of its own, whose rayon calls run inline); with fewer, the last files would leave cores idle
//! for a file's whole length, so files go one at a time over the whole pool.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::InputFiles;
use super::StageFailure;
use crate::graph::Digest;
use crate::store::Parts;

/// Files to build per core before whole files go to cores: the last file a core takes leaves
/// the others idle for up to one file's time, a small share of this many.
pub(super) const FILES_PER_WORKER: usize = 4;

/// Calls `build(i)` for every `i` in `0..n`, each once, and returns the results in order, or the
/// error of the lowest index that failed (later files are not started once one fails). `todo`
/// says which indices do real work (a part not yet in the store); only those are counted when
/// deciding how to schedule, and run side by side, the same count on each core, but for the
/// last `threads - 1` or more of them; the rest (those, and the parts already built) run in
/// order over the whole pool, from the moment the first core runs out of files to take, beside
/// the files still being built. As a file is taken, `ahead(j)` is told a file `j` to build soon:
/// side by side, the one taken once each core has taken one more; one at a time, the next (see
/// [`get_or_build_parts`]). Each file to build but the first of each core is told once.
pub(super) fn build_all<T: Send>(
    n: usize,
    todo: &[bool],
    ahead: impl Fn(usize) + Sync,
    build: impl Fn(usize) -> Result<T, StageFailure> + Sync,
) -> Result<Vec<T>, StageFailure> {
    let threads = rayon::current_num_threads();
    let mut work: Vec<usize> = (0..n).filter(|&i| todo.get(i).copied().unwrap_or(true)).collect();
    // Each file is told of once, whichever path tells it first.
    let told: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let ahead = |j: usize| {
        if told.get(j).is_some_and(|t| !t.swap(true, Ordering::Relaxed)) {
            ahead(j);
        }
    };
    if threads <= 1 || work.len() < FILES_PER_WORKER * threads {
        return (0..n)
            .map(|i| {
                if let Some(&later) = work.get(work.partition_point(|&j| j <= i)) {
                    ahead(later);
                }
                build(i)
            })
            .collect();
    }
    // Side by side, as many files as give each core the same count; the rest (at least
    // `threads - 1`) go over the whole pool: the very last file run side by side would have one
    // core working while the others wait, and the rest, started as soon as one core has nothing
    // left, covers a core still finishing its last file.
    // The files after those run side by side come next: told ahead too.
    let after: Vec<usize> = work.clone();
    work.truncate((work.len() + 1 - threads) / threads * threads);
    let mut side = vec![false; n];
    for &i in &work {
        side[i] = true;
    }
    let slots: Vec<Mutex<Option<Result<T, StageFailure>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let record = |i: usize, r: Result<T, StageFailure>| {
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        if let Ok(mut slot) = slots[i].lock() {
            *slot = Some(r);
        }
    };
    let (idle, wait_idle) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        for w in 0..threads {
            let (next, failed, work, after, build, record, idle, ahead) =
                (&next, &failed, &work, &after, &build, &record, idle.clone(), &ahead);
            scope.spawn(move || {
                // A pool of one, made of this thread: the file's own rayon calls run inline.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .use_current_thread()
                    .thread_name(move |_| format!("file-worker-{w}"))
                    .build();
                let run = || loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= work.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(&later) = after.get(k + threads) {
                        ahead(later);
                    }
                    record(work[k], build(work[k]));
                };
                match pool {
                    Ok(pool) => pool.install(run),
                    // No pool of one (threads exhausted): the file's rayon calls use the
                    // shared pool, which is only slower.
                    Err(_) => run(),
                }
                // This core has nothing left to take: the other files can start.
                let _ = idle.send(());
            });
        }
        drop(idle);
        // This thread, in the caller's pool, runs the rest as soon as one core is free: waiting
        // for every side-by-side file would leave that core idle for up to a file's time.
        let _ = wait_idle.recv();
        let rest: Vec<usize> = (0..n).filter(|&i| !side[i]).collect();
        for (r, &i) in rest.iter().enumerate() {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            if let Some(&later) = rest.get(r + 1).filter(|&&j| todo.get(j).copied().unwrap_or(true)) {
                ahead(later);
            }
            record(i, build(i));
        }
    });
    // In index order, so the error reported is the lowest index's, whatever the timing (a file
    // not started after a failure is no error of its own).
    let mut results = Vec::with_capacity(n);
    let mut unbuilt = false;
    for slot in slots {
        match slot.into_inner().ok().flatten() {
            Some(Ok(v)) => results.push(v),
            Some(Err(e)) => return Err(e),
            None => unbuilt = true,
        }
    }
    if unbuilt {
        return Err(StageFailure::internal("a file's part was neither built nor failed"));
    }
    Ok(results)
}

/// A corpus stage's per-file parts, in file order.
pub(super) struct FileParts {
    /// Each file's part as the artifact lists it (`space/key`).
    pub names: Vec<String>,
    pub dirs: Vec<PathBuf>,
    /// Parts built by this run (the rest were in the store, or repeat another file's content).
    pub built: usize,
    /// Files whose content an earlier file of the list has (their part is that file's).
    pub repeats: usize,
}

/// What became of the files of `files` a stage did not build (`built` of them did; `repeats`
/// repeat another's content), for its notice: `1 repeats another file's content, 3 were in
/// the store`.
pub(super) fn not_built(files: usize, built: usize, repeats: usize) -> String {
    let stored = files.saturating_sub(built + repeats);
    let mut out = Vec::new();
    if repeats > 0 {
        out.push(format!("{repeats} {} another file's content", if repeats == 1 { "repeats" } else { "repeat" }));
    }
    if stored > 0 {
        out.push(format!("{stored} {} in the store", if stored == 1 { "was" } else { "were" }));
    }
    out.join(", ")
}

/// Each file's part of `space`, from the store or built by `build(i, key, folder)` through
/// [`build_all`]: a key two files share (a file copied into the corpus twice) is built once.
/// `key(i, digest)` is file `i`'s part key, from the file's digest in `files`. A file whose
/// digest is not known yet is hashed on a thread of its own once it is the next but one a core
/// will take: that reads it from disk while the cores work on the files before it, so its
/// worker finds its digest known and its pages in memory (the kernel's own readahead, 8 MB
/// here, covers no whole file). `finished(i)` follows each file, for progress.
pub(super) fn get_or_build_parts(
    parts: &Parts,
    space: &str,
    files: &InputFiles<'_>,
    key: impl Fn(usize, &Digest) -> Result<Digest, StageFailure> + Sync,
    build: impl Fn(usize, &Digest, &Path) -> Result<(), StageFailure> + Sync,
    finished: impl Fn(usize) + Sync,
) -> Result<FileParts, StageFailure> {
    let n = files.len();
    let known: Vec<Option<Digest>> = (0..n).map(|i| key(i, &files.known(i)?).ok()).collect();
    let mut seen = std::collections::HashSet::new();
    // A file not hashed yet is work to schedule: most such files are new.
    let todo: Vec<bool> =
        known.iter().map(|k| k.is_none_or(|key| seen.insert(key) && parts.get(space, &key).is_none())).collect();
    let (soon, asked) = std::sync::mpsc::channel::<usize>();
    let stop = AtomicBool::new(false);
    let got = std::thread::scope(|scope| {
        // Its errors are the file's worker's to report. Once the files are done (or one
        // failed), what it was told of is no longer needed.
        let stop = &stop;
        scope.spawn(move || {
            for j in asked {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                drop(files.get(j));
            }
        });
        let got = build_all(
            n,
            &todo,
            |j| {
                let _ = soon.send(j);
            },
            |i| {
                let key = match known[i] {
                    Some(key) => key,
                    None => key(i, &files.get(i)?.0)?,
                };
                let (dir, fresh) = parts.get_or_build(space, &key, |dir| build(i, &key, dir))?;
                finished(i);
                Ok((key, dir, fresh))
            },
        );
        stop.store(true, Ordering::Relaxed);
        drop(soon);
        got
    })?;
    let distinct: std::collections::HashSet<&Digest> = got.iter().map(|(key, _, _)| key).collect();
    // Two files of one content, both unhashed, may both have built it: one part.
    let built: std::collections::HashSet<&Digest> =
        got.iter().zip(&todo).filter(|((_, _, fresh), todo)| *fresh && **todo).map(|((key, _, _), _)| key).collect();
    Ok(FileParts {
        names: got.iter().map(|(key, _, _)| crate::store::parts::part_name(space, key)).collect(),
        built: built.len(),
        repeats: n - distinct.len(),
        dirs: got.into_iter().map(|(_, dir, _)| dir).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool")
    }

    #[test]
    fn enough_files_run_side_by_side_one_per_core_and_come_back_in_order() {
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let got = pool(2).install(|| {
            build_all(
                8,
                &[true; 8],
                |_| {},
                |i| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Inside, a file's own rayon calls see a pool of one.
                    let inner = rayon::current_num_threads();
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok((i, inner))
                },
            )
        });
        let got = got.expect("built");
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        // Three files on each core; the last two over the whole pool.
        assert!(got[..6].iter().all(|g| g.1 == 1) && got[6..].iter().all(|g| g.1 == 2), "{got:?}");
        assert_eq!(most.load(Ordering::SeqCst), 2, "two files at a time on two cores");
    }

    #[test]
    fn each_file_but_the_first_two_is_told_ahead_once_before_it_is_built() {
        for (n, todo) in [
            (8, vec![true; 8]),
            (7, vec![true; 7]),
            (10, vec![true, false, true, true, false, true, true, true, true, true]),
        ] {
            let events = Mutex::new(Vec::new());
            let got = pool(2).install(|| {
                build_all(
                    n,
                    &todo,
                    |j| events.lock().expect("lock").push(("ahead", j)),
                    |i| {
                        events.lock().expect("lock").push(("build", i));
                        std::thread::sleep(Duration::from_millis(5));
                        Ok(i)
                    },
                )
            });
            assert_eq!(got.expect("built"), (0..n).collect::<Vec<_>>());
            let events = events.into_inner().expect("lock");
            let at = |e: (&str, usize)| events.iter().position(|x| *x == e);
            let work: Vec<usize> = (0..n).filter(|&i| todo[i]).collect();
            // The first file of each core may be taken at once; every later one is told first.
            for (k, &j) in work.iter().enumerate() {
                let told = events.iter().filter(|x| **x == ("ahead", j)).count();
                assert!(told <= 1, "file {j}: {events:?}");
                if k >= 2 {
                    assert_eq!(told, 1, "file {j}: {events:?}");
                    assert!(at(("ahead", j)) < at(("build", j)), "file {j}: {events:?}");
                }
            }
            assert!(todo.iter().zip(0..).all(|(t, i)| *t || at(("ahead", i)).is_none()), "a stored part: {events:?}");
        }
    }

    #[test]
    fn files_not_hashed_yet_are_hashed_before_their_part_is_built_and_a_repeat_counts_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(&dir.path().join("store")).expect("store");
        let parts = store.parts();
        // Ten files, enough to run side by side on two cores; the second repeats the first, and
        // the two are taken at once, one per core: both may build the part.
        let paths: Vec<PathBuf> = (0..10)
            .map(|i| {
                let path = dir.path().join(format!("{i}.txt"));
                std::fs::write(&path, format!("content {}", i.max(1) - 1)).expect("write");
                path
            })
            .collect();
        let digests = crate::store::FileDigests::in_memory();
        let files = InputFiles::new(&paths, vec![None; paths.len()], &digests);
        let built = Mutex::new(Vec::new());
        let got = pool(2).install(|| {
            get_or_build_parts(
                &parts,
                "test",
                &files,
                |_, digest| Ok(*digest),
                |i, key, out| {
                    // Its digest was taken before its part is built, and is its key's.
                    let taken = files.taken(i).map(|(digest, _)| digest).ok();
                    built.lock().expect("lock").push((i, taken == Some(*key)));
                    std::thread::sleep(Duration::from_millis(5));
                    std::fs::write(out.join("part"), i.to_string()).map_err(|e| StageFailure::internal(e.to_string()))
                },
                |_| {},
            )
        });
        let got = got.expect("built");
        let built = built.into_inner().expect("lock");
        assert!(built.iter().all(|(_, taken)| *taken), "{built:?}");
        assert_eq!((got.names.len(), got.repeats), (10, 1));
        assert_eq!(got.names[0], got.names[1], "one part for one content");
        assert_eq!(got.built, 9, "{built:?}");
        assert_eq!(not_built(10, got.built, got.repeats), "1 repeats another file's content");
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(files.taken(i).expect("taken").0, crate::graph::key::hash_file(path).expect("hash"));
        }
    }

    #[test]
    fn the_rest_starts_as_soon_as_one_core_is_free() {
        // Files 0..6 run three to a core; file 5 is slow. Files 6 and 7 must not wait for it.
        let start = std::time::Instant::now();
        let (began, ended) = (Mutex::new(vec![None; 8]), Mutex::new(vec![None; 8]));
        let got = pool(2).install(|| {
            build_all(
                8,
                &[true; 8],
                |_| {},
                |i| {
                    began.lock().expect("lock")[i] = Some(start.elapsed());
                    std::thread::sleep(Duration::from_millis(if i == 5 { 400 } else { 10 }));
                    ended.lock().expect("lock")[i] = Some(start.elapsed());
                    Ok(i)
                },
            )
        });
        assert_eq!(got.expect("built"), (0..8).collect::<Vec<_>>());
        let (began, ended) = (began.into_inner().expect("lock"), ended.into_inner().expect("lock"));
        let slow_end = ended[5].expect("file 5 ran");
        for i in [6, 7] {
            assert!(began[i].expect("ran") < slow_end, "file {i} waited for file 5: {began:?} {ended:?}");
        }
    }

    #[test]
    fn few_files_run_one_at_a_time_over_the_whole_pool() {
        let order = Mutex::new(Vec::new());
        let got = pool(2).install(|| {
            build_all(
                7,
                &[true; 7],
                |_| {},
                |i| {
                    order.lock().expect("lock").push(i);
                    Ok(rayon::current_num_threads())
                },
            )
        });
        assert_eq!(got.expect("built"), vec![2; 7]);
        assert_eq!(order.into_inner().expect("lock"), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_failing_file_is_the_error_and_later_files_are_not_started() {
        let started = AtomicUsize::new(0);
        let got: Result<Vec<usize>, StageFailure> = pool(2).install(|| {
            build_all(
                40,
                &[true; 40],
                |_| {},
                |i| {
                    started.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(if i == 3 { 40 } else { 5 }));
                    if i == 3 || i == 5 { Err(StageFailure::internal(format!("file {i}"))) } else { Ok(i) }
                },
            )
        });
        let message = format!("{:?}", got.expect_err("an error"));
        assert!(message.contains("file 3"), "{message}");
        assert!(started.load(Ordering::SeqCst) < 20, "files went on after a failure");
    }

    #[test]
    fn parts_already_built_and_the_last_files_come_after_the_others_in_order() {
        let order = Mutex::new(Vec::new());
        let todo: Vec<bool> = (0..10).map(|i| i % 5 != 0).collect();
        let got = pool(2).install(|| {
            build_all(
                10,
                &todo,
                |_| {},
                |i| {
                    order.lock().expect("lock").push(i);
                    Ok(i)
                },
            )
        });
        assert_eq!(got.expect("built"), (0..10).collect::<Vec<_>>());
        let order = order.into_inner().expect("lock");
        // Eight files to build: three on each core, then the cached ones and the last two.
        assert_eq!(order[6..], [0, 5, 8, 9], "the cached ones and the last files come last: {order:?}");
    }
}
