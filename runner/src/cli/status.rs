//! `relflow status [RELEASE] [--json] [--watch [--exit-status]]` and `relflow list [--json]`

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::cli::error::CliError;
use crate::engine::Outcome;
use crate::exit_code;
use crate::output::list::render_list;
use crate::output::time::clock;
use crate::output::view::ReleaseView;
use crate::output::{json, status_text};
use crate::store::{ReleaseStatus, Store, now_ms};

/// How often `--watch` looks at the store.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// What `status` was asked to do.
pub struct StatusArgs<'a> {
    pub release: Option<&'a str>,
    pub json: bool,
    pub watch: bool,
    pub exit_status: bool,
}

pub fn status(state_dir: &Path, args: StatusArgs<'_>) -> Result<i32, CliError> {
    let store = open_existing(state_dir)?;
    let id = match args.release {
        Some(id) => id.to_string(),
        None => match store.latest_release()? {
            Some(r) => r.id,
            None if args.json => {
                json::print(&serde_json::json!({ "release": null }));
                return Ok(exit_code::OK);
            }
            None => {
                println!("no releases yet: start one with `relflow run PIPELINE.yaml`");
                return Ok(exit_code::OK);
            }
        },
    };
    let view = if args.watch {
        watch(&store, &id, args.json)?
    } else {
        ReleaseView::load(&store, &id)?
    };
    if args.json {
        println!("{}", view.to_json());
    } else {
        print!("{}", status_text::render(&view));
    }
    if !args.exit_status {
        return Ok(exit_code::OK);
    }
    Ok(if view.is_orphaned() {
        exit_code::PAUSED
    } else {
        Outcome::of_status(view.release.status).exit_code()
    })
}

/// Whether a release will change without a person: it runs and its runner is alive.
fn is_moving(view: &ReleaseView) -> bool {
    matches!(
        view.release.status,
        ReleaseStatus::Running | ReleaseStatus::Planned
    ) && !view.is_orphaned()
}

/// Follows `release` until it stops moving; returns how it stands then. A terminal gets
/// the status redrawn in place; anything else one line per task change (`--json`: nothing
/// until the end).
fn watch(store: &Store, release: &str, json: bool) -> Result<ReleaseView, CliError> {
    let redraw = !json && std::io::stdout().is_terminal() && !crate::output::terminal::is_dumb();
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    loop {
        let view = ReleaseView::load(store, release)?;
        if !is_moving(&view) {
            return Ok(view);
        }
        if redraw {
            // Home and clear, then the whole status: it fits how `watch relflow status` reads.
            print!("\x1b[H\x1b[2J{}", status_text::render(&view));
        } else if !json {
            for (phase, task) in view.tasks() {
                let key = (phase.label.clone(), task.run.task.clone());
                let status = task.run.status.to_string();
                if seen.get(&key) != Some(&status) {
                    println!(
                        "{}  {}/{}  {status}",
                        clock(now_ms()),
                        phase.label,
                        task.run.task
                    );
                    seen.insert(key, status);
                }
            }
        }
        std::thread::sleep(WATCH_POLL);
    }
}

pub fn list(state_dir: &Path, json: bool) -> Result<i32, CliError> {
    let store = open_existing(state_dir)?;
    let releases = store.releases()?;
    if json {
        json::print(&serde_json::json!({ "releases": releases }));
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
