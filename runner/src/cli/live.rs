//! Commands a person runs on a release that another runner may be driving right now
//! (`abort`, `pause`): the request goes through the store, the holder acts on it within a
//! second, and this command waits for that and exits with the release's code. Without a
//! live runner the command acts itself.

use std::path::Path;
use std::time::Duration;

use crate::cli::common::{drive_release, print_summary};
use crate::cli::error::CliError;
use crate::engine::person::Person;
use crate::engine::{Engine, Outcome};
use crate::store::{ControlAction, Store};

/// How often the waiting command looks at its request.
const POLL: Duration = Duration::from_millis(100);

/// Asks the live runner of `release` for `action`, or does it here with `act`.
pub fn act_or_ask(
    state_dir: &Path,
    release: &str,
    action: ControlAction,
    person: &Person,
    json: bool,
    act: impl AsyncFnOnce(&Engine) -> Result<Outcome, CliError>,
) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    store.release(release)?;
    let Some(holder) = store.lease_holder(release)? else {
        drop(store);
        return drive_release(state_dir, release, json, person, act);
    };
    let verb = action.verb();
    // Recorded here, by the person's own command: the runner that acts may be killed first.
    store.record_action(release, None, verb, person)?;
    let id = store.request_control(release, action, &person.actor, person.comment.as_deref())?;
    eprintln!(
        "Release {release} is being driven by pid {} on {}: asked it to {verb}; waiting for it to act",
        holder.pid, holder.host
    );
    loop {
        std::thread::sleep(POLL);
        let handled = store
            .control_request(id)?
            .is_some_and(|r| r.handled_at.is_some());
        if handled {
            break;
        }
        if store.lease_holder(release)?.is_none() {
            // The runner is gone without answering (killed): act here, unless it ended.
            if store.release(release)?.status.is_final() {
                break;
            }
            store.mark_control_handled(release)?;
            drop(store);
            return drive_release(state_dir, release, json, person, act);
        }
    }
    print_summary(state_dir, release, json)?;
    let status = store.release(release)?.status;
    Ok(Outcome::of_status(status).exit_code())
}
