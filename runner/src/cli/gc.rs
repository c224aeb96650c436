//! `relflow gc [TARGET]... [--json]`: prunes what no revertible deployment of a local target
//! needs any more (snapshots beyond `keep_snapshots`, release folders beyond `keep_releases`
//! that no deployment returns to, trees rollbacks moved aside), and says what it freed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use relflow_plugin::local::{Pruned, collect_garbage};
use serde::Serialize;

use crate::cli::error::CliError;
use crate::exit_code;
use crate::output::json;

/// Under `relflow gc --help`.
pub const HELP: &str = "Examples:
  relflow gc                           # every local target this state directory deployed to
  relflow gc .relflow-demo/petportal --json

Exit codes: 0 success, 2 invalid input, 6 the state is unusable.";

#[derive(Serialize)]
struct Document {
    targets: Vec<Pruned>,
    bytes_freed: u64,
}

pub fn run(state_dir: &Path, given: &[PathBuf], as_json: bool) -> Result<i32, CliError> {
    let targets = if given.is_empty() {
        deployed_targets(state_dir)
    } else {
        for target in given {
            if !target.is_dir() {
                return Err(CliError::input(format!(
                    "error: gc {}: no such target folder",
                    target.display()
                )));
            }
        }
        given.to_vec()
    };
    let mut pruned = Vec::new();
    for target in &targets {
        let freed = collect_garbage(target)
            .map_err(|e| CliError::state(format!("error: gc {}: {e}", target.display())))?;
        pruned.push(freed);
    }
    let bytes_freed = pruned.iter().map(|p| p.bytes_freed).sum();
    if as_json {
        json::print(&Document {
            targets: pruned,
            bytes_freed,
        });
    } else {
        print!("{}", render(&pruned, bytes_freed));
    }
    Ok(exit_code::OK)
}

fn render(pruned: &[Pruned], bytes_freed: u64) -> String {
    let mut out = String::new();
    if pruned.is_empty() {
        out.push_str("no local targets deployed from this state directory\n");
        return out;
    }
    for p in pruned {
        if p.is_empty() {
            let _ = writeln!(out, "{}: nothing to prune", p.target.display());
            continue;
        }
        let _ = writeln!(
            out,
            "{}: pruned {} snapshot(s) and {} release folder(s), {} freed",
            p.target.display(),
            p.snapshots.len(),
            p.release_folders.len(),
            human(p.bytes_freed)
        );
        for folder in &p.release_folders {
            let _ = writeln!(out, "  removed releases/{folder}");
        }
        for work in &p.snapshots {
            let _ = writeln!(out, "  removed the snapshot in {}", work.display());
        }
    }
    let _ = writeln!(out, "total: {} freed", human(bytes_freed));
    out
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} bytes"),
    }
}

/// Targets named by the local deployments' plans in `<state>/releases/*/*/*/deploy/plan.json`.
fn deployed_targets(state_dir: &Path) -> Vec<PathBuf> {
    let mut targets = BTreeSet::new();
    let children = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    for release in children(&state_dir.join("releases")) {
        for phase in children(&release) {
            for task in children(&phase) {
                let plan = task.join("deploy").join("plan.json");
                let Ok(text) = std::fs::read(&plan) else {
                    continue;
                };
                let target = serde_json::from_slice::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("target").and_then(|t| t.as_str()).map(PathBuf::from));
                if let Some(target) = target.filter(|t| t.is_dir()) {
                    targets.insert(target);
                }
            }
        }
    }
    targets.into_iter().collect()
}
