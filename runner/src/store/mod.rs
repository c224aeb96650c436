//! Durable release state: a SQLite store (`relflow.db`) in the state directory.

mod actions;
mod control;
pub mod db;
pub mod journal;
mod lease;
mod lease_keeper;
mod open;
mod queries;
mod records;
mod rollback_jobs;
mod schema;
pub mod secrets;
pub mod shared;
pub mod status;
mod target_records;
mod targets;
pub mod tokens;
mod work;
mod writes;

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

pub use control::{ControlAction, ControlRequest};
pub use lease::{
    CLAIMS_SKIP_LOCKED, LEASE_TTL_MS, Lease, LeaseError, LeaseGate, LeaseHolder, LeaseNews,
    lease_ttl_ms, read_holder as read_lease_holder,
};
pub use open::{DB_FILE, describe_kind};
pub use records::*;
pub use rollback_jobs::ABANDONED_JOB;
pub use schema::SCHEMA_VERSION;
pub use status::{AttemptStatus, PhaseStatus, ReleaseStatus, RollbackJobStatus, TaskStatus};
pub use target_records::{ChangeKind, NewTargetChange, Origin, TargetChangeRecord, TargetNow};
pub use work::{CONTROL_CHANNEL, WORK_CHANNEL};

/// The store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state store {path} is at schema version {found}, newer than this relflow supports ({supported}); upgrade relflow"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "state store {path} is damaged: {problem}; relflow will not use it (move it aside to \
         start a new store, or put back a copy from a backup)"
    )]
    Damaged { path: PathBuf, problem: String },
    #[error("cannot use the state store {path}: {problem}")]
    Unusable { path: PathBuf, problem: String },
    #[error("cannot use the state directory {path}: {problem}")]
    StateDir { path: PathBuf, problem: String },
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store: {0}")]
    Db(#[from] db::DbError),
    #[error("state store holds an unreadable value: {0}")]
    Corrupt(String),
    #[error("no release `{0}` in the state store")]
    UnknownRelease(String),
    #[error(
        "another runner took release {release} over; this one stops without writing anything more"
    )]
    LeaseLost { release: String },
}

impl StoreError {
    /// Whether the shared store's connection was lost and could not be made again.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, StoreError::Db(db::DbError::ConnectionLost(_)))
    }
}

/// An open state store.
pub struct Store {
    conn: db::Db,
    /// Where the database is, to open more connections to it (the lease keeper's).
    location: Location,
    dir: PathBuf,
    /// (release, epoch) of the lease this store's writes must still hold.
    guard: Option<(String, i64)>,
    is_read_only: bool,
}

/// Milliseconds since the Unix epoch: how the store keeps time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The user this process acts as: the owner of what it may tighten.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` and its missing parents at mode 0700, whatever the umask (state holds logs
/// and variables private to the user). Folders that exist are left as they are.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let error = |source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        // The umask may have taken bits away, even the owner's.
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(error),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(error(e)),
    }
}

