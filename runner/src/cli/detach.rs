//! `--detach` on the verbs that drive a release (`run`, `resume`, `retry`, `skip`,
//! `restart-phase`, `approve`, `reject`): the action is ordered here — checked against the
//! release and recorded, or refused with the usual exit code — and the driving is left to a
//! `relflow worker`, which picks it up at once through the store. The command exits 0 once the
//! order is durable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::actions::{self, Action, Ordered};
use crate::cli::common::with_next_steps;
use crate::cli::error::CliError;
use crate::engine::{self, person::Person};
use crate::output::terminal::{Terminal, TerminalMode};
use crate::store::Store;

/// Set once at start-up from `--detach`.
static DETACH: AtomicBool = AtomicBool::new(false);

/// Makes this process's driving verb order only (see the module docs).
pub fn set(detach: bool) {
    DETACH.store(detach, Ordering::Relaxed);
}

/// Whether `--detach` was given.
pub fn is_set() -> bool {
    DETACH.load(Ordering::Relaxed)
}

/// Orders `action` on `release` as `person` and leaves the driving to a worker.
pub fn order(
    state_dir: &Path,
    release: &str,
    json: bool,
    person: &Person,
    action: &Action,
) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    let terminal = Terminal::new(TerminalMode::Quiet);
    let (mut engine, lease) = engine::attach(store, release, terminal)?;
    engine.set_person(person.clone());
    let ordered =
        actions::order(&engine, action).map_err(|e| with_next_steps(state_dir, release, e));
    let left_to_worker = match ordered? {
        Ordered::Drive => true,
        Ordered::Done(_) => false,
        // Only the drive is left to a worker; these carry out here.
        other => {
            let rt = crate::cli::common::runtime()?;
            rt.block_on(actions::carry_out(&engine, other))?;
            false
        }
    };
    drop(engine);
    drop(lease);
    let store = Store::open(state_dir)?;
    if left_to_worker {
        store.request_drive(release, action.verb(), &person.actor)?;
    }
    if json {
        crate::output::json::print(&crate::output::view::ReleaseView::load(&store, release)?);
    } else if left_to_worker {
        println!(
            "release {release}: {} ordered; a relflow worker drives it (follow it with: relflow status {release} --watch)",
            action.verb()
        );
    } else {
        println!("release {release}: {} done", action.verb());
    }
    Ok(crate::exit_code::OK)
}
