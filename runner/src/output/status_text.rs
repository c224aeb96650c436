//! `relflow status`: a compact timeline a person reads in seconds. Per task its attempts
//! (start, duration, class, message — an error repeated by later attempts is said once), the
//! decisions with their rule and delay, who ordered what and why, rollback steps and jobs in
//! words; then what to type next.

use std::fmt::Write;
use std::time::Duration;

use crate::engine::STEP_DECISION;
use crate::output::time::{clock, elapsed, rfc3339_ms};
use crate::output::{next_steps, style};

/// `2026-12-01 05:44:24 UTC`.
fn day_and_clock(ms: i64) -> String {
    let stamp = rfc3339_ms(ms);
    format!("{} {} UTC", &stamp[..10], clock(ms))
}
use crate::output::view::{PhaseView, ReleaseView, TaskView};
use crate::store::{ActionRecord, DecisionRecord, TaskStatus, now_ms};

/// One line of a task's or the release's timeline, ordered by time.
pub(crate) struct Entry {
    pub(crate) at: i64,
    /// Keeps entries of the same millisecond in the order they were written.
    order: usize,
    pub(crate) text: String,
}

pub fn render(view: &ReleaseView) -> String {
    let r = &view.release;
    let mut out = String::new();
    let status = view.status_text();
    let _ = writeln!(
        out,
        "release {}  {}",
        r.id,
        status.replacen(r.status.as_str(), &style::status(r.status.as_str()), 1)
    );
    let _ = writeln!(out, "  pipeline   {}  {}", r.pipeline, r.pipeline_file);
    let started_by = view
        .actions
        .iter()
        .find(|a| a.action == "run")
        .map(|a| format!(" by {}", a.person.actor))
        .unwrap_or_default();
    let took = match r.status {
        s if s.is_final() => format!(
            ", ended {} after {}",
            clock(r.updated_at),
            span(r.created_at, Some(r.updated_at))
        ),
        crate::store::ReleaseStatus::Failed | crate::store::ReleaseStatus::Paused => format!(
            ", stopped {} after {}",
            clock(r.updated_at),
            span(r.created_at, Some(r.updated_at))
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "  started    {}{started_by}{took}",
        day_and_clock(r.created_at)
    );
    if !r.variables.is_empty() {
        let _ = writeln!(out, "  variables  {}", pairs(r.variables.iter()));
    }
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  reason     {reason}");
    }
    if let (Some(pid), Some(host)) = (view.runner_pid, &view.runner_host) {
        let _ = writeln!(out, "  runner     pid {pid} on {host}");
    }
    let history = release_history(view);
    if !history.is_empty() {
        let _ = writeln!(out, "  history");
        for entry in history {
            let _ = writeln!(out, "    {}  {}", clock(entry.at), entry.text);
        }
    }
    for phase in &view.phases {
        render_phase(&mut out, view, phase);
    }
    if !view.targets.is_empty() {
        out.push_str(&crate::output::targets::now_block(&view.targets));
    }
    if !view.next.is_empty() {
        let _ = writeln!(out, "next:");
        out.push_str(&next_steps::render(&view.next));
    }
    out
}

