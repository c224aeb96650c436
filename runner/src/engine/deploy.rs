//! `deploy` tasks: one attempt through a plugin backend. The backend's calls block, so they
//! run on the blocking pool; its log lines and its handle come back over a channel, and the
//! handle is stored before the backend is allowed to go on.

use relflow_plugin::{
    AnyBackend, Backend, BackendError, DeployOutcome, DeployRequest, ErrorClass, Handle, Interrupt,
    UndeployRequest,
};
use tokio::sync::mpsc;

use crate::engine::backends::DeployVars;
use crate::engine::event::{Event, TaskRef};
use crate::engine::kinds::{AttemptResult, failed};
use crate::engine::{Engine, EngineError};
use crate::output::paths;
use crate::pipeline::{DeploySpec, Phase, Task};
use crate::store::AttemptStatus;

/// What the blocking side sends back.
pub(super) enum FromBackend {
    Line(String),
    /// A handle to store; the backend waits for the answer before touching anything.
    Handle(
        String,
        std::sync::mpsc::SyncSender<Result<(), BackendError>>,
    ),
}

/// `PetPortal/2.2` → (`PetPortal`, `2.2`); `Applications/Web/2.2` → (`Applications/Web`, `2.2`).
pub(super) fn split_package(package: &str) -> Option<(&str, &str)> {
    package
        .rsplit_once('/')
        .filter(|(app, version)| !app.is_empty() && !version.is_empty())
}

