//! Work for `relflow worker`: releases ordered to be driven by whoever is free (`--detach`),
//! and releases whose runner is gone. On a shared store each change a worker must see is
//! announced with `NOTIFY relflow_work`, so idle workers wake at once instead of polling.

use super::db::{Dialect, params};
use super::lease::now_sql;
use super::{Store, StoreError, now_ms};

/// The channel workers listen on.
pub const WORK_CHANNEL: &str = "relflow_work";
/// The channel runners listen on for requests a person makes (abort, pause).
pub const CONTROL_CHANNEL: &str = "relflow_control";

impl Store {
    /// Wakes whoever listens on `channel` once the current transaction commits (at once
    /// outside one). Nothing on SQLite: its workers poll.
    pub(super) fn announce(&self, channel: &str) -> Result<(), StoreError> {
        if self.conn.dialect() == Dialect::Postgres {
            self.conn.execute_batch(&format!("NOTIFY {channel}"))?;
        }
        Ok(())
    }

    /// Leaves `release` to a worker: an `action` ordered by `actor` that a worker carries
    /// out (drives) next.
    pub fn request_drive(
        &self,
        release: &str,
        action: &str,
        actor: &str,
    ) -> Result<i64, StoreError> {
        self.atomically(|conn| {
            let id = conn.insert_returning_id(
                "INSERT INTO drive_requests (release_id, action, actor, requested_at)
                 VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![release, action, actor, now_ms()],
            )?;
            self.announce(WORK_CHANNEL)?;
            Ok(id)
        })
    }

    /// Up to `limit` releases that need a runner and have none: ordered to be driven
    /// (`--detach`), or `running` while their lease is free or its heartbeat older than
    /// the TTL its holder declared. Oldest change first. A worker still claims each one
    /// (the lease decides; this list only proposes).
    pub fn releases_needing_runner(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let now = now_sql(self.conn.dialect());
        // Runners on this host are judged by their pid too (a killed one is gone at once),
        // so their rows are read and judged here.
        let sql = format!(
            "SELECT r.id FROM releases r LEFT JOIN leases l ON l.release_id = r.id
             WHERE (r.status = 'running'
                    OR EXISTS (SELECT 1 FROM drive_requests d
                               WHERE d.release_id = r.id AND d.taken_at IS NULL))
               AND (l.release_id IS NULL OR l.pid = 0 OR {now} - l.heartbeat_at >= l.ttl_ms
                    OR l.host = ?2)
             ORDER BY r.updated_at, r.id LIMIT ?1"
        );
        let host = relflow_plugin::process::host_name();
        let found: Vec<String> = self
            .conn
            .query_map(&sql, params![limit, host], |row| row.get(0))?;
        let mut free = Vec::with_capacity(found.len());
        for release in found {
            if self.lease_holder(&release)?.is_none() {
                free.push(release);
            }
        }
        Ok(free)
    }

    /// The newest open drive request of `release`, if any.
    pub fn open_drive_request(&self, release: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MAX(id) FROM drive_requests WHERE release_id = ?1 AND taken_at IS NULL",
            [release],
            |row| row.get(0),
        )?)
    }

    /// Marks the drive requests of `release` up to `up_to` carried out.
    pub fn finish_drive_requests(&mut self, release: &str, up_to: i64) -> Result<(), StoreError> {
        self.guarded_write(|store| {
            store.conn.execute(
                "UPDATE drive_requests SET taken_at = ?3
                 WHERE release_id = ?1 AND id <= ?2 AND taken_at IS NULL",
                params![release, up_to, now_ms()],
            )?;
            Ok(())
        })
    }
}
