//! The release page: header, history, phases with their tasks (attempts, decisions and their
//! rules, who acted and why, rollback steps and jobs), what each target runs now, the log
//! pane and, for operators, every action's form. The body is also served alone as the
//! fragment the page swaps in when an event arrives.

use maud::{Markup, html};

use super::forms;
use super::layout::{self, Notice, PageCtx, badge};
use crate::output::status_text::{release_history, span, task_timeline};
use crate::output::time::{clock, rfc3339_ms};
use crate::output::view::{PhaseView, ReleaseView, TaskView};
use crate::store::{ReleaseStatus, TaskStatus, now_ms};

/// The path of a release's page.
pub fn page_path(id: &str) -> String {
    format!("/releases/{}", encode(id))
}

/// The path of the fragment the page fetches when the release changes.
pub fn fragment_path(id: &str) -> String {
    format!("/releases/{}/fragment", encode(id))
}

/// The whole release page.
pub fn page(view: &ReleaseView, ctx: &PageCtx, notice: Option<&Notice>) -> Markup {
    let id = &view.release.id;
    let content = html! {
        div #release
            data-release=(id)
            data-events=(format!("/api/v1/releases/{}/events", encode(id)))
            data-fragment=(fragment_path(id)) {
            div #release-body { (body(view, ctx)) }
            (log_pane())
        }
    };
    layout::page(id, ctx, notice, content)
}

/// The part of the page that follows the release (swapped in place on every event).
pub fn body(view: &ReleaseView, ctx: &PageCtx) -> Markup {
    let r = &view.release;
    html! {
        section.head {
            h1 { (r.id) " " (badge(r.status.as_str())) }
            dl.facts {
                dt { "pipeline" } dd { (r.pipeline) " " span.dim { (r.pipeline_file) } }
                dt { "started" } dd { time datetime=(rfc3339_ms(r.created_at)) { (rfc3339_ms(r.created_at)) } (took(view)) }
                @if !r.variables.is_empty() {
                    dt { "variables" } dd { @for (k, v) in &r.variables { code { (k) "=" (v) } " " } }
                }
                @if let Some(reason) = &r.reason { dt { "reason" } dd.reason { (reason) } }
                @if view.is_orphaned() {
                    dt { "runner" } dd { "no live runner: interrupted (resume to continue)" }
                } @else if let (Some(pid), Some(host)) = (view.runner_pid, &view.runner_host) {
                    dt { "runner" } dd { "pid " (pid) " on " (host) }
                }
                @if !r.rolled_back_later.is_empty() {
                    dt { "rolled back later" } dd { (r.rolled_back_later.join(", ")) }
                }
            }
            @if ctx.can_act { (forms::release_actions(view, ctx)) }
        }
        (history(view))
        @for phase in &view.phases { (phase_section(view, phase, ctx)) }
        (targets(view))
        @if !view.next.is_empty() {
            section.next {
                h2 { "From a shell" }
                ul { @for step in &view.next { li { code { (step.command) } " — " (step.why) } } }
            }
        }
    }
}

fn took(view: &ReleaseView) -> Markup {
    let r = &view.release;
    let verb = if r.status.is_final() {
        "ended"
    } else if matches!(r.status, ReleaseStatus::Failed | ReleaseStatus::Paused) {
        "stopped"
    } else {
        return html! {};
    };
    html! { ", " (verb) " " (clock(r.updated_at)) " UTC after " (span(r.created_at, Some(r.updated_at))) }
}

fn history(view: &ReleaseView) -> Markup {
    let entries = release_history(view);
    html! {
        @if !entries.is_empty() {
            section.history {
                h2 { "History" }
                ul.timeline { @for e in &entries { li { span.at { (clock(e.at)) } " " (e.text) } } }
            }
        }
    }
}

