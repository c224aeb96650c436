//! Driving a release: phase runs in order, steps in order, parallel groups with `max`.

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::engine::control::Stop;
use crate::engine::event::{Event, PhaseRef};
use crate::engine::task::TaskEnd;
use crate::engine::{Engine, EngineError, Outcome};
use crate::pipeline::{Phase, Step, Task};
use crate::store::{PhaseRunRecord, PhaseStatus, ReleaseStatus, TaskRunRecord, TaskStatus};

/// How one phase run ended.
enum PhaseEnd {
    Completed,
    /// A fix-forward appended new phase runs: pick the next one again.
    Restarted,
    /// The release stops here with this outcome (its status is already recorded).
    Stop(Outcome),
}

impl Engine {
    /// Runs the release from where its state stands until it completes or halts.
    pub async fn drive(&self) -> Result<Outcome, EngineError> {
        // An abort a killed runner (or a gone holder) left open is finished before anything
        // else: the rollback steps it already ran are recorded and not run again.
        self.take_requests()?;
        if let Some(abort @ Stop::Abort { .. }) = self.control.pending() {
            return self.stop_drive(abort).await;
        }
        if let Some(outcome) = self.finish_interrupted_ending().await? {
            return Ok(outcome);
        }
        if let Some(outcome) = self.finish_interrupted_decisions().await? {
            return Ok(outcome);
        }
        self.emit(Event::ReleaseStatus {
            status: ReleaseStatus::Running,
            reason: None,
        })?;
        loop {
            let runs = self.with_store(|s| s.phase_runs(&self.release))?;
            // Closed runs (completed, failed before a restart, rolled back, superseded) stay in
            // history; the first open one is where the release stands.
            let Some(next) = runs.into_iter().find(|r| {
                matches!(
                    r.status,
                    PhaseStatus::Planned | PhaseStatus::Running | PhaseStatus::Paused
                )
            }) else {
                break;
            };
            match self.run_phase(&next).await? {
                PhaseEnd::Completed | PhaseEnd::Restarted => {}
                PhaseEnd::Stop(outcome) => return Ok(outcome),
            }
        }
        self.emit(Event::ReleaseStatus {
            status: ReleaseStatus::Completed,
            reason: None,
        })?;
        Ok(Outcome::Completed)
    }

