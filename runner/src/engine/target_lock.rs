//! Target locks in a release (DESIGN → Sharing a host → Target locks). A deploy or undeploy
//! task run holds its target's lock from before its first attempt until it ends; a task that
//! failed keeps it when its backend may have changed the target. Rollbacks of a deployment
//! (the rollback order's backend and undo steps, `relflow rollback` jobs) take it too.
//!
//! Two calls connect it to the rest of the engine: [`Engine::hold_target_lock`] before each
//! attempt and [`Engine::after_task_status`] after each task status is recorded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use relflow_plugin::{BackendError, ErrorClass, Handle, StopCause};

use crate::engine::deploy::split_package;
use crate::engine::event::TaskRef;
use crate::engine::{Engine, EngineError};
use crate::locks::{self, Claim, LockKey, LockRecord, Taken};
use crate::pipeline::duration::format_duration;
use crate::pipeline::paths::resolve;
use crate::pipeline::template::Template;
use crate::pipeline::{Backend, DeploySpec, Phase, Task, TaskKind};
use crate::store::TaskStatus;

/// How long a task waits for its target when neither it nor its backend says.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often a waiting task tries the lock again.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often a waiting task looks into the holder's state (did it end without freeing?).
const ASSESS_EVERY: Duration = Duration::from_secs(1);

/// A target to lock and how long to wait for it.
pub(super) struct TargetLock {
    pub(super) key: LockKey,
    timeout: Duration,
}

/// `held by release R (task T, state dir D) since S, pid P on H`: the holder, for people.
fn holder_line(record: &LockRecord) -> String {
    let h = &record.holder;
    let gone = if h.host == locks::host_name() && !locks::is_running(h.pid, h.pid_start) {
        ", not running"
    } else {
        ""
    };
    format!(
        "held by release {} (task {}, state dir {}) since {}, pid {} on {}{gone}",
        h.release,
        h.task,
        h.state_dir.display(),
        h.since,
        h.pid,
        h.host
    )
}

fn lock_failure(target: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::new(
        ErrorClass::Precondition,
        format!("lock the target {target}: {e}"),
    )
}

impl Engine {
    /// The deploy or undeploy spec of `task`, if it has one.
    pub(super) fn deploy_spec(task: &Task) -> Option<&DeploySpec> {
        match &task.kind {
            TaskKind::Deploy(spec) | TaskKind::Undeploy(spec) => Some(spec),
            _ => None,
        }
    }

    /// The lock of the target `task` deploys to. A stored `handle` names the deployment;
    /// without one the task's package is rendered. `Ok(None)`: nothing to lock, or the
    /// deployment cannot be worked out (its attempt then fails on that by itself).
    pub(super) fn target_lock(
        &self,
        phase: &Phase,
        task: &Task,
        handle: Option<&Handle>,
    ) -> Result<Option<TargetLock>, BackendError> {
        let Some(spec) = Self::deploy_spec(task) else {
            return Ok(None);
        };
        let application = match handle {
            Some(handle) => handle.application().to_string(),
            None => {
                let package = self.render(phase, task, &spec.package).map(|r| r.value);
                match package.as_deref().ok().and_then(split_package) {
                    Some((application, _)) => application.to_string(),
                    None => return Ok(None),
                }
            }
        };
        let Some(key) = self.lock_key(phase, task, spec, &application, handle)? else {
            return Ok(None);
        };
        // A key rendered from secrets (`${env.*}`) is shown, recorded and named masked.
        let shown = self
            .reporter
            .borrow()
            .redactor
            .redact(&key.target)
            .into_owned();
        let settings = self.pipeline.backend_locks.get(&spec.backend);
        let timeout = task
            .lock_timeout
            .or(settings.and_then(|s| s.timeout))
            .unwrap_or(DEFAULT_LOCK_TIMEOUT);
        Ok(Some(TargetLock {
            key: key.shown_as(shown),
            timeout,
        }))
    }

