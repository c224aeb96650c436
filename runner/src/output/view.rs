//! The read model of a release for `status`, `run`'s summary and `--json`.

use std::fmt::Write;

use serde::Serialize;

use crate::output::{paths, time};
use crate::store::{
    AttemptRecord, DecisionRecord, PhaseRunRecord, ReleaseRecord, ReleaseStatus, RollbackJobRecord,
    Store, StoreError, TaskRunRecord, TaskStatus,
};

#[derive(Debug, Serialize)]
pub struct ReleaseView {
    #[serde(flatten)]
    pub release: ReleaseRecord,
    /// Pid of the live runner holding the release, if any.
    pub runner_pid: Option<i64>,
    pub phases: Vec<PhaseView>,
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
    pub log: String,
    pub rollback_log: String,
    pub attempt_history: Vec<AttemptRecord>,
    pub decisions: Vec<DecisionRecord>,
    pub rollback_jobs: Vec<RollbackJobRecord>,
}

impl ReleaseView {
    pub fn load(store: &Store, release: &str) -> Result<ReleaseView, StoreError> {
        let record = store.release(release)?;
        let runner_pid = store.lease_holder(release)?.map(|holder| holder.pid);
        let tasks = store.task_runs(release)?;
        let attempts = store.attempts(release)?;
        let decisions = store.decisions(release)?;
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
                        run: t.clone(),
                    })
                    .collect();
                PhaseView { label, run, tasks }
            })
            .collect();
        Ok(ReleaseView {
            release: record,
            runner_pid,
            phases,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// `running`, or `running (no live runner: ...)` when the runner died.
    pub fn status_text(&self) -> String {
        let status = self.release.status;
        if status == ReleaseStatus::Running && self.runner_pid.is_none() {
            format!(
                "{status} (no live runner: interrupted; continue with `relflow resume {}`)",
                self.release.id
            )
        } else {
            status.to_string()
        }
    }

    fn tasks(&self) -> impl Iterator<Item = &TaskView> {
        self.phases.iter().flat_map(|p| p.tasks.iter())
    }

    /// The full `status` text: release, variables, phases, tasks, attempts, errors, decisions.
    pub fn render_status(&self) -> String {
        let r = &self.release;
        let mut out = String::new();
        let _ = writeln!(out, "release {}  {}", r.id, self.status_text());
        let _ = writeln!(out, "  pipeline  {} ({})", r.pipeline, r.pipeline_file);
        let _ = writeln!(out, "  started   {}", time::rfc3339_ms(r.created_at));
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "  reason    {reason}");
        }
        if !r.variables.is_empty() {
            let vars: Vec<String> = r
                .variables
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "  variables {}", vars.join(" "));
        }
        for phase in &self.phases {
            let vars = phase
                .run
                .variables
                .as_ref()
                .filter(|v| {
                    !v.is_empty()
                        && self
                            .phases
                            .iter()
                            .any(|p| p.run.variables.as_ref() != Some(v))
                })
                .map(|v| {
                    format!(
                        "  ({})",
                        v.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(out, "phase {}  {}{vars}", phase.label, phase.run.status);
            for task in &phase.tasks {
                render_task(&mut out, task);
            }
        }
        out
    }

    /// The end of `run`/`resume`: outcome, what to do next, where each log is.
    pub fn render_summary(&self) -> String {
        let r = &self.release;
        let mut out = String::new();
        let reason = r
            .reason
            .as_deref()
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        let _ = writeln!(out, "\nrelease {} {}{reason}", r.id, r.status);
        for task in self.tasks() {
            match task.run.status {
                TaskStatus::Failed => {
                    let _ = writeln!(
                        out,
                        "  see the log: relflow logs {} --task {}",
                        r.id, task.run.task
                    );
                }
                TaskStatus::WaitingApproval => {
                    let _ = writeln!(
                        out,
                        "  answer with: relflow approve {0} --task {1}   or   relflow reject {0} --task {1}",
                        r.id, task.run.task
                    );
                }
                _ => {}
            }
        }
        let _ = writeln!(out, "logs:");
        let width = self
            .phases
            .iter()
            .flat_map(|p| {
                p.tasks
                    .iter()
                    .map(move |t| p.label.len() + 1 + t.run.task.len())
            })
            .max()
            .unwrap_or(0);
        for phase in &self.phases {
            for task in phase
                .tasks
                .iter()
                .filter(|t| t.run.attempts > 0 || t.run.status != TaskStatus::Planned)
            {
                let name = format!("{}/{}", phase.label, task.run.task);
                let _ = writeln!(out, "  {name:<width$}  {}", task.log);
            }
        }
        out
    }
}

fn render_task(out: &mut String, task: &TaskView) {
    let t = &task.run;
    let attempts = match t.attempts {
        0 => String::new(),
        1 => "  1 attempt".to_string(),
        n => format!("  {n} attempts"),
    };
    let _ = writeln!(
        out,
        "  {:<24} {:<16} {}{attempts}",
        t.task,
        t.status.as_str(),
        t.kind
    );
    if let (Some(class), Some(error)) = (&t.error_class, &t.error)
        && t.status != TaskStatus::Completed
    {
        let _ = writeln!(out, "      error: {class}: {error}");
    }
    for a in task
        .attempt_history
        .iter()
        .filter(|a| a.error_class.is_some())
    {
        let _ = writeln!(
            out,
            "      attempt {} {}: {}: {}",
            a.number,
            a.status,
            a.error_class.as_deref().unwrap_or(""),
            a.message.as_deref().unwrap_or("")
        );
    }
    for d in &task.decisions {
        if d.decision == "rollback_step" {
            let step = d.detail.as_deref().unwrap_or_default();
            let _ = writeln!(out, "      rollback step {step}");
            continue;
        }
        let detail = d
            .detail
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        let _ = writeln!(out, "      decision {} by {}{detail}", d.decision, d.rule);
    }
    for job in &task.rollback_jobs {
        out.push_str("    ");
        out.push_str(&render_rollback_job(&t.task, job));
    }
}

/// `rollback job 1 of task deploy-petportal (web): completed`
pub fn render_rollback_job(task: &str, job: &RollbackJobRecord) -> String {
    let which = if job.components.is_empty() {
        "all components".to_string()
    } else {
        job.components.join(", ")
    };
    let error = job
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    format!(
        "rollback job {} of task {task} ({which}): {}{error}\n",
        job.id, job.status
    )
}

/// One line per release for `list`.
pub fn render_list(releases: &[ReleaseRecord]) -> String {
    let mut out = String::new();
    if releases.is_empty() {
        out.push_str("no releases yet: start one with `relflow run PIPELINE.yaml`\n");
        return out;
    }
    let width = releases
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let _ = writeln!(
        out,
        "{:<width$}  {:<12}  {:<24}  variables",
        "release", "status", "started"
    );
    for r in releases {
        let vars: Vec<String> = r
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // A completed release whose deployment was rolled back later no longer runs.
        let later = if r.rolled_back_later.is_empty() {
            String::new()
        } else {
            format!("  (rolled back later: {})", r.rolled_back_later.join(", "))
        };
        let line = format!(
            "{:<width$}  {:<12}  {:<24}  {}{later}",
            r.id,
            r.status.as_str(),
            time::rfc3339_ms(r.created_at),
            vars.join(" ")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
