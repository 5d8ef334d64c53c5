//! Peak memory of one child process, for tests and benchmarks that bound it.

use std::os::unix::process::ExitStatusExt as _;

/// Waits for `child` and returns its raw wait status and peak resident memory in bytes: the
/// largest `VmHWM` of `/proc/<pid>/status` seen, read every few milliseconds until it exits.
///
/// Not `wait4`'s `ru_maxrss`: Linux carries a process's peak across `exec`, and a child spawned
/// by `vfork` (as `Command` does) runs in its parent's memory until then, so `ru_maxrss` is at
/// least the parent's own peak: a benchmark that once held its corpus in memory, or a test
/// process whose other tests did, would hide the child's. `VmHWM` is the peak of the child's own
/// address space since its `exec`; a high-water mark, so polling misses only a peak reached in
/// the last poll interval before exit.
pub(crate) fn wait_peak_rss(mut child: std::process::Child) -> (i32, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file).ok().as_deref().and_then(vm_hwm) {
            peak = peak.max(hwm);
        }
        match child.try_wait() {
            Ok(Some(status)) => return (status.into_raw(), peak),
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => panic!("waiting for the child: {e}"),
        }
    }
}

/// `VmHWM` in bytes, from the text of a `/proc/<pid>/status` (absent for a zombie).
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
