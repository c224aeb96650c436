//! Lock records in a shared store (`--store postgres://...`): a row per lock in
//! `target_locks`, so runners on every machine using the store see one another's locks.
//! Each change locks the row (`FOR UPDATE`, the row made first when missing) in one
//! transaction, as the file form locks its folder. A target folder's lock is keyed by the
//! host and the folder's canonical path (the same path on two machines is two targets); a
//! named lock (`exec:`, `xl-deploy:`) by its name alone.

use super::{LockError, LockKey};
use crate::store::db::{Db, OptionalExtension};
use crate::store::{Location, StoreError, shared};

/// The shared store's connection for lock changes, when a shared store is in use.
pub fn store() -> Option<Result<Db, LockError>> {
    let url = shared::selected()?;
    Some(
        Location::Postgres(url.clone())
            .connect()
            .map_err(|e| unusable(&e)),
    )
}

fn unusable(e: &dyn std::fmt::Display) -> LockError {
    LockError::Folder {
        path: "the shared store's target_locks".into(),
        reason: e.to_string(),
    }
}

/// The shared store's side connection for reading a lock (no transaction: no new connection
/// per look while a task waits for its target).
pub fn reader() -> Option<Result<Db, LockError>> {
    let url = shared::selected()?;
    Some(
        Location::Postgres(url.clone())
            .connect_side()
            .map_err(|e| unusable(&e)),
    )
}

/// Whether lock records live in a shared store.
pub fn store_in_use() -> bool {
    shared::selected().is_some()
}

/// The row key of `key`.
pub fn row_key(key: &LockKey) -> String {
    match &key.pointer {
        Some(_) => format!("{}:{}", relflow_plugin::process::host_name(), key.target),
        None => key.target.clone(),
    }
}

/// The record text of `key`'s lock, `None` when it is free.
pub fn read(db: &Db, key: &LockKey) -> Result<Option<String>, LockError> {
    let text: Option<Option<String>> = db
        .query_row(
            "SELECT record FROM target_locks WHERE lock_key = ?1",
            [row_key(key)],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| unusable(&e))?;
    Ok(text.flatten())
}

/// Runs `change` with the current record text of `key`, the row locked until it returns;
/// `change` answers the new text (`None`: free) and a value.
pub fn change<T>(
    db: &Db,
    key: &LockKey,
    change: impl FnOnce(Option<String>) -> Result<(Option<String>, T), LockError>,
) -> Result<T, LockError> {
    let row = row_key(key);
    db.atomically(|tx| {
        tx.execute(
            "INSERT INTO target_locks (lock_key, record) VALUES (?1, NULL)
             ON CONFLICT (lock_key) DO NOTHING",
            [&row],
        )?;
        let current: Option<String> = tx.query_row(
            "SELECT record FROM target_locks WHERE lock_key = ?1 FOR UPDATE",
            [&row],
            |r| r.get(0),
        )?;
        let (next, value) = change(current.clone())?;
        if next != current {
            tx.execute(
                "UPDATE target_locks SET record = ?2 WHERE lock_key = ?1",
                crate::store::db::params![row, next],
            )?;
        }
        Ok::<_, LockErrorOrDb>(value)
    })
    .map_err(LockErrorOrDb::into_lock)
}

/// Every held lock's (row key, record text).
pub fn list(db: &Db) -> Result<Vec<(String, String)>, LockError> {
    db.query_map(
        "SELECT lock_key, record FROM target_locks WHERE record IS NOT NULL ORDER BY lock_key",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .map_err(|e| unusable(&e))
}

/// A lock change failed in the store or in the lock's own rules.
enum LockErrorOrDb {
    Lock(LockError),
    Db(crate::store::db::DbError),
}

impl From<crate::store::db::DbError> for LockErrorOrDb {
    fn from(e: crate::store::db::DbError) -> Self {
        LockErrorOrDb::Db(e)
    }
}

impl From<LockError> for LockErrorOrDb {
    fn from(e: LockError) -> Self {
        LockErrorOrDb::Lock(e)
    }
}

impl LockErrorOrDb {
    fn into_lock(self) -> LockError {
        match self {
            LockErrorOrDb::Lock(e) => e,
            LockErrorOrDb::Db(e) => unusable(&StoreError::from(e)),
        }
    }
}