    /// Task runs a killed runner left between a failure and the end of its handling (the
    /// decision not made, or made and half-executed) are finished first: a rollback that
    /// reverted an earlier task must not make that task look like the place to halt.
    async fn finish_interrupted_decisions(&self) -> Result<Option<Outcome>, EngineError> {
        let mut pending: Vec<i64> = self.unfinished.borrow().keys().copied().collect();
        pending.extend(self.undecided.borrow().iter().copied());
        pending.sort_unstable();
        for id in pending {
            let runs = self.with_store(|s| s.task_runs(&self.release))?;
            let phases = self.with_store(|s| s.phase_runs(&self.release))?;
            let (Some(record), Some(phase_run)) = (
                runs.iter().find(|t| t.id == id),
                phases
                    .iter()
                    .find(|p| runs.iter().any(|t| t.id == id && t.phase_run_id == p.id)),
            ) else {
                continue;
            };
            let phase = self.phase_def(&phase_run.phase)?;
            let (task, _) = self.task_def(phase, &record.task)?;
            let phase_ref = PhaseRef {
                id: phase_run.id,
                label: phase_run.label(),
            };
            let end = self.run_task(phase, &phase_ref, record, task).await?;
            if let Some(PhaseEnd::Stop(outcome)) =
                self.step_end(&phase_ref, &[end], &[record]).await?
            {
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }

    pub(super) fn phase_def(&self, name: &str) -> Result<&Phase, EngineError> {
        self.pipeline
            .phase(name)
            .ok_or_else(|| EngineError::Mismatch {
                what: "phase",
                name: name.to_string(),
            })
    }

    /// The definition of a task and the parallel limit of its step.
    pub(super) fn task_def<'p>(
        &self,
        phase: &'p Phase,
        name: &str,
    ) -> Result<(&'p Task, usize), EngineError> {
        for step in &phase.steps {
            match step {
                Step::Task(task) if task.name == name => return Ok((task, 1)),
                Step::Parallel { max, tasks } => {
                    if let Some(task) = tasks.iter().find(|t| t.name == name) {
                        return Ok((task, *max));
                    }
                }
                Step::Task(_) => {}
            }
        }
        Err(EngineError::Mismatch {
            what: "task",
            name: name.to_string(),
        })
    }

    async fn run_phase(&self, phase_run: &PhaseRunRecord) -> Result<PhaseEnd, EngineError> {
        let phase = self.phase_def(&phase_run.phase)?;
        let phase_ref = PhaseRef {
            id: phase_run.id,
            label: phase_run.label(),
        };
        if phase_run.status != PhaseStatus::Running {
            let variables = phase_run
                .variables
                .is_none()
                .then(|| self.variables.borrow().clone());
            self.emit(Event::PhaseStatus {
                phase: phase_ref.clone(),
                status: PhaseStatus::Running,
                variables,
            })?;
        }
        let tasks: Vec<TaskRunRecord> = self
            .with_store(|s| s.task_runs(&self.release))?
            .into_iter()
            .filter(|t| t.phase_run_id == phase_run.id)
            .collect();
        let mut steps: Vec<Vec<&TaskRunRecord>> = Vec::new();
        for task in &tasks {
            match steps.last_mut() {
                Some(group) if group[0].step == task.step => group.push(task),
                _ => steps.push(vec![task]),
            }
        }
        for group in steps {
            let pending: Vec<&TaskRunRecord> = group
                .into_iter()
                .filter(|t| !t.status.is_settled())
                .collect();
            if pending.is_empty() {
                continue;
            }
            // A task that already ended failed or rolled back, and that no person reopened
            // (retry, skip), halts the phase again: a runner killed between a task's end and
            // what its policy does next must not silently run it once more.
            let ended: Vec<TaskEnd> = pending
                .iter()
                .filter_map(|t| match t.status {
                    TaskStatus::Failed => Some(TaskEnd::Halted),
                    TaskStatus::RolledBack => Some(TaskEnd::RolledBack),
                    _ => None,
                })
                .collect();
            if !ended.is_empty()
                && let Some(end) = self.step_end(&phase_ref, &ended, &pending).await?
            {
                return Ok(end);
            }
            // Nothing new starts once a person paused or aborted, or a signal came. The store
            // is asked here too, so a request stored before this point is always seen.
            self.take_requests()?;
            if let Some(stop) = self.control.pending() {
                return Ok(PhaseEnd::Stop(self.stop_drive(stop).await?));
            }
            let ends = self.run_step(phase, &phase_ref, &pending).await?;
            if let Some(end) = self.step_end(&phase_ref, &ends, &pending).await? {
                return Ok(end);
            }
        }
        self.emit(Event::PhaseStatus {
            phase: phase_ref,
            status: PhaseStatus::Completed,
            variables: None,
        })?;
        Ok(PhaseEnd::Completed)
    }

    /// What the ends of a step's tasks mean for the phase; `None` = go on with the next step.
    /// The most severe end wins: a release already ended by a rollback or a cancel outranks
    /// a halt, which outranks a wait for approval.
    async fn step_end(
        &self,
        phase_ref: &PhaseRef,
        ends: &[TaskEnd],
        pending: &[&TaskRunRecord],
    ) -> Result<Option<PhaseEnd>, EngineError> {
        // A task's decision ended the release: close what it leaves open, then its status.
        for outcome in [Outcome::RolledBack, Outcome::Aborted] {
            if ends.contains(&TaskEnd::ReleaseEnded(outcome)) {
                let reason = self.ending_reason.borrow_mut().take().unwrap_or_default();
                return Ok(Some(PhaseEnd::Stop(self.end_release(outcome, reason)?)));
            }
        }
        match self.control.pending() {
            Some(stop @ (Stop::Abort { .. } | Stop::Signal(_) | Stop::LeaseLost)) => {
                return Ok(Some(PhaseEnd::Stop(self.stop_drive(stop).await?)));
            }
            Some(Stop::Pause { .. }) | None => {}
        }
        if ends.contains(&TaskEnd::Restarted) {
            return Ok(Some(PhaseEnd::Restarted));
        }
        let (status, outcome) = if ends.contains(&TaskEnd::Halted) {
            (PhaseStatus::Failed, Outcome::Halted)
        } else if ends.contains(&TaskEnd::RolledBack) {
            (PhaseStatus::RolledBack, Outcome::RolledBack)
        } else if ends.contains(&TaskEnd::WaitingApproval) {
            (PhaseStatus::Paused, Outcome::Paused)
        } else if let Some(stop) = self.control.pending() {
            // A pause: the step's running tasks have finished; start nothing more.
            return Ok(Some(PhaseEnd::Stop(self.stop_drive(stop).await?)));
        } else {
            return Ok(None);
        };
        self.emit(Event::PhaseStatus {
            phase: phase_ref.clone(),
            status,
            variables: None,
        })?;
        let (release_status, reason) = self.halt_reason(outcome, pending)?;
        self.emit(Event::ReleaseStatus {
            status: release_status,
            reason: Some(reason),
        })?;
        Ok(Some(PhaseEnd::Stop(outcome)))
    }

    /// Runs the pending tasks of one step: one task, or a parallel group bounded by `max`.
    async fn run_step(
        &self,
        phase: &Phase,
        phase_ref: &PhaseRef,
        pending: &[&TaskRunRecord],
    ) -> Result<Vec<TaskEnd>, EngineError> {
        let (_, max) = self.task_def(phase, &pending[0].task)?;
        let permits = Semaphore::new(max.max(1));
        let runs = pending.iter().map(|record| async {
            let (task, _) = self.task_def(phase, &record.task)?;
            let _permit = permits.acquire().await.ok();
            if self.control.pending().is_some() {
                // Waited for a slot of the group while a stop came: never started.
                return Ok(TaskEnd::Stopped);
            }
            self.run_task(phase, phase_ref, record, task).await
        });
        join_all(runs).await.into_iter().collect()
    }

    /// The release status and the sentence that explains a halt, naming the tasks.
    fn halt_reason(
        &self,
        outcome: Outcome,
        pending: &[&TaskRunRecord],
    ) -> Result<(ReleaseStatus, String), EngineError> {
        let now = self.with_store(|s| s.task_runs(&self.release))?;
        let named = |status: TaskStatus| -> String {
            now.iter()
                .filter(|t| pending.iter().any(|p| p.id == t.id) && t.status == status)
                .map(|t| t.task.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(match outcome {
            Outcome::Halted => (
                ReleaseStatus::Failed,
                format!("task {} failed", named(TaskStatus::Failed)),
            ),
            Outcome::RolledBack => (
                ReleaseStatus::Failed,
                format!(
                    "task {} failed and was rolled back",
                    named(TaskStatus::RolledBack)
                ),
            ),
            _ => (
                ReleaseStatus::Paused,
                format!(
                    "waiting for approval of {}",
                    named(TaskStatus::WaitingApproval)
                ),
            ),
        })
    }
}
