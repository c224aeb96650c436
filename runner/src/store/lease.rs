//! One runner owns a release at a time: a lease row with pid, host and heartbeat.
//!
//! A lease is live while its holder's heartbeat is fresh and, on this host, its process
//! exists. A runner killed with SIGKILL leaves its row behind; the next `resume` sees the
//! dead pid and takes over.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_ms, open_connection};

/// How often the holder refreshes its heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A heartbeat older than this means the holder is gone (covers other hosts and pid reuse).
const HEARTBEAT_STALE_MS: i64 = 30_000;

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

/// A held lease; dropping it stops the heartbeat and releases the row.
pub struct Lease {
    release: String,
    token: String,
    db: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether `pid` names a live (non-zombie) process on this host.
fn is_process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie has exited but is not yet reaped: it holds nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => true,
    }
}

impl Store {
    /// Takes the lease on `release` for this process, or reports the live holder.
    pub fn acquire_lease(&mut self, release: &str) -> Result<Lease, LeaseError> {
        let me = i64::from(std::process::id());
        let host = host_name();
        let token = format!("{me}-{}", now_ms());
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let holder: Option<(i64, String, i64)> = tx
            .query_row(
                "SELECT pid, host, heartbeat_at FROM leases WHERE release_id = ?1",
                [release],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        if let Some((pid, holder_host, heartbeat)) = holder {
            let fresh = now_ms() - heartbeat < HEARTBEAT_STALE_MS;
            let alive = fresh && (holder_host != host || is_process_alive(pid));
            if alive && pid != me {
                return Err(LeaseError::Held {
                    release: release.to_string(),
                    pid,
                    host: holder_host,
                });
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO leases (release_id, pid, host, token, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![release, me, host, token, now_ms()],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(Lease::start(release, token, self.dir.join("relflow.db")))
    }

    /// The live holder of `release`'s lease, if any: (pid, host).
    pub fn lease_holder(&self, release: &str) -> Result<Option<(i64, String)>, StoreError> {
        let holder: Option<(i64, String, i64)> = self
            .conn
            .query_row(
                "SELECT pid, host, heartbeat_at FROM leases WHERE release_id = ?1",
                [release],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(holder.and_then(|(pid, holder_host, heartbeat)| {
            let fresh = now_ms() - heartbeat < HEARTBEAT_STALE_MS;
            (fresh && (holder_host != host_name() || is_process_alive(pid)))
                .then_some((pid, holder_host))
        }))
    }
}

impl Lease {
    fn start(release: &str, token: String, db: std::path::PathBuf) -> Lease {
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (stop, db, token) = (stop.clone(), db.clone(), token.clone());
            std::thread::Builder::new()
                .name("relflow-lease".into())
                .spawn(move || beat(&db, &token, &stop))
                .ok()
        };
        Lease {
            release: release.to_string(),
            token,
            db,
            stop,
            heartbeat,
        }
    }

    pub fn release_id(&self) -> &str {
        &self.release
    }
}

/// Refreshes the heartbeat until told to stop; a failed refresh is retried at the next beat.
fn beat(db: &Path, token: &str, stop: &AtomicBool) {
    let Ok(conn) = open_connection(db) else {
        return;
    };
    let step = Duration::from_millis(100);
    let mut since = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        since += step;
        if since >= HEARTBEAT_EVERY {
            since = Duration::ZERO;
            let _ = conn.execute(
                "UPDATE leases SET heartbeat_at = ?2 WHERE token = ?1",
                params![token, now_ms()],
            );
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.heartbeat.take() {
            let _ = handle.join();
        }
        if let Ok(conn) = open_connection(&self.db) {
            let _ = conn.execute("DELETE FROM leases WHERE token = ?1", [&self.token]);
        }
    }
}
