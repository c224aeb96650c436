//! What every backend shares: the operation set, requests, handles, outcomes and errors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ErrorClass;
use crate::exec::ExecBackend;
use crate::local::LocalBackend;
use crate::xldeploy::XlDeployBackend;

/// The format of [`Handle`] JSON this build writes and reads.
pub const HANDLE_FORMAT: u32 = 1;

/// A failed backend operation. `message` reads after "failed to", e.g.
/// `deploy PetPortal 2.2 into /srv/petportal: health check exited 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to {message}")]
pub struct BackendError {
    /// What the failure policy decides by.
    pub class: ErrorClass,
    /// What went wrong, reading after "failed to".
    pub message: String,
}

impl BackendError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        BackendError {
            class,
            message: message.into(),
        }
    }
}

/// Where lines for the task's `script_output.log` go.
pub type LogSink<'a> = &'a mut dyn FnMut(&str);

/// One deployment to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    pub application: String,
    pub version: String,
    /// Components to deliver; empty means all of the package's components.
    pub components: Vec<String>,
    /// A private folder per task run, owned by the runner and kept as long as the task run may
    /// be resumed or rolled back. Backends keep their snapshot, manifest and journal there. Every
    /// attempt of one task run passes the same folder.
    pub work_dir: PathBuf,
    /// Health check, rendered argv run without a shell after delivery. Overrides the backend's.
    pub verify: Option<Vec<String>>,
    /// Where to deploy, for backends that deploy to named environments (xl-deploy:
    /// `Environments/Prod`); overrides the backend's. Ignored by `local` and `exec`.
    pub environment: Option<String>,
}

/// One application to remove from an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeployRequest {
    pub application: String,
    /// Overrides the backend's environment.
    pub environment: Option<String>,
    /// The task run's private folder, as for [`DeployRequest::work_dir`].
    pub work_dir: PathBuf,
    /// When the application is not deployed: fail with `not_found` (true) or succeed doing
    /// nothing (false).
    pub fail_if_missing: bool,
}

/// What the runner persists right after a deploy starts and before it waits: enough to
/// re-attach, finish, retry or roll back after the runner was killed and restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum Handle {
    Local(LocalHandle),
    Exec(ExecHandle),
    XlDeploy(XlDeployHandle),
}

/// A `local` deployment: the rest of its state lives in `work_dir` (see `local` module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalHandle {
    pub format: u32,
    /// Names this task run's staging folder in the target.
    pub run_id: String,
    pub work_dir: PathBuf,
    pub target: PathBuf,
    pub application: String,
    pub version: String,
    /// The components this deployment delivers (resolved, never empty unless the package is).
    pub components: Vec<String>,
}

/// An `exec` deployment: the outcome of its deploy command is recorded in `work_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecHandle {
    pub format: u32,
    pub work_dir: PathBuf,
    pub application: String,
    pub version: String,
    pub components: Vec<String>,
}

/// An `xl-deploy` deployment: the XL Deploy task that runs it. A rollback task, once created,
/// is recorded in `work_dir` so a second rollback re-attaches to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XlDeployHandle {
    pub format: u32,
    pub task_id: String,
    /// The application CI, e.g. `Applications/PetPortal`.
    pub application: String,
    pub version: String,
    /// e.g. `Environments/Prod`.
    pub environment: String,
    /// The package deployed before this deployment (`Applications/PetPortal/1.0`); `None` for
    /// an initial deployment.
    pub previous_version: Option<String>,
    /// `true` for an undeployment.
    #[serde(default)]
    pub is_undeploy: bool,
    pub work_dir: PathBuf,
    pub components: Vec<String>,
}

