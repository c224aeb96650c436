//! `relflow rollback RELEASE [--task T] [--component C]...`: roll back completed deployments
//! from their pre-deployment snapshots, as rollback jobs.

use std::path::Path;

use crate::cli::common::runtime;
use crate::cli::error::CliError;
use crate::engine::person::Person;
use crate::engine::{self, RollbackRequestError};
use crate::exit_code;
use crate::output::json;
use crate::output::list::render_rollback_job;
use crate::output::terminal::{Terminal, TerminalMode};
use crate::output::view::ReleaseView;
use crate::store::{RollbackJobStatus, Store};

pub fn run(
    state_dir: &Path,
    release: &str,
    task: Option<&str>,
    components: &[String],
    person: &Person,
    as_json: bool,
) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    let (mut engine, _lease) = engine::attach(store, release, Terminal::new(TerminalMode::Quiet))?;
    engine.set_person(person.clone());
    let by = format!("relflow rollback by {}", person.actor);
    let statuses = runtime()?
        .block_on(engine.roll_back_completed(task, components, &by))
        .map_err(|e| match e {
            RollbackRequestError::Engine(e) => CliError::from(e),
            other => crate::cli::common::with_next_steps(
                state_dir,
                release,
                CliError::refused(format!("error: {other}")),
            ),
        })?;
    drop(engine);
    let view = ReleaseView::load(&Store::open(state_dir)?, release)?;
    let jobs: Vec<_> = statuses
        .iter()
        .flat_map(|(id, _)| {
            view.phases
                .iter()
                .flat_map(|p| &p.tasks)
                .filter_map(|task| {
                    let job = task.rollback_jobs.iter().find(|j| j.id == *id)?;
                    Some((task, job))
                })
        })
        .collect();
    if as_json {
        let docs: Vec<_> = jobs
            .iter()
            .map(|(task, job)| {
                serde_json::json!({
                    "task": task.run.task,
                    "job": job,
                    "rollback_log": task.rollback_log,
                })
            })
            .collect();
        json::print(&serde_json::json!({ "release": release, "rollback_jobs": docs }));
    } else {
        for (task, job) in &jobs {
            print!("{}", render_rollback_job(&task.run.task, job));
            println!("  log: {}", task.rollback_log);
        }
    }
    Ok(
        if statuses
            .iter()
            .all(|(_, s)| *s == RollbackJobStatus::Completed)
        {
            exit_code::OK
        } else {
            exit_code::HALTED
        },
    )
}