    /// The key of a deployment of `application` by `task`: the local target folder, the exec
    /// backend's `lock:` (or its name and the application), or XL Deploy's environment and
    /// application on its server.
    fn lock_key(
        &self,
        phase: &Phase,
        task: &Task,
        spec: &DeploySpec,
        application: &str,
        handle: Option<&Handle>,
    ) -> Result<Option<LockKey>, BackendError> {
        let extra = [("application", application)];
        let render = |t: &Template| self.render_with(phase, task, t, &extra).map(|r| r.value);
        let dir = locks::lock_dir();
        Ok(Some(
            match (self.pipeline.backends.get(&spec.backend), handle) {
                (Some(Backend::Local { .. }), Some(Handle::Local(h))) => {
                    LockKey::for_folder(&h.target, &dir)
                        .map_err(|e| lock_failure(&h.target.display().to_string(), e))?
                }
                (Some(Backend::Local { target, .. }), _) => {
                    let Ok(target) = render(target) else {
                        return Ok(None);
                    };
                    let path = resolve(&self.pipeline.base_dir, &target);
                    LockKey::for_folder(&path, &dir).map_err(|e| lock_failure(&target, e))?
                }
                (Some(Backend::Exec { .. }), _) => {
                    let settings = self.pipeline.backend_locks.get(&spec.backend);
                    let key = settings.and_then(|s| s.key.as_ref()).map(render);
                    let Ok(key) = key.transpose() else {
                        return Ok(None);
                    };
                    LockKey::for_exec(key.as_deref(), &spec.backend, application, &dir)
                }
                (Some(Backend::XlDeploy { url, .. }), handle) => {
                    let environment = match (handle, &spec.environment) {
                        (Some(Handle::XlDeploy(h)), _) => Ok(h.environment.clone()),
                        (_, Some(environment)) => render(environment),
                        (_, None) => return Ok(None),
                    };
                    let (Ok(url), Ok(environment)) = (render(url), environment) else {
                        return Ok(None);
                    };
                    LockKey::for_xl_deploy(&url, &environment, application, &dir)
                }
                (None, _) => return Ok(None),
            },
        ))
    }

    /// The stored handle of a task run.
    fn stored_handle(&self, task_ref: &TaskRef) -> Result<Option<Handle>, EngineError> {
        let runs = self.with_store(|s| s.task_runs(&self.release))?;
        Ok(runs
            .into_iter()
            .find(|t| t.id == task_ref.id)
            .and_then(|t| t.handle)
            .and_then(|h| Handle::from_json(&h).ok()))
    }

    /// The canonical state directory: with the release id, it names this release on the host.
    fn lock_state_dir(&self) -> PathBuf {
        let dir = self.reporter.borrow().state_dir().to_path_buf();
        std::fs::canonicalize(&dir)
            .or_else(|_| std::path::absolute(&dir))
            .unwrap_or(dir)
    }

    fn claim(&self, task_ref: &TaskRef) -> Claim {
        let pid = std::process::id();
        Claim {
            release: self.release.clone(),
            state_dir: self.lock_state_dir(),
            task: task_ref.task.clone(),
            task_run: task_ref.id,
            pid,
            pid_start: locks::process_start(pid),
            host: locks::host_name(),
        }
    }

