//! `relflow unlock TARGET [--actor NAME] [--comment TEXT] [--json]`: frees a target lock whose holder has ended or whose
//! runner is gone, and records who did it in the lock folder's `unlock.log`. Refused (exit 2)
//! while the holder is live, and for a target that is not locked.

use crate::cli::error::CliError;
use crate::engine::person::Person;
use crate::exit_code;
use crate::locks::{self, Listed};

/// The lock `target` names: as `relflow locks` shows it, or a path to a locked target folder.
fn find(target: &str, listed: Vec<Listed>) -> Option<Listed> {
    let canonical = std::fs::canonicalize(target)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    listed.into_iter().find(|l| {
        let shown = l.key().target;
        // In a shared store a lock's key is its row's; the record names the target as shown.
        let named = l.record.as_ref().ok().map(|r| r.target.clone());
        [Some(shown), named]
            .into_iter()
            .flatten()
            .any(|name| name == target || Some(&name) == canonical.as_ref())
    })
}

pub fn run(target: &str, person: &Person, json: bool) -> Result<i32, CliError> {
    let dir = locks::lock_dir();
    let state = |e: locks::LockError| CliError::state(format!("error: {e}"));
    let listed = locks::list(&dir).map_err(state)?;
    let Some(lock) = find(target, listed) else {
        return Err(CliError::input(format!(
            "error: `{target}` is not locked (see `relflow locks`)"
        )));
    };
    let key = lock.key();
    let actor = &person.actor;
    let why = person
        .comment
        .as_deref()
        .map(|c| format!(" (\"{c}\")"))
        .unwrap_or_default();
    let (expected, held_by) = match &lock.record {
        Ok(record) => {
            let holder = locks::assess(record);
            let h = &record.holder;
            if holder.is_live() {
                return Err(CliError::input(format!(
                    "error: {} is held by release {} (task {}, pid {} on {}, state dir {}), which is still at work ({}): wait for it, or stop it first",
                    key.target,
                    h.release,
                    h.task,
                    h.pid,
                    h.host,
                    h.state_dir.display(),
                    holder.describe()
                )));
            }
            let held_by = format!(
                "release {} (task {}, since {}, pid {} on {}, state dir {}): {}",
                h.release,
                h.task,
                h.since,
                h.pid,
                h.host,
                h.state_dir.display(),
                holder.describe()
            );
            (Some(record), held_by)
        }
        Err(e) => (None, format!("an unreadable record ({e})")),
    };
    if !locks::free(&key, expected).map_err(state)? {
        return Err(CliError::input(format!(
            "error: the lock of {} changed while it was being freed; look again with `relflow locks`",
            key.target
        )));
    }
    let line = format!(
        "{} {actor} unlocked {}{why}, held by {held_by}",
        crate::output::time::rfc3339_ms(crate::store::now_ms()),
        key.target
    );
    let logged = locks::log_unlock(&dir, &line);
    if json {
        let log = logged
            .as_ref()
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        crate::output::json::print(&serde_json::json!({
            "target": key.target,
            "held_by": held_by,
            "by": person,
            "unlock_log": log,
        }));
        return Ok(exit_code::OK);
    }
    match logged {
        Ok(log) => println!(
            "unlocked {} (held by {held_by}); recorded in {}",
            key.target,
            log.display()
        ),
        Err(e) => {
            println!("unlocked {} (held by {held_by})", key.target);
            eprintln!("warning: could not record it: {e}");
        }
    }
    Ok(exit_code::OK)
}