impl Handle {
    /// The JSON the runner stores.
    pub fn to_json(&self) -> String {
        // A handle holds only strings and paths; serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored handle back, refusing formats this build does not know.
    pub fn from_json(json: &str) -> Result<Handle, BackendError> {
        let handle: Handle = serde_json::from_str(json).map_err(|e| {
            BackendError::new(ErrorClass::Protocol, format!("read the deploy handle: {e}"))
        })?;
        let format = match &handle {
            Handle::Local(h) => h.format,
            Handle::Exec(h) => h.format,
            Handle::XlDeploy(h) => h.format,
        };
        if format != HANDLE_FORMAT {
            return Err(BackendError::new(
                ErrorClass::Protocol,
                format!(
                    "read the deploy handle: format {format} is not {HANDLE_FORMAT}, the one this relflow knows"
                ),
            ));
        }
        Ok(handle)
    }

    pub fn application(&self) -> &str {
        match self {
            Handle::Local(h) => &h.application,
            Handle::Exec(h) => &h.application,
            Handle::XlDeploy(h) => &h.application,
        }
    }

    pub fn version(&self) -> &str {
        match self {
            Handle::Local(h) => &h.version,
            Handle::Exec(h) => &h.version,
            Handle::XlDeploy(h) => &h.version,
        }
    }

    /// The components the deployment delivers (empty when the backend does not know them).
    pub fn components(&self) -> &[String] {
        match self {
            Handle::Local(h) => &h.components,
            Handle::Exec(h) => &h.components,
            Handle::XlDeploy(h) => &h.components,
        }
    }
}

/// How a component changed in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentChange {
    /// It did not exist before the deployment.
    Added,
    /// It existed and was replaced.
    Replaced,
}

/// One component a deployment delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredComponent {
    pub name: String,
    pub change: ComponentChange,
    /// Files (and symlinks) that did not exist before.
    pub files_added: u64,
    /// Files (and symlinks) that existed before and were overwritten.
    pub files_replaced: u64,
    pub bytes: u64,
}

/// A deployment that finished, health check included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOutcome {
    pub handle: Handle,
    /// Empty for backends that do not know their components (`exec`).
    pub components: Vec<DeliveredComponent>,
    /// Whether a health check ran and passed.
    pub is_verified: bool,
}

/// What a rollback did to one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertAction {
    /// Brought back from the pre-deployment snapshot.
    Restored,
    /// Added by the deployment, deleted.
    Removed,
    /// Already as before the deployment (never touched, or reverted earlier).
    Unchanged,
}

/// Whether reverting one component worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RevertOutcome {
    Ok,
    Failed { class: ErrorClass, message: String },
}

/// One line of a rollback report (and of `rollback.log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentReverted {
    pub component: String,
    pub action: RevertAction,
    pub outcome: RevertOutcome,
}

/// What a rollback did, component by component. A failing component does not stop the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub components: Vec<ComponentReverted>,
}

impl RollbackReport {
    /// The first failure, if any component could not be reverted.
    pub fn failure(&self) -> Option<BackendError> {
        self.components.iter().find_map(|c| match &c.outcome {
            RevertOutcome::Ok => None,
            RevertOutcome::Failed { class, message } => {
                Some(BackendError::new(*class, message.clone()))
            }
        })
    }
}

/// What is deployed in a target now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentVersion {
    /// Unknown for `exec`, whose `current` command prints only the version.
    pub application: Option<String>,
    pub version: String,
    pub components: Vec<String>,
    /// RFC 3339, UTC.
    pub deployed_at: Option<String>,
}

