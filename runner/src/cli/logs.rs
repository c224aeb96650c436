//! `relflow logs RELEASE [--task T] [--attempt N] [--follow] [--json]`: with `--json` one
//! document of every log's text, or with `--follow` one JSON object per line as it comes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::error::CliError;
use crate::cli::status::open_existing;
use crate::exit_code;
use crate::output::{json, paths, script_log};
use crate::store::{ReleaseStatus, Store};

/// A task run's log: `phase[#n]/task` and its path.
struct LogFile {
    name: String,
    phase: String,
    task: String,
    path: PathBuf,
}

/// One log in `logs --json`.
#[derive(serde::Serialize)]
struct LogDoc<'a> {
    phase: &'a str,
    task: &'a str,
    path: String,
    text: String,
}

fn log_files(store: &Store, release: &str, task: Option<&str>) -> Result<Vec<LogFile>, CliError> {
    let phases = store.phase_runs(release)?;
    let runs = store.task_runs(release)?;
    if let Some(task) = task
        && !runs.iter().any(|t| t.task == task)
    {
        let names: Vec<&str> = runs.iter().map(|t| t.task.as_str()).collect();
        return Err(CliError::input(format!(
            "error: release {release} has no task `{task}` (tasks: {})",
            names.join(", ")
        )));
    }
    Ok(runs
        .iter()
        .filter(|t| task.is_none_or(|name| t.task == name))
        .filter_map(|t| {
            let phase = phases.iter().find(|p| p.id == t.phase_run_id)?.label();
            Some(LogFile {
                name: format!("{phase}/{}", t.task),
                path: paths::script_log(store.dir(), release, &phase, &t.task),
                phase,
                task: t.task.clone(),
            })
        })
        .collect())
}

pub fn run(
    state_dir: &Path,
    release: &str,
    task: Option<&str>,
    attempt: Option<u32>,
    follow: bool,
    json: bool,
) -> Result<i32, CliError> {
    let store = open_existing(state_dir)?;
    store.release(release)?;
    let files = log_files(&store, release, task)?;
    let existing: Vec<&LogFile> = files.iter().filter(|f| f.path.exists()).collect();
    let many = existing.len() > 1 || (task.is_none() && !existing.is_empty());
    let mut out = std::io::stdout().lock();
    let mut offsets = Vec::new();
    let mut docs = Vec::new();
    for file in &files {
        let text = std::fs::read(&file.path).unwrap_or_default();
        offsets.push(text.len() as u64);
        if !file.path.exists() {
            continue;
        }
        let text = String::from_utf8_lossy(&text);
        let shown = match attempt {
            Some(n) => match script_log::attempt_section(&text, n) {
                Some(s) => s,
                None if task.is_some() => {
                    return Err(CliError::input(format!(
                        "error: {} has no attempt {n}",
                        file.name
                    )));
                }
                None => continue,
            },
            None => text.into_owned(),
        };
        if json {
            docs.push(LogDoc {
                phase: &file.phase,
                task: &file.task,
                path: file.path.to_string_lossy().into_owned(),
                text: shown,
            });
            continue;
        }
        if many {
            let _ = writeln!(out, "==> {} <==", file.name);
        }
        let _ = out.write_all(shown.as_bytes());
    }
    if json && !follow {
        drop(out);
        json::print(&serde_json::json!({ "release": release, "logs": docs }));
        return Ok(exit_code::OK);
    }
    if existing.is_empty() && !follow && !json {
        let _ = writeln!(
            std::io::stderr(),
            "no log yet for {}",
            task.unwrap_or(release)
        );
    }
    drop(out);
    if follow {
        follow_logs(&store, release, task, files, offsets, json)?;
    }
    Ok(exit_code::OK)
}

/// Prints what is appended to the logs until the release stops running.
fn follow_logs(
    store: &Store,
    release: &str,
    task: Option<&str>,
    mut files: Vec<LogFile>,
    mut offsets: Vec<u64>,
    json: bool,
) -> Result<(), CliError> {
    loop {
        let record = store.release(release)?;
        let live =
            record.status == ReleaseStatus::Running && store.lease_holder(release)?.is_some();
        // New phase runs (restarts) add log files while we follow.
        for file in log_files(store, release, task)? {
            if !files.iter().any(|f| f.path == file.path) {
                files.push(file);
                offsets.push(0);
            }
        }
        for (file, offset) in files.iter().zip(offsets.iter_mut()) {
            let Ok(mut f) = std::fs::File::open(&file.path) else {
                continue;
            };
            if f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut new = Vec::new();
            if f.read_to_end(&mut new).is_ok() && !new.is_empty() {
                *offset += new.len() as u64;
                let text = String::from_utf8_lossy(&new);
                let mut out = std::io::stdout().lock();
                for line in text.lines() {
                    let _ = if json {
                        // One document per line, so a reader can act on each as it comes.
                        let doc = json::document(&serde_json::json!({
                            "release": release,
                            "phase": file.phase,
                            "task": file.task,
                            "line": line,
                        }));
                        writeln!(out, "{doc}")
                    } else if task.is_some() {
                        writeln!(out, "{line}")
                    } else {
                        writeln!(out, "[{}] {line}", file.name)
                    };
                }
            }
        }
        if !live {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
