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

use std::time::Duration;

use super::db::{Db, DbError, Dialect, OptionalExtension, params};

use relflow_plugin::process::{host_name, is_running, start_time};

use super::control::ControlRequest;
use super::{Store, StoreError};

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

impl From<DbError> for LeaseError {
    fn from(e: DbError) -> Self {
        LeaseError::Store(StoreError::from(e))
    }
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
    /// How long the holder's heartbeat stays good (the holder's own `RELFLOW_LEASE_TTL`).
    pub ttl_ms: i64,
    /// The heartbeat's age on the database's clock when the row was read.
    pub age_ms: i64,
    /// Read from a shared store (PostgreSQL): a stale heartbeat ends the lease even on this
    /// host, so a stopped runner is taken over and fenced.
    pub shared: bool,
}

impl LeaseHolder {
    /// Whether the holder still runs (see the module docs for the rules).
    pub fn is_live(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        let is_fresh = self.age_ms < self.ttl_ms;
        if self.host == host_name() {
            let start = self.process_start.and_then(|s| u64::try_from(s).ok());
            let runs = u32::try_from(self.pid).is_ok_and(|pid| is_running(pid, start));
            runs && (is_fresh || !self.shared)
        } else {
            is_fresh
        }
    }
}

pub use super::lease_keeper::{Lease, LeaseGate};

/// The lease row of `release` in any connection to a store (lock records read other state
/// directories' stores read-only with it).
pub fn read_holder(conn: &Db, release: &str) -> Result<Option<LeaseHolder>, StoreError> {
    read_holder_locking(conn, release, "")
}

/// As [`read_holder`], with `lock` (`FOR UPDATE`, ...) appended on PostgreSQL.
fn read_holder_locking(
    conn: &Db,
    release: &str,
    lock: &str,
) -> Result<Option<LeaseHolder>, StoreError> {
    let shared = conn.dialect() == Dialect::Postgres;
    let lock = if shared { lock } else { "" };
    let sql = format!(
        "SELECT pid, host, heartbeat_at, epoch, process_start, ttl_ms, {now} - heartbeat_at
         FROM leases WHERE release_id = ?1 {lock}",
        now = now_sql(conn.dialect())
    );
    Ok(conn
        .query_row(&sql, [release], |row| {
            Ok(LeaseHolder {
                pid: row.get(0)?,
                host: row.get(1)?,
                heartbeat_at: row.get(2)?,
                epoch: row.get(3)?,
                process_start: row.get(4)?,
                ttl_ms: row.get(5)?,
                age_ms: row.get(6)?,
                shared,
            })
        })
        .optional()?)
}

/// The database's clock in ms since the Unix epoch, as SQL: leases are judged on one clock
/// however far apart the machines' clocks are.
pub(super) fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// Set by `relflow worker`: a claim skips a release another process is claiming at that
/// moment (`FOR UPDATE SKIP LOCKED`) instead of waiting for it.
pub static CLAIMS_SKIP_LOCKED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The lease TTL this process declares: `RELFLOW_LEASE_TTL` (`30s`, `2500ms`), else 30 s.
pub fn lease_ttl_ms() -> i64 {
    std::env::var("RELFLOW_LEASE_TTL")
        .ok()
        .and_then(|text| parse_ms(text.trim()))
        .filter(|ms| *ms >= 100)
        .unwrap_or(LEASE_TTL_MS)
}

fn parse_ms(text: &str) -> Option<i64> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok();
    }
    let seconds: f64 = text.strip_suffix('s').unwrap_or(text).parse().ok()?;
    Some((seconds * 1000.0) as i64)
}

/// How often a holder with `ttl_ms` refreshes its heartbeat: several times per TTL.
pub(super) fn heartbeat_every(ttl_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ttl_ms / 5).unwrap_or(1000).clamp(50, 2000))
}

/// This process's start time, as the lease records it.
pub(super) fn own_start() -> Option<i64> {
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
        let (epoch, ttl_ms, holder) = match self.claim(release) {
            // Two claimers raced to create the first row: the loser looks again.
            Err(LeaseError::Store(StoreError::Db(DbError::Postgres {
                conflict: true, ..
            }))) => self.claim(release)?,
            other => other?,
        };
        let me = i64::from(std::process::id());
        let host = host_name();
        match &holder {
            // A row with a pid whose runner is gone: this claim takes the release over.
            Some(h) if h.pid > 0 && !(h.pid == me && h.host == host) => tracing::info!(
                target: "relflow::lease",
                release,
                epoch,
                from_pid = h.pid,
                from_host = %h.host,
                heartbeat_age_ms = h.age_ms,
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
            ttl_ms,
            self.location.clone(),
            on_news,
        ))
    }

    /// One claim in one transaction: the lease row locked (PostgreSQL: another claimer of
    /// the same release waits, then sees this claim), judged, and taken with a new epoch.
    /// Returns the epoch, the TTL declared, and the holder found.
    fn claim(&mut self, release: &str) -> Result<(i64, i64, Option<LeaseHolder>), LeaseError> {
        let me = i64::from(std::process::id());
        let host = host_name();
        let ttl_ms = lease_ttl_ms();
        let now = now_sql(self.conn.dialect());
        let skip = CLAIMS_SKIP_LOCKED.load(std::sync::atomic::Ordering::Relaxed);
        self.conn.atomically(|tx| {
            // A row to lock, even for the first claim.
            tx.execute(
                "INSERT INTO leases (release_id, pid, host, token, heartbeat_at, epoch, ttl_ms)
                 VALUES (?1, 0, '', '', 0, 0, 0) ON CONFLICT (release_id) DO NOTHING",
                [release],
            )?;
            let lock = if skip { "FOR UPDATE SKIP LOCKED" } else { "FOR UPDATE" };
            let holder = read_holder_locking(tx, release, lock)?;
            if holder.is_none() && tx.dialect() == Dialect::Postgres {
                // Another worker is claiming it this very moment.
                return Err(LeaseError::Held {
                    release: release.to_string(),
                    pid: 0,
                    host: "another worker claiming it".to_string(),
                });
            }
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
                &format!(
                    "INSERT INTO leases (release_id, pid, host, token, heartbeat_at, epoch, process_start, ttl_ms)
                     VALUES (?1, ?2, ?3, ?4, {now}, ?5, ?6, ?7)
                     ON CONFLICT (release_id) DO UPDATE SET pid = excluded.pid, host = excluded.host,
                        token = excluded.token, heartbeat_at = excluded.heartbeat_at,
                        epoch = excluded.epoch, process_start = excluded.process_start,
                        ttl_ms = excluded.ttl_ms"
                ),
                params![release, me, host, format!("{me}-{epoch}"), epoch, own_start(), ttl_ms],
            )
            .map_err(StoreError::from)?;
            Ok((epoch, ttl_ms, holder))
        })
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
        // PostgreSQL: the row stays share-locked to the commit, so a takeover waits for this
        // write and every write of the old runner lands before the new one's claim.
        let lock = match self.conn.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR SHARE",
        };
        let check = format!("SELECT epoch FROM leases WHERE release_id = ?1 AND pid > 0 {lock}");
        self.conn.atomically(|conn| {
            let held: Option<i64> = conn
                .query_row(&check, [&release], |row| row.get(0))
                .optional()?;
            if held != Some(epoch) {
                tracing::debug!(target: "relflow::lease", release, epoch, "write refused: the lease was taken over");
                return Err(StoreError::LeaseLost { release });
            }
            write(self)
        })
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
            ttl_ms: LEASE_TTL_MS,
            age_ms: 0,
            shared: false,
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
