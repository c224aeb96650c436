//! `script_output.log` per task run: every attempt, each headed by `=== attempt N ===`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::engine::event::{Event, TaskRef};
use crate::output::paths;

/// Open log files of the running tasks of one release.
pub struct ScriptLogs {
    state_dir: PathBuf,
    release: String,
    /// Unbuffered: each line is one write, so a killed runner loses nothing and `logs --follow`
    /// sees lines as they come.
    open: HashMap<i64, File>,
}

impl ScriptLogs {
    pub fn new(state_dir: PathBuf, release: &str) -> ScriptLogs {
        ScriptLogs {
            state_dir,
            release: release.to_string(),
            open: HashMap::new(),
        }
    }

    fn file(&mut self, task: &TaskRef) -> std::io::Result<&mut File> {
        if !self.open.contains_key(&task.id) {
            let path =
                paths::script_log(&self.state_dir, &self.release, &task.phase.label, &task.task);
            if let Some(dir) = path.parent() {
                crate::store::create_private_dir(dir).map_err(std::io::Error::other)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            self.open.insert(task.id, file);
        }
        Ok(self.open.get_mut(&task.id).expect("inserted above"))
    }

    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::AttemptStarted { task, attempt } => self
                .file(task)?
                .write_all(format!("=== attempt {attempt} ===\n").as_bytes()),
            Event::Output { task, line } => {
                self.file(task)?.write_all(format!("{line}\n").as_bytes())
            }
            Event::TaskStatus { task, .. } => {
                self.open.remove(&task.id);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
