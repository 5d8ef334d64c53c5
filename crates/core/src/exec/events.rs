//! The JSONL event log of one run: a line per stage event, under the store's `runs/`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::graph::Digest;

pub struct EventLog {
    path: PathBuf,
    file: Option<Mutex<File>>,
}

impl EventLog {
    /// A log in `dir` named after the current time and process.
    pub fn create(dir: &Path) -> EventLog {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{now}-{}.jsonl", std::process::id()));
        let file = File::create(&path).ok().map(Mutex::new);
        EventLog { path, file }
    }

    /// A log that records nothing (dry runs, tests).
    pub fn none() -> EventLog {
        EventLog { path: PathBuf::new(), file: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn event(&self, event: &str, stage: &str, key: &Digest, extra: serde_json::Value) {
        let Some(file) = &self.file else { return };
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut record = serde_json::json!({ "t": t, "event": event, "stage": stage, "key": key });
        if let (serde_json::Value::Object(map), serde_json::Value::Object(more)) = (&mut record, extra) {
            map.extend(more);
        }
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(f, "{record}");
        }
    }
}
