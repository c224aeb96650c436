//! What the engine does for scripted policies: fills in the failure's context before `decide`
//! (log tail, elapsed time, masked variables), and executes a script's `restart_phase`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use crate::engine::event::{Event, FailureInfo, TaskRef};
use crate::engine::task::TaskEnd;
use crate::engine::{Engine, EngineError, RestartError};
use crate::output::paths;
use crate::pipeline::{Phase, Task};
use crate::policy::fix_forward::{FixForwardHistory, judge};
use crate::policy::{self, Then};
use crate::store::{TaskStatus, now_ms};

/// Lines of `script_output.log` a script sees.
pub const LOG_TAIL_LINES: usize = 20;
/// How far back from the end of the log the tail is looked for.
const LOG_TAIL_BYTES: u64 = 16 * 1024;
/// Phase restarts a script may order per task in one release.
pub const MAX_SCRIPT_RESTARTS_PER_TASK: u32 = 1;
/// The decision keyword of a restart a script ordered and the engine carried out.
const RESTART_DECISION: &str = "restart_phase";

/// The last `LOG_TAIL_LINES` lines of a log (already masked when written).
fn log_tail(path: &Path) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut mid-line
    }
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}

impl Engine {
    /// Completes `failure` with what a policy script reads: task, phase, kind, elapsed time,
    /// the log tail and the release's variables with secrets masked.
    pub(super) fn with_context(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        failure: &policy::Failure,
    ) -> Result<policy::Failure, EngineError> {
        let mut failure = failure.clone();
        failure.task = task.name.clone();
        failure.phase = phase.name.clone();
        failure.kind = task.kind.keyword().to_string();
        let attempts = self.with_store(|s| s.attempts(&self.release))?;
        let first_start = attempts
            .iter()
            .filter(|a| a.task_run_id == task_ref.id)
            .map(|a| a.started_at)
            .min();
        failure.elapsed = first_start.map_or(Duration::ZERO, |at| {
            Duration::from_millis(u64::try_from(now_ms() - at).unwrap_or(0))
        });
        let state_dir = self.reporter.borrow().state_dir().to_path_buf();
        let log = paths::script_log(&state_dir, &self.release, &task_ref.phase.label, &task.name);
        let reporter = self.reporter.borrow();
        // The script sees no secret: what it cannot read it cannot print reversed or spaced
        // past the redactor.
        let mask = |text: &str| reporter.redactor.redact(text).into_owned();
        failure.message = mask(&failure.message);
        failure.log_tail = log_tail(&log).iter().map(|l| mask(l)).collect();
        failure.backend_state = failure.backend_state.as_deref().map(mask);
        failure.vars = self
            .variables
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), mask(v)))
            .collect();
        Ok(failure)
    }

    fn script_restarts(&self, task: &Task) -> Result<FixForwardHistory, EngineError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let restarts = self
            .with_store(|s| s.decisions(&self.release))?
            .iter()
            .filter(|d| d.decision == RESTART_DECISION)
            .filter(|d| {
                runs.iter()
                    .any(|t| Some(t.id) == d.task_run_id && t.task == task.name)
            })
            .count();
        Ok(FixForwardHistory {
            restarts: u32::try_from(restarts).unwrap_or(u32::MAX),
            failed_runs: self.failed_run_variables()?,
        })
    }

    /// A script's `restart_phase(values)`: judged like a fix-forward (values that already
    /// failed are refused; one restart per task), then the phase restarts; else pause.
    pub(super) async fn restart_by_script(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        failure: &policy::Failure,
        values: BTreeMap<String, String>,
        rule: String,
    ) -> Result<TaskEnd, EngineError> {
        let history = self.script_restarts(task)?;
        let judged = judge(
            &values,
            &self.pipeline.variables,
            &history,
            MAX_SCRIPT_RESTARTS_PER_TASK,
        );
        let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Err(reason) = judged {
            let reason = reason.replace("fix_forward.max", "the script restart limit");
            self.output(
                task_ref,
                format!(
                    "Restart of phase {} with {} refused: {reason}; pausing",
                    phase.name,
                    shown.join(" ")
                ),
            )?;
            self.emit(Event::Decision {
                task: task_ref.clone(),
                decision: Then::Pause.keyword().to_string(),
                rule,
                detail: Some(format!("restart_phase refused: {reason}")),
            })?;
            return self
                .apply_decided(phase, task_ref, task, failure, Then::Pause)
                .await;
        }
        self.emit(Event::Decision {
            task: task_ref.clone(),
            decision: RESTART_DECISION.to_string(),
            rule,
            detail: Some(format!(
                "restart phase {} with {}",
                phase.name,
                shown.join(" ")
            )),
        })?;
        self.output(
            task_ref,
            format!(
                "Restarting phase {} with {} (policy script)",
                phase.name,
                shown.join(" ")
            ),
        )?;
        let error = FailureInfo {
            class: failure.class,
            message: failure.message.clone(),
        };
        self.set_status(task_ref, TaskStatus::Failed, Some(error))?;
        let by = format!("policy script of task {}", task.name);
        self.restart_phases(&phase.name, None, values, &by)
            .map_err(|e| match e {
                RestartError::Engine(e) => e,
                other => EngineError::Mismatch {
                    what: "restart",
                    name: other.to_string(),
                },
            })?;
        Ok(TaskEnd::Restarted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("script_output.log");
        let text: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let tail = log_tail(&log);
        assert_eq!(tail.len(), LOG_TAIL_LINES);
        assert_eq!(tail[0], "line 11");
        assert_eq!(tail[19], "line 30");
        assert!(log_tail(&dir.path().join("none")).is_empty());
    }
}
