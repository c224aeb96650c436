//! One implementation of each action a person orders on a release, shared by the CLI verbs
//! and the server's routes. An action is *ordered* first (checked against the release as it
//! stands and recorded durably, or refused with the reason) and then *carried out* (the
//! release driven to its end). The CLI does both in one go and prints the summary; the
//! server answers once the order is accepted and drives on in the background.

mod background;
mod start;

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::CliError;
use crate::engine::{Answer, Engine, Outcome};
use crate::store::{
    ControlAction, ReleaseStatus, RollbackJobStatus, Store, TaskRunRecord, TaskStatus,
};

pub use background::{Accepted, Drivers, order_in_background};
pub use start::{prepare_release, resolve_pipeline};

/// What a person orders on a release (the CLI's verbs and the API's `POST
/// /releases/{id}/{action}`), with the options each takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Drive a release just started (`relflow run`, `POST /releases`).
    Run,
    Resume,
    Retry {
        task: Option<String>,
    },
    Skip {
        task: String,
    },
    Abort {
        rollback: bool,
    },
    Pause,
    RestartPhase {
        phase: String,
        from_task: Option<String>,
        vars: BTreeMap<String, String>,
        resume: bool,
    },
    Approve {
        task: String,
    },
    Reject {
        task: String,
    },
    Rollback {
        task: Option<String>,
        components: Vec<String>,
    },
    /// A worker drives a release that needs a runner (an order left with `--detach`, or a
    /// runner that is gone): the re-attach path of `resume`, recorded as a resume.
    Continue,
}

impl Action {
    /// The verb as the CLI and the API name it.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Resume => "resume",
            Action::Retry { .. } => "retry",
            Action::Skip { .. } => "skip",
            Action::Abort { .. } => "abort",
            Action::Pause => "pause",
            Action::RestartPhase { .. } => "restart-phase",
            Action::Approve { .. } => "approve",
            Action::Reject { .. } => "reject",
            Action::Rollback { .. } => "rollback",
            Action::Continue => "resume",
        }
    }

    /// Abort and pause reach a release another runner drives through the store.
    pub fn as_control(&self) -> Option<ControlAction> {
        match self {
            Action::Abort { rollback } => Some(ControlAction::Abort {
                rollback: *rollback,
            }),
            Action::Pause => Some(ControlAction::Pause),
            _ => None,
        }
    }
}

/// An accepted order: what carrying it out still takes.
#[derive(Debug)]
pub enum Ordered {
    /// Drive the release on.
    Drive,
    /// Nothing more: the order itself ended where the release stands.
    Done(Outcome),
    /// Run the abort (with its rollback order if asked).
    Abort { rollback: bool },
    /// Run these rollback jobs.
    Rollback {
        targets: Vec<TaskRunRecord>,
        components: Vec<String>,
    },
}

/// What carrying out an order came to.
#[derive(Debug)]
pub enum Done {
    Release(Outcome),
    /// Rollback jobs (id, final status).
    Jobs(Vec<(i64, RollbackJobStatus)>),
}

/// Checks what can be checked before a runner takes the release (no lease is taken for a
/// refusal): `resume` of a release that is not paused or interrupted.
pub fn check_before_attach(store: &Store, release: &str, action: &Action) -> Result<(), CliError> {
    let record = store.release(release)?;
    if *action != Action::Resume {
        return Ok(());
    }
    let waiting: Vec<String> = store
        .task_runs(release)?
        .into_iter()
        .filter(|t| t.status == TaskStatus::WaitingApproval)
        .map(|t| t.task)
        .collect();
    match record.status {
        ReleaseStatus::Planned | ReleaseStatus::Running => Ok(()),
        ReleaseStatus::Paused if waiting.is_empty() => Ok(()),
        ReleaseStatus::Paused => Err(CliError::input(format!(
            "error: release {release} is waiting for approval of {}: answer with `relflow approve {release} --task {}` or `relflow reject ...`",
            waiting.join(", "),
            waiting[0]
        ))),
        ReleaseStatus::Failed => Err(CliError::input(format!(
            "error: release {release} halted on a failure; `resume` continues paused or interrupted releases (see `relflow status {release}`)"
        ))),
        done => Err(CliError::input(format!(
            "error: release {release} is {done}; there is nothing to resume"
        ))),
    }
}

