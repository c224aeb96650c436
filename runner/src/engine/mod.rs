//! The release state machine: runs phases and tasks, executes policy decisions, and reports
//! every change as an event. It decides nothing itself (see `policy::decide`).

mod actions;
pub mod approval;
mod attach;
mod attempt;
mod backends;
mod commands;
pub mod control;
mod deploy;
mod drive;
pub mod event;
mod fix_forward;
mod kinds;
mod outcome;
pub mod person;
pub mod process;
mod repair;
pub mod report;
mod restart;
mod rollback;
mod rollback_order;
mod script_policy;
pub mod secrets;
mod shell;
mod stop;
mod target_changes;
mod target_lock;
mod task;

use std::cell::RefCell;
use std::collections::BTreeMap;

pub use approval::{Answer, AnswerError};
pub use attach::{AttachError, attach, start_release};
pub use commands::CommandError;
pub use event::Event;
pub use report::{ReportError, Reporter};
pub use restart::RestartError;
pub use rollback::RollbackRequestError;
pub use rollback_order::STEP_DECISION;
pub use secrets::secrets_of;

use crate::pipeline::Pipeline;
use crate::store::{ReleaseStatus, StoreError};

/// How a drive of the release ended; maps onto the exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Halted on a failure; a person decides.
    Halted,
    /// Waiting for approval (or for `resume`).
    Paused,
    Aborted,
    RolledBack,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        use crate::exit_code::*;
        match self {
            Outcome::Completed => OK,
            Outcome::Halted => HALTED,
            Outcome::Paused => PAUSED,
            Outcome::Aborted => ABORTED,
            Outcome::RolledBack => ROLLED_BACK,
        }
    }

    /// The outcome a release in `status` stands at.
    pub fn of_status(status: ReleaseStatus) -> Outcome {
        match status {
            ReleaseStatus::Completed => Outcome::Completed,
            ReleaseStatus::Failed => Outcome::Halted,
            ReleaseStatus::Aborted => Outcome::Aborted,
            ReleaseStatus::RolledBack => Outcome::RolledBack,
            ReleaseStatus::Planned | ReleaseStatus::Running | ReleaseStatus::Paused => {
                Outcome::Paused
            }
        }
    }
}

/// The engine could not keep a trustworthy record.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored release names {what} `{name}`, which its pipeline does not define")]
    Mismatch { what: &'static str, name: String },
}

impl EngineError {
    /// Whether another runner took the release over (nothing more may be written).
    pub fn is_lease_lost(&self) -> bool {
        matches!(
            self,
            EngineError::Store(StoreError::LeaseLost { .. })
                | EngineError::Report(ReportError::Store(StoreError::LeaseLost { .. }))
        )
    }

    /// Whether the shared store could not be reached any more (the drive stopped there).
    pub fn is_store_lost(&self) -> bool {
        match self {
            EngineError::Store(e) | EngineError::Report(ReportError::Store(e)) => {
                e.is_connection_lost()
            }
            _ => false,
        }
    }
}

/// A release being driven by this process (it holds the lease).
pub struct Engine {
    pipeline: Pipeline,
    release: String,
    reporter: RefCell<Reporter>,
    variables: RefCell<BTreeMap<String, String>>,
    /// Task runs whose next attempt a person ordered (`relflow retry`): a failure pauses.
    person_ordered: RefCell<std::collections::HashSet<i64>>,
    /// Task runs whose final decision a killed runner left half-done (found on resume).
    unfinished: RefCell<std::collections::HashMap<i64, crate::policy::Then>>,
    /// Task runs whose last attempt failed before the policy decided (found on resume).
    undecided: RefCell<std::collections::HashSet<i64>>,
    env: Box<EnvLookup>,
    /// Raised when a person aborts the release from another shell or the runner gets
    /// SIGINT/SIGTERM; each attempt gets a clone with its own deadline (`timeout:`).
    interrupt: relflow_plugin::Interrupt,
    /// Requests from other shells, signals and the lease's fate (shares `interrupt`).
    control: std::sync::Arc<control::LiveControl>,
    /// Why the release ends, set by the decision that ends it (rollback_release, cancel) and
    /// written last, once its phases and tasks are closed.
    ending_reason: RefCell<Option<String>>,
    /// The target locks this runner took, by task run (see `target_lock`).
    target_locks: RefCell<std::collections::HashMap<i64, crate::locks::LockKey>>,
    /// Who runs this command (`--actor`, `--comment`): recorded with what they order.
    person: person::Person,
}

/// Looks up `${env.NAME}`: the process environment in production.
pub type EnvLookup = dyn Fn(&str) -> Option<String>;

impl Engine {
    pub fn release_id(&self) -> &str {
        &self.release
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn emit(&self, event: Event) -> Result<(), EngineError> {
        self.emit_for_job(event, None)
    }

    /// Reports `event`; when it changes what a target runs (a deployment completed or undone),
    /// the store records that change with it. `job`: the `relflow rollback` job behind it and
    /// who ordered it.
    fn emit_for_job(&self, event: Event, job: Option<(i64, &str)>) -> Result<(), EngineError> {
        let status = match &event {
            Event::TaskStatus { task, status, .. } => Some((task.clone(), *status)),
            _ => None,
        };
        let target = self.target_change_of(&event, job)?;
        self.reporter.borrow_mut().emit_with_target(event, target)?;
        match status {
            // Once the status is durable, a task run that ended frees its target's lock.
            Some((task, status)) => self.after_task_status(&task, status),
            None => Ok(()),
        }
    }

    /// Runs `f` with the store (reads between events).
    fn with_store<T>(
        &self,
        f: impl FnOnce(&crate::store::Store) -> Result<T, StoreError>,
    ) -> Result<T, EngineError> {
        Ok(f(&self.reporter.borrow().store)?)
    }

    /// The release as the store holds it now.
    pub fn store_release(&self) -> Result<crate::store::ReleaseRecord, EngineError> {
        self.with_store(|store| store.release(&self.release))
    }

    /// Marks the orders left to a worker up to `up_to` carried out (this drive did).
    pub fn finish_drive_requests(&self, up_to: i64) -> Result<(), EngineError> {
        let release = self.release.clone();
        Ok(self
            .reporter
            .borrow_mut()
            .store
            .finish_drive_requests(&release, up_to)?)
    }

    /// The newest order left to a worker, if any.
    pub fn drive_request(&self) -> Result<Option<i64>, EngineError> {
        self.with_store(|store| store.open_drive_request(&self.release))
    }

    /// Sets who runs this command (before the drive starts).
    pub fn set_person(&mut self, person: person::Person) {
        self.person = person;
    }

    pub fn person(&self) -> &person::Person {
        &self.person
    }

    /// Records that `person` ran `action` on the release (or on `task`'s run).
    fn record_action(
        &self,
        task: Option<&event::TaskRef>,
        action: &str,
        person: &person::Person,
    ) -> Result<(), EngineError> {
        self.emit(Event::PersonAction {
            task: task.cloned(),
            action: action.to_string(),
            person: person.clone(),
        })
    }

    /// Records that the person at this command ran `action` on the whole release.
    pub fn record_own_action(&self, action: &str) -> Result<(), EngineError> {
        self.record_action(None, action, &self.person)
    }

    /// What the runner's signal handler and lease keeper raise.
    pub fn control(&self) -> std::sync::Arc<control::LiveControl> {
        self.control.clone()
    }

    /// Clears the live view (spinners) once the drive is over.
    pub fn finish_terminal(&self) {
        self.reporter.borrow_mut().terminal.finish();
    }
}
