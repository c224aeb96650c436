//! Stopping a drive early and ending a release: a live abort or pause from another shell, a
//! signal, and the last writes of a release that ends (terminal status last, so a runner
//! killed half-way leaves a release that `resume` finishes instead of one that looks done).

use crate::engine::control::Stop;
use crate::engine::event::{Event, PhaseRef};
use crate::engine::{Engine, EngineError, Outcome};
use crate::store::{PhaseStatus, ReleaseStatus, StoreError, TaskStatus};

/// The decisions that end a release, as recorded before their work starts.
const ENDING_DECISIONS: [&str; 2] = ["rollback_release", "cancel"];

impl Engine {
    /// Acts on a stop: abort (after the attempts it ended), pause, or a signal; a lost lease
    /// is an error, since nothing more may be written.
    pub(super) async fn stop_drive(&self, stop: Stop) -> Result<Outcome, EngineError> {
        let outcome = match stop {
            Stop::LeaseLost => {
                return Err(EngineError::Store(StoreError::LeaseLost {
                    release: self.release.clone(),
                }));
            }
            Stop::Abort {
                rollback,
                actor,
                comment,
            } => {
                // The abort's own rollback must be able to call backends again.
                self.interrupt.rearm();
                let person = crate::engine::person::Person { actor, comment };
                self.abort_as(rollback, &person)
                    .await
                    .map_err(|e| e.into_engine("abort"))?
            }
            Stop::Signal(signal) => {
                let reason = format!(
                    "interrupted by {signal}; continue with `relflow resume {}`",
                    self.release
                );
                self.pause_release("interrupted", &format!("{signal} received"), reason)?
            }
            Stop::Pause { actor, comment } => {
                let mut reason = format!("paused by {actor}");
                if let Some(comment) = &comment {
                    reason.push_str(&format!(" ({comment})"));
                }
                reason.push_str(&format!(
                    "; continue with `relflow resume {}`",
                    self.release
                ));
                self.pause_release("pause", &format!("relflow pause by {actor}"), reason)?
            }
        };
        self.with_store(|s| s.mark_control_handled(&self.release))?;
        Ok(outcome)
    }

    /// Hands requests stored for this release to the live control (the lease keeper does the
    /// same every quarter second; this makes step boundaries see them at once).
    pub(super) fn take_requests(&self) -> Result<(), EngineError> {
        for request in self.with_store(|s| s.open_control_requests(&self.release))? {
            self.control
                .on_news(crate::store::LeaseNews::Request(request));
        }
        Ok(())
    }

    /// Leaves the release `paused`: open phase runs paused, the reason recorded.
    pub(super) fn pause_release(
        &self,
        decision: &str,
        rule: &str,
        reason: String,
    ) -> Result<Outcome, EngineError> {
        self.emit(Event::ReleaseDecision {
            decision: decision.to_string(),
            rule: rule.to_string(),
            detail: None,
        })?;
        for phase in self.with_store(|s| s.phase_runs(&self.release))? {
            if phase.status == PhaseStatus::Running {
                self.emit(Event::PhaseStatus {
                    phase: PhaseRef {
                        id: phase.id,
                        label: phase.label(),
                    },
                    status: PhaseStatus::Paused,
                    variables: None,
                })?;
            }
        }
        self.emit(Event::ReleaseStatus {
            status: ReleaseStatus::Paused,
            reason: Some(reason),
        })?;
        Ok(Outcome::Paused)
    }

    /// Closes what the release leaves open, then writes its terminal status: the last write.
    pub(super) fn end_release(
        &self,
        outcome: Outcome,
        reason: String,
    ) -> Result<Outcome, EngineError> {
        let (phase_status, status) = match outcome {
            Outcome::RolledBack => (PhaseStatus::RolledBack, ReleaseStatus::RolledBack),
            _ => (PhaseStatus::Aborted, ReleaseStatus::Aborted),
        };
        self.close_remaining(phase_status)?;
        self.emit(Event::ReleaseStatus {
            status,
            reason: Some(reason),
        })?;
        Ok(outcome)
    }

    /// A release a killed runner left between the decision that ends it and its terminal
    /// status, once the deciding task itself is settled: finish its ending. (While the task
    /// still runs its decision, `repair_interrupted` carries the decision on instead.)
    pub(super) async fn finish_interrupted_ending(&self) -> Result<Option<Outcome>, EngineError> {
        let release = self.with_store(|s| s.release(&self.release))?;
        if release.status.is_final() {
            return Ok(None);
        }
        let decisions = self.with_store(|s| s.decisions(&self.release))?;
        let Some(last) = decisions
            .iter()
            .rev()
            .find(|d| d.decision != crate::engine::rollback_order::STEP_DECISION)
        else {
            return Ok(None);
        };
        if !ENDING_DECISIONS.contains(&last.decision.as_str()) {
            return Ok(None);
        }
        let tasks = self.with_store(|s| s.task_runs(&self.release))?;
        let deciding = last
            .task_run_id
            .and_then(|id| tasks.iter().find(|t| t.id == id));
        let outcome = match (last.decision.as_str(), deciding) {
            (_, Some(task))
                if matches!(
                    task.status,
                    TaskStatus::Running | TaskStatus::Planned | TaskStatus::WaitingRetry
                ) =>
            {
                return Ok(None);
            }
            ("rollback_release", _) => Outcome::RolledBack,
            _ => Outcome::Aborted,
        };
        let task = deciding.map(|t| t.task.as_str()).unwrap_or("?");
        let reason = match outcome {
            Outcome::RolledBack => format!(
                "task {task} failed; the release was rolled back (finished after the runner was interrupted)"
            ),
            _ => format!(
                "task {task} failed and was cancelled without rollback; the target may be in an unknown state (finished after the runner was interrupted)"
            ),
        };
        self.end_release(outcome, reason).map(Some)
    }
}
