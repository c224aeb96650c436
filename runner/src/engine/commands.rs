//! What a release manager runs on a halted or paused release: retry, skip, abort, restart-phase.
//! Each refuses cleanly when the release is not in a state that allows it.

use std::collections::BTreeMap;

use crate::engine::event::{Event, FailureInfo, PhaseRef, TaskRef};
use crate::engine::person::Person;
use crate::engine::rollback_order::Scope;
use crate::engine::{Engine, EngineError, Outcome, RestartError};
use crate::store::{PhaseStatus, ReleaseStatus, TaskRunRecord, TaskStatus};

/// A command that does not fit the release as it stands.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Restart(#[from] RestartError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl CommandError {
    /// For callers inside the engine, where a refusal means the stored release and its
    /// pipeline disagree.
    pub(super) fn into_engine(self, verb: &'static str) -> EngineError {
        match self {
            CommandError::Engine(e) | CommandError::Restart(RestartError::Engine(e)) => e,
            other => EngineError::Mismatch {
                what: verb,
                name: other.to_string(),
            },
        }
    }
}

impl Engine {
    fn release_status(&self) -> Result<ReleaseStatus, EngineError> {
        Ok(self.with_store(|s| s.release(&self.release))?.status)
    }

    fn refuse_unless(&self, allowed: &[ReleaseStatus], verb: &str) -> Result<(), CommandError> {
        let status = self.release_status()?;
        if allowed.contains(&status) {
            return Ok(());
        }
        let wants: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(CommandError::Refused(format!(
            "release {} is {status}: `{verb}` needs a release that is {}",
            self.release,
            wants.join(" or ")
        )))
    }

    fn task_ref_of(&self, run: &TaskRunRecord) -> Result<TaskRef, EngineError> {
        let phases = self.with_store(|s| s.phase_runs(&self.release))?;
        Ok(TaskRef::of(run, &phases))
    }

