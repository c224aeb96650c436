//! Whether a lock's holder is still at work: its runner process, its release's lease, and the
//! status of its task runs, read from the holder's state directory without changing it.

use std::path::Path;

use rusqlite::OpenFlags;

use crate::store::db::{Db, OptionalExtension};

use relflow_plugin::process::{host_name, is_running};

use super::{HeldBy, LockRecord};
use crate::store::{ReleaseStatus, TaskStatus};

/// A task run that ends in one of these no longer needs its target's lock.
pub fn frees_lock(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Completed
            | TaskStatus::Skipped
            | TaskStatus::Ignored
            | TaskStatus::RolledBack
            | TaskStatus::Cancelled
            | TaskStatus::Superseded
    )
}

/// What is known about a lock's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderState {
    /// Whether its runner process runs: `None` when it runs on another host.
    pub is_runner_running: Option<bool>,
    /// Whether its release has a live lease (a runner that resumed it); `None` = unreadable.
    pub is_lease_live: Option<bool>,
    /// Its holding task runs and their statuses; `None` when its store cannot be read.
    pub runs: Option<Vec<(HeldBy, Option<TaskStatus>)>>,
    pub release_status: Option<ReleaseStatus>,
}

impl HolderState {
    fn has_runner(&self) -> bool {
        match (self.is_runner_running, self.is_lease_live) {
            (Some(true), _) | (_, Some(true)) => true,
            // Another host, no readable lease: assume it is at work.
            (None, None) => true,
            _ => false,
        }
    }

    /// Whether every holding task run has ended (also `failed`), or the release has.
    fn have_runs_ended(&self) -> bool {
        if self.release_status.is_some_and(ReleaseStatus::is_final) {
            return true;
        }
        self.runs.as_ref().is_some_and(|runs| {
            runs.iter()
                .all(|(_, status)| status.is_some_and(|s| frees_lock(s) || s == TaskStatus::Failed))
        })
    }

    /// The holder may still change the target: its runner runs and its task runs go on.
    /// `relflow unlock` refuses such a lock.
    pub fn is_live(&self) -> bool {
        self.has_runner() && !self.have_runs_ended()
    }

    /// Every holding task run ended in a status that frees the lock: the holder was stopped
    /// between recording that and freeing it, so a waiting release may take the lock over.
    pub fn has_ended_without_freeing(&self) -> bool {
        self.runs.as_ref().is_some_and(|runs| {
            !runs.is_empty() && runs.iter().all(|(_, s)| s.is_some_and(frees_lock))
        })
    }

    /// `runner running`, `runner gone; task deploy failed`, ... for people.
    pub fn describe(&self) -> String {
        let runner = match (self.is_runner_running, self.is_lease_live) {
            (_, Some(true)) | (Some(true), _) => "runner running",
            (None, _) => "runner on another host",
            (Some(false), _) => "runner gone",
        };
        let tasks = match &self.runs {
            None => "its state cannot be read".to_string(),
            Some(runs) => runs
                .iter()
                .map(|(run, status)| match status {
                    Some(s) => format!("task {} {s}", run.task),
                    None => format!("task {} unknown", run.task),
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!("{runner}; {tasks}")
    }
}

/// Looks at the holder of `record`: its process on this host and its state directory.
pub fn assess(record: &LockRecord) -> HolderState {
    let holder = &record.holder;
    let is_local = holder.host == host_name();
    let is_runner_running = is_local.then(|| is_running(holder.pid, holder.pid_start));
    let probe = probe_store(&holder.state_dir, &holder.release, &record.runs);
    match probe {
        Some(probe) => HolderState {
            is_runner_running,
            is_lease_live: Some(probe.is_lease_live),
            runs: Some(probe.runs),
            release_status: probe.release_status,
        },
        None => HolderState {
            is_runner_running,
            is_lease_live: None,
            runs: None,
            release_status: None,
        },
    }
}

struct StoreProbe {
    is_lease_live: bool,
    runs: Vec<(HeldBy, Option<TaskStatus>)>,
    release_status: Option<ReleaseStatus>,
}

/// The holder's store, read-only: the shared store this process uses (its releases are
/// there, whichever folder the holder ran in), else the SQLite store of the holder's state
/// directory. `None` when it is gone or unreadable.
fn holder_store(state_dir: &Path) -> Option<Db> {
    if let Some(url) = crate::store::shared::selected() {
        return crate::store::Location::Postgres(url.clone())
            .connect_side()
            .ok();
    }
    let db = state_dir.join("relflow.db");
    if !db.is_file() {
        return None;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(&db, flags).ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(2)).ok()?;
    Some(Db::sqlite(conn))
}

/// Reads the holder's store read-only; `None` when it is gone or unreadable.
fn probe_store(state_dir: &Path, release: &str, runs: &[HeldBy]) -> Option<StoreProbe> {
    let conn = holder_store(state_dir)?;
    let release_status: Option<ReleaseStatus> = conn
        .query_row(
            "SELECT status FROM releases WHERE id = ?1",
            [release],
            |row| row.get(0),
        )
        .optional()
        .ok()?;
    // A lease judged as the store judges it (a live runner on this host, however old its
    // heartbeat; on another host, a fresh heartbeat).
    let is_lease_live = crate::store::read_lease_holder(&conn, release)
        .ok()?
        .is_some_and(|holder| holder.is_live());
    let mut statuses = Vec::new();
    for run in runs {
        let status: Option<TaskStatus> = conn
            .query_row(
                "SELECT status FROM task_runs WHERE id = ?1 AND release_id = ?2",
                crate::store::db::params![run.task_run, release],
                |row| row.get(0),
            )
            .optional()
            .ok()?;
        statuses.push((run.clone(), status));
    }
    Some(StoreProbe {
        is_lease_live,
        runs: statuses,
        release_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(running: Option<bool>, lease: Option<bool>, statuses: &[TaskStatus]) -> HolderState {
        HolderState {
            is_runner_running: running,
            is_lease_live: lease,
            runs: Some(
                statuses
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let run = HeldBy {
                            task_run: i as i64,
                            task: format!("t{i}"),
                        };
                        (run, Some(*s))
                    })
                    .collect(),
            ),
            release_status: None,
        }
    }

    #[test]
    fn a_holder_is_live_while_its_runner_runs_and_its_task_goes_on() {
        use TaskStatus::*;
        assert!(state(Some(true), Some(true), &[Running]).is_live());
        assert!(
            state(Some(false), Some(true), &[WaitingRetry]).is_live(),
            "resumed elsewhere"
        );
        assert!(
            !state(Some(false), Some(false), &[Running]).is_live(),
            "killed runner"
        );
        assert!(
            !state(Some(true), Some(true), &[Failed]).is_live(),
            "halted"
        );
        assert!(state(None, None, &[Running]).is_live(), "another host");
        assert!(state(Some(false), Some(false), &[Completed]).has_ended_without_freeing());
        assert!(!state(Some(false), Some(false), &[Failed]).has_ended_without_freeing());
    }
}
