//! Reading the store, and planning a new release into it.

use std::collections::BTreeMap;
use std::fs::Permissions;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::db::{Db, DbError, Dialect, OptionalExtension, Row, params};

use super::records::*;
use super::{Store, StoreError, now_ms};

fn release_from_row(row: &Row) -> Result<(ReleaseRecord, String), DbError> {
    Ok((
        ReleaseRecord {
            id: row.get("id")?,
            pipeline: row.get("pipeline")?,
            pipeline_file: row.get("pipeline_file")?,
            pipeline_source: row.get("pipeline_source")?,
            status: row.get("status")?,
            variables: BTreeMap::new(),
            reason: row.get("reason")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            rolled_back_later: Vec::new(),
        },
        row.get("variables")?,
    ))
}

/// Variables are stored as a JSON object.
fn finish_release(
    (mut record, variables): (ReleaseRecord, String),
) -> Result<ReleaseRecord, StoreError> {
    record.variables = serde_json::from_str(&variables)
        .map_err(|e| StoreError::Corrupt(format!("variables of {}: {e}", record.id)))?;
    Ok(record)
}

/// Claims the folder of the first release id from `<pipeline>-<next>` on whose folder is not
/// taken, by creating it: an id is never reused, even when the store was replaced or lost and
/// counts from 1 again (its logs and events would be appended to an old release's otherwise).
/// Ids skipped this way are left unused.
fn claim_release_dir(dir: &Path, pipeline: &str, next: i64) -> Result<(String, i64), StoreError> {
    let releases = dir.join("releases");
    super::create_private_dir(&releases)?;
    let mut seq = next;
    loop {
        let id = format!("{pipeline}-{seq}");
        let folder = releases.join(&id);
        match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
            Ok(()) => {
                std::fs::set_permissions(&folder, Permissions::from_mode(0o700)).map_err(
                    |source| StoreError::CreateDir {
                        path: folder.clone(),
                        source,
                    },
                )?;
                return Ok((id, seq));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::debug!(release = %id, "its folder exists already: the id is skipped");
                seq += 1;
            }
            Err(source) => {
                return Err(StoreError::CreateDir {
                    path: folder,
                    source,
                });
            }
        }
    }
}

