//! Durable release state: a SQLite store (`relflow.db`) in the state directory.

mod control;
mod lease;
mod queries;
mod records;
mod rollback_jobs;
mod schema;
pub mod secrets;
pub mod status;
mod writes;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use control::{ControlAction, ControlRequest};
pub use lease::{
    LEASE_TTL_MS, Lease, LeaseError, LeaseHolder, LeaseNews, read_holder as read_lease_holder,
};
pub use records::*;
pub use rollback_jobs::ABANDONED_JOB;
pub use schema::SCHEMA_VERSION;
pub use status::{AttemptStatus, PhaseStatus, ReleaseStatus, RollbackJobStatus, TaskStatus};

/// The store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state store is at schema version {found}, newer than this relflow supports ({supported}); upgrade relflow"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store holds an unreadable value: {0}")]
    Corrupt(String),
    #[error("no release `{0}` in the state store")]
    UnknownRelease(String),
    #[error(
        "another runner took release {release} over; this one stops without writing anything more"
    )]
    LeaseLost { release: String },
}

/// An open state store.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
    /// (release, epoch) of the lease this store's writes must still hold.
    guard: Option<(String, i64)>,
}

/// Milliseconds since the Unix epoch: how the store keeps time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Creates `dir` (mode 0700) if missing: state holds logs and variables private to the user.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let db = dir.join("relflow.db");
        // Create the file ourselves so it is 0600 from its first byte.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)
            .map_err(|source| StoreError::CreateDir {
                path: db.clone(),
                source,
            })?;
        let mut conn = open_connection(&db)?;
        schema::migrate(&mut conn)?;
        let store = Store {
            conn,
            dir: dir.to_path_buf(),
            guard: None,
        };
        store.repair_abandoned_rollback_jobs()?;
        Ok(store)
    }

    /// An empty store that lives in memory: what reading commands see before any release.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn,
            dir: PathBuf::from(".relflow"),
            guard: None,
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Folder of a release's logs and events.
    pub fn release_dir(&self, release: &str) -> PathBuf {
        self.dir.join("releases").join(release)
    }
}

fn open_connection(db: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL + NORMAL: a killed process loses nothing committed; only power loss may drop the
    // newest transactions, which the lease and attempt repair on resume cover.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}
