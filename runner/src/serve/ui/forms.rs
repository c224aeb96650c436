//! The action forms an operator sees: each posts to `/releases/{id}/actions/{action}` with
//! the CSRF field, and is drawn only where the release's state lets the action apply (the
//! server still refuses, with the CLI's message, whatever the state no longer allows).

use maud::{Markup, html};

use super::layout::{PageCtx, csrf_field};
use super::release::encode;
use crate::output::view::{PhaseView, ReleaseView, TaskView};
use crate::store::{ReleaseStatus, TaskStatus};

/// Where a form of `action` on release `id` posts.
pub fn action_path(id: &str, action: &str) -> String {
    format!("/releases/{}/actions/{action}", encode(id))
}

fn comment_field() -> Markup {
    html! { input type="text" name="comment" placeholder="comment (optional)" aria-label="comment"; }
}

/// Pause, resume and abort (with or without the rollback order), as the state allows.
pub fn release_actions(view: &ReleaseView, ctx: &PageCtx) -> Markup {
    let status = view.release.status;
    let id = &view.release.id;
    let running = matches!(status, ReleaseStatus::Running | ReleaseStatus::Planned);
    let waiting_approval = view
        .tasks()
        .any(|(_, t)| t.run.status == TaskStatus::WaitingApproval);
    let can_resume = (status == ReleaseStatus::Paused && !waiting_approval) || view.is_orphaned();
    html! {
        div.actions.release-actions {
            @if running {
                form.action method="post" action=(action_path(id, "pause")) {
                    (csrf_field(ctx)) (comment_field())
                    button type="submit" name="do" value="pause" { "Pause" }
                }
            }
            @if can_resume {
                form.action method="post" action=(action_path(id, "resume")) {
                    (csrf_field(ctx)) (comment_field())
                    button type="submit" name="do" value="resume" { "Resume" }
                }
            }
            @if !status.is_final() {
                form.action method="post" action=(action_path(id, "abort")) {
                    (csrf_field(ctx)) (comment_field())
                    label { input type="checkbox" name="rollback" value="true"; " run the rollback order first" }
                    button.danger type="submit" name="do" value="abort" { "Abort" }
                }
            }
        }
    }
}

/// Retry and skip of a failed task, approve/reject of a manual one, rollback (with the
/// component picker) of a completed deployment.
pub fn task_actions(view: &ReleaseView, task: &TaskView, ctx: &PageCtx) -> Markup {
    let id = &view.release.id;
    let name = &task.run.task;
    let halted = view.release.status == ReleaseStatus::Failed;
    // As `next` says: a failed task can be retried or skipped, a rolled-back one skipped.
    let can_retry = halted && task.run.status == TaskStatus::Failed;
    let can_skip = halted && matches!(task.run.status, TaskStatus::Failed | TaskStatus::RolledBack);
    let can_roll_back = task.run.kind == "deploy"
        && task.run.status == TaskStatus::Completed
        && !matches!(
            view.release.status,
            ReleaseStatus::Running | ReleaseStatus::Planned
        );
    html! {
        div.actions.task-actions {
            @for (action, label, shown) in [("retry", "Retry", can_retry), ("skip", "Skip", can_skip)] {
                @if shown {
                    form.action method="post" action=(action_path(id, action)) {
                        (csrf_field(ctx))
                        input type="hidden" name="task" value=(name);
                        (comment_field())
                        button type="submit" name="do" value=(action) { (label) " " (name) }
                    }
                }
            }
            @if task.run.status == TaskStatus::WaitingApproval {
                form.action.approval method="post" action=(action_path(id, "approve")) {
                    (csrf_field(ctx))
                    input type="hidden" name="task" value=(name);
                    input type="text" name="comment" placeholder="comment" aria-label="comment";
                    button type="submit" formaction=(action_path(id, "approve")) name="do" value="approve" { "Approve" }
                    button.danger type="submit" formaction=(action_path(id, "reject")) name="do" value="reject" { "Reject" }
                }
            }
            @if can_roll_back { (rollback_form(id, task, ctx)) }
        }
    }
}

/// The component picker: one checkbox per component the deployment delivered (from its
/// handle); none ticked rolls back every component.
fn rollback_form(id: &str, task: &TaskView, ctx: &PageCtx) -> Markup {
    let components = components_of(task);
    html! {
        details.rollback id=(format!("rollback-{}", task.run.id)) {
            summary { "Roll back " (task.run.task) "…" }
            form.action method="post" action=(action_path(id, "rollback")) {
                (csrf_field(ctx))
                input type="hidden" name="task" value=(task.run.task);
                fieldset {
                    legend { "components (none ticked: all)" }
                    @for c in &components {
                        label.component { input type="checkbox" name="components" value=(c); " " (c) }
                    }
                    @if components.is_empty() {
                        input type="text" name="components" placeholder="component (empty: all)";
                    }
                }
                (comment_field())
                button.danger type="submit" name="do" value="rollback" { "Roll back" }
            }
        }
    }
}

/// The components a deployment's handle lists (`{"components": ["api", "web"], ...}`).
pub fn components_of(task: &TaskView) -> Vec<String> {
    let Some(handle) = task.run.handle.as_deref() else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(handle) else {
        return Vec::new();
    };
    value
        .get("components")
        .and_then(|c| c.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Restart-phase with the variables to change, prefilled with the current values; drawn on
/// the latest run of each phase while the release is halted or waiting.
pub fn restart_phase(view: &ReleaseView, phase: &PhaseView, ctx: &PageCtx) -> Markup {
    let halted = matches!(
        view.release.status,
        ReleaseStatus::Failed | ReleaseStatus::Paused
    );
    let is_latest = view
        .phases
        .iter()
        .rev()
        .find(|p| p.run.phase == phase.run.phase)
        .is_some_and(|p| p.run.id == phase.run.id);
    let id = &view.release.id;
    html! {
        @if halted && is_latest {
            details.restart id=(format!("restart-{}", phase.run.phase)) {
                summary { "Restart phase " (phase.run.phase) "…" }
                form.action method="post" action=(action_path(id, "restart-phase")) {
                    (csrf_field(ctx))
                    input type="hidden" name="phase" value=(phase.run.phase);
                    @for (k, v) in &view.release.variables {
                        label.var { code { (k) } " " input type="text" name=(format!("var.{k}")) value=(v); }
                    }
                    label { "from task "
                        select name="from_task" {
                            option value="" { "(the first)" }
                            @for t in &phase.tasks { option value=(t.run.task) { (t.run.task) } }
                        }
                    }
                    (comment_field())
                    button type="submit" name="do" value="restart-phase" { "Restart " (phase.run.phase) }
                }
            }
        }
    }
}
