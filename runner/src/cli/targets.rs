//! `relflow targets [--history] [--json]`: what each backend target runs now, since when, by
//! which release and task; with `--history`, every change, newest first.

use std::path::Path;

use serde::Serialize;

use crate::cli::error::CliError;
use crate::cli::status::open_existing;
use crate::exit_code;
use crate::output::{json, targets};
use crate::store::{TargetChangeRecord, TargetNow};

#[derive(Serialize)]
struct NowDocument {
    targets: Vec<TargetNow>,
}

#[derive(Serialize)]
struct HistoryDocument {
    changes: Vec<TargetChangeRecord>,
}

pub fn run(state_dir: &Path, history: bool, as_json: bool) -> Result<i32, CliError> {
    let store = open_existing(state_dir)?;
    match (history, as_json) {
        (false, false) => print!("{}", targets::render_now(&store.targets_now()?)),
        (false, true) => json::print(&NowDocument {
            targets: store.targets_now()?,
        }),
        (true, false) => print!("{}", targets::render_history(&store.target_history()?)),
        (true, true) => json::print(&HistoryDocument {
            changes: store.target_history()?,
        }),
    }
    Ok(exit_code::OK)
}
