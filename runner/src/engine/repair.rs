//! Start-up repair (pueue-style): what a killed runner left `running` becomes an explicit
//! `interrupted` attempt before anything else happens.

use relflow_plugin::ErrorClass;

use crate::engine::event::{Event, FailureInfo, TaskRef};
use crate::engine::rollback_order::STEP_DECISION;
use crate::engine::{Engine, EngineError};
use crate::policy::Then;
use crate::store::{AttemptStatus, DecisionRecord, TaskStatus};

/// The final decision a task run was executing when the runner stopped, if any.
fn unfinished_decision(decisions: &[DecisionRecord], task_run: i64) -> Option<Then> {
    let last = decisions
        .iter()
        .rfind(|d| d.task_run_id == Some(task_run) && d.decision != STEP_DECISION)?;
    [
        Then::Rollback,
        Then::RollbackRelease,
        Then::Cancel,
        Then::FixForward,
        Then::Pause,
        Then::Skip,
        Then::Ignore,
    ]
    .into_iter()
    .find(|then| then.keyword() == last.decision)
}

/// Whether a decision about `task_run` was recorded at or after `attempt_ended` (ms).
fn is_decided(decisions: &[DecisionRecord], task_run: i64, attempt_ended: Option<i64>) -> bool {
    let ended = attempt_ended.unwrap_or(i64::MAX);
    decisions
        .iter()
        .any(|d| d.task_run_id == Some(task_run) && d.decision != STEP_DECISION && d.at >= ended)
}

impl Engine {
    /// Marks attempts left `running` by a dead runner as `interrupted` (class `interrupted`)
    /// and puts their tasks back to `planned` for a new attempt. Call only with the lease held.
    /// Returns the number of attempts repaired.
    pub fn repair_interrupted(&self) -> Result<usize, EngineError> {
        let phases = self.with_store(|s| s.phase_runs(&self.release))?;
        let attempts = self.with_store(|s| s.attempts(&self.release))?;
        let tasks = self.with_store(|s| s.task_runs(&self.release))?;
        let decisions = self.with_store(|s| s.decisions(&self.release))?;
        let mut repaired = 0;
        for task in tasks.iter().filter(|t| t.status == TaskStatus::Running) {
            let is_attempt_running = attempts
                .iter()
                .any(|a| a.task_run_id == task.id && a.status == AttemptStatus::Running);
            if !is_attempt_running && let Some(then) = unfinished_decision(&decisions, task.id) {
                // Killed while executing a decision (e.g. half-way through a rollback): carry
                // it on; the steps that already ran are recorded and will not run twice.
                self.unfinished.borrow_mut().insert(task.id, then);
                continue;
            }
            let task_ref = TaskRef::of(task, &phases);
            let last = attempts.iter().rfind(|a| a.task_run_id == task.id);
            match last.map(|a| (a.status, a.ended_at)) {
                // Killed after the attempt succeeded, before the task was marked: it is done.
                Some((AttemptStatus::Succeeded, _)) => {
                    self.emit(Event::TaskStatus {
                        task: task_ref,
                        status: TaskStatus::Completed,
                        error: None,
                    })?;
                    continue;
                }
                // Killed after the attempt failed, before the policy decided: decide on resume
                // (running it again would bypass the policy).
                Some((AttemptStatus::Failed, ended)) if !is_decided(&decisions, task.id, ended) => {
                    self.undecided.borrow_mut().insert(task.id);
                    continue;
                }
                _ => {}
            }
            let error = FailureInfo {
                class: ErrorClass::Interrupted,
                message: "the runner stopped while this attempt ran".to_string(),
            };
            for attempt in attempts
                .iter()
                .filter(|a| a.task_run_id == task.id && a.status == AttemptStatus::Running)
            {
                let number = u32::try_from(attempt.number).unwrap_or(0);
                self.output(
                    &task_ref,
                    format!("Attempt {number} was interrupted: {}", error.message),
                )?;
                self.emit(Event::AttemptFinished {
                    task: task_ref.clone(),
                    attempt: number,
                    status: AttemptStatus::Interrupted,
                    error: Some(error.clone()),
                    exit_code: None,
                })?;
                repaired += 1;
            }
            self.emit(Event::TaskStatus {
                task: task_ref,
                status: TaskStatus::Planned,
                error: Some(error),
            })?;
        }
        Ok(repaired)
    }
}
