//! `releases/<release>/events.jsonl`: one JSON object per state change and decision.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::engine::event::Event;

/// Appends events to a release's `events.jsonl`.
pub struct EventsFile {
    file: File,
}

impl EventsFile {
    pub fn open(path: &Path) -> std::io::Result<EventsFile> {
        if let Some(parent) = path.parent() {
            crate::store::create_private_dir(parent).map_err(std::io::Error::other)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(EventsFile { file })
    }

    /// Writes one line; output lines are left to script_output.log.
    pub fn write(&mut self, release: &str, at_ms: i64, event: &Event) -> std::io::Result<()> {
        if matches!(event, Event::Output { .. } | Event::RollbackOutput { .. }) {
            return Ok(());
        }
        let mut value = serde_json::to_value(event).map_err(std::io::Error::other)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("ts".into(), crate::output::time::rfc3339_ms(at_ms).into());
            map.insert("release".into(), release.into());
        }
        let mut line = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write call per line so a concurrent reader never sees half an object.
        self.file.write_all(&line)
    }
}
