//! Opening the store. A missing `relflow.db` is a new store; anything else at that path must be
//! a whole relflow store, or the command stops (exit 6) naming the file and the problem — a
//! damaged store is never taken for an empty one. Reading commands open it read-only and write
//! nothing, so they work on a read-only store and on a full disk.

use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::schema::{self, Checked};
use super::{StoreError, create_private_dir, effective_uid};

/// The store's file name in the state directory.
pub const DB_FILE: &str = "relflow.db";

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// `a directory`, `a FIFO`, ...: what a path holds, for messages.
fn kind_of(meta: &Metadata) -> &'static str {
    describe_kind(meta.file_type())
}

/// What a file type is, in words (`a directory`, `a FIFO`, `a device`, ...).
pub fn describe_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symlink"
    } else {
        "a file"
    }
}

fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::NotADirectory => "a folder in its path is not a directory".to_string(),
        _ => err.to_string(),
    }
}

fn damaged(db: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::Damaged {
        path: db.to_path_buf(),
        problem: problem.into(),
    }
}

fn unusable(db: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::Unusable {
        path: db.to_path_buf(),
        problem: problem.into(),
    }
}

fn state_dir_error(dir: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::StateDir {
        path: dir.to_path_buf(),
        problem: problem.into(),
    }
}

/// A symlink at `path` whose target is missing, in words.
fn dangling(path: &Path) -> Option<String> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    let target = fs::read_link(path).ok()?;
    Some(format!(
        "it is a symlink to {}, which does not exist",
        target.display()
    ))
}

/// Whether the state directory exists; an error when its path holds something else.
pub(super) fn state_dir_exists(dir: &Path) -> Result<bool, StoreError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(meta) => Err(state_dir_error(
            dir,
            format!("it is {}, not a directory", kind_of(&meta)),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => match dangling(dir) {
            Some(problem) => Err(state_dir_error(dir, problem)),
            None => Ok(false),
        },
        Err(e) => Err(state_dir_error(dir, describe_io(&e))),
    }
}

/// Creates the state directory, or tightens an existing one to 0700 (when this user owns
/// it): it holds logs and variables private to the user.
pub(super) fn prepare_state_dir(dir: &Path) -> Result<(), StoreError> {
    if !state_dir_exists(dir)? {
        return create_private_dir(dir);
    }
    let meta = fs::metadata(dir).map_err(|e| state_dir_error(dir, describe_io(&e)))?;
    if meta.mode() & 0o077 != 0 && meta.uid() == effective_uid() {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            state_dir_error(
                dir,
                format!("cannot make it private (0700): {}", describe_io(&e)),
            )
        })?;
    }
    Ok(())
}

/// What is at the store's path: `false` = nothing (a new store). Anything but a readable
/// SQLite file is an error.
pub(super) fn store_file_exists(db: &Path) -> Result<bool, StoreError> {
    let meta = match fs::metadata(db) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(problem) = dangling(db) {
                return Err(damaged(db, problem));
            }
            // A new store must not start beside the log of a lost one: SQLite would replay
            // the old pages into it.
            let wal = PathBuf::from(format!("{}-wal", db.display()));
            if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return Err(damaged(
                    db,
                    format!(
                        "it is missing, but its write-ahead log {} is there (the store was \
                         removed without it)",
                        wal.display()
                    ),
                ));
            }
            return Ok(false);
        }
        Err(e) => return Err(unusable(db, describe_io(&e))),
    };
    if !meta.is_file() {
        return Err(damaged(db, format!("it is {}, not a file", kind_of(&meta))));
    }
    if meta.len() == 0 {
        // relflow publishes a store only once its tables are written (see `create_store`).
        return Err(damaged(
            db,
            "it is empty (0 bytes), while a store relflow has written always holds its tables",
        ));
    }
    let mut header = [0u8; 16];
    let mut file = File::open(db).map_err(|e| unusable(db, describe_io(&e)))?;
    match file.read_exact(&mut header) {
        Ok(()) if &header == SQLITE_HEADER => Ok(true),
        Ok(()) => Err(damaged(db, "it is not an SQLite database")),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(damaged(
            db,
            format!(
                "it is too short ({} bytes) to be an SQLite database",
                meta.len()
            ),
        )),
        Err(e) => Err(unusable(db, describe_io(&e))),
    }
}

/// A store error met while opening `db`, naming it.
pub(super) fn open_error(db: &Path, err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            damaged(db, format!("SQLite cannot read it: {err}"))
        }
        _ => unusable(db, err.to_string()),
    }
}

/// Checks the tables and columns of an opened store; returns its schema version.
pub(super) fn check_schema(db: &Path, conn: &Connection) -> Result<i64, StoreError> {
    match schema::check(conn).map_err(|e| open_error(db, e))? {
        Ok(Checked::Whole(version)) => Ok(version),
        Ok(Checked::Newer(found)) => Err(StoreError::NewerSchema {
            path: db.to_path_buf(),
            found,
            supported: schema::SCHEMA_VERSION,
        }),
        Err(problem) => Err(damaged(db, problem)),
    }
}

