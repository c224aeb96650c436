//! The rollback order (DESIGN → Failure handling): 1. the failing task's own actions;
//! 2. `any_task` actions of earlier completed tasks, newest first; 3. the backend rollback of
//! the failing task; 4. for a release rollback, every completed deployment newest first, then
//! the flow-level `run`/`script`. Each step is logged and recorded as it ends, so a resumed
//! release skips what already ran; a failing step does not stop the others.

use relflow_plugin::Handle;

use crate::engine::actions::{actions_of, any_task_actions_of};
use crate::engine::event::{Event, TaskRef};
use crate::engine::{Engine, EngineError};
use crate::pipeline::{FlowRollback, Phase, Task, TaskKind};
use crate::policy::{Action, ActionCommand};
use crate::store::{TaskRunRecord, TaskStatus};

/// How far a rollback reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Steps 1–3: the failing task.
    Task,
    /// Steps 1–4: the whole release.
    Release,
}

/// What a rollback left behind.
#[derive(Debug, Default)]
pub(super) struct RollbackSummary {
    /// Whether the failing task's own deployment is reverted (true when it had none).
    pub is_task_reverted: bool,
    /// Titles of the steps that failed.
    pub failed_steps: Vec<String>,
}

/// The decision kind under which finished steps are recorded.
pub const STEP_DECISION: &str = "rollback_step";

/// One step to run.
enum StepWork<'a> {
    Action {
        phase: &'a Phase,
        owner: &'a Task,
        action: &'a Action,
    },
    TaskBackend {
        phase: &'a Phase,
        task: &'a Task,
    },
    Undo {
        run: TaskRunRecord,
    },
    Flow(&'a FlowRollback),
}

struct Step<'a> {
    /// The key earlier versions recorded as the step's rule (`7:backend:deploy`): still
    /// recognised, so a release rolled back half-way by an older relflow resumes cleanly.
    legacy_id: String,
    /// What the step does, in words (`backend rollback of task deploy-petportal`): unique
    /// within a plan, and independent of which steps already ran.
    title: String,
    work: StepWork<'a>,
}

impl Step<'_> {
    /// The rule recorded with the step's decision and shown by `status`: the step in words,
    /// e.g. `rollback order: backend rollback of task deploy-petportal`. With the task run it
    /// is logged under, it identifies the step when the release resumes.
    fn rule(&self) -> String {
        format!("rollback order: {}", self.title)
    }
}

/// Whether a task kind changes a target, so that step 3 has a deployment to revert. A
/// command, script, manual or wait task has none: no backend step is planned for it (it
/// would only ever report "ok" for nothing).
fn has_backend_change(task: &Task) -> bool {
    matches!(task.kind, TaskKind::Deploy(_) | TaskKind::Undeploy(_))
}

/// ` in deploy#2` for a task run of a restarted phase, so that two runs of one task (before
/// and after a restart-phase) name different steps; nothing for a first run.
fn run_suffix(label: &str) -> String {
    if label.contains('#') {
        format!(" in {label}")
    } else {
        String::new()
    }
}

/// Makes titles unique within one plan (two identical actions on one task): the second
/// becomes `... (2)`. Action lists are fixed by the pipeline, so the numbering is stable.
fn dedupe_titles(steps: &mut [Step<'_>]) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for step in steps.iter_mut() {
        let n = seen.entry(step.title.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            step.title = format!("{} ({n})", step.title);
        }
    }
}

fn describe(action: &Action) -> String {
    match &action.command {
        ActionCommand::Run(argv) => argv
            .iter()
            .map(|t| t.source())
            .collect::<Vec<_>>()
            .join(" "),
        ActionCommand::Script(path) => path.source().to_string(),
        ActionCommand::RevertCompose { file, .. } => format!("revert_compose {}", file.source()),
        ActionCommand::RestartPreviousContainer {
            container, image, ..
        } => {
            format!(
                "restart_previous_container {} {}",
                container.source(),
                image.source()
            )
        }
    }
}

