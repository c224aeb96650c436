//! The read model of a release for `status`, the end-of-drive summary and `--json`: the
//! stored rows grouped as a person reads them (phase runs → task runs → attempts, decisions,
//! actions, rollback jobs), with what to type next.

use serde::Serialize;

use crate::output::next_steps::{self, NextStep};
use crate::output::paths;
use crate::store::{
    ActionRecord, AttemptRecord, DecisionRecord, PhaseRunRecord, ReleaseRecord, ReleaseStatus,
    RollbackJobRecord, Store, StoreError, TargetNow, TaskRunRecord, TaskStatus,
};

/// What `relflow status RELEASE --json` prints (with `"format": 1` in front).
#[derive(Debug, Serialize)]
pub struct ReleaseView {
    #[serde(flatten)]
    pub release: ReleaseRecord,
    /// Pid of the live runner holding the release, if any.
    pub runner_pid: Option<i64>,
    /// The live runner's host, if any.
    pub runner_host: Option<String>,
    pub phases: Vec<PhaseView>,
    /// Decisions about the whole release (abort, pause, restart-phase, a signal).
    pub decisions: Vec<DecisionRecord>,
    /// Commands people ran on the whole release (`run`, `resume`, `abort`, ...).
    pub actions: Vec<ActionRecord>,
    /// What each target this release changed runs now (possibly a later release's version).
    pub targets: Vec<TargetNow>,
    /// The commands that apply now, exact and copy-pasteable.
    pub next: Vec<NextStep>,
}

#[derive(Debug, Serialize)]
pub struct PhaseView {
    /// `deploy`, `deploy#2`.
    pub label: String,
    #[serde(flatten)]
    pub run: PhaseRunRecord,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Serialize)]
pub struct TaskView {
    #[serde(flatten)]
    pub run: TaskRunRecord,
    /// A manual task's prompt, as shown to the person who must answer.
    pub prompt: Option<String>,
    pub log: String,
    pub rollback_log: String,
    pub attempt_history: Vec<AttemptRecord>,
    pub decisions: Vec<DecisionRecord>,
    /// Commands people ran on this task (`retry`, `skip`, `approve`, `rollback`, ...).
    pub actions: Vec<ActionRecord>,
    pub rollback_jobs: Vec<RollbackJobRecord>,
}

impl ReleaseView {
    pub fn load(store: &Store, release: &str) -> Result<ReleaseView, StoreError> {
        let record = store.release(release)?;
        let holder = store.lease_holder(release)?;
        let tasks = store.task_runs(release)?;
        let attempts = store.attempts(release)?;
        let decisions = store.decisions(release)?;
        let actions = store.actions(release)?;
        let jobs = store.rollback_jobs(release)?;
        let phases = store
            .phase_runs(release)?
            .into_iter()
            .map(|run| {
                let label = run.label();
                let tasks = tasks
                    .iter()
                    .filter(|t| t.phase_run_id == run.id)
                    .map(|t| TaskView {
                        prompt: prompt_of(store, release, &label, t),
                        log: paths::script_log(store.dir(), release, &label, &t.task)
                            .to_string_lossy()
                            .into_owned(),
                        rollback_log: paths::rollback_log(store.dir(), release, &label, &t.task)
                            .to_string_lossy()
                            .into_owned(),
                        attempt_history: attempts
                            .iter()
                            .filter(|a| a.task_run_id == t.id)
                            .cloned()
                            .collect(),
                        rollback_jobs: jobs
                            .iter()
                            .filter(|j| j.task_run_id == t.id)
                            .cloned()
                            .collect(),
                        decisions: decisions
                            .iter()
                            .filter(|d| d.task_run_id == Some(t.id))
                            .cloned()
                            .collect(),
                        actions: actions
                            .iter()
                            .filter(|a| a.task_run_id == Some(t.id))
                            .cloned()
                            .collect(),
                        run: t.clone(),
                    })
                    .collect();
                PhaseView { label, run, tasks }
            })
            .collect();
        let mut view = ReleaseView {
            release: record,
            runner_pid: holder.as_ref().map(|h| h.pid),
            runner_host: holder.map(|h| h.host),
            phases,
            decisions: decisions
                .into_iter()
                .filter(|d| d.task_run_id.is_none())
                .collect(),
            actions: actions
                .into_iter()
                .filter(|a| a.task_run_id.is_none())
                .collect(),
            targets: store.targets_touched_by(release)?,
            next: Vec::new(),
        };
        view.next = next_steps::for_release(&view);
        Ok(view)
    }

    /// The `--json` document.
    pub fn to_json(&self) -> String {
        crate::output::json::to_pretty(self)
    }

    /// `running`, or `running (no live runner: ...)` when the runner died.
    pub fn status_text(&self) -> String {
        let status = self.release.status;
        if self.is_orphaned() {
            format!(
                "{status} (no live runner: interrupted; continue with `relflow resume {}`)",
                self.release.id
            )
        } else {
            status.to_string()
        }
    }

    /// Left `running` by a runner that is gone.
    pub fn is_orphaned(&self) -> bool {
        self.release.status == ReleaseStatus::Running && self.runner_pid.is_none()
    }

    pub fn tasks(&self) -> impl Iterator<Item = (&PhaseView, &TaskView)> {
        self.phases
            .iter()
            .flat_map(|p| p.tasks.iter().map(move |t| (p, t)))
    }
}

/// A manual task's prompt while it waits: the last `Waiting for approval:` line of its log
/// (the prompt as rendered with the release's variables, secrets masked).
fn prompt_of(store: &Store, release: &str, label: &str, run: &TaskRunRecord) -> Option<String> {
    if run.kind != "manual" {
        return None;
    }
    let log =
        std::fs::read_to_string(paths::script_log(store.dir(), release, label, &run.task)).ok()?;
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Waiting for approval: "))?;
    Some(line.to_string())
}

/// Whether a task run did anything worth a log line in the summary.
pub fn has_run(task: &TaskView) -> bool {
    task.run.attempts > 0 || task.run.status != TaskStatus::Planned
}
