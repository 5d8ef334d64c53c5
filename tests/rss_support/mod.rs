//! Peak memory of one child process, for tests and benchmarks that bound it.

/// Waits for `child` alone (other tests' children run in the same process, so `RUSAGE_CHILDREN`
/// would mix them) and returns its raw wait status and peak resident memory in bytes (`wait4`).
#[allow(unsafe_code)]
pub(crate) fn wait_peak_rss(child: std::process::Child) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 writes into both out-pointers, which outlive it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4: {}", std::io::Error::last_os_error());
    (status, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024)
}
