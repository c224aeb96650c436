//! Secrets never leak and redaction never corrupts (DESIGN → Secrets and hostile input): one
//! test per finding of issue 10, and a scan of everything a release leaves behind.

mod basics;
mod comprehensive;
mod corrupt;
mod leaks;
mod xld;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::harness::{Outcome, Sandbox};

/// The secret of every scenario here.
pub const SECRET: &str = "Sup3r-S3cret-Val_42";

/// The texts that must never appear: the secret, its base64, and its two halves (a secret
/// split across two lines shows one half on each).
pub fn forbidden() -> Vec<(&'static str, String)> {
    vec![
        ("the secret", SECRET.to_string()),
        ("its base64", STANDARD.encode(SECRET)),
        ("its first half", SECRET[..9].to_string()),
        ("its second half", SECRET[9..].to_string()),
    ]
}

/// Panics naming `what` and the form found when `text` holds any of `forms`.
#[track_caller]
pub fn assert_clean_of(what: &str, text: &str, forms: &[(&str, String)]) {
    for (name, form) in forms {
        if let Some(at) = text.find(form.as_str()) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map_or(0, |(i, _)| i);
            let context: String = text[from..].chars().take(200).collect();
            panic!("{name} (`{form}`) leaked into {what}: ...{context}...");
        }
    }
}

#[track_caller]
pub fn assert_clean(what: &str, text: &str) {
    assert_clean_of(what, text, &forbidden());
}

/// Every regular file under `dir` with its bytes (symlinks not followed).
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
            _ => {}
        }
    }
    out
}

/// Asserts no file under `dir` holds a forbidden form (raw bytes, so SQLite pages and the
/// WAL count); returns how many files were read.
#[track_caller]
pub fn assert_files_clean(dir: &Path, forms: &[(&str, String)]) -> usize {
    let files = files_under(dir);
    for (path, bytes) in &files {
        assert_clean_of(
            &path.display().to_string(),
            &String::from_utf8_lossy(bytes),
            forms,
        );
    }
    files.len()
}

/// Every row of every table of the store, as text (blobs lossily).
pub fn store_rows(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the store");
    let mut tables: Vec<String> = Vec::new();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("list tables");
    for name in stmt.query_map([], |row| row.get(0)).expect("tables") {
        tables.push(name.expect("table name"));
    }
    let mut out = String::new();
    for table in &tables {
        let mut rows = conn
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .expect("select");
        let columns = rows.column_count();
        let mut query = rows.query([]).expect("query");
        while let Some(row) = query.next().expect("row") {
            out.push_str(table);
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i).expect("value");
                out.push_str(&format!(" | {value:?}"));
                if let rusqlite::types::Value::Text(text) = value {
                    out.push_str(&text);
                }
            }
            out.push('\n');
        }
    }
    assert!(out.contains("releases"), "the store has no release:\n{out}");
    out
}

/// Runs `relflow ARGS` under `umask` (through `sh`, with the sandbox's environment).
pub fn run_with_umask(sb: &Sandbox, umask: &str, args: &[&str]) -> Outcome {
    let relflow = sb.command(args);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(relflow.get_program())
        .args(relflow.get_args())
        .current_dir(sb.path())
        .stdin(std::process::Stdio::null());
    for (key, value) in relflow.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd.output().expect("spawn sh");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The mode bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}