/// Orders `action` on the release `engine` holds: checks it against the release as it stands
/// and records it (who, why, what changes) before anything runs; or refuses it.
pub fn order(engine: &Engine, action: &Action) -> Result<Ordered, CliError> {
    Ok(match action {
        Action::Run => {
            engine.record_own_action("run")?;
            Ordered::Drive
        }
        Action::Resume => {
            engine.record_own_action("resume")?;
            engine.repair_interrupted()?;
            Ordered::Drive
        }
        Action::Continue => {
            let record = engine.store_release()?;
            let request = engine.drive_request()?;
            if record.status.is_final()
                && let Some(id) = request
            {
                // Its runner ended it after ordering and died before noting the order done.
                engine.finish_drive_requests(id)?;
            }
            if record.status.is_final()
                || (record.status != ReleaseStatus::Running && request.is_none())
            {
                // Another worker drove it to where it stands between the look and the claim.
                return Err(CliError::refused(format!(
                    "error: release {} is {}; it needs no runner",
                    record.id, record.status
                )));
            }
            engine.record_own_action("resume")?;
            engine.repair_interrupted()?;
            Ordered::Drive
        }
        Action::Retry { task } => {
            engine.order_retry(task.as_deref())?;
            Ordered::Drive
        }
        Action::Skip { task } => {
            engine.order_skip(task)?;
            Ordered::Drive
        }
        Action::Abort { rollback } => {
            engine.order_abort(*rollback)?;
            Ordered::Abort {
                rollback: *rollback,
            }
        }
        Action::Pause => Ordered::Done(engine.pause()?),
        Action::RestartPhase {
            phase,
            from_task,
            vars,
            resume,
        } => {
            check_declared(engine, vars)?;
            match engine.order_restart_phase(phase, from_task.as_deref(), vars.clone(), *resume)? {
                Some(outcome) => Ordered::Done(outcome),
                None => Ordered::Drive,
            }
        }
        Action::Approve { task } => answer(engine, task, Answer::Approve)?,
        Action::Reject { task } => answer(engine, task, Answer::Reject)?,
        Action::Rollback { task, components } => Ordered::Rollback {
            targets: engine
                .plan_rollback(task.as_deref(), components)
                .map_err(rollback_refusal)?,
            components: components.clone(),
        },
    })
}

fn answer(engine: &Engine, task: &str, answer: Answer) -> Result<Ordered, CliError> {
    Ok(match engine.order_answer(task, answer)? {
        Some(outcome) => Ordered::Done(outcome),
        None => Ordered::Drive,
    })
}

fn rollback_refusal(e: crate::engine::RollbackRequestError) -> CliError {
    match e {
        crate::engine::RollbackRequestError::Engine(e) => CliError::from(e),
        other => CliError::refused(format!("error: {other}")),
    }
}

/// `--var`s of a restart must be variables the pipeline declares.
fn check_declared(engine: &Engine, values: &BTreeMap<String, String>) -> Result<(), CliError> {
    let declared = &engine.pipeline().variables;
    if let Some(name) = values.keys().find(|k| !declared.contains_key(*k)) {
        let names: Vec<&str> = declared.keys().map(String::as_str).collect();
        return Err(CliError::input(format!(
            "error: --var {name}: `{name}` is not a variable of pipeline {} (declared: {})",
            engine.pipeline().name,
            names.join(", ")
        )));
    }
    Ok(())
}

/// Carries out an accepted order to its end.
pub async fn carry_out(engine: &Engine, ordered: Ordered) -> Result<Done, CliError> {
    Ok(match ordered {
        Ordered::Drive => Done::Release(engine.drive().await?),
        Ordered::Done(outcome) => Done::Release(outcome),
        Ordered::Abort { rollback } => Done::Release(engine.carry_out_abort(rollback).await?),
        Ordered::Rollback {
            targets,
            components,
        } => {
            let by = format!("relflow rollback by {}", engine.person().actor);
            Done::Jobs(
                engine
                    .roll_back_planned(targets, &components, &by)
                    .await
                    .map_err(rollback_refusal)?,
            )
        }
    })
}

/// Orders and carries out `action`: what a CLI verb does (the release's outcome).
pub async fn perform(engine: &Engine, action: &Action) -> Result<Outcome, CliError> {
    let ordered = order(engine, action)?;
    match carry_out(engine, ordered).await? {
        Done::Release(outcome) => Ok(outcome),
        // As `relflow rollback` exits: 0 when every job completed, else 1.
        Done::Jobs(jobs) if jobs.iter().all(|(_, s)| *s == RollbackJobStatus::Completed) => {
            Ok(Outcome::Completed)
        }
        Done::Jobs(_) => Ok(Outcome::Halted),
    }
}

/// The state directory's store, for callers that only have a path.
pub fn open_store(state_dir: &Path) -> Result<Store, CliError> {
    Ok(Store::open(state_dir)?)
}
