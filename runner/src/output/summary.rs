//! The end of every command that drives a release: how it ended, what failed, what to type
//! next, and where each log is.

use std::fmt::Write;

use crate::output::next_steps;
use crate::output::view::{ReleaseView, has_run};
use crate::store::TaskStatus;

pub fn render(view: &ReleaseView) -> String {
    let r = &view.release;
    let mut out = String::new();
    let reason = r
        .reason
        .as_deref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    let status = crate::output::style::status(r.status.as_str());
    let _ = writeln!(out, "\nrelease {} {status}{reason}", r.id);
    let troubled: Vec<String> = view
        .tasks()
        .filter(|(_, t)| {
            matches!(
                t.run.status,
                TaskStatus::Failed | TaskStatus::RolledBack | TaskStatus::Ignored
            )
        })
        .map(|(phase, t)| {
            let error = match (&t.run.error_class, &t.run.error) {
                (Some(class), Some(error)) => format!(": {class}: {error}"),
                _ => String::new(),
            };
            let attempts = match t.run.attempts {
                1 => " after 1 attempt".to_string(),
                n => format!(" after {n} attempts"),
            };
            format!(
                "  {}/{}  {}{attempts}{error}",
                phase.label, t.run.task, t.run.status
            )
        })
        .collect();
    if !troubled.is_empty() {
        let _ = writeln!(out, "failed:");
        for line in troubled {
            let _ = writeln!(out, "{line}");
        }
    }
    if !view.targets.is_empty() {
        out.push_str(&crate::output::targets::now_block(&view.targets));
    }
    for (_, task) in view.tasks() {
        if task.run.status == TaskStatus::WaitingApproval {
            let prompt = task.prompt.as_deref().unwrap_or("(no prompt)");
            let _ = writeln!(out, "waiting for approval of {}: {prompt}", task.run.task);
        }
    }
    if !view.next.is_empty() {
        let _ = writeln!(out, "next:");
        out.push_str(&next_steps::render(&view.next));
    }
    let _ = writeln!(out, "logs:");
    let ran: Vec<(String, &str)> = view
        .tasks()
        .filter(|(_, t)| has_run(t))
        .map(|(p, t)| (format!("{}/{}", p.label, t.run.task), t.log.as_str()))
        .collect();
    let width = ran.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, log) in ran {
        let _ = writeln!(out, "  {name:<width$}  {log}");
    }
    out
}
