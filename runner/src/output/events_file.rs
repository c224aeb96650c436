//! `releases/<release>/events.jsonl`: one JSON object per state change and decision.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::engine::event::Event;

/// Appends events to a release's `events.jsonl`.
pub struct EventsFile {
    file: File,
}

/// A runner killed in the middle of a line leaves it without its newline; the line is ended
/// so the next event starts a line of its own instead of being glued onto the torn one
/// (readers skip the one line that does not parse).
fn end_torn_line(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let Some(last) = len.checked_sub(1) else {
        return Ok(());
    };
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, last)?;
    if byte != *b"\n" {
        file.write_all(b"\n")?;
    }
    Ok(())
}

impl EventsFile {
    pub fn open(path: &Path) -> std::io::Result<EventsFile> {
        if let Some(parent) = path.parent() {
            crate::store::create_private_dir(parent).map_err(std::io::Error::other)?;
        }
        let mut file = crate::store::open_private_file(
            path,
            OpenOptions::new().create(true).read(true).append(true),
        )?;
        end_torn_line(&mut file)?;
        Ok(EventsFile { file })
    }

    /// Writes one line; output lines are left to script_output.log.
    pub fn write(&mut self, release: &str, at_ms: i64, event: &Event) -> std::io::Result<()> {
        match line_of(release, at_ms, event)? {
            Some(line) => self.write_line(&line),
            None => Ok(()),
        }
    }

    /// Writes `line` (from [`line_of`]) as one line.
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // One write call per line so a concurrent reader never sees half an object.
        self.file.write_all(&bytes)
    }
}

/// The line `events.jsonl` gets for `event` (without its newline), which a shared store
/// keeps too; `None` for output lines, which go to script_output.log.
pub fn line_of(release: &str, at_ms: i64, event: &Event) -> std::io::Result<Option<String>> {
    if matches!(event, Event::Output { .. } | Event::RollbackOutput { .. }) {
        return Ok(None);
    }
    let mut value = serde_json::to_value(event).map_err(std::io::Error::other)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("ts".into(), crate::output::time::rfc3339_ms(at_ms).into());
        map.insert("release".into(), release.into());
    }
    serde_json::to_string(&value)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"torn\":").unwrap();
        let mut events = EventsFile::open(&path).unwrap();
        events.file.write_all(b"{\"b\":2}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"torn\":\n{\"b\":2}\n");
        drop(events);
        EventsFile::open(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "a whole file is left alone"
        );
    }
}
