//! Runs the user's `deploy`, `rollback`, `current` and `status` commands, recording the deploy
//! command's outcome in the work folder (`exec.json`) so a restarted runner can re-attach.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ErrorClass;
use crate::backend::{
    Backend, BackendError, ComponentReverted, CurrentVersion, DeployOutcome, DeployRequest,
    ExecHandle, HANDLE_FORMAT, Handle, LogSink, RevertAction, RevertOutcome, RollbackReport,
};
use crate::process::{self, ProcessEnd, ProcessId, ProcessSpec};

/// Drives a deployment through commands. Every argv is already rendered by the runner and is
/// run without a shell; output lines go to the log. Commands also get `RELFLOW_APPLICATION`,
/// `RELFLOW_VERSION` and `RELFLOW_COMPONENTS` (comma-separated) in their environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecBackend {
    pub deploy: Vec<String>,
    /// Reverts the deployment; without it, rollback fails with class `precondition`.
    pub rollback: Option<Vec<String>>,
    /// Prints the deployed version on stdout (its last non-empty line counts).
    pub current: Option<Vec<String>>,
    /// Exits 0 when the deployment is healthy; asked after a restart when the outcome of the
    /// deploy command is unknown.
    pub status: Option<Vec<String>>,
    /// Working folder of the commands; the runner's when `None`.
    pub cwd: Option<PathBuf>,
    /// The attempt's deadline and stop flag; every command is ended when it fires.
    pub interrupt: crate::Interrupt,
}

/// `<work_dir>/exec.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    format: u32,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum State {
    /// Written just before the deploy command is started: a runner killed here never ran it
    /// (or it was ended at birth with the runner), so `resume` starts it.
    Starting,
    /// The deploy command runs (or ran when the runner died): its process group and the
    /// leader's start time, so a later runner can end a group that is somehow still alive.
    Running {
        pid: Option<u32>,
        #[serde(default)]
        started: Option<u64>,
    },
    Succeeded,
    Failed {
        message: String,
    },
    /// Ended at the attempt's deadline or on a stop before it finished: outcome unknown.
    Stopped {
        message: String,
    },
}

fn record_path(work_dir: &Path) -> PathBuf {
    work_dir.join("exec.json")
}

fn save(work_dir: &Path, state: State) -> Result<(), BackendError> {
    let path = record_path(work_dir);
    let json = serde_json::to_vec(&Record { format: 1, state }).unwrap_or_default();
    let tmp = path.with_extension("json.tmp");
    write_private(&tmp, &json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            BackendError::new(
                ErrorClass::TaskFailed,
                format!("write {}: {e}", path.display()),
            )
        })?;
    crate::failpoint::hit("exec.journal");
    Ok(())
}

/// Writes a work file readable by its owner only, whatever the umask.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

fn load(work_dir: &Path) -> Result<State, BackendError> {
    let path = record_path(work_dir);
    let bytes = std::fs::read(&path).map_err(|e| {
        BackendError::new(
            ErrorClass::NotFound,
            format!("read {}: {e}; the work folder is gone", path.display()),
        )
    })?;
    serde_json::from_slice::<Record>(&bytes)
        .map(|r| r.state)
        .map_err(|e| {
            BackendError::new(
                ErrorClass::Protocol,
                format!("read {}: {e}", path.display()),
            )
        })
}

fn work_dir(handle: &Handle) -> Result<&ExecHandle, BackendError> {
    match handle {
        Handle::Exec(h) => Ok(h),
        other => Err(BackendError::new(
            ErrorClass::Validation,
            format!(
                "use a handle of another backend with the exec backend: {}",
                other.to_json()
            ),
        )),
    }
}

/// "exited 3", "was killed by signal 9", ...: how a command ended, after its name.
fn describe(end: &ProcessEnd) -> String {
    end.failure("")
        .map(|m| m.trim_start().to_string())
        .unwrap_or_else(|| "exited 0".to_string())
}

impl ExecBackend {
    fn command(&self, argv: &[String], handle: &ExecHandle) -> ProcessSpec {
        ProcessSpec {
            argv: argv.to_vec(),
            cwd: self.cwd.clone(),
            env: vec![
                ("RELFLOW_APPLICATION".into(), handle.application.clone()),
                ("RELFLOW_VERSION".into(), handle.version.clone()),
                ("RELFLOW_COMPONENTS".into(), handle.components.join(",")),
            ],
            search_path: None,
            interrupt: self.interrupt.clone(),
        }
    }

