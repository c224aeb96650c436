//! Start-up repair (pueue-style): what a killed runner left `running` becomes an explicit
//! `interrupted` attempt before anything else happens.

use relflow_plugin::ErrorClass;

use crate::engine::event::{Event, FailureInfo, PhaseRef, TaskRef};
use crate::engine::{Engine, EngineError};
use crate::store::{AttemptStatus, TaskStatus};

impl Engine {
    /// Marks attempts left `running` by a dead runner as `interrupted` (class `interrupted`)
    /// and puts their tasks back to `planned` for a new attempt. Call only with the lease held.
    /// Returns the number of attempts repaired.
    pub fn repair_interrupted(&self) -> Result<usize, EngineError> {
        let phases = self.with_store(|s| s.phase_runs(&self.release))?;
        let attempts = self.with_store(|s| s.attempts(&self.release))?;
        let tasks = self.with_store(|s| s.task_runs(&self.release))?;
        let mut repaired = 0;
        for task in tasks.iter().filter(|t| t.status == TaskStatus::Running) {
            let label = phases
                .iter()
                .find(|p| p.id == task.phase_run_id)
                .map(|p| p.label())
                .unwrap_or_default();
            let task_ref = TaskRef {
                id: task.id,
                phase: PhaseRef {
                    id: task.phase_run_id,
                    label,
                },
                task: task.task.clone(),
            };
            let error = FailureInfo {
                class: ErrorClass::Interrupted,
                message: "the runner stopped while this attempt ran".to_string(),
            };
            for attempt in attempts
                .iter()
                .filter(|a| a.task_run_id == task.id && a.status == AttemptStatus::Running)
            {
                let number = u32::try_from(attempt.number).unwrap_or(0);
                self.output(&task_ref, format!("Attempt {number} was interrupted: {}", error.message))?;
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
