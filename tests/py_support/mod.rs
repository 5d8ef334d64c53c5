//! The Python references of the tests, served: one `tests/python/serve.py` per reference module
//! and concurrent caller, kept for the test binary's life, so torch and transformers are
//! imported once per binary instead of once per call (seconds each on CI's 2 cores).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

struct Server {
    module: String,
    /// Kept so the child is owned here; it exits when its stdin closes with the test process.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Idle servers; a caller takes one (or starts one) and puts it back after its call.
static IDLE: Mutex<Vec<Server>> = Mutex::new(Vec::new());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start(module: &str) -> Server {
    let mut child = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/python/serve.py"))
        .arg(module)
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the venv's python (scripts/setup.sh makes it)");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    Server { module: module.to_string(), _child: child, stdin, stdout }
}

/// Runs `module`'s subcommand `args[0]` with `args[1..]` (tests/python/<module>.py) and parses
/// the JSON line it prints last. Panics with the Python traceback when the call fails.
pub fn call(module: &str, args: &[&str]) -> Value {
    let taken = {
        let mut idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.iter().position(|s| s.module == module).map(|i| idle.swap_remove(i))
    };
    let mut server = taken.unwrap_or_else(|| start(module));
    let request = serde_json::to_string(args).expect("json");
    writeln!(server.stdin, "{request}").and_then(|()| server.stdin.flush()).expect("write to the Python server");
    let mut line = String::new();
    server.stdout.read_line(&mut line).expect("read from the Python server");
    assert!(!line.is_empty(), "the Python server of {module} died on {args:?}");
    let reply: Value = serde_json::from_str(&line).expect("the server's JSON line");
    assert!(reply["ok"] == true, "{module}.py {args:?} failed:\n{}", reply["error"].as_str().unwrap_or(""));
    let stdout = reply["stdout"].as_str().unwrap_or("");
    let value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
    IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(server);
    value
}