    /// Ends the deploy command's process group when an earlier runner left it alive (it
    /// cannot outlive a runner that dies, but a leftover must never race what follows).
    fn end_leftover(&self, handle: &ExecHandle, log: LogSink<'_>) -> Result<(), BackendError> {
        let Ok(State::Running {
            pid: Some(pid),
            started,
        }) = load(&handle.work_dir)
        else {
            return Ok(());
        };
        if process::end_leftover_group(&ProcessId { pid, started }) {
            log(&format!(
                "The deploy command of an earlier runner was still running (process group {pid}); ended it"
            ));
        }
        Ok(())
    }

    /// Runs `deploy`, recording its process group while it runs and its outcome after.
    fn run_deploy(
        &self,
        handle: &ExecHandle,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let what = format!("deploy {} {}", handle.application, handle.version);
        self.end_leftover(handle, log)?;
        self.interrupt.check(&what)?;
        save(&handle.work_dir, State::Starting)?;
        log(&process::show(&self.deploy));
        let spec = self.command(&self.deploy, handle);
        let work_dir = handle.work_dir.clone();
        let end = process::run(
            &spec,
            &mut |id| {
                let _ = save(
                    &work_dir,
                    State::Running {
                        pid: Some(id.pid),
                        started: id.started,
                    },
                );
            },
            &mut |line| log(&line),
        );
        let Some(error) = end.error(&what, spec.program()) else {
            save(&handle.work_dir, State::Succeeded)?;
            return Ok(DeployOutcome {
                handle: Handle::Exec(handle.clone()),
                components: Vec::new(),
                is_verified: false,
            });
        };
        let message = error.message.clone();
        let state = match end {
            ProcessEnd::TimedOut(_) | ProcessEnd::Interrupted(_) => State::Stopped { message },
            _ => State::Failed { message },
        };
        save(&handle.work_dir, state)?;
        Err(error)
    }

    /// Runs an optional command (rollback, current, status), keeping its stdout.
    fn run_optional(
        &self,
        argv: &[String],
        handle: &ExecHandle,
        log: LogSink<'_>,
    ) -> Result<(ProcessEnd, Vec<String>), BackendError> {
        log(&process::show(argv));
        let spec = self.command(argv, handle);
        let mut stdout = Vec::new();
        let end = process::run(&spec, &mut |_| {}, &mut |line| {
            log(&line);
            stdout.push(line);
        });
        match (&end, end.class()) {
            (
                ProcessEnd::SpawnFailed(_) | ProcessEnd::TimedOut(_) | ProcessEnd::Interrupted(_),
                Some(class),
            ) => {
                let program = format!("`{}`", spec.program());
                let message = end.failure(&program).unwrap_or(program);
                Err(BackendError::new(class, message))
            }
            _ => Ok((end, stdout)),
        }
    }
}

impl Backend for ExecBackend {
    fn deploy(
        &self,
        request: &DeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let handle = ExecHandle {
            format: HANDLE_FORMAT,
            work_dir: request.work_dir.clone(),
            application: request.application.clone(),
            version: request.version.clone(),
            components: request.components.clone(),
        };
        std::fs::create_dir_all(&handle.work_dir).map_err(|e| {
            BackendError::new(
                ErrorClass::TaskFailed,
                format!("create {}: {e}", handle.work_dir.display()),
            )
        })?;
        save(&handle.work_dir, State::Starting)?;
        on_handle(&Handle::Exec(handle.clone()))?;
        self.run_deploy(&handle, log)
    }

    /// A finished deploy command reports its recorded outcome. One that was running when the
    /// runner died (its process group is ended first, should it still live) or that was
    /// stopped is asked about through `status`; without `status` the attempt is
    /// `interrupted`, which the failure policy may retry.
    fn resume(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        let h = work_dir(handle)?;
        let what = format!("deploy {} {}", h.application, h.version);
        let done = || DeployOutcome {
            handle: handle.clone(),
            components: Vec::new(),
            is_verified: false,
        };
        self.end_leftover(h, log)?;
        // No record, or one written before the command was started: the runner stopped
        // before the deploy command ran, so running it now runs it once.
        let never_started = match load(&h.work_dir) {
            Err(e) if e.class == ErrorClass::NotFound => true,
            Ok(State::Starting) => true,
            _ => false,
        };
        if never_started {
            log("The deploy command had not started before the runner stopped: starting it");
            return self.run_deploy(h, log);
        }
        match load(&h.work_dir)? {
            State::Succeeded => Ok(done()),
            State::Failed { message } => Err(BackendError::new(ErrorClass::TaskFailed, message)),
            State::Starting | State::Running { .. } | State::Stopped { .. } => {
                let Some(status) = &self.status else {
                    return Err(BackendError::new(
                        ErrorClass::Interrupted,
                        format!(
                            "{what}: the runner stopped while the deploy command ran and there is no `status` command to ask how it ended"
                        ),
                    ));
                };
                let (end, _) = self
                    .run_optional(status, h, log)
                    .map_err(|e| BackendError::new(e.class, format!("{what}: {}", e.message)))?;
                if end.is_success() {
                    save(&h.work_dir, State::Succeeded)?;
                    return Ok(done());
                }
                let message = format!("{what}: the status command {}", describe(&end));
                save(
                    &h.work_dir,
                    State::Failed {
                        message: message.clone(),
                    },
                )?;
                Err(BackendError::new(ErrorClass::TaskFailed, message))
            }
        }
    }

