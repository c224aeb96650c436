//! Rollback jobs of completed deployments: `queued → in_progress → completed | exception`.

use super::db::params;

use super::records::RollbackJobRecord;
use super::status::RollbackJobStatus;
use super::{Store, StoreError, now_ms};

/// How the reason of a job a killed `relflow rollback` left open begins.
pub const ABANDONED_JOB: &str = "the relflow rollback running this job stopped before it ended";

/// How a job a killed `relflow rollback` left open ends: `completed` when it had reverted the
/// whole deployment (only its own end was not written), else `exception` with the reason.
fn abandoned_end(
    release: &str,
    task: &str,
    task_status: &str,
) -> (RollbackJobStatus, Option<String>) {
    if task_status == "rolled_back" {
        return (RollbackJobStatus::Completed, None);
    }
    let reason = format!(
        "{ABANDONED_JOB}; the deployment may be partly reverted: run `relflow rollback {release} --task {task}` again to finish it"
    );
    (RollbackJobStatus::Exception, Some(reason))
}

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
        Ok(self.conn.insert_returning_id(
            "INSERT INTO rollback_jobs (release_id, task_run_id, status, components, created_at)
             VALUES (?1, ?2, 'queued', ?3, ?4) RETURNING id",
            params![release, task_run, components, now_ms()],
        )?)
    }

    pub fn set_rollback_job_status(
        &self,
        job: i64,
        status: RollbackJobStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let ended = matches!(
            status,
            RollbackJobStatus::Completed | RollbackJobStatus::Exception
        )
        .then(now_ms);
        self.conn.execute(
            "UPDATE rollback_jobs SET status = ?2, error = ?3, ended_at = ?4 WHERE id = ?1",
            params![job, status.as_str(), error, ended],
        )?;
        Ok(())
    }

    /// Jobs a killed `relflow rollback` left `queued` or `in_progress` (its release's lease is
    /// free) end as `exception` with the reason; returns how many. Jobs of a live runner are
    /// left alone.
    pub fn repair_abandoned_rollback_jobs(&self) -> Result<usize, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT j.id, j.release_id, t.task, t.status FROM rollback_jobs j JOIN task_runs t ON t.id = j.task_run_id
             WHERE j.status IN ('queued', 'in_progress')",
        )?;
        let open: Vec<(i64, String, String, String)> = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut repaired = 0;
        for (job, release, task, task_status) in open {
            if self.lease_holder(&release)?.is_some() {
                continue;
            }
            let (status, reason) = abandoned_end(&release, &task, &task_status);
            self.set_rollback_job_status(job, status, reason.as_deref())?;
            crate::failpoint::hit("store.rollback_job");
            repaired += 1;
        }
        Ok(repaired)
    }

    /// Every rollback job of a release, oldest first.
    pub fn rollback_jobs(&self, release: &str) -> Result<Vec<RollbackJobRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, task_run_id, status, components, error, created_at, ended_at
             FROM rollback_jobs WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok((
                RollbackJobRecord {
                    id: row.get(0)?,
                    task_run_id: row.get(1)?,
                    status: row.get(2)?,
                    components: Vec::new(),
                    error: row.get(4)?,
                    created_at: row.get(5)?,
                    ended_at: row.get(6)?,
                },
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut jobs = rows
            .map(|row| {
                let (mut job, components) = row?;
                job.components = serde_json::from_str(&components)
                    .map_err(|e| StoreError::Corrupt(format!("rollback job {}: {e}", job.id)))?;
                Ok(job)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if self.is_read_only() {
            self.show_abandoned_as_repaired(release, &mut jobs)?;
        }
        Ok(jobs)
    }

    /// A read-only store repairs nothing: its open jobs of a release without a runner are
    /// shown as the next writing command will end them.
    fn show_abandoned_as_repaired(
        &self,
        release: &str,
        jobs: &mut [RollbackJobRecord],
    ) -> Result<(), StoreError> {
        let open = |j: &RollbackJobRecord| {
            matches!(
                j.status,
                RollbackJobStatus::Queued | RollbackJobStatus::InProgress
            )
        };
        if !jobs.iter().any(open) || self.lease_holder(release)?.is_some() {
            return Ok(());
        }
        for job in jobs.iter_mut().filter(|j| open(j)) {
            let (task, task_status): (String, String) = self.conn.query_row(
                "SELECT task, status FROM task_runs WHERE id = ?1",
                [job.task_run_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            (job.status, job.error) = abandoned_end(release, &task, &task_status);
        }
        Ok(())
    }
}
