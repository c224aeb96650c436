//! Writing state changes. Each write is one statement or one transaction: a kill between two
//! writes leaves a state that `repair_interrupted` understands.

use std::collections::BTreeMap;

use super::db::{Db, params};

use super::status::{AttemptStatus, PhaseStatus, ReleaseStatus, TaskStatus};
use super::{Store, StoreError, now_ms};

impl Store {
    /// Runs `work` atomically, inside or outside an enclosing transaction (a savepoint nests
    /// where `BEGIN` cannot: writes run inside the lease check's transaction).
    pub(super) fn atomically<T>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.atomically(work)
    }

    pub fn set_release_status(
        &self,
        release: &str,
        status: ReleaseStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE releases SET status = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1",
            params![release, status.as_str(), reason, now_ms()],
        )?;
        Ok(())
    }

    pub fn set_variables(
        &self,
        release: &str,
        variables: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(variables).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "UPDATE releases SET variables = ?2, updated_at = ?3 WHERE id = ?1",
            params![release, json, now_ms()],
        )?;
        Ok(())
    }

    pub fn set_phase_status(&self, phase_run: i64, status: PhaseStatus) -> Result<(), StoreError> {
        let now = now_ms();
        let status_text = status.as_str();
        match status {
            PhaseStatus::Running => self.conn.prepare_cached(
                "UPDATE phase_runs SET status = ?2, started_at = COALESCE(started_at, ?3) WHERE id = ?1",
            )?.execute(params![phase_run, status_text, now])?,
            PhaseStatus::Planned | PhaseStatus::Paused => self
                .conn
                .prepare_cached("UPDATE phase_runs SET status = ?2 WHERE id = ?1")?
                .execute(params![phase_run, status_text])?,
            _ => self
                .conn
                .prepare_cached("UPDATE phase_runs SET status = ?2, ended_at = ?3 WHERE id = ?1")?
                .execute(params![phase_run, status_text, now])?,
        };
        Ok(())
    }

    /// Records the variables a phase run starts with.
    pub fn set_phase_variables(
        &self,
        phase_run: i64,
        variables: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(variables).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "UPDATE phase_runs SET variables = ?2 WHERE id = ?1",
            params![phase_run, json],
        )?;
        Ok(())
    }

    /// Sets a task run's status; `error` = (class, message) of the failure it ended on.
    pub fn set_task_status(
        &self,
        task_run: i64,
        status: TaskStatus,
        error: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let (class, message) = error.unzip();
        let ended = (!matches!(
            status,
            TaskStatus::Planned
                | TaskStatus::Running
                | TaskStatus::WaitingRetry
                | TaskStatus::WaitingApproval
                | TaskStatus::WaitingLock
        ))
        .then(now_ms);
        self.conn
            .prepare_cached(
                "UPDATE task_runs SET status = ?2, error_class = COALESCE(?3, error_class),
                    error = COALESCE(?4, error), ended_at = ?5 WHERE id = ?1",
            )?
            .execute(params![task_run, status.as_str(), class, message, ended])?;
        Ok(())
    }

    /// Records the start of attempt `number` and marks the task running, atomically.
    pub fn start_attempt(&self, task_run: i64, number: i64) -> Result<(), StoreError> {
        let now = now_ms();
        self.atomically(|tx| {
        tx.prepare_cached(
            "INSERT INTO attempts (task_run_id, number, status, started_at) VALUES (?1, ?2, 'running', ?3)",
        )?
        .execute(params![task_run, number, now])?;
        tx.prepare_cached(
            "UPDATE task_runs SET status = 'running', attempts = ?2,
                started_at = COALESCE(started_at, ?3), ended_at = NULL WHERE id = ?1",
        )?
        .execute(params![task_run, number, now])?;
        Ok(())
        })
    }

    pub fn finish_attempt(
        &self,
        task_run: i64,
        number: i64,
        status: AttemptStatus,
        error: Option<(&str, &str)>,
        exit_code: Option<i32>,
    ) -> Result<(), StoreError> {
        let (class, message) = error.unzip();
        self.conn
            .prepare_cached(
                "UPDATE attempts SET status = ?3, error_class = ?4, message = ?5, exit_code = ?6,
                    ended_at = ?7 WHERE task_run_id = ?1 AND number = ?2",
            )?
            .execute(params![
                task_run,
                number,
                status.as_str(),
                class,
                message,
                exit_code,
                now_ms()
            ])?;
        Ok(())
    }

    /// Marks a task `waiting_retry` until `retry_at` (ms since epoch).
    pub fn schedule_retry(&self, task_run: i64, retry_at: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE task_runs SET status = 'waiting_retry', retry_at = ?2 WHERE id = ?1",
            params![task_run, retry_at],
        )?;
        Ok(())
    }

    /// Stores the handle of an external operation before anyone waits on it.
    pub fn set_handle(&self, task_run: i64, handle: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE task_runs SET handle = ?2 WHERE id = ?1",
            params![task_run, handle],
        )?;
        Ok(())
    }

    pub fn record_decision(
        &self,
        release: &str,
        task_run: Option<i64>,
        decision: &str,
        rule: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO decisions (release_id, task_run_id, decision, rule, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![release, task_run, decision, rule, detail, now_ms()])?;
        Ok(())
    }
}
