//! One task run: attempts, the policy's decision after each failure, and its execution.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::engine::attempt::AttemptEnd;
use crate::engine::control::Stop;
use crate::engine::event::{Event, FailureInfo, PhaseRef, TaskRef};
use crate::engine::{Engine, EngineError};
use crate::pipeline::duration::format_duration;
use crate::pipeline::{Phase, Task, TaskKind};
use crate::policy::{self, Decision, EffectivePolicy, OnFailure, Then};
use crate::store::{TaskRunRecord, TaskStatus, now_ms};

/// How a task run left its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// Completed, skipped or ignored: the flow goes on.
    Settled,
    /// Failed and the policy halts the release.
    Halted,
    /// Failed, rolled back (`then: rollback`), and the release halts.
    RolledBack,
    /// A fix-forward appended new phase runs; the drive picks them up.
    Restarted,
    /// The release itself ended (rolled back, or aborted by a cancel); its status is recorded.
    ReleaseEnded(crate::engine::Outcome),
    WaitingApproval,
    /// Ended early by a stop (abort, pause, signal, lost lease); the drive acts on the stop.
    Stopped,
}

/// A number in `[0, 1)` for retry jitter; kept outside the pure decision function.
fn jitter_sample() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Engine {
    /// The `on_failure` nearest to the task, and where it stands.
    pub(super) fn effective_policy<'a>(
        &'a self,
        phase: &'a Phase,
        task: &'a Task,
    ) -> (Option<&'a OnFailure>, String) {
        policy::decide::nearest_policy(&self.pipeline, phase, task)
    }

    pub(super) fn output(
        &self,
        task: &TaskRef,
        line: impl Into<String>,
    ) -> Result<(), EngineError> {
        self.emit(Event::Output {
            task: task.clone(),
            line: line.into(),
        })
    }

    pub(super) fn set_status(
        &self,
        task: &TaskRef,
        status: TaskStatus,
        error: Option<FailureInfo>,
    ) -> Result<(), EngineError> {
        self.emit(Event::TaskStatus {
            task: task.clone(),
            status,
            error,
        })
    }

    pub(super) async fn run_task(
        &self,
        phase: &Phase,
        phase_ref: &PhaseRef,
        record: &TaskRunRecord,
        task: &Task,
    ) -> Result<TaskEnd, EngineError> {
        let task_ref = TaskRef {
            id: record.id,
            phase: phase_ref.clone(),
            task: task.name.clone(),
        };
        if let TaskKind::Manual { .. } = task.kind {
            return self.ask_for_approval(phase, &task_ref, task);
        }
        let unfinished = self.unfinished.borrow_mut().remove(&record.id);
        if let Some(then) = unfinished {
            let failure = self.last_failure(record)?;
            self.output(
                &task_ref,
                format!("Resuming the interrupted `{}` decision", then.keyword()),
            )?;
            return self
                .apply_decided(phase, &task_ref, task, &failure, then)
                .await;
        }
        if record.status == TaskStatus::WaitingRetry
            && let Some(at) = record.retry_at
        {
            // Resumed during a retry wait: keep the schedule, wait what is left.
            let left = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
            if self.control.sleep(left).await {
                return self.stopped_while_waiting(&task_ref);
            }
        }
        let mut attempt = u32::try_from(record.attempts).unwrap_or(0);
        // A runner killed between an attempt's failure and the policy's decision: decide now.
        let mut undecided = match self.undecided.borrow_mut().remove(&record.id) {
            true => Some(self.last_failure(record)?),
            false => None,
        };
        loop {
            let failure = match undecided.take() {
                Some(failure) => {
                    self.output(
                        &task_ref,
                        format!("Deciding what follows attempt {attempt}, which failed before the runner stopped"),
                    )?;
                    failure
                }
                None => {
                    attempt += 1;
                    match self.run_attempt(phase, &task_ref, task, attempt).await? {
                        AttemptEnd::Succeeded => return Ok(TaskEnd::Settled),
                        AttemptEnd::Stopped => return Ok(TaskEnd::Stopped),
                        AttemptEnd::Failed(failure) => *failure,
                    }
                }
            };
            // An attempt a person ordered is not retried by the policy: it pauses if it fails.
            let is_person_ordered = self.person_ordered.borrow().contains(&task_ref.id);
            let decided = if is_person_ordered {
                self.emit(Event::Decision {
                    task: task_ref.clone(),
                    decision: Then::Pause.keyword().to_string(),
                    rule: "relflow retry: one attempt ordered by a person".to_string(),
                    detail: Some(format!("{}: {}", failure.class, failure.message)),
                })?;
                (Decision::Then(Then::Pause), String::new())
            } else {
                self.decide_after(phase, &task_ref, task, &failure)?
            };
            match decided {
                (Decision::Retry { delay, .. }, _) => {
                    if self.control.sleep(delay).await {
                        return self.stopped_while_waiting(&task_ref);
                    }
                }
                (Decision::Then(then), _) => {
                    return self
                        .apply_then(phase, &task_ref, task, &failure, then)
                        .await;
                }
                (Decision::RestartPhase(values), rule) => {
                    return self
                        .restart_by_script(phase, &task_ref, task, &failure, values, rule)
                        .await;
                }
            }
        }
    }

    /// Asks the policy; on `retry` schedules the next attempt. Returns the decision and its
    /// rule.
    fn decide_after(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        failure: &policy::Failure,
    ) -> Result<(Decision, String), EngineError> {
        let (on_failure, source) = self.effective_policy(phase, task);
        let decisions = self.with_store(|s| s.decisions(&self.release))?;
        let retries = decisions.iter().filter(|d| d.decision == "retry");
        let history = policy::History {
            task_retries: count(
                retries
                    .clone()
                    .filter(|d| d.task_run_id == Some(task_ref.id)),
            ),
            retries_used: count(retries),
            retry_budget: self.pipeline.retry_budget,
        };
        let policy = EffectivePolicy {
            on_failure,
            source: &source,
        };
        let failure = match on_failure {
            Some(OnFailure::Script(_)) => &self.with_context(phase, task_ref, task, failure)?,
            _ => failure,
        };
        let decided = policy::decide(policy, failure, history, jitter_sample());
        if let Decision::RestartPhase(_) = decided.decision {
            // Recorded once the restart is judged (see `restart_by_script`).
            self.output(task_ref, format!("Policy: {}", decided.reason))?;
            return Ok((decided.decision, decided.rule));
        }
        let of = match on_failure {
            Some(OnFailure::Declarative(d)) => Some(d.retry.retries + 1),
            _ => None,
        };
        let total = of.map(|n| format!(" of {n}")).unwrap_or_default();
        // A retry says when and which attempt comes next (the error is the attempt's own);
        // a scripted policy's reason is kept as it is: it explains the choice.
        let detail = match (&decided.decision, on_failure) {
            (
                Decision::Retry {
                    delay,
                    next_attempt,
                },
                Some(OnFailure::Declarative(_)),
            ) => format!(
                "attempt {next_attempt}{total} in {}",
                format_duration(*delay)
            ),
            _ => decided.reason.clone(),
        };
        self.emit(Event::Decision {
            task: task_ref.clone(),
            decision: decided.decision.keyword().to_string(),
            rule: decided.rule.clone(),
            detail: Some(detail),
        })?;
        if let Some(OnFailure::Script(_)) = on_failure {
            self.output(task_ref, format!("Policy: {}", decided.reason))?;
        }
        let Decision::Retry {
            delay,
            next_attempt,
        } = decided.decision
        else {
            return Ok((decided.decision, decided.rule));
        };
        self.output(
            task_ref,
            format!(
                "Retrying in {} (attempt {next_attempt}{total}): {}: {}",
                format_duration(delay),
                failure.class,
                failure.message
            ),
        )?;
        self.emit(Event::RetryScheduled {
            task: task_ref.clone(),
            next_attempt,
            of,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            at_ms: now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
        })?;
        Ok((
            Decision::Retry {
                delay,
                next_attempt,
            },
            decided.rule,
        ))
    }

    /// The failure of a task run's last attempt, rebuilt from the store.
    fn last_failure(&self, record: &TaskRunRecord) -> Result<policy::Failure, EngineError> {
        let attempts = self.with_store(|s| s.attempts(&self.release))?;
        let last = attempts.iter().rfind(|a| a.task_run_id == record.id);
        let mut failure = policy::Failure::new(
            last.and_then(|a| a.error_class.as_deref())
                .and_then(|c| c.parse().ok())
                .unwrap_or(relflow_plugin::ErrorClass::TaskFailed),
            last.and_then(|a| a.message.clone()).unwrap_or_default(),
            last.map(|a| u32::try_from(a.number).unwrap_or(0))
                .unwrap_or(0),
        );
        failure.exit_code = last
            .and_then(|a| a.exit_code)
            .and_then(|c| i32::try_from(c).ok());
        Ok(failure)
    }

    fn ask_for_approval(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
    ) -> Result<TaskEnd, EngineError> {
        let prompt = match &task.kind {
            TaskKind::Manual { prompt } => self.render(phase, task, prompt).map(|r| r.value),
            _ => Ok(String::new()),
        };
        let prompt = prompt.unwrap_or_else(|e| format!("(prompt could not be rendered: {e})"));
        self.output(task_ref, format!("Waiting for approval: {prompt}"))?;
        self.output(
            task_ref,
            format!(
                "Answer with: relflow approve {0} --task {1}  (or: relflow reject {0} --task {1})",
                self.release, task.name
            ),
        )?;
        self.set_status(task_ref, TaskStatus::WaitingApproval, None)?;
        Ok(TaskEnd::WaitingApproval)
    }
}

impl Engine {
    /// A stop came during a retry wait: an abort cancels the task; otherwise it keeps
    /// `waiting_retry` and its stored time, so `resume` continues the same schedule.
    fn stopped_while_waiting(&self, task_ref: &TaskRef) -> Result<TaskEnd, EngineError> {
        if let Some(Stop::Abort { actor, .. }) = self.control.pending() {
            self.set_status(
                task_ref,
                TaskStatus::Cancelled,
                Some(FailureInfo {
                    class: relflow_plugin::ErrorClass::Interrupted,
                    message: format!("the release was aborted by {actor} during a retry wait"),
                }),
            )?;
        }
        Ok(TaskEnd::Stopped)
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}
