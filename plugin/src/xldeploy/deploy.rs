//! Deploy: exists? → prepare initial|update → prepare deployeds → validate →
//! create the task (once: see `create.rs`) → hand its id to the runner → start → poll →
//! archive. Also re-attaching to a stored task (`resume`) and starting it again (`retry`).

use super::backend::XlDeployBackend;
use super::client::Call;
use super::create::Obtained;
use super::intent::{self, Intent, TaskType};
use super::poll::{self, Waited};
use super::task::{Phase, TaskState};
use super::xml::{self, Element, XmlError};
use crate::ErrorClass;
use crate::backend::{
    BackendError, DeployOutcome, DeployRequest, HANDLE_FORMAT, Handle, LogSink, XlDeployHandle,
};

/// Where an application goes: its CI ids in XL Deploy's repository.
pub(super) struct Target {
    /// `Applications/PetPortal`
    pub application: String,
    /// `Environments/Prod`
    pub environment: String,
}

impl Target {
    pub fn new(application: &str, environment: &str) -> Target {
        let application = if application.starts_with("Applications/") {
            application.to_string()
        } else {
            format!("Applications/{application}")
        };
        Target {
            application,
            environment: environment.trim_end_matches('/').to_string(),
        }
    }

    /// `Applications/PetPortal/2.2`
    pub fn package(&self, version: &str) -> String {
        format!("{}/{version}", self.application)
    }

    /// `Environments/Prod/PetPortal`: the deployed application CI.
    pub fn deployed_application(&self) -> String {
        let name = self
            .application
            .rsplit('/')
            .next()
            .unwrap_or(&self.application);
        format!("{}/{name}", self.environment)
    }
}

/// Prefixes an error's message with what was being done.
pub(super) fn context(what: &str) -> impl Fn(BackendError) -> BackendError + '_ {
    move |e| BackendError::new(e.class, format!("{what}: {}", e.message))
}

pub(super) fn protocol(what: &str, call: &Call, e: XmlError) -> BackendError {
    BackendError::new(
        ErrorClass::Protocol,
        format!("{what}: {}: {e}", call.describe()),
    )
}

pub(super) fn describe(handle: &XlDeployHandle) -> String {
    let verb = if handle.is_undeploy {
        "undeploy"
    } else {
        "deploy"
    };
    format!(
        "{verb} {}/{} to {}",
        handle.application, handle.version, handle.environment
    )
}

impl XlDeployBackend {
    pub(super) fn run_deploy(
        &self,
        request: &DeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let intent = format!("deploy {}/{}", request.application, request.version);
        let environment = self.environment(request.environment.as_deref(), &intent)?;
        let target = Target::new(&request.application, environment);
        let package = target.package(&request.version);
        let what = format!("deploy {package} to {environment}");
        let work_dir = &request.work_dir;
        let adopted = self.adopt_lost(&target, Some(&request.version), work_dir, &what, log)?;
        let obtained = match adopted {
            Some(obtained) => obtained,
            None => {
                self.interrupt.check(&what)?;
                let (spec, previous, task_type) = self.prepare(&target, &package, &what, log)?;
                let spec = self.map_and_validate(spec, &what, log)?;
                let recorded = Intent::new(
                    &target.application,
                    &target.environment,
                    &request.version,
                    task_type,
                    previous,
                );
                self.create_once(&spec, recorded, work_dir, &what, log)?
            }
        };
        let handle = XlDeployHandle {
            format: HANDLE_FORMAT,
            task_id: obtained.task_id.clone(),
            application: target.application.clone(),
            version: request.version.clone(),
            environment: target.environment.clone(),
            previous_version: obtained.previous_version.clone(),
            is_undeploy: false,
            work_dir: request.work_dir.clone(),
            components: request.components.clone(),
        };
        self.hand_over(&handle, on_handle, log)?;
        self.drive(&handle, &obtained, log)
    }

    /// Gives the runner the task id before anything runs, then drops the create intent (the
    /// stored handle takes over); when it cannot be stored, the never-started task is
    /// cancelled so it does not linger in XL Deploy.
    pub(super) fn hand_over(
        &self,
        handle: &XlDeployHandle,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        if let Err(e) = on_handle(&Handle::XlDeploy(handle.clone())) {
            let cancel = Call::delete(format!("/deployit/task/{}", handle.task_id));
            let _ = self.call_regardless(&cancel, log);
            return Err(e);
        }
        intent::remove(&handle.work_dir);
        log(&format!("Execute task with id: {}", handle.task_id));
        Ok(())
    }

    /// Runs a task this try created (start, follow) or adopted (whatever state it is in).
    pub(super) fn drive(
        &self,
        handle: &XlDeployHandle,
        obtained: &Obtained,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        if obtained.is_adopted {
            self.attach(handle, false, log)
        } else {
            self.start_and_follow(handle, log)
        }
    }