    /// Before an attempt of a deploy or undeploy task: holds its target's lock, waiting with
    /// status `waiting_lock` while another release holds it. `Some(error)` fails the attempt:
    /// class `locked` after `lock_timeout`, `interrupted` when the release is stopped.
    pub(super) async fn hold_target_lock(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
    ) -> Result<Option<BackendError>, EngineError> {
        if Self::deploy_spec(task).is_none() {
            return Ok(None);
        }
        let handle = self.stored_handle(task_ref)?;
        let lock = match self.target_lock(phase, task, handle.as_ref()) {
            Ok(Some(lock)) => lock,
            Ok(None) => return Ok(None),
            Err(e) => return Ok(Some(e)),
        };
        let mut is_waiting = false;
        let started = Instant::now();
        let result = self
            .wait_for_lock(task_ref, &lock, |record| {
                if !is_waiting {
                    is_waiting = true;
                    self.set_status(task_ref, TaskStatus::WaitingLock, None)?;
                }
                self.output(
                    task_ref,
                    format!(
                        "Waiting for the lock of {}: {}",
                        lock.key.target,
                        holder_line(record)
                    ),
                )
            })
            .await?;
        match result {
            Ok(was_held) => {
                self.target_locks
                    .borrow_mut()
                    .insert(task_ref.id, lock.key.clone());
                if is_waiting {
                    let waited = format_duration(Duration::from_secs(started.elapsed().as_secs()));
                    self.output(
                        task_ref,
                        format!("Locked {} after waiting {waited}", lock.key.target),
                    )?;
                } else if !was_held {
                    self.output(task_ref, format!("Locked {}", lock.key.target))?;
                }
                Ok(None)
            }
            Err(e) => Ok(Some(e)),
        }
    }

    /// Takes `lock` for `task_ref`, polling while another release holds it; `on_wait` is told
    /// each new holder. `Ok(was_held)` when it holds the lock.
    async fn wait_for_lock(
        &self,
        task_ref: &TaskRef,
        lock: &TargetLock,
        mut on_wait: impl FnMut(&LockRecord) -> Result<(), EngineError>,
    ) -> Result<Result<bool, BackendError>, EngineError> {
        let claim = self.claim(task_ref);
        let target = &lock.key.target;
        let started = Instant::now();
        let mut assessed: Option<Instant> = None;
        let mut stale: Option<LockRecord> = None;
        let mut told: Option<LockRecord> = None;
        loop {
            if let Some(cause) = self.interrupt.cause().filter(|c| *c != StopCause::Deadline) {
                let what = format!("wait for the lock of {target}");
                return Ok(Err(self.interrupt.error(cause, &what)));
            }
            let record = match locks::take(&lock.key, &claim, stale.as_ref()) {
                Ok(Taken::Holds { was_held }) => {
                    if let Some(stale) = &stale {
                        self.output(
                            task_ref,
                            format!(
                                "Took over the lock of {target} from release {}: its task runs ended without freeing it",
                                stale.holder.release
                            ),
                        )?;
                    }
                    return Ok(Ok(was_held));
                }
                Ok(Taken::HeldBy(record)) => *record,
                Err(e) => return Ok(Err(lock_failure(target, e))),
            };
            let is_new_holder = told.as_ref().is_none_or(|t| {
                t.holder.release != record.holder.release
                    || t.holder.state_dir != record.holder.state_dir
            });
            if is_new_holder {
                on_wait(&record)?;
                told = Some(record.clone());
            }
            if started.elapsed() >= lock.timeout {
                return Ok(Err(BackendError::new(
                    ErrorClass::Locked,
                    format!(
                        "the target {target} stayed locked for {} (lock_timeout): {}; see `relflow locks`",
                        format_duration(lock.timeout),
                        holder_line(&record)
                    ),
                )));
            }
            if assessed.is_none_or(|at| at.elapsed() >= ASSESS_EVERY) {
                assessed = Some(Instant::now());
                if locks::assess(&record).has_ended_without_freeing() {
                    stale = Some(record);
                    continue;
                }
            }
            stale = None;
            let left = lock.timeout.saturating_sub(started.elapsed());
            tokio::time::sleep(POLL_EVERY.min(left)).await;
        }
    }

    /// Whether the backend of a failed task run may have changed its target: something was
    /// started (a handle is stored) and, for a local deployment, delivery began.
    pub(super) fn may_have_changed_target(&self, task_ref: &TaskRef) -> Result<bool, EngineError> {
        Ok(match self.stored_handle(task_ref)? {
            None => false,
            Some(Handle::Local(h)) => relflow_plugin::local::may_have_changed_target(&h),
            Some(_) => true,
        })
    }

