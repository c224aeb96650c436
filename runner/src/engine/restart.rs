//! Restarting a phase (fix-forward): stop the current phase run, supersede its remaining
//! tasks, append new runs of the phases from PHASE up to the current one, and set the new
//! variables before anything runs. Earlier runs and their logs stay.

use std::collections::BTreeMap;

use crate::engine::attach::plan_phase;
use crate::engine::event::Event;
use crate::engine::{Engine, EngineError};
use crate::store::{PhaseRunRecord, PlannedPhase};

/// A restart that does not fit the release.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("pipeline {pipeline} has no phase `{phase}`")]
    UnknownPhase { pipeline: String, phase: String },
    #[error(
        "phase `{phase}` comes after the current phase `{current}`: only the current phase or an earlier one can be restarted"
    )]
    NotReached { phase: String, current: String },
    #[error("phase `{phase}` has no task `{task}`")]
    UnknownTask { phase: String, task: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The phase run the release stands at: the furthest one that started (or the first).
pub(super) fn current_run(runs: &[PhaseRunRecord]) -> Option<&PhaseRunRecord> {
    runs.iter()
        .rev()
        .find(|r| r.started_at.is_some())
        .or(runs.first())
}

impl Engine {
    /// Appends new runs from `from_phase` to the current phase; returns their labels.
    pub fn restart_phases(
        &self,
        from_phase: &str,
        from_task: Option<&str>,
        values: BTreeMap<String, String>,
        by: &str,
    ) -> Result<Vec<String>, RestartError> {
        let unknown = || RestartError::UnknownPhase {
            pipeline: self.pipeline.name.clone(),
            phase: from_phase.to_string(),
        };
        let from_index = self
            .pipeline
            .phases
            .iter()
            .position(|p| p.name == from_phase)
            .ok_or_else(unknown)?;
        let runs = self.with_store(|s| s.phase_runs(&self.release))?;
        let Some(current) = current_run(&runs) else {
            return Err(unknown());
        };
        let current_index = self
            .pipeline
            .phases
            .iter()
            .position(|p| p.name == current.phase)
            .ok_or_else(|| EngineError::Mismatch {
                what: "phase",
                name: current.phase.clone(),
            })?;
        if from_index > current_index {
            return Err(RestartError::NotReached {
                phase: from_phase.to_string(),
                current: current.phase.clone(),
            });
        }
        if let Some(task) = from_task
            && !plan_phase(&self.pipeline.phases[from_index])
                .tasks
                .iter()
                .any(|t| t.task == task)
        {
            return Err(RestartError::UnknownTask {
                phase: from_phase.to_string(),
                task: task.to_string(),
            });
        }
        let planned: Vec<(PlannedPhase, i64)> = self.pipeline.phases[from_index..=current_index]
            .iter()
            .map(|phase| {
                let run_no = runs
                    .iter()
                    .filter(|r| r.phase == phase.name)
                    .map(|r| r.run_no)
                    .max()
                    .unwrap_or(0)
                    + 1;
                (plan_phase(phase), run_no)
            })
            .collect();
        let labels: Vec<String> = planned
            .iter()
            .map(|(p, n)| crate::store::phase_label(&p.phase, *n))
            .collect();
        // Variables first: nothing of the new runs may start with the old values.
        if !values.is_empty() {
            let all = {
                let mut vars = self.variables.borrow_mut();
                vars.extend(values.clone());
                vars.clone()
            };
            self.emit(Event::VariablesSet { values: all })?;
        }
        let current_id = current.id;
        self.reporter
            .borrow_mut()
            .store
            .append_phase_runs(&self.release, current_id, &planned, from_task)
            .map_err(EngineError::from)?;
        let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.emit(Event::PhaseRestarted {
            from: from_phase.to_string(),
            runs: labels.clone(),
            by: by.to_string(),
            values: shown.join(" "),
        })?;
        Ok(labels)
    }
}
