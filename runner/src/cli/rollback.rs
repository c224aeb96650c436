//! `relflow rollback RELEASE [--task T] [--component C]...`: roll back completed deployments
//! from their pre-deployment snapshots, as rollback jobs.

use std::path::Path;

use crate::cli::common::runtime;
use crate::cli::error::CliError;
use crate::engine::{self, RollbackRequestError};
use crate::exit_code;
use crate::output::terminal::{Terminal, TerminalMode};
use crate::output::view::{ReleaseView, render_rollback_job};
use crate::store::{RollbackJobStatus, Store};

pub fn run(
    state_dir: &Path,
    release: &str,
    task: Option<&str>,
    components: &[String],
) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    let (engine, _lease) = engine::attach(store, release, Terminal::new(TerminalMode::Quiet))?;
    let by = format!("relflow rollback by {}", engine::who());
    let statuses = runtime()?
        .block_on(engine.roll_back_completed(task, components, &by))
        .map_err(|e| match e {
            RollbackRequestError::Engine(e) => CliError::from(e),
            other => CliError::input(format!("error: {other}")),
        })?;
    drop(engine);
    let view = ReleaseView::load(&Store::open(state_dir)?, release)?;
    for (id, _) in &statuses {
        for task in view.phases.iter().flat_map(|p| &p.tasks) {
            if let Some(job) = task.rollback_jobs.iter().find(|j| j.id == *id) {
                print!("{}", render_rollback_job(&task.run.task, job));
                println!("  log: {}", task.rollback_log);
            }
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