impl Engine {
    /// Runs `op` on the blocking pool, relaying its log lines and storing its handle.
    pub(super) async fn call_backend<T: Send + 'static>(
        &self,
        task_ref: &TaskRef,
        backend: AnyBackend,
        op: impl FnOnce(
            &AnyBackend,
            &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
            &mut dyn FnMut(&str),
        ) -> Result<T, BackendError>
        + Send
        + 'static,
    ) -> Result<Result<T, BackendError>, EngineError> {
        self.call_blocking(task_ref, move |on_handle, log| op(&backend, on_handle, log))
            .await
    }

    /// Runs blocking plugin code on the blocking pool, relaying its log lines to the task's
    /// log and storing any handle it reports before it may go on.
    pub(super) async fn call_blocking<T: Send + 'static>(
        &self,
        task_ref: &TaskRef,
        op: impl FnOnce(
            &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
            &mut dyn FnMut(&str),
        ) -> Result<T, BackendError>
        + Send
        + 'static,
    ) -> Result<Result<T, BackendError>, EngineError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let join = tokio::task::spawn_blocking(move || {
            let lines = tx.clone();
            let mut log = move |line: &str| {
                let _ = lines.send(FromBackend::Line(line.to_string()));
            };
            let mut on_handle = move |handle: &Handle| {
                let (ack, answer) = std::sync::mpsc::sync_channel(1);
                let gone = || {
                    BackendError::new(
                        ErrorClass::Interrupted,
                        "store the deploy handle: the runner is stopping",
                    )
                };
                tx.send(FromBackend::Handle(handle.to_json(), ack))
                    .map_err(|_| gone())?;
                answer.recv().map_err(|_| gone())?
            };
            op(&mut on_handle, &mut log)
        });
        tokio::pin!(join);
        let result = loop {
            tokio::select! {
                Some(message) = rx.recv() => self.relay(task_ref, message)?,
                joined = &mut join => break joined,
            }
        };
        while let Ok(message) = rx.try_recv() {
            self.relay(task_ref, message)?;
        }
        Ok(result.unwrap_or_else(|e| {
            Err(BackendError::new(
                ErrorClass::Interrupted,
                format!("finish the backend call: {e}"),
            ))
        }))
    }

    fn relay(&self, task_ref: &TaskRef, message: FromBackend) -> Result<(), EngineError> {
        match message {
            FromBackend::Line(line) => self.output(task_ref, line),
            FromBackend::Handle(handle, ack) => {
                let stored = self.emit(Event::HandleStored {
                    task: task_ref.clone(),
                    handle,
                });
                let answer = stored.as_ref().map(|_| ()).map_err(|e| {
                    BackendError::new(
                        ErrorClass::Precondition,
                        format!("store the deploy handle: {e}"),
                    )
                });
                let _ = ack.send(answer);
                stored
            }
        }
    }

    /// The stored handle of a task run and whether its last attempt was interrupted.
    fn handle_of(&self, task_ref: &TaskRef) -> Result<(Option<String>, bool), EngineError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        let attempts = self.with_store(|s| s.attempts(&self.release))?;
        let handle = runs
            .into_iter()
            .find(|t| t.id == task_ref.id)
            .and_then(|t| t.handle);
        let interrupted = attempts
            .iter()
            .filter(|a| a.task_run_id == task_ref.id)
            .nth_back(1)
            .is_some_and(|a| a.status == AttemptStatus::Interrupted);
        Ok((handle, interrupted))
    }

    /// What bounds one attempt of a deploy or undeploy task: the release's stop flag, and a
    /// deadline from the task's `timeout`, else its backend's. The backend hands it to every
    /// process it starts and checks it between steps.
    fn attempt_interrupt(&self, task: &Task, spec: &DeploySpec) -> Interrupt {
        let timeout = task.timeout.or_else(|| {
            self.pipeline
                .backends
                .get(&spec.backend)
                .and_then(crate::pipeline::Backend::timeout)
        });
        self.interrupt.with_timeout(timeout)
    }

    /// Renders what a deploy or undeploy task acts on; `Err` is the attempt's failure.
    fn prepare(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        spec: &DeploySpec,
    ) -> Result<Prepared, (ErrorClass, String)> {
        let precondition = |e: String| (ErrorClass::Precondition, e);
        let package = self
            .render(phase, task, &spec.package)
            .map_err(|e| precondition(e.to_string()))?
            .value;
        let Some((application, version)) = split_package(&package) else {
            return Err((
                ErrorClass::Validation,
                format!("package `{package}` is not `<Application>/<version>`"),
            ));
        };
        let vars = DeployVars {
            application,
            version,
            components: &spec.components,
        };
        let mut backend = self
            .backend(phase, task, spec, &vars)
            .map_err(precondition)?;
        let verify = spec
            .verify
            .as_deref()
            .map(|argv| self.render_argv_for_deploy(phase, task, &vars, argv))
            .transpose()
            .map_err(precondition)?;
        // A resumed or retried local deployment runs the task's own health check, rendered
        // again here: its work files do not keep it (it may hold secrets).
        if let (AnyBackend::Local(local), Some(argv)) = (&mut backend, &verify) {
            local.verify = Some(argv.clone());
        }
        let environment = spec
            .environment
            .as_ref()
            .map(|t| self.render(phase, task, t).map(|r| r.value))
            .transpose()
            .map_err(|e| precondition(e.to_string()))?;
        let state_dir = self.reporter.borrow().state_dir().to_path_buf();
        let work_dir =
            paths::task_dir(&state_dir, &self.release, &task_ref.phase.label, &task.name)
                .join("deploy");
        crate::store::create_private_dir(&work_dir).map_err(|e| precondition(e.to_string()))?;
        Ok(Prepared {
            application: application.to_string(),
            version: version.to_string(),
            backend,
            verify,
            environment,
            work_dir,
        })
    }

    pub(super) async fn run_deploy(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        spec: &DeploySpec,
        attempt: u32,
    ) -> Result<AttemptResult, EngineError> {
        let p = match self.prepare(phase, task_ref, task, spec) {
            Ok(prepared) => prepared,
            Err((class, message)) => return Ok(failed(class, message, attempt)),
        };
        let (application, version) = (p.application.clone(), p.version.clone());
        let request = DeployRequest {
            application: p.application,
            version: p.version,
            components: spec.components.clone(),
            work_dir: p.work_dir,
            verify: p.verify,
            environment: p.environment,
        };
        let mut backend = p.backend;
        backend.set_interrupt(self.attempt_interrupt(task, spec));
        let (handle, interrupted) = self.handle_of(task_ref)?;
        let handle = handle.map(|h| Handle::from_json(&h)).transpose();
        let result = match handle {
            Err(e) => Err(e),
            Ok(None) => {
                self.output(
                    task_ref,
                    format!(
                        "Deploying {application} {version} with backend {}",
                        spec.backend
                    ),
                )?;
                self.call_backend(task_ref, backend, move |b, on_handle, log| {
                    b.deploy(&request, on_handle, log)
                })
                .await?
            }
            Ok(Some(handle)) if interrupted => {
                self.output(
                    task_ref,
                    format!("Re-attaching to the deployment of {application} {version}"),
                )?;
                self.call_backend(task_ref, backend, move |b, _, log| b.resume(&handle, log))
                    .await?
            }
            Ok(Some(handle)) => {
                self.output(
                    task_ref,
                    format!("Retrying the deployment of {application} {version}"),
                )?;
                self.call_backend(task_ref, backend, move |b, _, log| b.retry(&handle, log))
                    .await?
            }
        };
        Ok(match result {
            Ok(outcome) => {
                self.output(task_ref, deployed_line(&outcome))?;
                AttemptResult::Succeeded
            }
            Err(e) => failed(e.class, e.message, attempt),
        })
    }

    /// `undeploy` tasks: `package` names the deployed package; its application is removed from
    /// the environment (the version part is not used).
    pub(super) async fn run_undeploy(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        spec: &DeploySpec,
        attempt: u32,
    ) -> Result<AttemptResult, EngineError> {
        let p = match self.prepare(phase, task_ref, task, spec) {
            Ok(prepared) => prepared,
            Err((class, message)) => return Ok(failed(class, message, attempt)),
        };
        let application = p.application.clone();
        let request = UndeployRequest {
            application: p.application,
            environment: p.environment,
            work_dir: p.work_dir,
            fail_if_missing: spec.xl.fail_if_missing,
        };
        self.output(
            task_ref,
            format!("Undeploying {application} with backend {}", spec.backend),
        )?;
        let mut backend = p.backend;
        backend.set_interrupt(self.attempt_interrupt(task, spec));
        let result = self
            .call_backend(task_ref, backend, move |b, on_handle, log| {
                b.undeploy(&request, on_handle, log)
            })
            .await?;
        Ok(match result {
            Ok(()) => {
                self.output(task_ref, format!("Undeployed {application}"))?;
                AttemptResult::Succeeded
            }
            Err(e) => failed(e.class, e.message, attempt),
        })
    }
}

/// A deploy or undeploy task, rendered and ready for its backend.
struct Prepared {
    application: String,
    version: String,
    backend: AnyBackend,
    verify: Option<Vec<String>>,
    environment: Option<String>,
    /// The task run's private folder for the backend (snapshot, journal, handle details).
    work_dir: std::path::PathBuf,
}

fn deployed_line(outcome: &DeployOutcome) -> String {
    let names: Vec<&str> = outcome.components.iter().map(|c| c.name.as_str()).collect();
    let verified = if outcome.is_verified {
        ", health check passed"
    } else {
        ""
    };
    format!(
        "Deployed {} {} ({}){verified}",
        outcome.handle.application(),
        outcome.handle.version(),
        if names.is_empty() {
            "no components listed".to_string()
        } else {
            names.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_split_at_the_last_slash() {
        assert_eq!(split_package("PetPortal/2.2"), Some(("PetPortal", "2.2")));
        assert_eq!(
            split_package("Applications/Web/2.2"),
            Some(("Applications/Web", "2.2"))
        );
        assert_eq!(split_package("PetPortal"), None);
        assert_eq!(split_package("PetPortal/"), None);
    }
}