    /// Task runs in `statuses`, named `task` (its newest run) or all of them.
    fn runs_in(
        &self,
        task: Option<&str>,
        statuses: &[TaskStatus],
        verb: &str,
    ) -> Result<Vec<TaskRunRecord>, CommandError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let wanted = |t: &TaskRunRecord| statuses.contains(&t.status);
        let found: Vec<TaskRunRecord> = match task {
            Some(name) => match runs.iter().rev().find(|t| t.task == name) {
                Some(run) if wanted(run) => vec![run.clone()],
                Some(run) => {
                    return Err(CommandError::Refused(format!(
                        "task `{name}` is {}: `{verb}` applies to a task that is {}",
                        run.status,
                        statuses
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )));
                }
                None => {
                    return Err(CommandError::Refused(format!(
                        "release {} has no task `{name}`",
                        self.release
                    )));
                }
            },
            None => runs.into_iter().filter(wanted).collect(),
        };
        if found.is_empty() {
            return Err(CommandError::Refused(format!(
                "release {} has no failed task to {verb}",
                self.release
            )));
        }
        Ok(found)
    }

    /// Puts a task back in play and reopens its phase run, recording who decided.
    fn reopen(
        &self,
        run: &TaskRunRecord,
        status: TaskStatus,
        decision: &str,
    ) -> Result<(), EngineError> {
        let task_ref = self.task_ref_of(run)?;
        self.record_action(Some(&task_ref), decision, &self.person)?;
        self.emit(Event::Decision {
            task: task_ref.clone(),
            decision: decision.to_string(),
            rule: format!("relflow {decision} by {}", self.person.actor),
            detail: self.person.comment.clone(),
        })?;
        self.emit(Event::TaskStatus {
            task: task_ref.clone(),
            status,
            error: None,
        })?;
        self.emit(Event::PhaseStatus {
            phase: task_ref.phase,
            status: PhaseStatus::Running,
            variables: None,
        })
    }

    /// `relflow retry`: one more attempt of the failed task(s), then the release goes on. The
    /// attempt is not retried by the policy: if it fails, the release halts again.
    pub async fn retry_failed(&self, task: Option<&str>) -> Result<Outcome, CommandError> {
        self.order_retry(task)?;
        Ok(self.drive().await?)
    }

    /// The order of a retry: refused, or the failed task(s) put back in play (durably);
    /// [`Engine::drive`] then runs them.
    pub fn order_retry(&self, task: Option<&str>) -> Result<(), CommandError> {
        self.refuse_unless(&[ReleaseStatus::Failed], "retry")?;
        for run in self.runs_in(task, &[TaskStatus::Failed], "retry")? {
            self.person_ordered.borrow_mut().insert(run.id);
            self.reopen(&run, TaskStatus::Planned, "retry")?;
        }
        Ok(())
    }

    /// `relflow skip --task T`: the failed task is skipped and the release goes on.
    pub async fn skip_failed(&self, task: &str) -> Result<Outcome, CommandError> {
        self.order_skip(task)?;
        Ok(self.drive().await?)
    }

    /// The order of a skip: refused, or the failed task recorded skipped (durably).
    pub fn order_skip(&self, task: &str) -> Result<(), CommandError> {
        self.refuse_unless(&[ReleaseStatus::Failed], "skip")?;
        for run in self.runs_in(
            Some(task),
            &[TaskStatus::Failed, TaskStatus::RolledBack],
            "skip",
        )? {
            self.reopen(&run, TaskStatus::Skipped, "skip")?;
        }
        Ok(())
    }

    /// `relflow restart-phase`: new runs of PHASE up to the current phase with new values,
    /// then (unless `no_resume`) the release goes on.
    pub async fn restart_phase(
        &self,
        phase: &str,
        from_task: Option<&str>,
        values: BTreeMap<String, String>,
        resume: bool,
    ) -> Result<Outcome, CommandError> {
        match self.order_restart_phase(phase, from_task, values, resume)? {
            Some(outcome) => Ok(outcome),
            None => Ok(self.drive().await?),
        }
    }

    /// The order of a restart-phase: refused, or the new phase runs planned (durably).
    /// `Some(paused)` when the release is to wait for `resume`; `None`: drive it on.
    pub fn order_restart_phase(
        &self,
        phase: &str,
        from_task: Option<&str>,
        values: BTreeMap<String, String>,
        resume: bool,
    ) -> Result<Option<Outcome>, CommandError> {
        use ReleaseStatus::*;
        self.refuse_unless(&[Failed, Paused, Planned, Running], "restart-phase")?;
        let labels = self.restart_phases(
            phase,
            from_task,
            values,
            &format!("relflow restart-phase by {}", self.person.actor),
        )?;
        // After the restart was judged possible: a refused one is not an action taken.
        self.record_own_action("restart-phase")?;
        if resume {
            return Ok(None);
        }
        self.emit(Event::ReleaseStatus {
            status: Paused,
            reason: Some(format!(
                "phase restarted as {}; continue with `relflow resume {}`",
                labels.join(", "),
                self.release
            )),
        })?;
        Ok(Some(Outcome::Paused))
    }

    /// `relflow abort [--rollback]`: with `rollback`, the rollback order runs first (for the
    /// failed task if there is one, and the flow-level rollback); remaining tasks are cancelled.
    pub async fn abort(&self, rollback: bool) -> Result<Outcome, CommandError> {
        self.order_abort(rollback)?;
        self.carry_out_abort(rollback).await
    }

    /// The order of an abort: refused, or recorded with its durable intent (the control
    /// request a killed runner's successor finishes).
    pub fn order_abort(&self, rollback: bool) -> Result<(), CommandError> {
        use ReleaseStatus::*;
        self.refuse_unless(&[Planned, Running, Failed, Paused], "abort")?;
        let action = crate::store::ControlAction::Abort { rollback };
        self.record_own_action(action.verb())?;
        // The request is the durable intent, as for an abort asked from another shell: a
        // runner killed half-way finds it open and finishes the abort on the next drive.
        let person = &self.person;
        self.with_store(|s| {
            s.request_control(
                &self.release,
                action,
                &person.actor,
                person.comment.as_deref(),
            )
        })?;
        Ok(())
    }

    /// The abort an [`Engine::order_abort`] accepted: the rollback order if asked, then the end.
    pub async fn carry_out_abort(&self, rollback: bool) -> Result<Outcome, CommandError> {
        let outcome = self.abort_as(rollback, &self.person).await?;
        self.with_store(|s| s.mark_control_handled(&self.release))?;
        Ok(outcome)
    }

    /// `relflow pause` on a release no live runner drives (one left `running` by a killed
    /// runner): its interrupted attempts are recorded and the release is left paused.
    pub fn pause(&self) -> Result<Outcome, CommandError> {
        use ReleaseStatus::*;
        self.refuse_unless(&[Planned, Running, Paused], "pause")?;
        if self.release_status()? == Paused {
            return Ok(Outcome::Paused);
        }
        self.record_own_action("pause")?;
        self.repair_interrupted()?;
        let actor = &self.person.actor;
        let mut reason = format!("paused by {actor}");
        if let Some(comment) = &self.person.comment {
            reason.push_str(&format!(" ({comment})"));
        }
        reason.push_str(&format!(
            "; continue with `relflow resume {}`",
            self.release
        ));
        Ok(self.pause_release("pause", &format!("relflow pause by {actor}"), reason)?)
    }

    /// The abort itself, for `relflow abort` run here and for one asked from another shell
    /// while this runner drives the release. The decision is recorded first, so a runner
    /// killed half-way finishes the abort on `resume` instead of running on.
    pub(super) async fn abort_as(
        &self,
        rollback: bool,
        person: &Person,
    ) -> Result<Outcome, CommandError> {
        let (actor, comment) = (&person.actor, person.comment.as_deref());
        let flag = if rollback { " --rollback" } else { "" };
        self.emit(Event::ReleaseDecision {
            decision: "abort".to_string(),
            rule: format!("relflow abort{flag} by {actor}"),
            detail: comment.map(str::to_string),
        })?;
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let mut failed_steps = Vec::new();
        if rollback {
            let failing = runs
                .iter()
                .rev()
                .find(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::RolledBack));
            let log_run = failing.or_else(|| {
                runs.iter()
                    .rev()
                    .find(|t| t.status == TaskStatus::Completed)
            });
            if let Some(log_run) = log_run {
                let log_to = self.task_ref_of(log_run)?;
                self.output(
                    &log_to,
                    format!("Going to rollback (relflow abort --rollback by {actor})"),
                )?;
                let summary = match failing {
                    Some(run) => {
                        let phase = self.phase_of_run(run)?;
                        let (task, _) = self.task_def(phase, &run.task)?;
                        self.roll_back_in_order(
                            Some((phase, &log_to, task)),
                            &log_to,
                            Scope::Release,
                        )
                        .await?
                    }
                    None => {
                        self.roll_back_in_order(None, &log_to, Scope::Release)
                            .await?
                    }
                };
                failed_steps = summary.failed_steps;
            }
        }
        let mut reason = format!("aborted by {actor}");
        if let Some(comment) = comment {
            reason.push_str(&format!(" ({comment})"));
        }
        if rollback {
            reason.push_str(" after a rollback");
        }
        if !failed_steps.is_empty() {
            reason.push_str(&format!(
                "; rollback steps that failed: {}",
                failed_steps.join("; ")
            ));
        }
        Ok(self.end_release(Outcome::Aborted, reason)?)
    }

    /// When a release ends early: tasks that never finished become `cancelled`, open phase
    /// runs take `phase_status` (`aborted`, or `rolled_back` after a release rollback).
    pub(super) fn close_remaining(&self, phase_status: PhaseStatus) -> Result<(), EngineError> {
        let error = || FailureInfo {
            class: relflow_plugin::ErrorClass::Precondition,
            message: "the release was aborted".into(),
        };
        for run in self.with_store(|s| s.task_runs(&self.release))? {
            if matches!(
                run.status,
                TaskStatus::Planned
                    | TaskStatus::WaitingRetry
                    | TaskStatus::WaitingApproval
                    | TaskStatus::WaitingLock
                    | TaskStatus::Running
            ) {
                let task_ref = self.task_ref_of(&run)?;
                self.emit(Event::TaskStatus {
                    task: task_ref,
                    status: TaskStatus::Cancelled,
                    error: Some(error()),
                })?;
            }
        }
        for phase in self.with_store(|s| s.phase_runs(&self.release))? {
            if matches!(
                phase.status,
                PhaseStatus::Planned | PhaseStatus::Running | PhaseStatus::Paused
            ) {
                let phase_ref = PhaseRef {
                    id: phase.id,
                    label: phase.label(),
                };
                self.emit(Event::PhaseStatus {
                    phase: phase_ref,
                    status: phase_status,
                    variables: None,
                })?;
            }
        }
        Ok(())
    }
}
