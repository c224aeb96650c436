//! One runner owns a release at a time: a lease row with pid, host, heartbeat and an epoch.
//!
//! - A holder on this host is live while its process exists (same pid *and* same process
//!   start time, so a reused pid is not mistaken for it), however old its heartbeat: a
//!   stopped (SIGSTOP) runner is alive and is never taken over.
//! - A holder on another host is live while its heartbeat is younger than [`LEASE_TTL_MS`].
//! - Every claim bumps the epoch. Each write of a runner checks, in the write's own
//!   transaction, that the lease still carries its epoch (see [`Store::guard_writes`]): a
//!   runner whose lease was taken over makes no further write, and learns it at once.
//!
//! The holder's keeper thread refreshes the heartbeat and watches for requests a person
//! makes from another shell (`relflow abort`/`pause`), handing them to the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use relflow_plugin::process::{host_name, is_running, start_time};

use super::control::ControlRequest;
use super::{Store, StoreError, now_ms, open_connection};

/// How often the holder refreshes its heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How often the holder looks for requests and for a takeover.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// A heartbeat older than this means a holder on another host is gone.
pub const LEASE_TTL_MS: i64 = 30_000;

/// The release is held by another live runner.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "release {release} is held by another runner (pid {pid} on {host}); wait for it or stop it"
    )]
    Held {
        release: String,
        pid: i64,
        host: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the keeper thread tells the runner.
#[derive(Debug, Clone)]
pub enum LeaseNews {
    /// A person asked for something (abort, pause) from another shell.
    Request(ControlRequest),
    /// Another runner took the release over: stop writing and calling backends.
    Lost,
}

/// Who holds a lease: enough to tell whether the holder lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub pid: i64,
    pub host: String,
    pub heartbeat_at: i64,
    pub epoch: i64,
    pub process_start: Option<i64>,
}

impl LeaseHolder {
    /// Whether the holder still runs (see the module docs for the rules).
    pub fn is_live(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        if self.host == host_name() {
            let start = self.process_start.and_then(|s| u64::try_from(s).ok());
            u32::try_from(self.pid).is_ok_and(|pid| is_running(pid, start))
        } else {
            now_ms() - self.heartbeat_at < LEASE_TTL_MS
        }
    }
}

/// A held lease; dropping it stops the keeper and frees the row (the epoch stays).
pub struct Lease {
    release: String,
    epoch: i64,
    db: std::path::PathBuf,
    stop: Option<mpsc::Sender<()>>,
    lost: Arc<AtomicBool>,
    keeper: Option<JoinHandle<()>>,
}

/// The lease row of `release` in any connection to a store (lock records read other state
/// directories' stores read-only with it).
pub fn read_holder(
    conn: &rusqlite::Connection,
    release: &str,
) -> Result<Option<LeaseHolder>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT pid, host, heartbeat_at, epoch, process_start FROM leases WHERE release_id = ?1",
            [release],
            |row| {
                Ok(LeaseHolder {
                    pid: row.get(0)?,
                    host: row.get(1)?,
                    heartbeat_at: row.get(2)?,
                    epoch: row.get(3)?,
                    process_start: row.get(4)?,
                })
            },
        )
        .optional()?)
}

/// This process's start time, as the lease records it.
fn own_start() -> Option<i64> {
    start_time(std::process::id()).and_then(|s| i64::try_from(s).ok())
}

impl Store {
    /// Takes the lease on `release` for this process, or reports the live holder. From now
    /// on every write through this store checks the new epoch.
    pub fn acquire_lease(
        &mut self,
        release: &str,
        on_news: Box<dyn Fn(LeaseNews) + Send>,
    ) -> Result<Lease, LeaseError> {
        let me = i64::from(std::process::id());
        let host = host_name();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let holder = read_holder(&tx, release)?;
        if let Some(holder) = &holder
            && holder.is_live()
            && !(holder.pid == me && holder.host == host)
        {
            tracing::debug!(target: "relflow::lease", release, holder_pid = holder.pid, holder_host = %holder.host, "lease held by a live runner");
            return Err(LeaseError::Held {
                release: release.to_string(),
                pid: holder.pid,
                host: holder.host.clone(),
            });
        }
        let epoch = holder.as_ref().map_or(0, |h| h.epoch) + 1;
        tx.execute(
            "INSERT OR REPLACE INTO leases (release_id, pid, host, token, heartbeat_at, epoch, process_start)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![release, me, host, format!("{me}-{epoch}"), now_ms(), epoch, own_start()],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        match &holder {
            // A row with a pid whose runner is gone: this claim takes the release over.
            Some(h) if h.pid > 0 && !(h.pid == me && h.host == host) => tracing::info!(
                target: "relflow::lease",
                release,
                epoch,
                from_pid = h.pid,
                from_host = %h.host,
                heartbeat_age_ms = now_ms() - h.heartbeat_at,
                "lease taken over from a runner that is gone"
            ),
            _ => {
                tracing::debug!(target: "relflow::lease", release, epoch, pid = me, "lease claimed")
            }
        }
        self.guard = Some((release.to_string(), epoch));
        Ok(Lease::start(
            release,
            epoch,
            self.dir.join("relflow.db"),
            on_news,
        ))
    }