fn render_phase(out: &mut String, view: &ReleaseView, phase: &PhaseView) {
    let run = &phase.run;
    // A phase run's variables are shown when they differ from another run's (fix-forward).
    let vars = run
        .variables
        .as_ref()
        .filter(|v| {
            !v.is_empty()
                && view
                    .phases
                    .iter()
                    .any(|p| p.run.variables.as_ref().is_some_and(|o| o != *v))
        })
        .map(|v| format!("  {}", pairs(v.iter())))
        .unwrap_or_default();
    let when = match run.started_at {
        Some(start) => format!(
            "  started {}, {} {}",
            clock(start),
            if run.ended_at.is_some() {
                "took"
            } else {
                "running for"
            },
            span(start, run.ended_at)
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "phase {}  {}{when}{vars}",
        phase.label,
        style::status(run.status.as_str())
    );
    let width = phase
        .tasks
        .iter()
        .map(|t| t.run.task.len())
        .max()
        .unwrap_or(0);
    for task in &phase.tasks {
        render_task(out, task, width);
    }
}

fn render_task(out: &mut String, task: &TaskView, width: usize) {
    let t = &task.run;
    let attempts = match t.attempts {
        0 => String::new(),
        1 => "  1 attempt".to_string(),
        n => format!("  {n} attempts"),
    };
    let took = match t.started_at {
        Some(start) if t.status != TaskStatus::Planned => format!(", {}", span(start, t.ended_at)),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "  {:<width$}  {}{} {}{attempts}{took}",
        t.task,
        style::status(t.status.as_str()),
        // Padded apart from the word: colour codes take no columns.
        " ".repeat(16usize.saturating_sub(t.status.as_str().len())),
        t.kind
    );
    if let Some(prompt) = &task.prompt
        && t.status == TaskStatus::WaitingApproval
    {
        let _ = writeln!(out, "      waiting for approval: {prompt}");
    }
    let mut shown_errors: Vec<String> = Vec::new();
    for entry in task_timeline(task, &mut shown_errors) {
        let _ = writeln!(out, "      {}  {}", clock(entry.at), entry.text);
    }
    // The task's error, unless an attempt already said it.
    if let (Some(class), Some(error)) = (&t.error_class, &t.error)
        && !matches!(t.status, TaskStatus::Completed | TaskStatus::Superseded)
        && !shown_errors.iter().any(|e| e.ends_with(error.as_str()))
    {
        let _ = writeln!(out, "      error: {class}: {error}");
    }
    if t.status == TaskStatus::WaitingRetry
        && let Some(at) = t.retry_at
    {
        let wait = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        let _ = writeln!(
            out,
            "      next attempt ({}) at {} (in {})",
            t.attempts + 1,
            clock(at),
            elapsed(wait)
        );
    }
}

/// Attempts, decisions, actions and rollback jobs of one task run, by time. Each distinct
/// error is written out once; an attempt failing the same way again says so.
pub(crate) fn task_timeline(task: &TaskView, shown_errors: &mut Vec<String>) -> Vec<Entry> {
    let mut entries = Vec::new();
    // A task that succeeded at its first attempt needs no attempt line.
    let plain_success = task.attempt_history.len() == 1
        && task.attempt_history[0].status == crate::store::AttemptStatus::Succeeded;
    for a in task.attempt_history.iter().filter(|_| !plain_success) {
        let took = a
            .ended_at
            .map(|end| format!(" after {}", span(a.started_at, Some(end))))
            .unwrap_or_default();
        let error = match (&a.error_class, &a.message) {
            (Some(class), Some(message)) => {
                let full = format!("{class}: {message}");
                if shown_errors.contains(&full) {
                    ": the same error".to_string()
                } else {
                    shown_errors.push(full.clone());
                    format!(": {full}")
                }
            }
            _ => String::new(),
        };
        let text = format!("attempt {} {}{took}{error}", a.number, a.status);
        entries.push(entry(a.started_at, entries.len(), text));
    }
    for d in &task.decisions {
        if let Some(text) = decision_text(d, &task.actions, shown_errors) {
            entries.push(entry(d.at, entries.len(), text));
        }
    }
    for a in &task.actions {
        entries.push(entry(a.at, entries.len(), action_text(a)));
    }
    for job in &task.rollback_jobs {
        let text = rollback_job_text(job);
        entries.push(entry(
            job.ended_at.unwrap_or(job.created_at),
            entries.len(),
            text,
        ));
    }
    entries.sort_by_key(|e| (e.at, e.order));
    entries
}

fn entry(at: i64, order: usize, text: String) -> Entry {
    Entry { at, order, text }
}

/// A decision in words: `retry (phase deploy: on_failure.retry): attempt 2 of 4 in 1.0s`.
/// `None` for a decision a person ordered that an action line already shows.
fn decision_text(
    d: &DecisionRecord,
    actions: &[ActionRecord],
    shown_errors: &[String],
) -> Option<String> {
    let detail = d
        .detail
        .as_deref()
        // A detail that repeats an attempt's error adds nothing.
        .filter(|detail| !shown_errors.iter().any(|e| e.ends_with(*detail)))
        .filter(|detail| !detail.is_empty());
    if d.decision == STEP_DECISION {
        return Some(format!("rollback step: {}", detail.unwrap_or("done")));
    }
    if d.rule.starts_with("relflow ") {
        if actions.iter().any(|a| ordered(d, a)) {
            return None;
        }
        return Some(format!(
            "{} ({}){}",
            d.decision,
            d.rule,
            detail.map(|x| format!(": {x}")).unwrap_or_default()
        ));
    }
    Some(format!(
        "{}{} (by {})",
        d.decision,
        detail.map(|x| format!(": {x}")).unwrap_or_default(),
        d.rule
    ))
}

/// Whether decision `d` is what `action` ordered: a person's command (`relflow abort
/// --rollback`, `relflow restart-phase`) records its decision under its own verb (`abort`,
/// `restart_phase`) with a `relflow ...` rule.
fn ordered(d: &DecisionRecord, action: &ActionRecord) -> bool {
    d.rule.starts_with("relflow ")
        && (action.action.split_whitespace().next() == Some(d.decision.as_str())
            || action.action.replace('-', "_") == d.decision)
}

/// `ann ran relflow retry: "network fixed"`.
fn action_text(a: &ActionRecord) -> String {
    let comment = a
        .person
        .comment
        .as_deref()
        .map(|c| format!(": \"{c}\""))
        .unwrap_or_default();
    format!("{} ran relflow {}{comment}", a.person.actor, a.action)
}

fn rollback_job_text(job: &crate::store::RollbackJobRecord) -> String {
    let which = if job.components.is_empty() {
        "all components".to_string()
    } else {
        format!("components {}", job.components.join(", "))
    };
    let error = job
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    format!("rollback job {} ({which}) {}{error}", job.id, job.status)
}

/// Release-level decisions and actions (run, resume, abort, pause, restart-phase, signals).
pub(crate) fn release_history(view: &ReleaseView) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for a in &view.actions {
        entries.push(entry(a.at, entries.len(), action_text(a)));
    }
    for d in &view.decisions {
        let detail = d.detail.as_deref().filter(|x| {
            !view
                .actions
                .iter()
                .any(|a| a.person.comment.as_deref() == Some(x))
        });
        // A decision a person ordered goes on the line of their action (the nearest in
        // time): one line, whichever of the two writes came first.
        let ordering = view
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| ordered(d, a))
            .min_by_key(|(_, a)| (a.at - d.at).abs())
            .map(|(i, _)| i);
        match (ordering, detail) {
            (Some(i), Some(detail)) => entries[i].text.push_str(&format!(" ({detail})")),
            (Some(_), None) => {}
            (None, detail) => {
                let text = format!(
                    "{} ({}){}",
                    d.decision.replace('_', " "),
                    d.rule,
                    detail.map(|x| format!(": {x}")).unwrap_or_default()
                );
                entries.push(entry(d.at, entries.len(), text));
            }
        }
    }
    entries.sort_by_key(|e| (e.at, e.order));
    entries
}

/// How long from `start` to `end` (or until now).
pub(crate) fn span(start: i64, end: Option<i64>) -> String {
    let end = end.unwrap_or_else(now_ms);
    elapsed(Duration::from_millis(
        u64::try_from(end - start).unwrap_or(0),
    ))
}

fn pairs<'a>(vars: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    vars.map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
