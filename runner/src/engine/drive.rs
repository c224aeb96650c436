//! Driving a release: phase runs in order, steps in order, parallel groups with `max`.

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::engine::event::{Event, PhaseRef};
use crate::engine::task::TaskEnd;
use crate::engine::{Engine, EngineError, Outcome};
use crate::pipeline::{Phase, Step, Task};
use crate::store::{PhaseRunRecord, PhaseStatus, ReleaseStatus, TaskRunRecord, TaskStatus};

impl Engine {
    /// Runs the release from where its state stands until it completes or halts.
    pub async fn drive(&self) -> Result<Outcome, EngineError> {
        self.emit(Event::ReleaseStatus {
            status: ReleaseStatus::Running,
            reason: None,
        })?;
        let phase_runs = self.with_store(|s| s.phase_runs(&self.release))?;
        for phase_run in &phase_runs {
            if matches!(
                phase_run.status,
                PhaseStatus::Completed | PhaseStatus::Superseded | PhaseStatus::RolledBack
            ) {
                continue;
            }
            let outcome = self.run_phase(phase_run).await?;
            if outcome != Outcome::Completed {
                return Ok(outcome);
            }
        }
        self.emit(Event::ReleaseStatus {
            status: ReleaseStatus::Completed,
            reason: None,
        })?;
        Ok(Outcome::Completed)
    }

    pub(super) fn phase_def(&self, name: &str) -> Result<&Phase, EngineError> {
        self.pipeline.phase(name).ok_or_else(|| EngineError::Mismatch {
            what: "phase",
            name: name.to_string(),
        })
    }

    /// The definition of a task and the parallel limit of its step.
    pub(super) fn task_def<'p>(&self, phase: &'p Phase, name: &str) -> Result<(&'p Task, usize), EngineError> {
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

    async fn run_phase(&self, phase_run: &PhaseRunRecord) -> Result<Outcome, EngineError> {
        let phase = self.phase_def(&phase_run.phase)?;
        let phase_ref = PhaseRef {
            id: phase_run.id,
            label: phase_run.label(),
        };
        if phase_run.status != PhaseStatus::Running {
            self.emit(Event::PhaseStatus {
                phase: phase_ref.clone(),
                status: PhaseStatus::Running,
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
            let pending: Vec<&TaskRunRecord> =
                group.into_iter().filter(|t| !t.status.is_settled()).collect();
            if pending.is_empty() {
                continue;
            }
            let ends = self.run_step(phase, &phase_ref, &pending).await?;
            let (status, outcome) = if ends.contains(&TaskEnd::Halted) {
                (PhaseStatus::Failed, Outcome::Halted)
            } else if ends.contains(&TaskEnd::RolledBack) {
                (PhaseStatus::Failed, Outcome::RolledBack)
            } else if ends.contains(&TaskEnd::WaitingApproval) {
                (PhaseStatus::Paused, Outcome::Paused)
            } else {
                continue;
            };
            self.emit(Event::PhaseStatus { phase: phase_ref, status })?;
            let (release_status, reason) = self.halt_reason(outcome, &pending)?;
            self.emit(Event::ReleaseStatus {
                status: release_status,
                reason: Some(reason),
            })?;
            return Ok(outcome);
        }
        self.emit(Event::PhaseStatus {
            phase: phase_ref,
            status: PhaseStatus::Completed,
        })?;
        Ok(Outcome::Completed)
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
        let named = |status: TaskStatus| -> Vec<String> {
            now.iter()
                .filter(|t| pending.iter().any(|p| p.id == t.id) && t.status == status)
                .map(|t| t.task.clone())
                .collect()
        };
        Ok(if outcome == Outcome::Halted {
            let failed = named(TaskStatus::Failed).join(", ");
            (ReleaseStatus::Failed, format!("task {failed} failed"))
        } else if outcome == Outcome::RolledBack {
            let rolled = named(TaskStatus::RolledBack).join(", ");
            (ReleaseStatus::Failed, format!("task {rolled} failed and was rolled back"))
        } else {
            let waiting = named(TaskStatus::WaitingApproval).join(", ");
            (ReleaseStatus::Paused, format!("waiting for approval of {waiting}"))
        })
    }
}
