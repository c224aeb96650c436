//! What `relflow plan` reports, as data: each task's effective policy and the steps of a
//! simulation; serialized as is by `plan --json`, rendered as text by `cli/plan.rs`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::pipeline::Task;
use crate::pipeline::TaskKind;
use crate::pipeline::duration::format_duration;
use crate::policy::model::{Backoff, OnFailure, Then};

/// What `relflow plan` shows: the pipeline's tasks with their effective policies, and the
/// simulation when failures were given.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub pipeline: String,
    /// The values a release would start with (`secret: true` ones masked).
    pub variables: BTreeMap<String, String>,
    pub phases: Vec<PhasePlan>,
    pub simulation: Option<Simulation>,
}

#[derive(Debug, Serialize)]
pub struct PhasePlan {
    pub name: String,
    pub tasks: Vec<TaskPlan>,
}

#[derive(Debug, Serialize)]
pub struct TaskPlan {
    pub name: String,
    /// The task kind's key: `command`, `script`, `deploy`, `undeploy`, `manual`, `wait`.
    pub kind: &'static str,
    /// What it runs, in words: `deploy PetPortal/${version} on prod`.
    pub summary: String,
    /// The parallel group the task belongs to, if any.
    pub parallel: Option<ParallelGroup>,
    pub policy: PolicyPlan,
}

/// A parallel group: its position among the phase's steps, and how many tasks run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParallelGroup {
    pub step: usize,
    pub max: usize,
}

/// The policy that applies to a task, and where it stands.
#[derive(Debug, Serialize)]
pub struct PolicyPlan {
    /// `task smoke`, `phase deploy`, `release`, or `default`.
    pub source: String,
    /// The policy in one line, as the text output shows it.
    pub summary: String,
    pub retry: Option<RetryPlan>,
    /// What happens once retries are over: `pause`, `rollback`, ...
    pub then: Option<&'static str>,
    pub fix_forward: Option<FixForwardPlan>,
    pub actions: usize,
    /// A scripted policy's file, as the pipeline names it.
    pub script: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RetryPlan {
    pub retries: u32,
    pub when: Vec<&'static str>,
    pub delay: String,
    pub backoff: &'static str,
    pub max_delay: String,
    pub jitter: bool,
}

#[derive(Debug, Serialize)]
pub struct FixForwardPlan {
    pub resolve: Vec<String>,
    pub max: u32,
    pub fallback: &'static str,
}

/// What the simulated failures lead to, step by step, and how the release would end.
#[derive(Debug, Serialize)]
pub struct Simulation {
    pub steps: Vec<SimStep>,
    /// The exit code the release would end with, and why.
    pub exit_code: i32,
    pub outcome: String,
}

/// One thing that happens in a simulation.
#[derive(Debug, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SimStep {
    /// A manual task on the way, assumed approved.
    Approval { task: String },
    /// A task whose first `times` attempts fail with `class`.
    Failing {
        task: String,
        class: &'static str,
        times: u32,
    },
    /// An attempt fails and the policy retries after `delay` (a range under jitter).
    Retry {
        task: String,
        attempt: u32,
        class: &'static str,
        delay: String,
        rule: String,
        /// A script's reason (a declarative rule speaks for itself).
        reason: Option<String>,
    },
    /// An attempt fails and retries are over: the policy's `then`.
    Then {
        task: String,
        attempt: u32,
        class: &'static str,
        action: &'static str,
        rule: String,
        reason: String,
    },
    /// An attempt fails and a script restarts the phase with new values.
    RestartPhase {
        task: String,
        attempt: u32,
        class: &'static str,
        phase: String,
        values: BTreeMap<String, String>,
        rule: String,
        reason: String,
    },
    /// An attempt succeeds.
    Succeeds { task: String, attempt: u32 },
    /// What a decision does next, in words (`task notify skipped; the release goes on`).
    Effect { task: String, text: String },
}

/// One line describing a policy: `retry 3× on [task_failed] (exponential from 1s, max 5m), then rollback`.
pub fn describe_policy(policy: Option<&OnFailure>) -> String {
    let Some(policy) = policy else {
        return "pause (no on_failure)".to_string();
    };
    let d = match policy {
        OnFailure::Script(script) => return format!("script {}", script.name()),
        OnFailure::Declarative(d) => d,
    };
    let mut out = String::new();
    if d.retry.retries > 0 {
        let classes: Vec<&str> = d.retry.when.iter().map(|c| c.as_str()).collect();
        let _ = write!(
            out,
            "retry {}× on [{}] ({} from {}, max {}{}), then ",
            d.retry.retries,
            classes.join(", "),
            backoff_keyword(d.retry.backoff),
            format_duration(d.retry.delay),
            format_duration(d.retry.max_delay),
            if d.retry.jitter { ", jitter" } else { "" }
        );
    }
    out.push_str(d.then.keyword());
    if let Some(ff) = &d.fix_forward {
        let argv: Vec<&str> = ff.resolve.iter().map(|t| t.source()).collect();
        let _ = write!(
            out,
            " (resolve: {}; max {}; fallback {})",
            argv.join(" "),
            ff.max,
            ff.fallback.keyword()
        );
    }
    if !d.actions.is_empty() {
        let _ = write!(out, "; {} action(s)", d.actions.len());
    }
    out
}

fn backoff_keyword(backoff: Backoff) -> &'static str {
    match backoff {
        Backoff::Fixed => "fixed",
        Backoff::Linear => "linear",
        Backoff::Exponential => "exponential",
    }
}

pub(super) fn policy_plan(policy: Option<&OnFailure>, source: String) -> PolicyPlan {
    let summary = describe_policy(policy);
    let mut plan = PolicyPlan {
        source,
        summary,
        retry: None,
        then: None,
        fix_forward: None,
        actions: 0,
        script: None,
    };
    match policy {
        None => plan.then = Some(Then::Pause.keyword()),
        Some(OnFailure::Script(script)) => plan.script = Some(script.name().to_string()),
        Some(OnFailure::Declarative(d)) => {
            plan.retry = (d.retry.retries > 0).then(|| RetryPlan {
                retries: d.retry.retries,
                when: d.retry.when.iter().map(|c| c.as_str()).collect(),
                delay: format_duration(d.retry.delay),
                backoff: backoff_keyword(d.retry.backoff),
                max_delay: format_duration(d.retry.max_delay),
                jitter: d.retry.jitter,
            });
            plan.then = Some(d.then.keyword());
            plan.fix_forward = d.fix_forward.as_ref().map(|ff| FixForwardPlan {
                resolve: ff.resolve.iter().map(|t| t.source().to_string()).collect(),
                max: ff.max,
                fallback: ff.fallback.keyword(),
            });
            plan.actions = d.actions.len();
        }
    }
    plan
}

pub(super) fn describe_kind(task: &Task) -> String {
    match &task.kind {
        TaskKind::Command(c) => format!(
            "command: {}",
            c.run
                .iter()
                .map(|t| t.source())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        TaskKind::Script(s) => format!("script: {}", s.path),
        TaskKind::Deploy(d) => format!("deploy {} on {}", d.package, d.backend),
        TaskKind::Undeploy(d) => format!("undeploy {} on {}", d.package, d.backend),
        TaskKind::Manual { .. } => "manual".to_string(),
        TaskKind::Wait(d) => format!("wait {}", format_duration(*d)),
    }
}