impl Engine {
    /// Completed task runs, newest first.
    fn completed_newest_first(&self) -> Result<Vec<TaskRunRecord>, EngineError> {
        let mut done: Vec<TaskRunRecord> = self
            .with_store(|s| s.task_runs(&self.release))?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Completed)
            .collect();
        done.sort_by_key(|t| std::cmp::Reverse((t.ended_at, t.id)));
        Ok(done)
    }

    /// The phase definition a task run belongs to.
    pub(super) fn phase_of_run(&self, run: &TaskRunRecord) -> Result<&Phase, EngineError> {
        let runs = self.with_store(|s| s.phase_runs(&self.release))?;
        let name = runs
            .iter()
            .find(|p| p.id == run.phase_run_id)
            .map(|p| p.phase.clone())
            .unwrap_or_default();
        self.phase_def(&name)
    }

    fn plan_steps<'a>(
        &'a self,
        failing: Option<(&'a Phase, &'a TaskRef, &'a Task)>,
        scope: Scope,
        completed: &'a [TaskRunRecord],
    ) -> Result<Vec<Step<'a>>, EngineError> {
        let key = failing.map(|(_, r, _)| r.id).unwrap_or(0);
        let mut steps = Vec::new();
        if let Some((phase, task_ref, task)) = failing {
            let of = run_suffix(&task_ref.phase.label);
            for (i, action) in actions_of(task) {
                steps.push(Step {
                    legacy_id: format!("{key}:action:{}:{i}", task.name),
                    title: format!("action `{}` of task {}{of}", describe(action), task.name),
                    work: StepWork::Action {
                        phase,
                        owner: task,
                        action,
                    },
                });
            }
        }
        let labels = self.with_store(|s| s.phase_runs(&self.release))?;
        for run in completed {
            let phase = self.phase_of_run(run)?;
            let (owner, _) = self.task_def(phase, &run.task)?;
            let of = run_suffix(&TaskRef::of(run, &labels).phase.label);
            for (i, action) in any_task_actions_of(owner) {
                steps.push(Step {
                    legacy_id: format!("{key}:action:{}:{i}", owner.name),
                    title: format!(
                        "any_task action `{}` of task {}{of}",
                        describe(action),
                        owner.name
                    ),
                    work: StepWork::Action {
                        phase,
                        owner,
                        action,
                    },
                });
            }
        }
        if let Some((phase, task_ref, task)) = failing
            && has_backend_change(task)
        {
            steps.push(Step {
                legacy_id: format!("{key}:backend:{}", task.name),
                title: format!(
                    "backend rollback of task {}{}",
                    task.name,
                    run_suffix(&task_ref.phase.label)
                ),
                work: StepWork::TaskBackend { phase, task },
            });
        }
        if scope == Scope::Release
            && let Some(flow) = &self.pipeline.rollback
        {
            if flow.undo_completed {
                for run in completed
                    .iter()
                    .filter(|r| r.kind == "deploy" && r.handle.is_some())
                {
                    steps.push(Step {
                        legacy_id: format!("{key}:undo:{}", run.id),
                        title: format!(
                            "undo completed deployment {}{}",
                            run.task,
                            run_suffix(&TaskRef::of(run, &labels).phase.label)
                        ),
                        work: StepWork::Undo { run: run.clone() },
                    });
                }
            }
            if flow.run.is_some() || flow.script.is_some() {
                steps.push(Step {
                    legacy_id: format!("{key}:flow"),
                    title: "flow-level rollback".to_string(),
                    work: StepWork::Flow(flow),
                });
            }
        }
        dedupe_titles(&mut steps);
        Ok(steps)
    }

    /// Runs the rollback order; `failing` is the task whose failure started it (none for an
    /// abort of a release without a failed task); the steps' lines go to `log_to`'s logs.
    pub(super) async fn roll_back_in_order(
        &self,
        failing: Option<(&Phase, &TaskRef, &Task)>,
        log_to: &TaskRef,
        scope: Scope,
    ) -> Result<RollbackSummary, EngineError> {
        let completed = self.completed_newest_first()?;
        let steps = self.plan_steps(failing, scope, &completed)?;
        // Steps this rollback already ran (the runner was killed half-way): recorded under
        // the task run the rollback logs to, by their rule (or an older relflow's key).
        let done: Vec<(String, String)> = self
            .with_store(|s| s.decisions(&self.release))?
            .into_iter()
            .filter(|d| d.decision == STEP_DECISION && d.task_run_id == Some(log_to.id))
            .map(|d| (d.rule, d.detail.unwrap_or_default()))
            .collect();
        let mut summary = RollbackSummary {
            is_task_reverted: true,
            ..RollbackSummary::default()
        };
        for (n, step) in steps.iter().enumerate() {
            let rule = step.rule();
            let is_failed = if let Some((_, detail)) = done
                .iter()
                .find(|(id, _)| *id == rule || *id == step.legacy_id)
            {
                // Resumed: this step already ran; keep its outcome.
                match detail.strip_prefix(&format!("{}: ", step.title)) {
                    Some(outcome) => outcome.starts_with("failed: "),
                    None => detail.contains(": failed: "),
                }
            } else {
                let outcome = self.run_step_work(&step.work, log_to).await?;
                let detail = match &outcome {
                    Ok(done) => format!("{}: {done}", step.title),
                    Err(e) => format!("{}: failed: {e}", step.title),
                };
                self.emit(Event::RollbackOutput {
                    task: log_to.clone(),
                    line: format!("step {}: {detail}", n + 1),
                })?;
                let record = Event::Decision {
                    task: log_to.clone(),
                    decision: STEP_DECISION.to_string(),
                    rule,
                    detail: Some(detail),
                };
                match (&step.work, failing, &outcome) {
                    // The failing task's deployment went back: its target runs what it ran
                    // (not when it never started: then nothing changed).
                    (StepWork::TaskBackend { .. }, Some((_, failing, _)), Ok(done))
                        if done == "ok" =>
                    {
                        self.emit_with_rollback_of(record, failing)?
                    }
                    _ => self.emit(record)?,
                }
                outcome.is_err()
            };
            if is_failed {
                summary.failed_steps.push(step.title.clone());
                if matches!(step.work, StepWork::TaskBackend { .. }) {
                    summary.is_task_reverted = false;
                }
            }
        }
        Ok(summary)
    }

    /// Runs one step; `Ok` says what it did (`ok`, or why there was nothing to do).
    async fn run_step_work(
        &self,
        work: &StepWork<'_>,
        log_to: &TaskRef,
    ) -> Result<Result<String, String>, EngineError> {
        let done = |r: Result<(), String>| r.map(|()| "ok".to_string());
        Ok(match work {
            StepWork::Action {
                phase,
                owner,
                action,
            } => done(self.run_action(phase, owner, action, log_to).await?),
            StepWork::TaskBackend { phase, task } => {
                self.roll_back_failed_task(phase, log_to, task).await?
            }
            StepWork::Undo { run } => done(self.undo_completed(run).await?),
            StepWork::Flow(flow) => done(self.run_flow_rollback(flow, log_to).await?),
        })
    }

    /// Rolls back one completed deployment of the release (step 4).
    async fn undo_completed(&self, run: &TaskRunRecord) -> Result<Result<(), String>, EngineError> {
        let phase = self.phase_of_run(run)?;
        let (task, _) = self.task_def(phase, &run.task)?;
        let runs = self.with_store(|s| s.phase_runs(&self.release))?;
        let task_ref = TaskRef::of(run, &runs);
        let Some(Ok(handle)) = run.handle.as_deref().map(Handle::from_json) else {
            return Ok(Err(format!(
                "task {} has no readable deploy handle",
                run.task
            )));
        };
        self.output(&task_ref, "Going to rollback (the release is rolled back)")?;
        let outcome = self
            .revert_deployment(phase, &task_ref, task, handle)
            .await?;
        if outcome.is_ok() {
            self.emit(Event::TaskStatus {
                task: task_ref,
                status: TaskStatus::RolledBack,
                error: None,
            })?;
        }
        Ok(outcome)
    }

    /// The flow-level `run`/`script` (step 4, last).
    async fn run_flow_rollback(
        &self,
        flow: &FlowRollback,
        log_to: &TaskRef,
    ) -> Result<Result<(), String>, EngineError> {
        let command = match (&flow.run, &flow.script) {
            (Some(argv), _) => ActionCommand::Run(argv.clone()),
            (None, Some(path)) => ActionCommand::Script(path.clone()),
            (None, None) => return Ok(Ok(())),
        };
        let action = Action {
            command,
            trigger: crate::policy::Trigger::ThisTask,
        };
        // Rendered in the context of the task whose log receives it (`${task.name}` etc.).
        let phase = self.phase_def(log_to.phase.label.split('#').next().unwrap_or_default())?;
        let (task, _) = self.task_def(phase, &log_to.task)?;
        self.run_action(phase, task, &action, log_to).await
    }
}