/// The operation set every backend offers. Calls block; the runner calls them through
/// `tokio::task::spawn_blocking`.
pub trait Backend {
    /// Deploys, then runs the health check. `on_handle` is called once, before anything long
    /// runs or anything is touched; when it fails, the deployment does not start.
    fn deploy(
        &self,
        request: &DeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError>;

    /// Re-attaches to a deployment after a restart and finishes it (or reports how it ended).
    fn resume(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError>;

    /// Runs the failed deployment again, against the same pre-deployment snapshot.
    fn retry(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError>;

    /// Reverts the whole deployment, failed or completed. Running it twice is harmless.
    fn roll_back(&self, handle: &Handle, log: LogSink<'_>) -> Result<RollbackReport, BackendError>;

    /// Reverts chosen components of a completed deployment from its pre-deployment snapshot.
    fn roll_back_components(
        &self,
        handle: &Handle,
        components: &[String],
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError>;

    /// Stops a running deployment without rolling it back; the target may be left half-updated.
    fn cancel(&self, handle: &Handle, log: LogSink<'_>) -> Result<(), BackendError>;

    /// What is deployed now; `None` when nothing is.
    fn current_version(&self, log: LogSink<'_>) -> Result<Option<CurrentVersion>, BackendError>;

    /// Removes an application from its environment. `on_handle` is called as for `deploy`.
    /// Backends without the notion refuse with class `precondition`.
    fn undeploy(
        &self,
        request: &UndeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        let _ = (on_handle, log);
        Err(BackendError::new(
            ErrorClass::Precondition,
            format!(
                "undeploy {}: this backend cannot undeploy",
                request.application
            ),
        ))
    }
}

/// Every backend, for enum dispatch.
#[derive(Debug, Clone)]
pub enum AnyBackend {
    Local(LocalBackend),
    Exec(ExecBackend),
    XlDeploy(XlDeployBackend),
}

impl AnyBackend {
    /// Hands the attempt's deadline and stop flag to the backend.
    pub fn set_interrupt(&mut self, interrupt: crate::Interrupt) {
        match self {
            AnyBackend::Local(b) => b.interrupt = interrupt,
            AnyBackend::Exec(b) => b.interrupt = interrupt,
            AnyBackend::XlDeploy(b) => b.interrupt = interrupt,
        }
    }

    fn inner(&self) -> &dyn Backend {
        match self {
            AnyBackend::Local(b) => b,
            AnyBackend::Exec(b) => b,
            AnyBackend::XlDeploy(b) => b,
        }
    }
}

impl Backend for AnyBackend {
    fn deploy(
        &self,
        request: &DeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        self.inner().deploy(request, on_handle, log)
    }

    fn resume(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.inner().resume(handle, log)
    }

    fn retry(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.inner().retry(handle, log)
    }

    fn roll_back(&self, handle: &Handle, log: LogSink<'_>) -> Result<RollbackReport, BackendError> {
        self.inner().roll_back(handle, log)
    }

    fn roll_back_components(
        &self,
        handle: &Handle,
        components: &[String],
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        self.inner().roll_back_components(handle, components, log)
    }

    fn cancel(&self, handle: &Handle, log: LogSink<'_>) -> Result<(), BackendError> {
        self.inner().cancel(handle, log)
    }

    fn current_version(&self, log: LogSink<'_>) -> Result<Option<CurrentVersion>, BackendError> {
        self.inner().current_version(log)
    }

    fn undeploy(
        &self,
        request: &UndeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        self.inner().undeploy(request, on_handle, log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trips_through_json() {
        let handle = Handle::Local(LocalHandle {
            format: HANDLE_FORMAT,
            run_id: "abc".into(),
            work_dir: "/w".into(),
            target: "/t".into(),
            application: "PetPortal".into(),
            version: "2.2".into(),
            components: vec!["web".into()],
        });
        let json = handle.to_json();
        assert!(json.contains(r#""backend":"local""#), "{json}");
        assert_eq!(Handle::from_json(&json), Ok(handle));
    }

    #[test]
    fn handle_of_an_unknown_format_is_refused() {
        let json = r#"{"backend":"exec","format":9,"work_dir":"/w","application":"a","version":"1","components":[]}"#;
        let err = Handle::from_json(json).unwrap_err();
        assert_eq!(err.class, ErrorClass::Protocol);
        assert!(
            err.to_string()
                .starts_with("failed to read the deploy handle: format 9"),
            "{err}"
        );
    }
}
