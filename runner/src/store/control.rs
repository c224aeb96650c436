//! Requests a person makes to the runner that holds a release (`relflow abort`, `relflow
//! pause` from another shell). The holder's lease keeper sees them within a quarter second;
//! the runner marks them handled once it has acted, which the requesting command waits for.

use super::db::{Db, DbError, OptionalExtension, Row, params};

use super::{Store, StoreError, now_ms};

/// What a person asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// End running attempts, run nothing more (with `rollback`: the rollback order first).
    Abort { rollback: bool },
    /// Start no new task; let running ones finish; leave the release paused.
    Pause,
}

impl ControlAction {
    /// The command a person types: `abort`, `abort --rollback`, `pause`.
    pub fn verb(self) -> &'static str {
        match self {
            ControlAction::Abort { rollback: true } => "abort --rollback",
            ControlAction::Abort { rollback: false } => "abort",
            ControlAction::Pause => "pause",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ControlAction::Abort { .. } => "abort",
            ControlAction::Pause => "pause",
        }
    }
}

/// One stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    pub id: i64,
    pub action: ControlAction,
    pub actor: String,
    pub comment: Option<String>,
    pub requested_at: i64,
    pub handled_at: Option<i64>,
}

const COLUMNS: &str = "id, action, rollback, actor, comment, requested_at, handled_at";

fn from_row(row: &Row) -> Result<ControlRequest, DbError> {
    let action: String = row.get(1)?;
    let rollback: bool = row.get(2)?;
    Ok(ControlRequest {
        id: row.get(0)?,
        action: if action == "pause" {
            ControlAction::Pause
        } else {
            ControlAction::Abort { rollback }
        },
        actor: row.get(3)?,
        comment: row.get(4)?,
        requested_at: row.get(5)?,
        handled_at: row.get(6)?,
    })
}

/// Requests of `release` not handled yet, oldest first.
pub(super) fn open_requests(conn: &Db, release: &str) -> Result<Vec<ControlRequest>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM control_requests WHERE release_id = ?1 AND handled_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([release], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Store {
    /// Records a request for the runner holding `release`; returns its id.
    pub fn request_control(
        &self,
        release: &str,
        action: ControlAction,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<i64, StoreError> {
        let rollback = matches!(action, ControlAction::Abort { rollback: true });
        self.atomically(|conn| {
            let id = conn.insert_returning_id(
                "INSERT INTO control_requests (release_id, action, rollback, actor, comment, requested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                params![release, action.as_str(), rollback, actor, comment, now_ms()],
            )?;
            self.announce(super::CONTROL_CHANNEL)?;
            Ok(id)
        })
    }

    /// One request, to see whether it was handled.
    pub fn control_request(&self, id: i64) -> Result<Option<ControlRequest>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM control_requests WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Requests of `release` not handled yet.
    pub fn open_control_requests(&self, release: &str) -> Result<Vec<ControlRequest>, StoreError> {
        open_requests(&self.conn, release)
    }

    /// Marks every open request of `release` handled: the runner acted, or the release ended
    /// before it could (the requester then reports how the release stands).
    pub fn mark_control_handled(&self, release: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE control_requests SET handled_at = ?2 WHERE release_id = ?1 AND handled_at IS NULL",
            params![release, now_ms()],
        )?;
        Ok(())
    }
}