/// Opens `path` with `options`; a file it creates is 0600 whatever the umask, and a file of
/// this user's with other modes is brought back to 0600.
pub fn open_private_file(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = options.mode(0o600).open(path)?;
    let meta = file.metadata()?;
    if meta.mode() & 0o777 != 0o600 && meta.uid() == effective_uid() {
        file.set_permissions(Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl Store {
    /// Opens the store in `dir` for a command that writes: creates the folder and a new store
    /// when missing, refuses a damaged one, migrates an older one.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if let Some(url) = shared::selected() {
            open::prepare_state_dir(dir)?;
            return Store::open_shared(dir, url);
        }
        open::prepare_state_dir(dir)?;
        let db = open::db_path(dir);
        if !open::store_file_exists(&db)? {
            open::create_store(dir, &db)?;
            // Another process may have published its store first; it is checked like any.
            open::store_file_exists(&db)?;
        }
        let mut conn = open_connection(&db)?;
        open::check_schema(&db, &conn)?;
        schema::migrate(&mut conn)?;
        let store = Store {
            conn: db::Db::sqlite(conn),
            location: Location::Sqlite(db),
            dir: dir.to_path_buf(),
            guard: None,
            is_read_only: false,
        };
        store.repair_abandoned_rollback_jobs()?;
        Ok(store)
    }

    /// Opens the store in `dir` for a command that only reads: nothing is created, migrated,
    /// repaired or otherwise written (a missing store reads as empty; an older one is read
    /// through a migrated copy in memory). A damaged store is refused as by [`Store::open`].
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        if let Some(url) = shared::selected() {
            let mut store = Store::open_shared(dir, url)?;
            store.is_read_only = true;
            return Ok(store);
        }
        let db = open::db_path(dir);
        if !open::state_dir_exists(dir)? || !open::store_file_exists(&db)? {
            return Store::empty(dir);
        }
        let (conn, version) = open::connect_read_only(&db)?;
        let (conn, location) = if version < SCHEMA_VERSION {
            let mut copy = schema::copy_to_memory(&conn).map_err(|e| open::open_error(&db, e))?;
            schema::migrate(&mut copy)?;
            (copy, Location::Memory)
        } else {
            (conn, Location::Sqlite(db))
        };
        Ok(Store {
            conn: db::Db::sqlite(conn),
            location,
            dir: dir.to_path_buf(),
            guard: None,
            is_read_only: true,
        })
    }

    /// An empty store in memory: what reading commands see before the first release.
    fn empty(dir: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: db::Db::sqlite(conn),
            location: Location::Memory,
            dir: dir.to_path_buf(),
            guard: None,
            is_read_only: true,
        })
    }

    /// The shared store at `url`; `dir` is the local folder this process still writes its
    /// files to (logs, events, the secret key).
    fn open_shared(dir: &Path, url: &db::PgUrl) -> Result<Store, StoreError> {
        let conn = shared::connect(url)?;
        Ok(Store {
            conn,
            location: Location::Postgres(url.clone()),
            dir: dir.to_path_buf(),
            guard: None,
            is_read_only: false,
        })
    }

    /// Whether this store is shared (PostgreSQL) rather than this state directory's own.
    pub fn is_shared(&self) -> bool {
        matches!(self.location, Location::Postgres(_))
    }

    /// The shared store's URL, if it is one.
    pub fn shared_url(&self) -> Option<&db::PgUrl> {
        match &self.location {
            Location::Postgres(url) => Some(url),
            _ => None,
        }
    }

    /// An empty store that lives in memory (tests and benchmarks).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::empty(Path::new(".relflow"))
    }

    /// Whether this store was opened by [`Store::open_read_only`]: it shows what the
    /// repairs of a writing command would do instead of doing them.
    pub fn is_read_only(&self) -> bool {
        self.is_read_only
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

/// Where a store's database is.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(db::PgUrl),
    /// In memory: no other connection can reach it.
    Memory,
}

/// Each shared store's one connection for lease keepers and lock probes of this process
/// (single statements, never a transaction): a worker driving many releases holds one.
static SIDE_CONNECTIONS: std::sync::Mutex<Vec<(String, db::PgConn)>> =
    std::sync::Mutex::new(Vec::new());

impl Location {
    /// A connection for single statements outside any transaction: on a shared store, this
    /// process's one side connection; on SQLite, a new connection.
    pub fn connect_side(&self) -> Result<db::Db, StoreError> {
        let Location::Postgres(url) = self else {
            return self.connect();
        };
        let mut side = SIDE_CONNECTIONS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, conn)) = side.iter().find(|(key, _)| key == url.key()) {
            return Ok(db::Db::postgres(conn.share()));
        }
        let conn = db::PgConn::connect(url).map_err(|e| StoreError::Unusable {
            path: shared::shown(url),
            problem: e.to_string(),
        })?;
        let handle = conn.share();
        side.push((url.key().to_string(), conn));
        Ok(db::Db::postgres(handle))
    }

    /// Another connection to the same database.
    pub fn connect(&self) -> Result<db::Db, StoreError> {
        match self {
            Location::Sqlite(path) => Ok(db::Db::sqlite(open_connection(path)?)),
            Location::Postgres(url) => {
                db::PgConn::connect(url)
                    .map(db::Db::postgres)
                    .map_err(|e| StoreError::Unusable {
                        path: shared::shown(url),
                        problem: e.to_string(),
                    })
            }
            Location::Memory => Err(StoreError::Corrupt(
                "a store in memory has no second connection".to_string(),
            )),
        }
    }
}

/// A read-write connection to the existing store `db` (never creating one).
fn open_connection(db: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(|e| open::open_error(db, e))?;
    configure(&conn).map_err(|e| open::open_error(db, e))?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL + NORMAL: a killed process loses nothing committed; only power loss may drop the
    // newest transactions, which the lease and attempt repair on resume cover.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