fn phase_section(view: &ReleaseView, phase: &PhaseView, ctx: &PageCtx) -> Markup {
    let run = &phase.run;
    html! {
        section.phase id=(format!("phase-{}", phase.label)) {
            h2 {
                "phase " (phase.label) " " (badge(run.status.as_str()))
                @if let Some(start) = run.started_at {
                    span.dim { " started " (clock(start)) ", " (span(start, run.ended_at)) }
                }
            }
            @if let Some(vars) = &run.variables {
                @if !vars.is_empty() {
                    p.dim { @for (k, v) in vars { code { (k) "=" (v) } " " } }
                }
            }
            table.tasks {
                thead { tr { th { "task" } th { "status" } th { "kind" } th { "attempts" } th { "took" } } }
                @for task in &phase.tasks { (task_rows(view, phase, task, ctx)) }
            }
            @if ctx.can_act { (forms::restart_phase(view, phase, ctx)) }
        }
    }
}

fn task_rows(view: &ReleaseView, phase: &PhaseView, task: &TaskView, ctx: &PageCtx) -> Markup {
    let t = &task.run;
    let mut shown_errors = Vec::new();
    let timeline = task_timeline(task, &mut shown_errors);
    let took = match t.started_at {
        Some(start) if t.status != TaskStatus::Planned => span(start, t.ended_at),
        _ => String::new(),
    };
    html! {
        tr.task id=(format!("task-{}-{}", phase.label, t.task)) data-status=(t.status.as_str()) {
            td { strong { (t.task) } }
            td { (badge(t.status.as_str())) }
            td { (t.kind) }
            td.num { (t.attempts) }
            td { (took) }
        }
        tr.detail {
            td colspan="5" {
                @if let (Some(prompt), TaskStatus::WaitingApproval) = (&task.prompt, t.status) {
                    p.prompt { "waiting for approval: " (prompt) }
                }
                @if !timeline.is_empty() {
                    ul.timeline { @for e in &timeline { li { span.at { (clock(e.at)) } " " (e.text) } } }
                }
                @if let (Some(class), Some(error)) = (&t.error_class, &t.error) {
                    @if !matches!(t.status, TaskStatus::Completed | TaskStatus::Superseded)
                        && !shown_errors.iter().any(|e| e.ends_with(error.as_str())) {
                        p.error { "error: " span.class { (class) } ": " (error) }
                    }
                }
                @if let (TaskStatus::WaitingRetry, Some(at)) = (t.status, t.retry_at) {
                    p.wait { "next attempt (" (t.attempts + 1) ") at " (clock(at)) " (in "
                        (span(now_ms(), Some(at.max(now_ms())))) ")" }
                }
                (log_links(view, phase, task))
                @if ctx.can_act { (forms::task_actions(view, task, ctx)) }
            }
        }
    }
}

/// One link per attempt (and the rollback log): opens the live log pane, or the plain text
/// without JavaScript.
fn log_links(view: &ReleaseView, phase: &PhaseView, task: &TaskView) -> Markup {
    let base = format!(
        "/api/v1/releases/{}/logs/{}/{}",
        encode(&view.release.id),
        encode(&phase.label),
        encode(&task.run.task)
    );
    let title = format!("{} / {}", phase.label, task.run.task);
    html! {
        @if task.run.attempts > 0 {
            p.logs {
                "log: "
                @for n in 1..=task.run.attempts {
                    a.log-link href=(format!("{base}?attempt={n}"))
                        data-log-title=(format!("{title}, attempt {n}")) { "attempt " (n) }
                    " "
                }
                a.log-link href=(base.clone()) data-log-title=(format!("{title}, all attempts")) { "all" }
            }
        }
    }
}

fn log_pane() -> Markup {
    html! {
        section #log-pane hidden {
            h2 { "Log " span #log-title {} " " button #log-close type="button" { "close" } }
            pre #log-text {}
        }
    }
}

fn targets(view: &ReleaseView) -> Markup {
    html! {
        @if !view.targets.is_empty() {
            section.targets {
                h2 { "What the targets run now" }
                ul { @for t in &view.targets { li { (crate::output::targets::now_line(t)) } } }
            }
        }
    }
}

/// Percent-encodes a path segment (release ids are plain; phase labels carry `#`).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_label_is_one_path_segment() {
        assert_eq!(encode("deploy#2"), "deploy%232");
        assert_eq!(encode("petportal-2"), "petportal-2");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