/// Creates a new store at `db`: written and migrated under a temporary name, then published
/// with a link that never replaces a file, so `relflow.db` is either absent or whole (a crash
/// half-way leaves no empty store that would later read as damage). Losing a race to another
/// process creating it is fine: its store is used.
pub(super) fn create_store(dir: &Path, db: &Path) -> Result<(), StoreError> {
    let temp = dir.join(format!(".{DB_FILE}.new-{}", std::process::id()));
    let _ = fs::remove_file(&temp);
    let result = write_new_store(&temp).and_then(|()| match fs::hard_link(&temp, db) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unusable(
            db,
            format!("cannot create it: {}", describe_io(&e)),
        )),
    });
    let _ = fs::remove_file(&temp);
    result?;
    // The new name must survive a power loss as the store's content does.
    if let Ok(folder) = File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

fn write_new_store(temp: &Path) -> Result<(), StoreError> {
    let file = super::open_private_file(temp, fs::OpenOptions::new().write(true).create_new(true))
        .map_err(|e| unusable(temp, format!("cannot create it: {}", describe_io(&e))))?;
    drop(file);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(temp, flags).map_err(|e| open_error(temp, e))?;
    // The default rollback journal with full syncs: the tables are on disk before the link.
    schema::migrate(&mut conn)?;
    conn.close().map_err(|(_, e)| open_error(temp, e))
}

/// `file:` URI of `db` (percent-encoding what a URI would read otherwise), with `query`.
fn uri(db: &Path, query: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("file:");
    for &byte in db.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out.push('?');
    out.push_str(query);
    out
}

/// Opens `db` read-only and checks it; returns the connection and the schema version.
///
/// A store in WAL mode needs its `-shm` file to be read; when that cannot be created (a
/// read-only folder, a full disk) the store is read as `immutable`: straight from the file,
/// without locks. That file is whole then: the `-wal` and `-shm` files exist while a runner
/// writes (it holds them open), and their absence means no runner is writing.
pub(super) fn connect_read_only(db: &Path) -> Result<(Connection, i64), StoreError> {
    match read_only_attempt(db, "mode=ro") {
        Ok(found) => Ok(found),
        Err((first, true)) => match read_only_attempt(db, "immutable=1") {
            Ok(found) => {
                tracing::debug!(store = %db.display(), "the store's WAL index cannot be read or created: reading it as immutable");
                Ok(found)
            }
            Err(_) => Err(first),
        },
        Err((first, false)) => Err(first),
    }
}

/// One read-only open with URI parameters `query`; the error says whether reading the file
/// as immutable may work where this failed (SQLite could not create or write a file beside
/// the store).
fn read_only_attempt(db: &Path, query: &str) -> Result<(Connection, i64), (StoreError, bool)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let fail = |e: rusqlite::Error| {
        let retry = matches!(
            e.sqlite_error_code(),
            Some(
                ErrorCode::ReadOnly
                    | ErrorCode::CannotOpen
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DiskFull
                    | ErrorCode::PermissionDenied
            )
        );
        (open_error(db, e), retry)
    };
    let conn = Connection::open_with_flags(uri(db, query), flags).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(fail)?;
    match schema::check(&conn).map_err(fail)? {
        Ok(Checked::Whole(version)) => Ok((conn, version)),
        Ok(Checked::Newer(found)) => Err((
            StoreError::NewerSchema {
                path: db.to_path_buf(),
                found,
                supported: schema::SCHEMA_VERSION,
            },
            false,
        )),
        Err(problem) => Err((damaged(db, problem), false)),
    }
}

/// The store's path in `dir`.
pub(super) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_what_sqlite_would_read_as_uri_syntax() {
        assert_eq!(
            uri(Path::new("/a b/x?#%.db"), "mode=ro"),
            "file:/a%20b/x%3F%23%25.db?mode=ro"
        );
    }

    #[test]
    fn odd_store_files_are_damage_and_a_missing_one_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DB_FILE);
        assert!(!store_file_exists(&db).unwrap());
        fs::write(&db, "").unwrap();
        let err = store_file_exists(&db).unwrap_err().to_string();
        assert!(err.contains("is damaged: it is empty (0 bytes)"), "{err}");
        fs::write(&db, "not a database, just text").unwrap();
        let err = store_file_exists(&db).unwrap_err().to_string();
        assert!(err.contains("not an SQLite database"), "{err}");
        fs::remove_file(&db).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone.db"), &db).unwrap();
        let err = store_file_exists(&db).unwrap_err().to_string();
        assert!(
            err.contains("symlink to") && err.contains("gone.db"),
            "{err}"
        );
        fs::remove_file(&db).unwrap();
        fs::create_dir(&db).unwrap();
        let err = store_file_exists(&db).unwrap_err().to_string();
        assert!(err.contains("it is a directory, not a file"), "{err}");
        fs::remove_dir(&db).unwrap();
        fs::write(dir.path().join("relflow.db-wal"), "old pages").unwrap();
        let err = store_file_exists(&db).unwrap_err().to_string();
        assert!(
            err.contains("it is missing, but its write-ahead log"),
            "{err}"
        );
    }

    #[test]
    fn a_new_store_is_published_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = db_path(dir.path());
        create_store(dir.path(), &db).unwrap();
        let (conn, version) = connect_read_only(&db).unwrap();
        assert_eq!(version, schema::SCHEMA_VERSION);
        drop(conn);
        assert_eq!(
            fs::metadata(&db).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second creation (a lost race) keeps the first store.
        create_store(dir.path(), &db).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [DB_FILE]);
    }
}