impl Store {
    /// Creates release `<pipeline>-<n>` with every phase and task `planned`, and the secret
    /// values it keeps (encrypted), in one transaction; `n` counts up per pipeline, past ids
    /// whose folder exists.
    pub fn create_release(
        &mut self,
        pipeline: &str,
        pipeline_file: &str,
        pipeline_source: &str,
        variables: &BTreeMap<String, String>,
        phases: &[PlannedPhase],
        kept: Option<(&super::secrets::SecretValues, &super::secrets::SecretKey)>,
    ) -> Result<String, super::secrets::SecretError> {
        let now = now_ms();
        let dir = self.dir.clone();
        self.conn.atomically(|tx| {
        if tx.dialect() == Dialect::Postgres {
            // Two machines numbering releases of one pipeline at once: one waits.
            tx.execute_batch("LOCK TABLE releases IN SHARE ROW EXCLUSIVE MODE")?;
        }
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM releases WHERE pipeline = ?1",
            [pipeline],
            |row| row.get(0),
        )?;
        let (id, seq) = claim_release_dir(&dir, pipeline, next)?;
        let vars =
            serde_json::to_string(variables).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO releases (id, pipeline, seq, pipeline_file, pipeline_source, status, variables, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'planned', ?6, ?7, ?7)",
            params![id, pipeline, seq, pipeline_file, pipeline_source, vars, now],
        )?;
        for (position, phase) in phases.iter().enumerate() {
            insert_phase_run(tx, &id, position as i64, &phase.phase, 1, phase)?;
        }
        if let Some((values, key)) = kept {
            super::secrets::insert_sealed(tx, &id, values, key)?;
        }
        Ok(id)
        })
    }

    pub fn release(&self, id: &str) -> Result<ReleaseRecord, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT * FROM releases WHERE id = ?1",
                [id],
                release_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::UnknownRelease(id.to_string()))?;
        let mut record = finish_release(row)?;
        record.rolled_back_later = self
            .rolled_back_later(Some(id))?
            .remove(id)
            .unwrap_or_default();
        Ok(record)
    }

    /// Every release, oldest first.
    pub fn releases(&self) -> Result<Vec<ReleaseRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM releases ORDER BY created_at, pipeline, seq")?;
        let rows = stmt.query_map([], release_from_row)?;
        let mut later = self.rolled_back_later(None)?;
        rows.map(|row| {
            let mut record = finish_release(row?)?;
            record.rolled_back_later = later.remove(&record.id).unwrap_or_default();
            Ok(record)
        })
        .collect()
    }

    /// The newest release, if any.
    pub fn latest_release(&self) -> Result<Option<ReleaseRecord>, StoreError> {
        Ok(self.releases()?.pop())
    }

    pub fn phase_runs(&self, release: &str) -> Result<Vec<PhaseRunRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, position, phase, run_no, status, started_at, ended_at, variables
             FROM phase_runs WHERE release_id = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok((
                PhaseRunRecord {
                    id: row.get(0)?,
                    position: row.get(1)?,
                    phase: row.get(2)?,
                    run_no: row.get(3)?,
                    status: row.get(4)?,
                    variables: None,
                    started_at: row.get(5)?,
                    ended_at: row.get(6)?,
                },
                row.get::<_, Option<String>>(7)?,
            ))
        })?;
        rows.map(|row| {
            let (mut record, variables) = row?;
            record.variables = variables
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| {
                    StoreError::Corrupt(format!("variables of phase run {}: {e}", record.id))
                })?;
            Ok(record)
        })
        .collect()
    }

    /// Task runs of a release, by phase run then position.
    pub fn task_runs(&self, release: &str) -> Result<Vec<TaskRunRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.id, t.phase_run_id, t.position, t.step, t.task, t.kind, t.status, t.attempts,
                    t.handle, t.retry_at, t.error_class, t.error, t.started_at, t.ended_at
             FROM task_runs t JOIN phase_runs p ON p.id = t.phase_run_id
             WHERE t.release_id = ?1 ORDER BY p.position, t.position",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok(TaskRunRecord {
                id: row.get(0)?,
                phase_run_id: row.get(1)?,
                position: row.get(2)?,
                step: row.get(3)?,
                task: row.get(4)?,
                kind: row.get(5)?,
                status: row.get(6)?,
                attempts: row.get(7)?,
                handle: row.get(8)?,
                retry_at: row.get(9)?,
                error_class: row.get(10)?,
                error: row.get(11)?,
                started_at: row.get(12)?,
                ended_at: row.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Attempts of every task run of a release, by task run then number.
    pub fn attempts(&self, release: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.task_run_id, a.number, a.status, a.error_class, a.message, a.exit_code,
                    a.started_at, a.ended_at
             FROM attempts a JOIN task_runs t ON t.id = a.task_run_id
             WHERE t.release_id = ?1 ORDER BY a.task_run_id, a.number",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok(AttemptRecord {
                task_run_id: row.get(0)?,
                number: row.get(1)?,
                status: row.get(2)?,
                error_class: row.get(3)?,
                message: row.get(4)?,
                exit_code: row.get(5)?,
                started_at: row.get(6)?,
                ended_at: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn decisions(&self, release: &str) -> Result<Vec<DecisionRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task_run_id, decision, rule, detail, at FROM decisions
             WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok(DecisionRecord {
                task_run_id: row.get(0)?,
                decision: row.get(1)?,
                rule: row.get(2)?,
                detail: row.get(3)?,
                at: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Store {
    /// Appends new runs of `phases` right after phase run `current` (later runs move down),
    /// closes `current` (its planned tasks become `superseded`), and skips the tasks before
    /// `from_task` in the first new run — all in one transaction. Returns the new runs' ids.
    pub fn append_phase_runs(
        &mut self,
        release: &str,
        current: i64,
        phases: &[(PlannedPhase, i64)],
        from_task: Option<&str>,
    ) -> Result<Vec<i64>, StoreError> {
        self.guarded_write(|store| {
            store.atomically(|tx| append_runs(tx, release, current, phases, from_task))
        })
    }
}

fn append_runs(
    tx: &Db,
    release: &str,
    current: i64,
    phases: &[(PlannedPhase, i64)],
    from_task: Option<&str>,
) -> Result<Vec<i64>, StoreError> {
    {
        let position: i64 = tx.query_row(
            "SELECT position FROM phase_runs WHERE id = ?1",
            [current],
            |r| r.get(0),
        )?;
        let k = phases.len() as i64;
        // Two steps through negative numbers keep (release_id, position) unique throughout.
        tx.execute(
            "UPDATE phase_runs SET position = -position - 1 - ?3 WHERE release_id = ?1 AND position > ?2",
            params![release, position, k],
        )?;
        tx.execute(
            "UPDATE phase_runs SET position = -position - 1 WHERE release_id = ?1 AND position < 0",
            [release],
        )?;
        tx.execute(
            "UPDATE task_runs SET status = 'superseded' WHERE phase_run_id = ?1 AND status = 'planned'",
            [current],
        )?;
        tx.execute(
            "UPDATE phase_runs SET status = CASE
                 WHEN EXISTS (SELECT 1 FROM task_runs WHERE phase_run_id = ?1 AND status IN ('failed', 'rolled_back'))
                 THEN 'failed' ELSE 'superseded' END,
               ended_at = ?2
             WHERE id = ?1 AND status IN ('planned', 'running', 'paused')",
            params![current, now_ms()],
        )?;
        let mut ids = Vec::new();
        for (offset, (planned, run_no)) in phases.iter().enumerate() {
            ids.push(insert_phase_run(
                tx,
                release,
                position + 1 + offset as i64,
                &planned.phase,
                *run_no,
                planned,
            )?);
        }
        if let (Some(task), Some(first)) = (from_task, ids.first()) {
            tx.execute(
                "UPDATE task_runs SET status = 'skipped', error = 'before --from-task'
                 WHERE phase_run_id = ?1 AND position < (SELECT position FROM task_runs WHERE phase_run_id = ?1 AND task = ?2)",
                params![first, task],
            )?;
        }
        Ok(ids)
    }
}

/// Inserts one phase run and its planned task runs.
pub(super) fn insert_phase_run(
    tx: &Db,
    release: &str,
    position: i64,
    phase: &str,
    run_no: i64,
    planned: &PlannedPhase,
) -> Result<i64, StoreError> {
    let phase_run_id = tx.insert_returning_id(
        "INSERT INTO phase_runs (release_id, position, phase, run_no, status)
         VALUES (?1, ?2, ?3, ?4, 'planned') RETURNING id",
        params![release, position, phase, run_no],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO task_runs (release_id, phase_run_id, position, step, task, kind, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned')",
    )?;
    for (position, task) in planned.tasks.iter().enumerate() {
        stmt.execute(params![
            release,
            phase_run_id,
            position as i64,
            task.step,
            task.task,
            task.kind
        ])?;
    }
    Ok(phase_run_id)
}
