//! Rolling back deployments: the failing task's own (`then: rollback`), and completed ones
//! later, by component, as rollback jobs (`relflow rollback`).

use relflow_plugin::{Backend, BackendError, ErrorClass, Handle, RevertOutcome, RollbackReport};

use crate::engine::backends::DeployVars;
use crate::engine::event::{Event, TaskRef};
use crate::engine::{Engine, EngineError};
use crate::pipeline::{Phase, Task, TaskKind};
use crate::store::{ABANDONED_JOB, RollbackJobStatus, TaskRunRecord, TaskStatus};

/// A rollback request that does not fit the release.
#[derive(Debug, thiserror::Error)]
pub enum RollbackRequestError {
    #[error("release {release} has no task `{task}`")]
    UnknownTask { release: String, task: String },
    #[error("task `{task}` is {status}: only completed deployments can be rolled back")]
    NotCompleted { task: String, status: TaskStatus },
    #[error("task `{task}` is a {kind} task: only deploy tasks can be rolled back")]
    NotADeployment { task: String, kind: String },
    #[error("release {release} has no completed deployment to roll back")]
    NothingToRollBack { release: String },
    #[error("task `{task}` deployed no component `{component}` (its components: {})", .components.join(", "))]
    UnknownComponent {
        task: String,
        component: String,
        components: Vec<String>,
    },
    #[error(
        "task `{task}` deployed {deployed}, but the target now holds {holds}: roll back the newer deployment first"
    )]
    Superseded {
        task: String,
        deployed: String,
        holds: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// `web: restored (ok)` lines of a rollback report.
fn report_lines(report: &RollbackReport) -> Vec<String> {
    report
        .components
        .iter()
        .map(|c| {
            let action = serde_json::to_value(c.action)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            match &c.outcome {
                RevertOutcome::Ok => format!("{}: {action} (ok)", c.component),
                RevertOutcome::Failed { class, message } => {
                    format!("{}: {action} (failed: {class}: {message})", c.component)
                }
            }
        })
        .collect()
}

impl Engine {
    fn rollback_line(&self, task: &TaskRef, line: impl Into<String>) -> Result<(), EngineError> {
        self.emit(Event::RollbackOutput {
            task: task.clone(),
            line: line.into(),
        })
    }

    /// The backend of a deploy task, for rolling back its stored handle.
    pub(super) fn backend_for_handle(
        &self,
        phase: &Phase,
        task: &Task,
        handle: &Handle,
    ) -> Result<relflow_plugin::AnyBackend, String> {
        let TaskKind::Deploy(spec) = &task.kind else {
            return Err(format!("task {} is not a deploy task", task.name));
        };
        let components = handle.components().to_vec();
        let vars = DeployVars {
            application: handle.application(),
            version: handle.version(),
            components: &components,
        };
        self.backend(phase, task, spec, &vars)
    }

    /// Reverts the failing task's deployment (rollback order step 3). Returns whether the target
    /// is back where it was; a failure is logged, never hidden.
    pub(super) async fn roll_back_failed_task(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
    ) -> Result<Result<(), String>, EngineError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let stored = runs
            .iter()
            .find(|t| t.id == task_ref.id)
            .and_then(|t| t.handle.clone());
        let Some(stored) = stored else {
            let why = match task.kind {
                TaskKind::Deploy(_) => "the deployment never started: nothing was touched",
                _ => "not a deployment: there is no backend change to revert",
            };
            self.output(task_ref, format!("Nothing to roll back: {why}"))?;
            return Ok(Ok(()));
        };
        match Handle::from_json(&stored) {
            Ok(handle) => self.revert_deployment(phase, task_ref, task, handle).await,
            Err(e) => self.finish_rollback(task_ref, Err(e)),
        }
    }

    /// Rolls back the whole deployment behind `handle` through its task's backend and logs
    /// the report; `Err` names what could not be reverted.
    pub(super) async fn revert_deployment(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        handle: Handle,
    ) -> Result<Result<(), String>, EngineError> {
        let backend = match self.backend_for_handle(phase, task, &handle) {
            Ok(backend) => backend,
            Err(message) => {
                let error = BackendError::new(ErrorClass::Precondition, message);
                return self.finish_rollback(task_ref, Err(error));
            }
        };
        self.rollback_line(
            task_ref,
            format!(
                "=== rollback of {} {} ===",
                handle.application(),
                handle.version()
            ),
        )?;
        let lock = match self
            .lock_for_rollback(phase, task_ref, task, &handle)
            .await?
        {
            Ok(lock) => lock,
            Err(e) => return self.finish_rollback(task_ref, Err(e)),
        };
        let result = self
            .call_backend(task_ref, backend, move |b, _, log| {
                b.roll_back(&handle, log)
            })
            .await?;
        self.end_rollback_lock(task_ref, lock)?;
        self.finish_rollback(task_ref, result)
    }

    /// Logs a rollback's report in both logs; `Err` names what could not be reverted.
    pub(super) fn finish_rollback(
        &self,
        task_ref: &TaskRef,
        result: Result<RollbackReport, BackendError>,
    ) -> Result<Result<(), String>, EngineError> {
        let failure = match result {
            Ok(report) => {
                for line in report_lines(&report) {
                    self.rollback_line(task_ref, &line)?;
                    self.output(task_ref, format!("Reverted {line}"))?;
                }
                report.failure()
            }
            Err(e) => Some(e),
        };
        match failure {
            None => {
                self.rollback_line(task_ref, "rollback completed")?;
                self.output(task_ref, "Rollback completed")?;
                Ok(Ok(()))
            }
            Some(e) => {
                let message = format!("rollback failed: {}: {}", e.class, e.message);
                self.rollback_line(task_ref, &message)?;
                self.output(
                    task_ref,
                    format!("{message}; the target may be in an unknown state"),
                )?;
                Ok(Err(message))
            }
        }
    }

    /// Completed deploy tasks to roll back: `task`, or all of them newest first.
    fn rollback_targets(
        &self,
        task: Option<&str>,
    ) -> Result<Vec<TaskRunRecord>, RollbackRequestError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let Some(name) = task else {
            let mut done: Vec<TaskRunRecord> = runs
                .into_iter()
                .filter(|t| {
                    t.kind == "deploy" && t.status == TaskStatus::Completed && t.handle.is_some()
                })
                .collect();
            done.sort_by_key(|t| std::cmp::Reverse((t.ended_at, t.id)));
            if done.is_empty() {
                return Err(RollbackRequestError::NothingToRollBack {
                    release: self.release.clone(),
                });
            }
            return Ok(done);
        };
        let Some(run) = runs.into_iter().rev().find(|t| t.task == name) else {
            return Err(RollbackRequestError::UnknownTask {
                release: self.release.clone(),
                task: name.to_string(),
            });
        };
        if run.kind != "deploy" {
            return Err(RollbackRequestError::NotADeployment {
                task: run.task,
                kind: run.kind,
            });
        }
        if run.status != TaskStatus::Completed || run.handle.is_none() {
            return Err(RollbackRequestError::NotCompleted {
                task: run.task,
                status: run.status,
            });
        }
        Ok(vec![run])
    }

    /// `relflow rollback`: one job per completed deployment, newest first. Returns the jobs'
    /// jobs: (id, final status).
    pub async fn roll_back_completed(
        &self,
        task: Option<&str>,
        components: &[String],
        by: &str,
    ) -> Result<Vec<(i64, RollbackJobStatus)>, RollbackRequestError> {
        let targets = self.plan_rollback(task, components)?;
        self.roll_back_planned(targets, components, by).await
    }

    /// The check of a `relflow rollback` before any job starts: the deployments to roll back,
    /// newest first, or why none can be.
    pub fn plan_rollback(
        &self,
        task: Option<&str>,
        components: &[String],
    ) -> Result<Vec<TaskRunRecord>, RollbackRequestError> {
        let targets = self.rollback_targets(task)?;
        for run in &targets {
            let deployed = handle_components_of(run).unwrap_or_default();
            if let Some(unknown) = components.iter().find(|c| !deployed.contains(c)) {
                return Err(RollbackRequestError::UnknownComponent {
                    task: run.task.clone(),
                    component: unknown.clone(),
                    components: deployed,
                });
            }
        }
        Ok(targets)
    }

    /// Runs one rollback job per deployment [`Engine::plan_rollback`] chose.
    pub async fn roll_back_planned(
        &self,
        targets: Vec<TaskRunRecord>,
        components: &[String],
        by: &str,
    ) -> Result<Vec<(i64, RollbackJobStatus)>, RollbackRequestError> {
        let phases = self.with_store(|s| s.phase_runs(&self.release))?;
        let mut statuses = Vec::new();
        for run in targets {
            let phase_name = phases
                .iter()
                .find(|p| p.id == run.phase_run_id)
                .map(|p| p.phase.clone())
                .unwrap_or_default();
            let task_ref = TaskRef::of(&run, &phases);
            self.record_action(Some(&task_ref), "rollback", &self.person)?;
            // The target's lock first: what it holds cannot change while it is checked.
            let lock = self.lock_for_job(&phase_name, &task_ref, &run).await?;
            let checked = match &lock {
                Ok(_) => self.check_still_deployed(&phase_name, &run).await,
                Err(_) => Ok(()),
            };
            let (lock, locked) = match lock {
                Ok(key) => (key, None),
                Err(e) => (None, Some(e)),
            };
            let job = match checked {
                Ok(()) => self
                    .rollback_job(&phase_name, &task_ref, &run, components, by, locked)
                    .await
                    .map_err(RollbackRequestError::from),
                Err(e) => Err(e),
            };
            self.end_rollback_lock(&task_ref, lock)?;
            statuses.push(job?);
        }
        Ok(statuses)
    }

    /// Refuses to roll back a deployment the target no longer holds: its snapshot predates a
    /// newer deployment, which the rollback would destroy.
    async fn check_still_deployed(
        &self,
        phase_name: &str,
        run: &TaskRunRecord,
    ) -> Result<(), RollbackRequestError> {
        let Some(Ok(handle)) = run.handle.as_deref().map(Handle::from_json) else {
            return Ok(());
        };
        // Finishing a job a killed `relflow rollback` left half-done: the target may already
        // hold what the snapshot restores; the backend's rollback journal knows what is left.
        let jobs = self.with_store(|s| s.rollback_jobs(&self.release))?;
        if jobs
            .iter()
            .rfind(|j| j.task_run_id == run.id)
            .is_some_and(|j| {
                j.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(ABANDONED_JOB))
            })
        {
            return Ok(());
        }
        let phase = self.phase_def(phase_name)?;
        let (task, _) = self.task_def(phase, &run.task)?;
        let Ok(backend) = self.backend_for_handle(phase, task, &handle) else {
            return Ok(());
        };
        let current = tokio::task::spawn_blocking(move || backend.current_version(&mut |_| {}))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let Some(current) = current else {
            return Ok(());
        };
        let same_application = current
            .application
            .as_deref()
            .is_none_or(|a| a == handle.application());
        if same_application && current.version == handle.version() {
            return Ok(());
        }
        Err(RollbackRequestError::Superseded {
            task: run.task.clone(),
            deployed: format!("{} {}", handle.application(), handle.version()),
            holds: format!(
                "{} {}",
                current
                    .application
                    .as_deref()
                    .unwrap_or(handle.application()),
                current.version
            ),
        })
    }

    /// The target lock of a completed deployment, for a rollback job.
    async fn lock_for_job(
        &self,
        phase_name: &str,
        task_ref: &TaskRef,
        run: &TaskRunRecord,
    ) -> Result<Result<Option<crate::locks::LockKey>, BackendError>, EngineError> {
        let Some(Ok(handle)) = run.handle.as_deref().map(Handle::from_json) else {
            return Ok(Ok(None));
        };
        let phase = self.phase_def(phase_name)?;
        let (task, _) = self.task_def(phase, &run.task)?;
        self.lock_for_rollback(phase, task_ref, task, &handle).await
    }

    /// One rollback job; `locked` is why its target's lock could not be taken (the job then
    /// ends in `exception` without touching the target).
    async fn rollback_job(
        &self,
        phase_name: &str,
        task_ref: &TaskRef,
        run: &TaskRunRecord,
        components: &[String],
        by: &str,
        locked: Option<BackendError>,
    ) -> Result<(i64, RollbackJobStatus), EngineError> {
        let job = self.with_store(|s| s.create_rollback_job(&self.release, run.id, components))?;
        crate::failpoint::hit("store.rollback_job");
        let job_event = |status, error: Option<String>| Event::RollbackJob {
            task: task_ref.clone(),
            job,
            status,
            components: components.to_vec(),
            error,
        };
        self.emit(job_event(RollbackJobStatus::Queued, None))?;
        let which = if components.is_empty() {
            "all components".to_string()
        } else {
            format!("components {}", components.join(", "))
        };
        self.rollback_line(
            task_ref,
            format!("=== rollback job {job}: {which} ({by}) ==="),
        )?;
        self.emit(job_event(RollbackJobStatus::InProgress, None))?;
        let phase = self.phase_def(phase_name)?;
        let (task, _) = self.task_def(phase, &run.task)?;
        let result = match (locked, run.handle.as_deref().map(Handle::from_json)) {
            (Some(locked), _) => Err(locked),
            (None, Some(Ok(handle))) => match self.backend_for_handle(phase, task, &handle) {
                Ok(backend) => {
                    let wanted = if components.is_empty() {
                        handle.components().to_vec()
                    } else {
                        components.to_vec()
                    };
                    self.call_backend(task_ref, backend, move |b, _, log| {
                        b.roll_back_components(&handle, &wanted, log)
                    })
                    .await?
                }
                Err(message) => Err(BackendError::new(ErrorClass::Precondition, message)),
            },
            (None, Some(Err(e))) => Err(e),
            (None, None) => Err(BackendError::new(
                ErrorClass::Precondition,
                "the deployment has no stored handle",
            )),
        };
        let reverted_all = components.is_empty()
            || handle_components_of(run)
                .is_some_and(|all| all.iter().all(|c| components.contains(c)));
        let (status, error) = match self.finish_rollback(task_ref, result)? {
            Ok(()) => (RollbackJobStatus::Completed, None),
            Err(message) => (RollbackJobStatus::Exception, Some(message)),
        };
        // The deployment's own status first: a runner killed before the job's end leaves a job
        // that the next command finds already done (see `repair_abandoned_rollback_jobs`).
        // What the target runs after the job is recorded with its end, naming who ordered it.
        let actor = self.person().actor.clone();
        let actor = actor.as_str();
        if status == RollbackJobStatus::Completed && reverted_all {
            let rolled_back = Event::TaskStatus {
                task: task_ref.clone(),
                status: TaskStatus::RolledBack,
                error: None,
            };
            self.emit_for_job(rolled_back, Some((job, actor)))?;
        }
        self.rollback_line(task_ref, format!("rollback job {job} {status}"))?;
        self.emit_for_job(job_event(status, error), Some((job, actor)))?;
        Ok((job, status))
    }
}

fn handle_components_of(run: &TaskRunRecord) -> Option<Vec<String>> {
    run.handle
        .as_deref()
        .and_then(|h| Handle::from_json(h).ok())
        .map(|h| h.components().to_vec())
}
