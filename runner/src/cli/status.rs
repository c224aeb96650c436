//! `relflow status [RELEASE] [--json]` and `relflow list [--json]`

use std::path::Path;

use crate::cli::error::CliError;
use crate::exit_code;
use crate::output::view::{ReleaseView, render_list};
use crate::store::Store;

pub fn status(state_dir: &Path, release: Option<&str>, json: bool) -> Result<i32, CliError> {
    let store = open_existing(state_dir)?;
    let id = match release {
        Some(id) => id.to_string(),
        None => match store.latest_release()? {
            Some(r) => r.id,
            None => {
                println!("no releases yet: start one with `relflow run PIPELINE.yaml`");
                return Ok(exit_code::OK);
            }
        },
    };
    let view = ReleaseView::load(&store, &id)?;
    if json {
        println!("{}", view.to_json());
    } else {
        print!("{}", view.render_status());
    }
    Ok(exit_code::OK)
}

pub fn list(state_dir: &Path, json: bool) -> Result<i32, CliError> {
    let store = open_existing(state_dir)?;
    let releases = store.releases()?;
    if json {
        let doc =
            serde_json::to_string_pretty(&releases).map_err(|e| CliError::state(e.to_string()))?;
        println!("{doc}");
    } else {
        print!("{}", render_list(&releases));
    }
    Ok(exit_code::OK)
}

/// Opens the store read-only: a store not created yet reads as empty (and is not created:
/// reading commands leave no `.relflow/` behind); a damaged one is refused (exit 6).
pub fn open_existing(state_dir: &Path) -> Result<Store, CliError> {
    Ok(Store::open_read_only(state_dir)?)
}
