//! `relflow resume RELEASE`: continue a paused or interrupted release.

use std::path::Path;

use crate::cli::common::drive_release;
use crate::cli::error::CliError;
use crate::engine::person::Person;
use crate::store::{ReleaseStatus, Store, TaskStatus};

pub fn run(state_dir: &Path, release: &str, person: &Person, json: bool) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    let record = store.release(release)?;
    let waiting: Vec<String> = store
        .task_runs(release)?
        .into_iter()
        .filter(|t| t.status == TaskStatus::WaitingApproval)
        .map(|t| t.task)
        .collect();
    drop(store);
    match record.status {
        ReleaseStatus::Planned | ReleaseStatus::Running => {}
        ReleaseStatus::Paused if waiting.is_empty() => {}
        ReleaseStatus::Paused => {
            return Err(CliError::input(format!(
                "error: release {release} is waiting for approval of {}: answer with `relflow approve {release} --task {}` or `relflow reject ...`",
                waiting.join(", "),
                waiting[0]
            )));
        }
        ReleaseStatus::Failed => {
            return Err(CliError::input(format!(
                "error: release {release} halted on a failure; `resume` continues paused or interrupted releases (see `relflow status {release}`)"
            )));
        }
        done => {
            return Err(CliError::input(format!(
                "error: release {release} is {done}; there is nothing to resume"
            )));
        }
    }
    drive_release(state_dir, release, json, person, async |engine| {
        engine.record_own_action("resume")?;
        engine.repair_interrupted()?;
        Ok(engine.drive().await?)
    })
}
