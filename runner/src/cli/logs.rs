//! `relflow logs RELEASE [--task T] [--attempt N] [--follow] [--json]`: with `--json` one
//! document of every log's text, or with `--follow` one JSON object per line as it comes.
//! A shared store's logs are read from its rows (any machine sees them), the embedded store's
//! from the `script_output.log` files of its state directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::error::CliError;
use crate::cli::status::open_existing;
use crate::exit_code;
use crate::output::{json, paths, script_log};
use crate::store::{ReleaseStatus, Store, journal};

/// A task run's log: `phase[#n]/task` and its path.
struct LogFile {
    task_run: i64,
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
                task_run: t.id,
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
    let mut offsets = Vec::new();
    let mut texts = Vec::new();
    for file in &files {
        let (text, offset) = read_log(&store, file)?;
        offsets.push(offset);
        texts.push(text);
    }
    let existing = texts.iter().filter(|t| t.is_some()).count();
    let many = existing > 1 || (task.is_none() && existing > 0);
    let mut out = std::io::stdout().lock();
    let mut docs = Vec::new();
    for (file, text) in files.iter().zip(texts) {
        let Some(text) = text else {
            continue;
        };
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
            None => text,
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
    if existing == 0 && !follow && !json {
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
            let lines = new_lines(store, file, offset)?;
            let mut out = std::io::stdout().lock();
            for line in lines {
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
        if !live {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A log's whole text (`None`: no log yet) and where a follower goes on from: a byte offset
/// in its file, or a shared store's last line id.
fn read_log(store: &Store, file: &LogFile) -> Result<(Option<String>, u64), CliError> {
    if store.is_shared() {
        let lines = store.log_lines_after(file.task_run, 0)?;
        let last = lines.last().map_or(0, |l| l.id);
        let text = Some(journal::text_of(&lines)).filter(|_| !lines.is_empty());
        return Ok((text, u64::try_from(last).unwrap_or(0)));
    }
    let bytes = std::fs::read(&file.path).unwrap_or_default();
    let offset = bytes.len() as u64;
    let text = file
        .path
        .exists()
        .then(|| String::from_utf8_lossy(&bytes).into_owned());
    Ok((text, offset))
}

/// The lines a log got since `offset` (see [`read_log`]), moving `offset` past them.
fn new_lines(store: &Store, file: &LogFile, offset: &mut u64) -> Result<Vec<String>, CliError> {
    if store.is_shared() {
        let after = i64::try_from(*offset).unwrap_or(i64::MAX);
        let lines = store.log_lines_after(file.task_run, after)?;
        if let Some(last) = lines.last() {
            *offset = u64::try_from(last.id).unwrap_or(*offset);
        }
        return Ok(lines.into_iter().map(|l| l.line).collect());
    }
    let Ok(mut f) = std::fs::File::open(&file.path) else {
        return Ok(Vec::new());
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return Ok(Vec::new());
    }
    let mut new = Vec::new();
    if f.read_to_end(&mut new).is_err() || new.is_empty() {
        return Ok(Vec::new());
    }
    *offset += new.len() as u64;
    Ok(String::from_utf8_lossy(&new)
        .lines()
        .map(str::to_string)
        .collect())
}
