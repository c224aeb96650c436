//! `relflow locks [--json]`: the target locks held on this host, who holds each, since when,
//! and whether its holder is still at work (live) or may be freed with `relflow unlock`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cli::error::CliError;
use crate::exit_code;
use crate::locks::{self, Listed};

/// One lock as `relflow locks` shows it.
fn to_json(listed: &Listed) -> Value {
    let record = match &listed.record {
        Ok(record) => record,
        Err(e) => {
            return json!({
                "target": listed.key().target,
                "lock_file": listed.file,
                "error": e.to_string(),
                "live": false,
            });
        }
    };
    let state = locks::assess(record);
    let h = &record.holder;
    json!({
        "target": record.target,
        "lock_file": listed.file,
        "release": h.release,
        "task": h.task,
        "task_run": h.task_run,
        "tasks": record.runs.iter().map(|r| &r.task).collect::<Vec<_>>(),
        "state_dir": h.state_dir,
        "pid": h.pid,
        "host": h.host,
        "since": h.since,
        "live": state.is_live(),
        "holder_state": state.describe(),
    })
}

fn render(listed: &Listed, out: &mut String) {
    let record = match &listed.record {
        Ok(record) => record,
        Err(e) => {
            let target = listed.key().target;
            let _ = writeln!(
                out,
                "{target}\n    unreadable: {e}\n    free it with: relflow unlock {target}"
            );
            return;
        }
    };
    let state = locks::assess(record);
    let h = &record.holder;
    let _ = writeln!(
        out,
        "{}\n    held by release {} (task {}) since {}, pid {} on {}, state dir {}",
        record.target,
        h.release,
        h.task,
        h.since,
        h.pid,
        h.host,
        h.state_dir.display()
    );
    if state.is_live() {
        let _ = writeln!(out, "    live: {}", state.describe());
    } else {
        let _ = writeln!(
            out,
            "    not live: {}\n    free it with: relflow unlock {}",
            state.describe(),
            record.target
        );
    }
}

pub fn run(json: bool) -> Result<i32, CliError> {
    let dir = locks::lock_dir();
    let listed = locks::list(&dir).map_err(|e| CliError::state(format!("error: {e}")))?;
    if json {
        let doc = json!({
            "format": 1,
            "lock_dir": dir,
            "locks": listed.iter().map(to_json).collect::<Vec<_>>(),
        });
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| CliError::state(e.to_string()))?;
        println!("{text}");
        return Ok(exit_code::OK);
    }
    if listed.is_empty() {
        println!("no target is locked (lock folder {})", dir.display());
        return Ok(exit_code::OK);
    }
    let mut out = String::new();
    for lock in &listed {
        render(lock, &mut out);
    }
    print!("{out}");
    Ok(exit_code::OK)
}