    /// The live holder of `release`'s lease, if any.
    pub fn lease_holder(&self, release: &str) -> Result<Option<LeaseHolder>, StoreError> {
        Ok(read_holder(&self.conn, release)?.filter(LeaseHolder::is_live))
    }

    /// Runs `write` in one transaction that first checks this runner still holds its lease.
    /// Without a lease (read-only commands, tests) the write runs unguarded.
    pub fn guarded_write<T>(
        &mut self,
        write: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some((release, epoch)) = self.guard.clone() else {
            return write(self);
        };
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let held: Option<i64> = self
                .conn
                .query_row(
                    "SELECT epoch FROM leases WHERE release_id = ?1 AND pid > 0",
                    [&release],
                    |row| row.get(0),
                )
                .optional()?;
            if held != Some(epoch) {
                tracing::debug!(target: "relflow::lease", release, epoch, "write refused: the lease was taken over");
                return Err(StoreError::LeaseLost { release });
            }
            write(self)
        })();
        match result {
            Ok(value) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl Lease {
    fn start(
        release: &str,
        epoch: i64,
        db: std::path::PathBuf,
        on_news: Box<dyn Fn(LeaseNews) + Send>,
    ) -> Lease {
        let (stop, stopped) = mpsc::channel();
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = {
            let (db, release, lost) = (db.clone(), release.to_string(), lost.clone());
            std::thread::Builder::new()
                .name("relflow-lease".into())
                .spawn(move || keep(&db, &release, epoch, &stopped, &lost, &*on_news))
                .ok()
        };
        Lease {
            release: release.to_string(),
            epoch,
            db,
            stop: Some(stop),
            lost,
            keeper,
        }
    }

    pub fn release_id(&self) -> &str {
        &self.release
    }

    /// Whether another runner took the release over.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// The keeper: heartbeat every [`HEARTBEAT_EVERY`], requests and takeovers every
/// [`WATCH_EVERY`], until the lease is dropped (which wakes it at once).
fn keep(
    db: &std::path::Path,
    release: &str,
    epoch: i64,
    stopped: &mpsc::Receiver<()>,
    lost: &AtomicBool,
    on_news: &dyn Fn(LeaseNews),
) {
    let Ok(conn) = open_connection(db) else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    let mut last_beat = std::time::Instant::now();
    loop {
        match stopped.recv_timeout(WATCH_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if last_beat.elapsed() >= HEARTBEAT_EVERY {
            last_beat = std::time::Instant::now();
            if let Err(e) = conn.execute(
                "UPDATE leases SET heartbeat_at = ?3 WHERE release_id = ?1 AND epoch = ?2",
                params![release, epoch, now_ms()],
            ) {
                // Not fatal by itself: on this host the pid keeps the lease; elsewhere a
                // heartbeat older than the TTL lets another runner take over.
                tracing::warn!(target: "relflow::lease", release, epoch, error = %e, "lease heartbeat failed");
            }
        }
        let current: Option<i64> = conn
            .query_row(
                "SELECT epoch FROM leases WHERE release_id = ?1",
                [release],
                |row| row.get(0),
            )
            .optional()
            .unwrap_or(Some(epoch));
        if current != Some(epoch) && !lost.swap(true, Ordering::SeqCst) {
            tracing::warn!(target: "relflow::lease", release, epoch, now = ?current, "lease lost: another runner took the release over");
            on_news(LeaseNews::Lost);
        }
        for request in super::control::open_requests(&conn, release).unwrap_or_default() {
            if seen.insert(request.id) {
                on_news(LeaseNews::Request(request));
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.keeper.take() {
            let _ = handle.join();
        }
        if let Ok(conn) = open_connection(&self.db) {
            // Free the row but keep its epoch: the next claim must get a higher one.
            let _ = conn.execute(
                "UPDATE leases SET pid = 0 WHERE release_id = ?1 AND epoch = ?2",
                params![self.release, self.epoch],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let me = i64::from(std::process::id());
        let holder = LeaseHolder {
            pid: me,
            host: host_name(),
            heartbeat_at: 0,
            epoch: 1,
            process_start: own_start().map(|s| s + 1),
        };
        assert!(!holder.is_live());
        let same = LeaseHolder {
            process_start: own_start(),
            ..holder
        };
        assert!(
            same.is_live(),
            "a live holder on this host with an old heartbeat"
        );
    }
}