    fn retry(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.run_deploy(work_dir(handle)?, log)
    }

    fn roll_back(&self, handle: &Handle, log: LogSink<'_>) -> Result<RollbackReport, BackendError> {
        let h = work_dir(handle)?;
        let Some(argv) = &self.rollback else {
            return Err(BackendError::new(
                ErrorClass::Precondition,
                format!(
                    "roll back {} {}: the exec backend has no `rollback` command",
                    h.application, h.version
                ),
            ));
        };
        self.end_leftover(h, log)?;
        let outcome = match self.run_optional(argv, h, log) {
            Ok((end, _)) if end.is_success() => RevertOutcome::Ok,
            Ok((end, _)) => RevertOutcome::Failed {
                class: ErrorClass::TaskFailed,
                message: format!(
                    "roll back {} {}: the rollback command {}",
                    h.application,
                    h.version,
                    describe(&end)
                ),
            },
            Err(e) => RevertOutcome::Failed {
                class: e.class,
                message: format!("roll back {} {}: {}", h.application, h.version, e.message),
            },
        };
        let component = ComponentReverted {
            component: h.application.clone(),
            action: RevertAction::Restored,
            outcome,
        };
        Ok(RollbackReport {
            components: vec![component],
        })
    }

    fn roll_back_components(
        &self,
        handle: &Handle,
        components: &[String],
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        if components.is_empty() {
            return self.roll_back(handle, log);
        }
        Err(BackendError::new(
            ErrorClass::Validation,
            format!(
                "roll back components {} of {}: the exec backend reverts whole deployments only",
                components.join(", "),
                handle.application()
            ),
        ))
    }

    /// Sends SIGTERM to the deploy command's process group while it runs; nothing to do once
    /// it ended.
    fn cancel(&self, handle: &Handle, log: LogSink<'_>) -> Result<(), BackendError> {
        let h = work_dir(handle)?;
        match load(&h.work_dir)? {
            State::Running {
                pid: Some(pid),
                started,
            } if process::is_group_alive(&ProcessId { pid, started }) => {
                let Ok(pgid) = libc::pid_t::try_from(pid) else {
                    return Ok(());
                };
                // SAFETY: kill has no memory effects; the group was just seen alive.
                if unsafe { libc::kill(-pgid, libc::SIGTERM) } == 0 {
                    log(&format!(
                        "Sent SIGTERM to the deploy command (process group {pid}); the target may be in an unknown state"
                    ));
                }
                Ok(())
            }
            _ => {
                log("The deploy command is not running; nothing to cancel");
                Ok(())
            }
        }
    }

    fn current_version(&self, log: LogSink<'_>) -> Result<Option<CurrentVersion>, BackendError> {
        let Some(argv) = &self.current else {
            return Ok(None);
        };
        let none = ExecHandle {
            format: HANDLE_FORMAT,
            work_dir: PathBuf::new(),
            application: String::new(),
            version: String::new(),
            components: Vec::new(),
        };
        let (end, stdout) = self.run_optional(argv, &none, log).map_err(|e| {
            BackendError::new(e.class, format!("read the current version: {}", e.message))
        })?;
        if !end.is_success() {
            return Err(BackendError::new(
                ErrorClass::TaskFailed,
                format!(
                    "read the current version: the current command {}",
                    describe(&end)
                ),
            ));
        }
        let version = stdout
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty());
        Ok(version.map(|v| CurrentVersion {
            application: None,
            version: v.to_string(),
            components: Vec::new(),
            deployed_at: None,
        }))
    }
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
