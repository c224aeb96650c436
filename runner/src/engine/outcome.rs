//! Executing the policy's `then` once no retry is left: pause, skip, ignore, rollback,
//! rollback_release, cancel, fix_forward.

use relflow_plugin::{Backend, Handle};

use crate::engine::event::{Event, FailureInfo, TaskRef};
use crate::engine::fix_forward::FixForwardPlan;
use crate::engine::rollback_order::Scope;
use crate::engine::task::TaskEnd;
use crate::engine::{Engine, EngineError, Outcome};
use crate::pipeline::{Phase, Task};
use crate::policy::{self, Then};
use crate::store::TaskStatus;

impl Engine {
    /// Applies the policy's decided `then` (or `pause` for an attempt a person ordered).
    pub(super) async fn apply_then(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        failure: &policy::Failure,
        then: Then,
    ) -> Result<TaskEnd, EngineError> {
        let then = if self.person_ordered.borrow_mut().remove(&task_ref.id) {
            Then::Pause
        } else {
            then
        };
        self.apply_decided(phase, task_ref, task, failure, then)
            .await
    }

    /// Executes `then` for the failure (also when a resumed release carries on a decision a
    /// killed runner left half-done).
    pub(super) async fn apply_decided(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        failure: &policy::Failure,
        mut then: Then,
    ) -> Result<TaskEnd, EngineError> {
        let error = FailureInfo {
            class: failure.class,
            message: failure.message.clone(),
        };
        if then == Then::FixForward {
            match self.fix_forward(phase, task_ref, task).await? {
                FixForwardPlan::Restart(values) => {
                    self.set_status(task_ref, TaskStatus::Failed, Some(error))?;
                    let by = crate::engine::fix_forward::restart_rule(task);
                    self.restart_phases(&phase.name, None, values, &by)
                        .map_err(|e| match e {
                            crate::engine::RestartError::Engine(e) => e,
                            other => EngineError::Mismatch {
                                what: "restart",
                                name: other.to_string(),
                            },
                        })?;
                    return Ok(TaskEnd::Restarted);
                }
                FixForwardPlan::Fallback {
                    then: fallback,
                    reason,
                } => {
                    self.output(
                        task_ref,
                        format!(
                            "Fix forward not possible: {reason}; falling back to {}",
                            fallback.keyword()
                        ),
                    )?;
                    self.emit(Event::Decision {
                        task: task_ref.clone(),
                        decision: fallback.keyword().to_string(),
                        rule: format!(
                            "{}: on_failure.fix_forward.fallback",
                            self.effective_policy(phase, task).1
                        ),
                        detail: Some(reason),
                    })?;
                    then = fallback;
                }
            }
        }
        match then {
            Then::Skip | Then::Ignore | Then::Pause | Then::Cancel => {
                self.run_own_actions(phase, task_ref, task).await?;
            }
            _ => {}
        }
        match then {
            Then::Skip => self.end(task_ref, TaskStatus::Skipped, error, TaskEnd::Settled),
            Then::Ignore => self.end(task_ref, TaskStatus::Ignored, error, TaskEnd::Settled),
            Then::Pause | Then::FixForward => {
                self.end(task_ref, TaskStatus::Failed, error, TaskEnd::Halted)
            }
            Then::Rollback => {
                self.roll_back_task_then_halt(phase, task_ref, task, error)
                    .await
            }
            Then::RollbackRelease => self.roll_back_release(phase, task_ref, task, error).await,
            Then::Cancel => {
                self.cancel_without_rollback(phase, task_ref, task, error)
                    .await
            }
        }
    }

    fn end(
        &self,
        task_ref: &TaskRef,
        status: TaskStatus,
        error: FailureInfo,
        end: TaskEnd,
    ) -> Result<TaskEnd, EngineError> {
        self.set_status(task_ref, status, Some(error))?;
        Ok(end)
    }

