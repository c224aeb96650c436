//! `relflow rollback RELEASE [--task T] [--component C]...`: roll back completed deployments
//! from their pre-deployment snapshots, as rollback jobs.

use std::path::Path;

use crate::actions::{self, Action, Done};
use crate::cli::common::runtime;
use crate::cli::error::CliError;
use crate::engine;
use crate::engine::person::Person;
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
    let action = Action::Rollback {
        task: task.map(str::to_string),
        components: components.to_vec(),
    };
    let statuses = runtime()?
        .block_on(async {
            let ordered = actions::order(&engine, &action)?;
            actions::carry_out(&engine, ordered).await
        })
        .map_err(|e| crate::cli::common::with_next_steps(state_dir, release, e))?;
    let Done::Jobs(statuses) = statuses else {
        return Err(CliError::state("error: a rollback ran no rollback jobs"));
    };
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
