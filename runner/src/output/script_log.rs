//! `script_output.log` per task run (every attempt, each headed by `=== attempt N ===`), and
//! `rollback.log` beside it when a rollback ran.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::event::{Event, TaskRef};
use crate::output::paths;

/// Which of a task's two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Log {
    Script,
    Rollback,
}

/// Open log files of the running tasks of one release.
pub struct ScriptLogs {
    state_dir: PathBuf,
    release: String,
    /// Unbuffered: each line is one write, so a killed runner loses nothing and `logs --follow`
    /// sees lines as they come.
    open: HashMap<(i64, Log), File>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        crate::store::create_private_dir(dir).map_err(std::io::Error::other)?;
    }
    crate::store::open_private_file(path, OpenOptions::new().create(true).append(true))
}

impl ScriptLogs {
    pub fn new(state_dir: PathBuf, release: &str) -> ScriptLogs {
        ScriptLogs {
            state_dir,
            release: release.to_string(),
            open: HashMap::new(),
        }
    }

    fn write_line(&mut self, task: &TaskRef, log: Log, line: &str) -> std::io::Result<()> {
        let key = (task.id, log);
        if !self.open.contains_key(&key) {
            let (dir, name) = (&self.state_dir, &task.task);
            let path = match log {
                Log::Script => paths::script_log(dir, &self.release, &task.phase.label, name),
                Log::Rollback => paths::rollback_log(dir, &self.release, &task.phase.label, name),
            };
            self.open.insert(key, open_append(&path)?);
        }
        match self.open.get_mut(&key) {
            Some(file) => file.write_all(format!("{line}\n").as_bytes()),
            None => Ok(()),
        }
    }

    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::AttemptStarted { task, attempt } => {
                self.write_line(task, Log::Script, &format!("=== attempt {attempt} ==="))
            }
            Event::Output { task, line } => self.write_line(task, Log::Script, line),
            Event::RollbackOutput { task, line } => self.write_line(task, Log::Rollback, line),
            Event::TaskStatus { task, .. } => {
                self.open.retain(|(id, _), _| *id != task.id);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The part of a log for one attempt: from its `=== attempt N ===` header to the next one
/// (`logs --attempt N`, the server's `?attempt=N`).
pub fn attempt_section(log: &str, attempt: u32) -> Option<String> {
    let header = format!("=== attempt {attempt} ===");
    let start = log.lines().position(|l| l == header)?;
    let section: Vec<&str> = log
        .lines()
        .skip(start)
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("=== attempt "))
        .map(|(_, l)| l)
        .collect();
    Some(section.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_one_attempt_out_of_a_log() {
        let log = "=== attempt 1 ===\na\nAttempt 1 failed\n=== attempt 2 ===\nb\nc\n";
        assert_eq!(
            attempt_section(log, 1).unwrap(),
            "=== attempt 1 ===\na\nAttempt 1 failed\n"
        );
        assert_eq!(
            attempt_section(log, 2).unwrap(),
            "=== attempt 2 ===\nb\nc\n"
        );
        assert!(attempt_section(log, 3).is_none());
    }
}
