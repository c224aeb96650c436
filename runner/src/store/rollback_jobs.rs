//! Rollback jobs of completed deployments: `queued → in_progress → completed | exception`.

use rusqlite::params;

use super::records::RollbackJobRecord;
use super::status::RollbackJobStatus;
use super::{Store, StoreError, now_ms};

impl Store {
    /// Records a new `queued` job; returns its id.
    pub fn create_rollback_job(
        &self,
        release: &str,
        task_run: i64,
        components: &[String],
    ) -> Result<i64, StoreError> {
        let components =
            serde_json::to_string(components).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO rollback_jobs (release_id, task_run_id, status, components, created_at)
             VALUES (?1, ?2, 'queued', ?3, ?4)",
            params![release, task_run, components, now_ms()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_rollback_job_status(
        &self,
        job: i64,
        status: RollbackJobStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let ended = matches!(status, RollbackJobStatus::Completed | RollbackJobStatus::Exception)
            .then(now_ms);
        self.conn.execute(
            "UPDATE rollback_jobs SET status = ?2, error = ?3, ended_at = ?4 WHERE id = ?1",
            params![job, status.as_str(), error, ended],
        )?;
        Ok(())
    }

    /// Every rollback job of a release, oldest first.
    pub fn rollback_jobs(&self, release: &str) -> Result<Vec<RollbackJobRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, task_run_id, status, components, error, created_at, ended_at
             FROM rollback_jobs WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, Option<i64>>(6)?,
            ))
        })?;
        rows.map(|row| {
            let (id, task_run_id, status, components, error, created_at, ended_at) = row?;
            Ok(RollbackJobRecord {
                id,
                task_run_id,
                status: status.parse().map_err(StoreError::Corrupt)?,
                components: serde_json::from_str(&components)
                    .map_err(|e| StoreError::Corrupt(format!("rollback job {id}: {e}")))?,
                error,
                created_at,
                ended_at,
            })
        })
        .collect()
    }
}
