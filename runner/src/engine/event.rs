//! What the engine reports. Consumers (store, events.jsonl, script_output.log, terminal)
//! each take what they need; the engine knows none of them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{
    AttemptStatus, PhaseRunRecord, PhaseStatus, ReleaseStatus, RollbackJobStatus, TaskRunRecord,
    TaskStatus,
};

/// Names a phase run: its row id and its label (`deploy`, `deploy#2`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhaseRef {
    #[serde(skip)]
    pub id: i64,
    #[serde(rename = "phase")]
    pub label: String,
}

/// Names a task run: its row id, phase run and task name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskRef {
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    pub phase: PhaseRef,
    pub task: String,
}

impl TaskRef {
    /// The reference of a stored task run, labelled by its phase run among `phase_runs`.
    pub fn of(run: &TaskRunRecord, phase_runs: &[PhaseRunRecord]) -> TaskRef {
        let label = phase_runs
            .iter()
            .find(|p| p.id == run.phase_run_id)
            .map(|p| p.label())
            .unwrap_or_default();
        TaskRef {
            id: run.id,
            phase: PhaseRef {
                id: run.phase_run_id,
                label,
            },
            task: run.task.clone(),
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailureInfo {
    pub class: relflow_plugin::ErrorClass,
    pub message: String,
}

/// One thing that happened in a release.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    ReleaseStatus {
        status: ReleaseStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    PhaseStatus {
        #[serde(flatten)]
        phase: PhaseRef,
        status: PhaseStatus,
        /// The release variables, when the phase run starts.
        #[serde(skip_serializing_if = "Option::is_none")]
        variables: Option<BTreeMap<String, String>>,
    },
    TaskStatus {
        #[serde(flatten)]
        task: TaskRef,
        status: TaskStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<FailureInfo>,
    },
    AttemptStarted {
        #[serde(flatten)]
        task: TaskRef,
        attempt: u32,
    },
    AttemptFinished {
        #[serde(flatten)]
        task: TaskRef,
        attempt: u32,
        status: AttemptStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<FailureInfo>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// A line for the task's `script_output.log` (the task's output or relflow's own line).
    Output {
        #[serde(flatten)]
        task: TaskRef,
        line: String,
    },
    /// The task waits until `at_ms` before attempt `next_attempt` (of `of` at most, when
    /// the policy says: `retries + 1`; a scripted policy does not).
    RetryScheduled {
        #[serde(flatten)]
        task: TaskRef,
        next_attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        of: Option<u32>,
        delay_ms: u64,
        #[serde(skip)]
        at_ms: i64,
    },
    /// A line for the task's `rollback.log`.
    RollbackOutput {
        #[serde(flatten)]
        task: TaskRef,
        line: String,
    },
    Decision {
        #[serde(flatten)]
        task: TaskRef,
        decision: String,
        /// The policy rule that decided, e.g. `phases[0].on_failure.retry`.
        rule: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A backend started an operation; its handle is stored before anyone waits on it.
    HandleStored {
        #[serde(flatten)]
        task: TaskRef,
        handle: String,
    },
    /// A rollback job of a completed deployment changed status.
    RollbackJob {
        #[serde(flatten)]
        task: TaskRef,
        job: i64,
        status: RollbackJobStatus,
        components: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// New runs of phases were appended (restart-phase, fix-forward).
    PhaseRestarted {
        from: String,
        runs: Vec<String>,
        by: String,
        values: String,
    },
    VariablesSet {
        values: BTreeMap<String, String>,
    },
    /// A person ran a command on the release (`run`, `retry`, `approve`, ...): who, and why.
    PersonAction {
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        task: Option<TaskRef>,
        action: String,
        #[serde(flatten)]
        person: crate::engine::person::Person,
    },
    /// A decision about the whole release (abort, pause, a signal), with who made it.
    ReleaseDecision {
        decision: String,
        rule: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

impl Event {
    /// What a failpoint trace line says of this event: `smoke completed`, `deploy attempt 2`.
    pub fn trace_detail(&self) -> String {
        match self {
            Event::ReleaseStatus { status, .. } => format!("release {status}"),
            Event::PhaseStatus { phase, status, .. } => format!("{} {status}", phase.label),
            Event::TaskStatus { task, status, .. } => format!("{} {status}", task.task),
            Event::AttemptStarted { task, attempt } => format!("{} attempt {attempt}", task.task),
            Event::AttemptFinished {
                task,
                attempt,
                status,
                ..
            } => format!("{} attempt {attempt} {status}", task.task),
            Event::Decision { task, decision, .. } => format!("{} {decision}", task.task),
            Event::ReleaseDecision { decision, .. } => format!("release {decision}"),
            Event::PersonAction { action, .. } => format!("person {action}"),
            Event::RetryScheduled { task, .. }
            | Event::HandleStored { task, .. }
            | Event::Output { task, .. }
            | Event::RollbackOutput { task, .. } => task.task.clone(),
            Event::RollbackJob { task, status, .. } => format!("{} job {status}", task.task),
            Event::PhaseRestarted { runs, .. } => runs.join(","),
            Event::VariablesSet { .. } => String::new(),
        }
    }

    /// The failpoint hit once this event's store write is committed (`store.task_status`);
    /// `None` for events the store does not keep.
    pub fn failpoint(&self) -> Option<&'static str> {
        Some(match self {
            Event::ReleaseStatus { .. } => "store.release_status",
            Event::PhaseStatus { .. } => "store.phase_status",
            Event::TaskStatus { .. } => "store.task_status",
            Event::AttemptStarted { .. } => "store.attempt_started",
            Event::AttemptFinished { .. } => "store.attempt_finished",
            Event::RetryScheduled { .. } => "store.retry_scheduled",
            Event::Decision { .. } | Event::ReleaseDecision { .. } => "store.decision",
            Event::HandleStored { .. } => "store.handle",
            Event::RollbackJob { .. } => "store.rollback_job",
            Event::PhaseRestarted { .. } => "store.phase_restarted",
            Event::VariablesSet { .. } => "store.variables",
            Event::PersonAction { .. } => "store.action",
            Event::Output { .. } | Event::RollbackOutput { .. } => return None,
        })
    }

    /// Traces what a person debugging a release wants in `RUST_LOG=relflow=debug`: decisions
    /// with their rule, retry schedules, rollback jobs, restarts (already redacted).
    pub fn trace(&self, release: &str) {
        match self {
            Event::Decision {
                task,
                decision,
                rule,
                detail,
            } => tracing::debug!(
                target: "relflow::decision",
                release,
                phase = %task.phase.label,
                task = %task.task,
                decision = %decision,
                rule = %rule,
                detail = detail.as_deref().unwrap_or_default(),
                "decision"
            ),
            Event::ReleaseDecision { decision, rule, .. } => {
                tracing::debug!(target: "relflow::decision", release, decision = %decision, rule = %rule, "release decision")
            }
            Event::RetryScheduled {
                task,
                next_attempt,
                of,
                delay_ms,
                ..
            } => tracing::debug!(
                target: "relflow::retry",
                release,
                phase = %task.phase.label,
                task = %task.task,
                next_attempt,
                of,
                delay_ms,
                "retry scheduled"
            ),
            Event::RollbackJob {
                task, job, status, ..
            } => {
                tracing::debug!(target: "relflow::decision", release, task = %task.task, job, status = %status, "rollback job")
            }
            Event::PhaseRestarted { runs, by, .. } => {
                tracing::debug!(target: "relflow::decision", release, runs = %runs.join(","), by = %by, "phases restarted")
            }
            _ => {}
        }
    }

    /// Rewrites every free-text field with `f` (used to redact secrets before consumers see it).
    pub fn map_text(&mut self, f: &dyn Fn(&str) -> Option<String>) {
        let fix = |s: &mut String| {
            if let Some(new) = f(s) {
                *s = new;
            }
        };
        match self {
            Event::ReleaseStatus { reason, .. } => reason.iter_mut().for_each(fix),
            Event::TaskStatus { error, .. } | Event::AttemptFinished { error, .. } => {
                error.iter_mut().for_each(|e| fix(&mut e.message))
            }
            Event::Output { line, .. } | Event::RollbackOutput { line, .. } => fix(line),
            Event::Decision { detail, .. } | Event::ReleaseDecision { detail, .. } => {
                detail.iter_mut().for_each(fix)
            }
            Event::VariablesSet { values } => values.values_mut().for_each(fix),
            Event::PhaseStatus { variables, .. } => variables
                .iter_mut()
                .flat_map(|v| v.values_mut())
                .for_each(fix),
            Event::RollbackJob { error, .. } => error.iter_mut().for_each(fix),
            Event::PhaseRestarted { values, .. } => fix(values),
            Event::PersonAction { person, .. } => person.comment.iter_mut().for_each(fix),
            Event::HandleStored { handle, .. } => fix(handle),
            Event::AttemptStarted { .. } | Event::RetryScheduled { .. } => {}
        }
    }
}
