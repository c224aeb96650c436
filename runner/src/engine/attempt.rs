//! One attempt of a task run: its target lock, its start and end in the store, and how a stop
//! (abort, signal, lost lease) that came while it ran is recorded.

use crate::engine::control::Stop;
use crate::engine::event::{Event, FailureInfo, TaskRef};
use crate::engine::kinds::AttemptResult;
use crate::engine::{Engine, EngineError};
use crate::pipeline::{Phase, Task, TaskKind};
use crate::policy;
use crate::store::{AttemptStatus, TaskStatus};

/// How one attempt ended, as the task run's loop sees it.
pub(super) enum AttemptEnd {
    Succeeded,
    /// Failed; the policy decides what follows.
    Failed(Box<policy::Failure>),
    /// A stop ended it; recorded, and the drive acts on the stop.
    Stopped,
}

impl Engine {
    /// Runs attempt `attempt`: the target lock, the task kind, and every record of it.
    pub(super) async fn run_attempt(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        attempt: u32,
    ) -> Result<AttemptEnd, EngineError> {
        // Deploy and undeploy tasks hold their target's lock (waiting for it if need be).
        let locked = self.hold_target_lock(phase, task_ref, task).await?;
        self.set_status(task_ref, TaskStatus::Running, None)?;
        self.emit(Event::AttemptStarted {
            task: task_ref.clone(),
            attempt,
        })?;
        let result = match locked {
            Some(e) => crate::engine::kinds::failed(e.class, e.message, attempt),
            None => self.execute(phase, task_ref, task, attempt).await?,
        };
        let (failure, exit_code) = match result {
            AttemptResult::Succeeded => {
                self.emit(Event::AttemptFinished {
                    task: task_ref.clone(),
                    attempt,
                    status: AttemptStatus::Succeeded,
                    error: None,
                    exit_code: Some(0).filter(|_| is_process(task)),
                })?;
                self.set_status(task_ref, TaskStatus::Completed, None)?;
                return Ok(AttemptEnd::Succeeded);
            }
            AttemptResult::Failed { failure, exit_code } => (failure, exit_code),
        };
        let stopped = self
            .control
            .pending()
            .is_some_and(|s| !matches!(s, Stop::Pause { .. }));
        if stopped {
            self.stopped_attempt(task_ref, attempt, &failure, exit_code)?;
            return Ok(AttemptEnd::Stopped);
        }
        let info = FailureInfo {
            class: failure.class,
            message: failure.message.clone(),
        };
        self.output(
            task_ref,
            format!("Attempt {attempt} failed: {}: {}", info.class, info.message),
        )?;
        self.emit(Event::AttemptFinished {
            task: task_ref.clone(),
            attempt,
            status: AttemptStatus::Failed,
            error: Some(info),
            exit_code,
        })?;
        Ok(AttemptEnd::Failed(failure))
    }

    /// An attempt a stop ended: `cancelled` on abort (the task too); `interrupted` on a signal,
    /// the task back to `planned` so `resume` starts (or re-attaches) a new attempt. With the
    /// lease lost nothing is written.
    fn stopped_attempt(
        &self,
        task_ref: &TaskRef,
        attempt: u32,
        failure: &policy::Failure,
        exit_code: Option<i32>,
    ) -> Result<(), EngineError> {
        let (attempt_status, task_status) = match self.control.pending() {
            Some(Stop::LeaseLost) | None => return Ok(()),
            Some(Stop::Abort { .. }) => (AttemptStatus::Cancelled, TaskStatus::Cancelled),
            Some(Stop::Signal(_) | Stop::Pause { .. }) => {
                (AttemptStatus::Interrupted, TaskStatus::Planned)
            }
        };
        let info = FailureInfo {
            class: failure.class,
            message: failure.message.clone(),
        };
        self.output(
            task_ref,
            format!("Attempt {attempt} was stopped: {}", info.message),
        )?;
        self.emit(Event::AttemptFinished {
            task: task_ref.clone(),
            attempt,
            status: attempt_status,
            error: Some(info.clone()),
            exit_code,
        })?;
        self.set_status(task_ref, task_status, Some(info))?;
        Ok(())
    }
}

fn is_process(task: &Task) -> bool {
    matches!(task.kind, TaskKind::Command(_) | TaskKind::Script(_))
}