    /// The failing task's own actions, outside a rollback (pause, skip, ignore, cancel).
    async fn run_own_actions(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
    ) -> Result<(), EngineError> {
        for (_, action) in crate::engine::actions::actions_of(task) {
            if let Err(e) = self.run_action(phase, task, action, task_ref).await? {
                self.output(task_ref, format!("Action failed: {e}"))?;
            }
        }
        Ok(())
    }

    /// `then: rollback`: rollback order steps 1–3, then halt.
    async fn roll_back_task_then_halt(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        error: FailureInfo,
    ) -> Result<TaskEnd, EngineError> {
        self.output(task_ref, "Going to rollback")?;
        let summary = self
            .roll_back_in_order(Some((phase, task_ref, task)), task_ref, Scope::Task)
            .await?;
        if summary.is_task_reverted {
            self.set_status(task_ref, TaskStatus::RolledBack, Some(error))?;
            if !summary.failed_steps.is_empty() {
                self.output(
                    task_ref,
                    format!(
                        "Rollback steps that failed: {}",
                        summary.failed_steps.join("; ")
                    ),
                )?;
            }
            return Ok(TaskEnd::RolledBack);
        }
        let error = FailureInfo {
            class: error.class,
            message: format!(
                "{}; then the rollback failed ({})",
                error.message,
                summary.failed_steps.join("; ")
            ),
        };
        self.output(
            task_ref,
            "The target may be in an unknown state: the rollback did not complete",
        )?;
        self.end(task_ref, TaskStatus::Failed, error, TaskEnd::Halted)
    }

    /// `then: rollback_release`: the whole rollback order; the release ends `rolled_back`.
    async fn roll_back_release(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        error: FailureInfo,
    ) -> Result<TaskEnd, EngineError> {
        self.output(task_ref, "Going to rollback the release")?;
        let summary = self
            .roll_back_in_order(Some((phase, task_ref, task)), task_ref, Scope::Release)
            .await?;
        let status = if summary.is_task_reverted {
            TaskStatus::RolledBack
        } else {
            TaskStatus::Failed
        };
        self.set_status(task_ref, status, Some(error))?;
        let reason = if summary.failed_steps.is_empty() {
            format!("task {} failed; the release was rolled back", task.name)
        } else {
            format!(
                "task {} failed; the release was rolled back, but these steps failed: {}",
                task.name,
                summary.failed_steps.join("; ")
            )
        };
        // Written last, by the drive, once the phases and tasks are closed.
        *self.ending_reason.borrow_mut() = Some(reason);
        Ok(TaskEnd::ReleaseEnded(Outcome::RolledBack))
    }

    /// `then: cancel`: cancel the backend operation without rollback; the release is aborted.
    async fn cancel_without_rollback(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        error: FailureInfo,
    ) -> Result<TaskEnd, EngineError> {
        let stored = self
            .with_store(|s| s.task_runs(&self.release))?
            .into_iter()
            .find(|t| t.id == task_ref.id)
            .and_then(|t| t.handle);
        if let Some(Ok(handle)) = stored.as_deref().map(Handle::from_json) {
            match self.backend_for_handle(phase, task, &handle) {
                Ok(backend) => {
                    if let Err(e) = self
                        .call_backend(task_ref, backend, move |b, _, log| b.cancel(&handle, log))
                        .await?
                    {
                        self.output(
                            task_ref,
                            format!("Cancel failed: {}: {}", e.class, e.message),
                        )?;
                    }
                }
                Err(e) => self.output(task_ref, format!("Cancel failed: {e}"))?,
            }
        }
        self.output(
            task_ref,
            "WARNING: cancelled without rollback: the target may be in an unknown state",
        )?;
        self.set_status(task_ref, TaskStatus::Cancelled, Some(error))?;
        *self.ending_reason.borrow_mut() = Some(format!(
            "task {} failed and was cancelled without rollback; the target may be in an unknown state",
            task.name
        ));
        Ok(TaskEnd::ReleaseEnded(Outcome::Aborted))
    }
}
