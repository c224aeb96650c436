//! `then: fix_forward`: run the resolver, judge its values, and either restart the phase with
//! them or fall back.

use std::collections::BTreeMap;

use crate::engine::event::{Event, TaskRef};
use crate::engine::process::ProcessSpec;
use crate::engine::{Engine, EngineError};
use crate::pipeline::{Phase, Task};
use crate::policy::fix_forward::{FixForwardHistory, judge, parse_resolved, split_undeclared};
use crate::policy::{OnFailure, Then};
use crate::store::PhaseStatus;

/// What a fix-forward comes to.
pub(super) enum FixForwardPlan {
    Restart(BTreeMap<String, String>),
    Fallback { then: Then, reason: String },
}

/// The rule recorded with the phase restart a task's fix-forward makes.
pub(super) fn restart_rule(task: &Task) -> String {
    format!("fix_forward of task {}", task.name)
}

impl Engine {
    fn fix_forward_history(&self, task: &Task) -> Result<FixForwardHistory, EngineError> {
        // Restarts this task's fix-forward made (the `fix_forward` decision itself is not one).
        let by = restart_rule(task);
        let restarts = self
            .with_store(|s| s.decisions(&self.release))?
            .iter()
            .filter(|d| d.decision == "restart_phase" && d.rule == by)
            .count();
        Ok(FixForwardHistory {
            restarts: u32::try_from(restarts).unwrap_or(u32::MAX),
            failed_runs: self.failed_run_variables()?,
        })
    }

    /// The variables of every phase run that failed in this release, the one failing now
    /// included: values a restart may not use again.
    pub(super) fn failed_run_variables(
        &self,
    ) -> Result<Vec<BTreeMap<String, String>>, EngineError> {
        Ok(self
            .with_store(|s| s.phase_runs(&self.release))?
            .into_iter()
            .filter(|p| {
                matches!(
                    p.status,
                    PhaseStatus::Failed | PhaseStatus::RolledBack | PhaseStatus::Running
                )
            })
            .filter_map(|p| p.variables)
            .collect())
    }

    pub(super) async fn fix_forward(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
    ) -> Result<FixForwardPlan, EngineError> {
        let Some(OnFailure::Declarative(policy)) = self.effective_policy(phase, task).0 else {
            return Ok(FixForwardPlan::Fallback {
                then: Then::Pause,
                reason: "no declarative policy".into(),
            });
        };
        let Some(ff) = &policy.fix_forward else {
            return Ok(FixForwardPlan::Fallback {
                then: Then::Pause,
                reason: "no fix_forward block".into(),
            });
        };
        let fallback = |reason: String| {
            Ok(FixForwardPlan::Fallback {
                then: ff.fallback,
                reason,
            })
        };
        let history = self.fix_forward_history(task)?;
        if history.restarts >= ff.max {
            return fallback(format!(
                "fix_forward.max ({}) restart(s) already used",
                ff.max
            ));
        }
        let argv: Result<Vec<String>, String> = ff
            .resolve
            .iter()
            .map(|t| {
                self.render(phase, task, t)
                    .map(|r| r.value)
                    .map_err(|e| e.to_string())
            })
            .collect();
        let mut argv = match argv {
            Ok(argv) if !argv.is_empty() => argv,
            Ok(_) => return fallback("the resolver is empty".into()),
            Err(e) => return fallback(e),
        };
        let program = argv.remove(0);
        self.output(
            task_ref,
            format!("Resolving a fix forward: $ {program} {}", argv.join(" ")),
        )?;
        let spec = ProcessSpec {
            program: program.clone(),
            args: argv,
            cwd: self.pipeline.base_dir.clone(),
            env: vec![
                ("RELFLOW_RELEASE_ID".to_string(), self.release.clone()),
                ("RELFLOW_TASK".to_string(), task.name.clone()),
            ],
            timeout: Some(std::time::Duration::from_secs(300)),
        };
        let mut lines = Vec::new();
        let end = self.run_logged(&spec, task_ref, Some(&mut lines)).await?;
        if let Some(why) = end.failure("the resolver") {
            return fallback(why);
        }
        let (values, ignored) = split_undeclared(parse_resolved(&lines), &self.pipeline.variables);
        if !ignored.is_empty() {
            self.output(
                task_ref,
                format!(
                    "Resolver lines ignored: {} {}",
                    ignored
                        .iter()
                        .map(|name| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if ignored.len() == 1 {
                        "is not a variable of the pipeline"
                    } else {
                        "are not variables of the pipeline"
                    }
                ),
            )?;
        }
        if let Err(reason) = judge(&values, &self.pipeline.variables, &history, ff.max) {
            return fallback(reason);
        }
        let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.emit(Event::Decision {
            task: task_ref.clone(),
            decision: "fix_forward".to_string(),
            rule: format!(
                "{}: on_failure.then = fix_forward",
                self.effective_policy(phase, task).1
            ),
            detail: Some(format!(
                "restart phase {} with {}",
                phase.name,
                shown.join(" ")
            )),
        })?;
        self.output(
            task_ref,
            format!(
                "Fixing forward: restarting phase {} with {}",
                phase.name,
                shown.join(" ")
            ),
        )?;
        Ok(FixForwardPlan::Restart(values))
    }
}
