//! Rollback and cancel. Rollback = stop (if running) → `POST
//! /deployit/deployment/rollback/{id}` → start and poll the rollback task → archive it. The
//! rollback task id is written to `<work_dir>/xldeploy-rollback.json` before it starts, so a
//! second rollback (after a crash, or to retry a failed rollback task) re-attaches to it
//! instead of creating another. A deployment whose task was archived is rolled back by
//! deploying the previous package again (or undeploying, after an initial deployment).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::backend::XlDeployBackend;
use super::client::Call;
use super::create::Obtained;
use super::deploy::{Target, context, describe, protocol};
use super::intent::{self, Intent, TaskType};
use super::poll::{self, PollSettings, Waited};
use super::task::{Phase, TaskState};
use super::xml;
use crate::ErrorClass;
use crate::backend::{
    BackendError, ComponentReverted, LogSink, RevertAction, RevertOutcome, RollbackReport,
    XlDeployHandle,
};

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    format: u32,
    rollback_task_id: String,
}

fn journal_path(work_dir: &Path) -> PathBuf {
    work_dir.join("xldeploy-rollback.json")
}

fn load_journal(work_dir: &Path) -> Result<Option<String>, BackendError> {
    let path = journal_path(work_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Journal>(&bytes)
            .map(|j| Some(j.rollback_task_id))
            .map_err(|e| {
                BackendError::new(
                    ErrorClass::Protocol,
                    format!("read {}: {e}", path.display()),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackendError::new(
            ErrorClass::Precondition,
            format!("read {}: {e}", path.display()),
        )),
    }
}

fn save_journal(work_dir: &Path, rollback_task_id: &str) -> Result<(), BackendError> {
    let path = journal_path(work_dir);
    let journal = Journal {
        format: 1,
        rollback_task_id: rollback_task_id.to_string(),
    };
    let json = serde_json::to_vec(&journal).unwrap_or_default();
    intent::write_durably(&path, &json).map_err(|e| {
        BackendError::new(
            ErrorClass::Precondition,
            format!(
                "record rollback task {rollback_task_id} in {}: {e}",
                path.display()
            ),
        )
    })
}

fn report(handle: &XlDeployHandle, action: RevertAction) -> RollbackReport {
    let name = handle.application.rsplit('/').next().unwrap_or_default();
    RollbackReport {
        components: vec![ComponentReverted {
            component: name.to_string(),
            action,
            outcome: RevertOutcome::Ok,
        }],
    }
}

impl XlDeployBackend {
    pub(super) fn run_rollback(
        &self,
        handle: &XlDeployHandle,
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let what = format!("roll back {}", describe(handle));
        if let Some(rollback_id) = load_journal(&handle.work_dir)? {
            return self.follow_rollback(handle, &rollback_id, &what, log);
        }
        let id = &handle.task_id;
        let mut state = match poll::task_state(&self.client, &self.interrupt, id, log) {
            Err(e) if e.class == ErrorClass::NotFound => {
                return self.roll_back_archived(handle, &what, log);
            }
            other => other.map_err(context(&what))?,
        };
        if state == TaskState::Pending {
            // Never started: nothing changed in the environment; drop the task.
            self.call_once(&Call::delete(format!("/deployit/task/{id}")))
                .map_err(context(&what))?;
            log(&format!(
                "Task {id} never started: cancelled it, nothing to roll back"
            ));
            return Ok(report(handle, RevertAction::Unchanged));
        }
        if state.phase() == Phase::InFlight {
            // Running: stop it first. Already stopping (at a deadline): wait until it is.
            if state.is_running() {
                let call = Call::post(format!("/deployit/task/{id}/stop"), None);
                self.call(&call, log).map_err(context(&what))?;
            }
            let settings = PollSettings {
                fail_on_pause: true,
                ..self.poll_settings()
            };
            state = self.settled(id, &settings, Some(state), &what, log)?;
        }
        match state {
            TaskState::Done => return self.roll_back_archived(handle, &what, log),
            TaskState::Cancelled => {
                return Err(BackendError::new(
                    ErrorClass::Precondition,
                    format!(
                        "{what}: task {id} was cancelled in XL Deploy; it cannot be rolled back"
                    ),
                ));
            }
            _ => {}
        }
        let call = Call::post(format!("/deployit/deployment/rollback/{id}"), None);
        let body = self.call_once(&call).map_err(context(&what))?;
        let rollback_id = xml::parse_task_id(&body).map_err(|e| protocol(&what, &call, e))?;
        save_journal(&handle.work_dir, &rollback_id)?;
        self.start(&rollback_id, log).map_err(context(&what))?;
        self.wait_rollback(handle, &rollback_id, &what, log)
    }

    /// Re-attaches to a recorded rollback task: starts it if it never ran or halted (a retry
    /// of a failed rollback), else waits for it.
    fn follow_rollback(
        &self,
        handle: &XlDeployHandle,
        rollback_id: &str,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let state = match poll::task_state(&self.client, &self.interrupt, rollback_id, log) {
            Err(e) if e.class == ErrorClass::NotFound => {
                return self.check_rolled_back(handle, what, log);
            }
            other => other.map_err(context(what))?,
        };
        match state.phase() {
            Phase::Succeeded => {
                if state == TaskState::Executed {
                    self.archive(rollback_id, log);
                }
                Ok(report(handle, revert_action(handle)))
            }
            _ => {
                if state.is_startable() {
                    self.start(rollback_id, log).map_err(context(what))?;
                }
                self.wait_rollback(handle, rollback_id, what, log)
            }
        }
    }

    fn wait_rollback(
        &self,
        handle: &XlDeployHandle,
        rollback_id: &str,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let settings = self.poll_settings();
        let state = self.settled(rollback_id, &settings, None, what, log)?;
        match state.phase() {
            Phase::Succeeded => {
                if state == TaskState::Executed {
                    self.archive(rollback_id, log);
                }
                Ok(report(handle, revert_action(handle)))
            }
            _ => Err(BackendError::new(
                ErrorClass::TaskFailed,
                format!("{what}: XL Deploy rollback task {rollback_id} is {state}"),
            )),
        }
    }

    /// Waits for `task_id` to settle. When the operation must stop first, the task is left
    /// running (a rollback half-stopped is worse than one finished); the journal lets the
    /// next rollback re-attach to it.
    fn settled(
        &self,
        task_id: &str,
        settings: &PollSettings,
        known: Option<TaskState>,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<TaskState, BackendError> {
        let waited =
            poll::wait_until_settled(&self.client, &self.interrupt, task_id, settings, known, log)
                .map_err(context(what))?;
        match waited {
            Waited::Settled(state) => Ok(state),
            Waited::Stopped { cause, .. } => {
                log(&format!(
                    "Task {task_id} keeps running in XL Deploy; rolling back again re-attaches to it"
                ));
                Err(self.interrupt.error(cause, what))
            }
        }
    }

    /// After the rollback task left XL Deploy's active tasks: is the environment back?
    fn check_rolled_back(
        &self,
        handle: &XlDeployHandle,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let deployed = self.deployed_package(&handle.application, &handle.environment, log)?;
        if deployed == handle.previous_version {
            return Ok(report(handle, revert_action(handle)));
        }
        Err(BackendError::new(
            ErrorClass::NotFound,
            format!(
                "{what}: the rollback task is gone from XL Deploy and {} runs {}",
                handle.environment,
                deployed.as_deref().unwrap_or("nothing of it")
            ),
        ))
    }

    /// The deployment's task is archived, so XL Deploy cannot roll it back: deploy the
    /// previous package again, or undeploy after an initial deployment.
    fn roll_back_archived(
        &self,
        handle: &XlDeployHandle,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let deployed = self.deployed_package(&handle.application, &handle.environment, log)?;
        if deployed == handle.previous_version {
            log(&format!(
                "{} already runs what it ran before this deployment",
                handle.environment
            ));
            return Ok(report(handle, RevertAction::Unchanged));
        }
        let ours =
            (!handle.is_undeploy).then(|| format!("{}/{}", handle.application, handle.version));
        if deployed != ours {
            return Err(BackendError::new(
                ErrorClass::Precondition,
                format!(
                    "{what}: {} runs {} now, not what this deployment left; refusing to roll back over it",
                    handle.environment,
                    deployed.as_deref().unwrap_or("nothing of it")
                ),
            ));
        }
        let target = Target::new(&handle.application, &handle.environment);
        // The redeploy's version, or `None` for an undeployment (after an initial deployment).
        let version = handle
            .previous_version
            .as_deref()
            .map(|p| p.rsplit_once('/').map_or(p, |(_, v)| v));
        let obtained = match self.adopt_lost(&target, version, &handle.work_dir, what, log)? {
            Some(obtained) => obtained,
            None => self.create_redeploy(handle, &target, version, what, log)?,
        };
        let rollback_id = obtained.task_id;
        save_journal(&handle.work_dir, &rollback_id)?;
        intent::remove(&handle.work_dir);
        log(&format!("Execute task with id: {rollback_id}"));
        if obtained.is_adopted {
            return self.follow_rollback(handle, &rollback_id, what, log);
        }
        self.start(&rollback_id, log).map_err(context(what))?;
        self.wait_rollback(handle, &rollback_id, what, log)
    }

    /// The task that puts the previous package back (`version`), or undeploys: created once.
    fn create_redeploy(
        &self,
        handle: &XlDeployHandle,
        target: &Target,
        version: Option<&str>,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Obtained, BackendError> {
        let (call, task_type) = match &handle.previous_version {
            Some(previous) => {
                log(&format!(
                    "Task {} is archived: rolling back by deploying {previous}",
                    handle.task_id
                ));
                let call = Call::get("/deployit/deployment/prepare/update")
                    .query("version", previous)
                    .query("deployedApplication", target.deployed_application());
                (call, TaskType::Upgrade)
            }
            None => {
                log(&format!(
                    "Task {} is archived: rolling back by undeploying {}",
                    handle.task_id,
                    target.deployed_application()
                ));
                let call = Call::get("/deployit/deployment/prepare/undeploy")
                    .query("deployedApplication", target.deployed_application());
                (call, TaskType::Undeploy)
            }
        };
        let body = self.call(&call, log).map_err(context(what))?;
        let mut spec = xml::parse_deployment(&body).map_err(|e| protocol(what, &call, e))?;
        if task_type == TaskType::Upgrade {
            spec = self.map_and_validate(spec, what, log)?;
        }
        let deployed_now = format!("{}/{}", handle.application, handle.version);
        let recorded = Intent::new(
            &target.application,
            &target.environment,
            version.unwrap_or(&handle.version),
            task_type,
            Some(deployed_now),
        );
        self.create_once(&spec, recorded, &handle.work_dir, what, log)
    }

    pub(super) fn run_cancel(
        &self,
        handle: &XlDeployHandle,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        let id = &handle.task_id;
        let what = format!("cancel {}", describe(handle));
        match self.call_once(&Call::delete(format!("/deployit/task/{id}"))) {
            Ok(_) => {
                log(&format!(
                    "Task {id} cancelled without rollback: {} may be left half-updated",
                    handle.environment
                ));
                Ok(())
            }
            Err(e) if e.class == ErrorClass::NotFound => {
                log(&format!(
                    "Task {id} is no longer active in XL Deploy: nothing to cancel"
                ));
                Ok(())
            }
            Err(e) => Err(context(&what)(e)),
        }
    }
}

fn revert_action(handle: &XlDeployHandle) -> RevertAction {
    if handle.previous_version.is_some() {
        RevertAction::Restored
    } else {
        RevertAction::Removed
    }
}