    /// exists? → prepare/update or prepare/initial. Returns the spec, for an update the
    /// package deployed now, and the kind of task it makes.
    fn prepare(
        &self,
        target: &Target,
        package: &str,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<(Element, Option<String>, TaskType), BackendError> {
        let exists = self.exists(target, what, log)?;
        let task_type = if exists {
            TaskType::Upgrade
        } else {
            TaskType::Initial
        };
        let (call, previous) = if exists {
            log("Upgrading deployment");
            let previous = self.deployed_package(&target.application, &target.environment, log)?;
            let call = Call::get("/deployit/deployment/prepare/update")
                .query("version", package)
                .query("deployedApplication", target.deployed_application());
            (call, previous)
        } else {
            log("Creating initial deploy");
            let call = Call::get("/deployit/deployment/prepare/initial")
                .query("version", package)
                .query("environment", &target.environment);
            (call, None)
        };
        let body = self.call(&call, log).map_err(context(what))?;
        let spec = xml::parse_deployment(&body).map_err(|e| protocol(what, &call, e))?;
        Ok((spec, previous, task_type))
    }

    pub(super) fn exists(
        &self,
        target: &Target,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<bool, BackendError> {
        let call = Call::get("/deployit/deployment/exists")
            .query("application", &target.application)
            .query("environment", &target.environment);
        let body = self.call(&call, log).map_err(context(what))?;
        xml::parse_boolean(&body).map_err(|e| protocol(what, &call, e))
    }

    /// The package deployed to `environment` now (`Applications/App/1.0`), `None` if none.
    pub(super) fn deployed_package(
        &self,
        application: &str,
        environment: &str,
        log: LogSink<'_>,
    ) -> Result<Option<String>, BackendError> {
        let target = Target::new(application, environment);
        let what = format!("read {}", target.deployed_application());
        let call = Call::get(format!(
            "/deployit/repository/ci/{}",
            target.deployed_application()
        ));
        match self.call(&call, log) {
            Ok(body) => xml::deployed_version(&body)
                .map(Some)
                .map_err(|e| protocol(&what, &call, e)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(context(&what)(e)),
        }
    }

    /// prepare deployeds → options → validate: the spec to create the task from.
    pub(super) fn map_and_validate(
        &self,
        spec: Element,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Element, BackendError> {
        log("Mapping all deployables");
        let call = Call::post(
            "/deployit/deployment/prepare/deployeds",
            Some(spec.to_xml()),
        );
        let body = self.call(&call, log).map_err(context(what))?;
        let mut spec = xml::parse_deployment(&body).map_err(|e| protocol(what, &call, e))?;
        xml::customize_deployment(
            &mut spec,
            &self.config.orchestrators,
            &self.config.deployed_application_properties,
        )
        .map_err(|e| protocol(what, &call, e))?;
        let call = Call::post("/deployit/deployment/validate", Some(spec.to_xml()));
        let body = self.call(&call, log).map_err(context(what))?;
        let validated = xml::parse_deployment(&body).map_err(|e| protocol(what, &call, e))?;
        let messages = xml::validation_messages(&validated);
        if let Some(first) = messages.first() {
            for m in &messages {
                log(&format!("* ERROR : CI: {} Message: {}", m.ci, m.text));
            }
            return Err(BackendError::new(
                ErrorClass::Validation,
                format!(
                    "{what}: XL Deploy found {} validation error(s), first: CI {}: {}",
                    messages.len(),
                    first.ci,
                    first.text
                ),
            ));
        }
        Ok(spec)
    }

    /// `POST /deployit/task/{id}/start`. Retried in place only after asking whether the task
    /// is still startable, since a lost answer may hide a start that happened.
    pub(super) fn start(&self, task_id: &str, log: LogSink<'_>) -> Result<(), BackendError> {
        let call = Call::post(format!("/deployit/task/{task_id}/start"), None);
        let state_call = Call::get(format!("/deployit/task/{task_id}"));
        let mut is_first = true;
        self.client
            .with_retries(&call, &self.interrupt, log, || {
                if !std::mem::take(&mut is_first) {
                    let body = self.client.send(&state_call, &self.interrupt)?;
                    let state =
                        xml::parse_task_state(&body).map_err(|e| super::client::HttpError {
                            class: ErrorClass::Protocol,
                            message: e.0,
                            retry_after: None,
                        })?;
                    if !TaskState::parse(&state).is_startable() {
                        return Ok(());
                    }
                }
                self.client.send(&call, &self.interrupt).map(|_| ())
            })
            .map_err(|e| self.client.failed(&call, e))
    }

    pub(super) fn start_and_follow(
        &self,
        handle: &XlDeployHandle,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let what = describe(handle);
        // Not started once the attempt must stop: a retry or resume starts it.
        self.interrupt.check(&what)?;
        if let Err(e) = self.start(&handle.task_id, log) {
            // Stopped while starting (retries of a lost answer): the task may have started.
            return Err(match self.interrupt.cause() {
                Some(cause) => self.stop_waiting(&handle.task_id, cause, None, &what, log),
                None => context(&what)(e),
            });
        }
        self.follow(handle, log)
    }

    /// Polls until the task settles, or until the attempt must stop (then the task is stopped
    /// or left running, see `stop.rs`).
    fn follow(
        &self,
        handle: &XlDeployHandle,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let what = describe(handle);
        let id = &handle.task_id;
        let settings = self.poll_settings();
        let waited =
            poll::wait_until_settled(&self.client, &self.interrupt, id, &settings, None, log)
                .map_err(context(&what))?;
        match waited {
            Waited::Settled(state) => self.settle(handle, &state, log),
            Waited::Stopped { cause, last } => {
                // Before the first poll the task was just started: it may run.
                let last = last.unwrap_or(TaskState::Executing);
                Err(self.stop_waiting(id, cause, Some(&last), &what, log))
            }
        }
    }

    /// Turns a settled state into the outcome: success archives the task.
    fn settle(
        &self,
        handle: &XlDeployHandle,
        state: &TaskState,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let what = describe(handle);
        let id = &handle.task_id;
        match state.phase() {
            Phase::Succeeded => {
                if *state == TaskState::Executed {
                    self.archive(id, log);
                }
                Ok(DeployOutcome {
                    handle: Handle::XlDeploy(handle.clone()),
                    components: Vec::new(),
                    is_verified: false,
                })
            }
            Phase::Cancelled => Err(BackendError::new(
                ErrorClass::TaskFailed,
                format!("{what}: XL Deploy task {id} was cancelled"),
            )),
            _ => {
                let paused = if *state == TaskState::Stopped {
                    " (stopped at a pause step or by a person; fail_on_pause is on)"
                } else {
                    ""
                };
                Err(BackendError::new(
                    ErrorClass::TaskFailed,
                    format!("{what}: XL Deploy task {id} is {state}{paused}"),
                ))
            }
        }
    }

    /// `POST /deployit/task/{id}/archive`. The deployment is done whatever the answer; a
    /// failure is logged, not raised.
    pub(super) fn archive(&self, task_id: &str, log: LogSink<'_>) {
        let call = Call::post(format!("/deployit/task/{task_id}/archive"), None);
        if let Err(e) = self.call(&call, log) {
            log(&format!(
                "Could not archive task {task_id}: {} (the deployment itself succeeded)",
                e.message
            ));
        }
    }

    /// `resume` (`restart_failed` false: a halted task is reported for the policy to decide)
    /// and `retry` (true: start the same task again, resuming at its failed step).
    pub(super) fn attach(
        &self,
        handle: &XlDeployHandle,
        restart_failed: bool,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let what = describe(handle);
        let state = match poll::task_state(&self.client, &self.interrupt, &handle.task_id, log) {
            Err(e) if e.class == ErrorClass::NotFound => return self.gone(handle, log),
            other => other.map_err(context(&what))?,
        };
        match state.phase() {
            Phase::InFlight if state == TaskState::Pending => self.start_and_follow(handle, log),
            Phase::InFlight => self.follow(handle, log),
            Phase::NeedsDecision if restart_failed => self.start_and_follow(handle, log),
            Phase::Unknown => Err(BackendError::new(
                ErrorClass::Protocol,
                format!(
                    "{what}: XL Deploy reports task {} in state `{state}`",
                    handle.task_id
                ),
            )),
            Phase::NeedsDecision | Phase::Succeeded | Phase::Cancelled => {
                log(&format!("Task {} now in state {state}", handle.task_id));
                self.settle(handle, &state, log)
            }
        }
    }

    /// The task is no longer among XL Deploy's active tasks (archived, or cancelled there):
    /// whether the deployment happened is read from the environment.
    fn gone(
        &self,
        handle: &XlDeployHandle,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let what = describe(handle);
        let deployed = self.deployed_package(&handle.application, &handle.environment, log)?;
        let wanted =
            (!handle.is_undeploy).then(|| format!("{}/{}", handle.application, handle.version));
        if deployed == wanted {
            log(&format!(
                "Task {} is no longer active in XL Deploy; {} is as it should be",
                handle.task_id, handle.environment
            ));
            return Ok(DeployOutcome {
                handle: Handle::XlDeploy(handle.clone()),
                components: Vec::new(),
                is_verified: false,
            });
        }
        Err(BackendError::new(
            ErrorClass::NotFound,
            format!(
                "{what}: task {} is gone from XL Deploy and {} runs {}",
                handle.task_id,
                handle.environment,
                deployed.as_deref().unwrap_or("nothing of it")
            ),
        ))
    }
}
