//! Answers to manual tasks: `relflow approve` and `relflow reject`.

use crate::engine::event::{Event, FailureInfo, TaskRef};
use crate::engine::{Engine, EngineError, Outcome};
use crate::store::{PhaseStatus, ReleaseStatus, TaskStatus};
use relflow_plugin::ErrorClass;

/// A person's answer to a manual task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Approve,
    Reject,
}

/// The answer does not apply to the release as it stands.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("task `{task}` of release {release} is not waiting for approval{}", .status.map(|s| format!(" (it is {s})")).unwrap_or_default())]
    NotWaiting {
        release: String,
        task: String,
        status: Option<TaskStatus>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Records the answer for `task`; an approved release is then driven on.
    pub async fn answer(&self, task: &str, answer: Answer) -> Result<Outcome, AnswerError> {
        match self.order_answer(task, answer)? {
            Some(outcome) => Ok(outcome),
            None => Ok(self.drive().await?),
        }
    }

    /// Records the answer (durably). `None`: approved, drive the release on; `Some(halted)`:
    /// rejected, the release halts.
    pub fn order_answer(&self, task: &str, answer: Answer) -> Result<Option<Outcome>, AnswerError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let phases = self.with_store(|s| s.phase_runs(&self.release))?;
        let Some(record) = runs
            .iter()
            .rev()
            .find(|t| t.task == task && t.status == TaskStatus::WaitingApproval)
        else {
            return Err(AnswerError::NotWaiting {
                release: self.release.clone(),
                task: task.to_string(),
                status: runs.iter().rev().find(|t| t.task == task).map(|t| t.status),
            });
        };
        let task_ref = TaskRef::of(record, &phases);
        let phase = task_ref.phase.clone();
        let by = format!(
            "relflow {} by {}",
            if answer == Answer::Approve {
                "approve"
            } else {
                "reject"
            },
            self.person.actor
        );
        self.record_action(
            Some(&task_ref),
            if answer == Answer::Approve {
                "approve"
            } else {
                "reject"
            },
            &self.person,
        )?;
        self.emit(Event::Decision {
            task: task_ref.clone(),
            decision: if answer == Answer::Approve {
                "approve"
            } else {
                "reject"
            }
            .to_string(),
            rule: by.clone(),
            detail: self.person.comment.clone(),
        })?;
        self.emit(Event::Output {
            task: task_ref.clone(),
            line: format!(
                "{} ({by})",
                if answer == Answer::Approve {
                    "Approved"
                } else {
                    "Rejected"
                }
            ),
        })?;
        if answer == Answer::Approve {
            self.emit(Event::TaskStatus {
                task: task_ref,
                status: TaskStatus::Completed,
                error: None,
            })?;
            return Ok(None);
        }
        let error = FailureInfo {
            class: ErrorClass::TaskFailed,
            message: format!("rejected ({by})"),
        };
        self.emit(Event::TaskStatus {
            task: task_ref,
            status: TaskStatus::Failed,
            error: Some(error),
        })?;
        self.emit(Event::PhaseStatus {
            phase,
            status: PhaseStatus::Failed,
            variables: None,
        })?;
        self.emit(Event::ReleaseStatus {
            status: ReleaseStatus::Failed,
            reason: Some(format!("task {task} was rejected")),
        })?;
        Ok(Some(Outcome::Halted))
    }
}