    /// After a task status is recorded: frees the task run's lock when it ended `completed`,
    /// `skipped`, `ignored`, `rolled_back`, `cancelled` or `superseded`, or `failed` before its
    /// backend changed anything. A failure to free is logged, never fatal.
    pub(super) fn after_task_status(
        &self,
        task_ref: &TaskRef,
        status: TaskStatus,
    ) -> Result<(), EngineError> {
        let is_failed = status == TaskStatus::Failed;
        if !locks::frees_lock(status) && !is_failed {
            return Ok(());
        }
        let phase_name = task_ref.phase.label.split('#').next().unwrap_or_default();
        let Ok(phase) = self.phase_def(phase_name) else {
            return Ok(());
        };
        let Ok((task, _)) = self.task_def(phase, &task_ref.task) else {
            return Ok(());
        };
        if Self::deploy_spec(task).is_none() {
            return Ok(());
        }
        if is_failed && self.may_have_changed_target(task_ref)? {
            if let Some(key) = self.target_locks.borrow().get(&task_ref.id) {
                self.output(
                    task_ref,
                    format!(
                        "Keeping the lock of {}: the target may have been changed; retry, skip or roll back this task, or free it with `relflow unlock {}`",
                        key.target, key.target
                    ),
                )?;
            }
            return Ok(());
        }
        let known = self.target_locks.borrow_mut().remove(&task_ref.id);
        let key = match known {
            Some(key) => key,
            None => {
                let handle = self.stored_handle(task_ref)?;
                match self.target_lock(phase, task, handle.as_ref()) {
                    Ok(Some(lock)) => lock.key,
                    _ => return Ok(()),
                }
            }
        };
        match locks::release(&key, &self.lock_state_dir(), &self.release, task_ref.id) {
            Ok(true) => self.output(task_ref, format!("Unlocked {}", key.target)),
            Ok(false) => Ok(()),
            Err(e) => self.output(
                task_ref,
                format!(
                    "Could not free the lock of {}: {e}; free it with `relflow unlock {}`",
                    key.target, key.target
                ),
            ),
        }
    }

    /// Before a rollback of `task_ref`'s deployment `handle`: holds its target's lock
    /// (waiting like a task). `Ok(Some(key))`: taken for the rollback, to free with
    /// [`Engine::end_rollback_lock`]; `Ok(None)`: the task run already held it, or there is
    /// nothing to lock.
    pub(super) async fn lock_for_rollback(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        handle: &Handle,
    ) -> Result<Result<Option<LockKey>, BackendError>, EngineError> {
        let lock = match self.target_lock(phase, task, Some(handle)) {
            Ok(Some(lock)) => lock,
            Ok(None) => return Ok(Ok(None)),
            Err(e) => return Ok(Err(e)),
        };
        let result = self
            .wait_for_lock(task_ref, &lock, |record| {
                self.output(
                    task_ref,
                    format!(
                        "Waiting for the lock of {} to roll back: {}",
                        lock.key.target,
                        holder_line(record)
                    ),
                )
            })
            .await?;
        Ok(result.map(|was_held| (!was_held).then_some(lock.key)))
    }

    /// After a rollback: frees the lock [`Engine::lock_for_rollback`] took for it.
    pub(super) fn end_rollback_lock(
        &self,
        task_ref: &TaskRef,
        key: Option<LockKey>,
    ) -> Result<(), EngineError> {
        let Some(key) = key else {
            return Ok(());
        };
        if let Err(e) = locks::release(&key, &self.lock_state_dir(), &self.release, task_ref.id) {
            self.output(
                task_ref,
                format!(
                    "Could not free the lock of {}: {e}; free it with `relflow unlock {}`",
                    key.target, key.target
                ),
            )?;
        }
        Ok(())
    }
}
