//! `relflow list` and the lines `relflow rollback` prints for its jobs.

use std::fmt::Write;

use crate::output::time;
use crate::store::{ReleaseRecord, RollbackJobRecord};

/// One line per release for `list`.
pub fn render_list(releases: &[ReleaseRecord]) -> String {
    let mut out = String::new();
    if releases.is_empty() {
        out.push_str("no releases yet: start one with `relflow run PIPELINE.yaml`\n");
        return out;
    }
    let width = releases
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let _ = writeln!(
        out,
        "{:<width$}  {:<12}  {:<24}  variables",
        "release", "status", "started"
    );
    for r in releases {
        let vars: Vec<String> = r
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // A completed release whose deployment was rolled back later no longer runs.
        let later = if r.rolled_back_later.is_empty() {
            String::new()
        } else {
            format!("  (rolled back later: {})", r.rolled_back_later.join(", "))
        };
        let line = format!(
            "{:<width$}  {:<12}  {:<24}  {}{later}",
            r.id,
            r.status.as_str(),
            time::rfc3339_ms(r.created_at),
            vars.join(" ")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `rollback job 1 of task deploy-petportal (web): completed`
pub fn render_rollback_job(task: &str, job: &RollbackJobRecord) -> String {
    let which = if job.components.is_empty() {
        "all components".to_string()
    } else {
        job.components.join(", ")
    };
    let error = job
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    format!(
        "rollback job {} of task {task} ({which}): {}{error}\n",
        job.id, job.status
    )
}
