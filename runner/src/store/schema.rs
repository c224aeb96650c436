//! The SQLite schema, its migrations, and the check that a store holds what its version
//! promises. `PRAGMA user_version` holds the schema version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use rusqlite::Connection;

use super::StoreError;

/// The schema this build writes. Bump it with a new entry in `MIGRATIONS`.
pub const SCHEMA_VERSION: i64 = 10;

/// `MIGRATIONS[n]` takes a store from version n to n + 1.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE releases (
    id              TEXT PRIMARY KEY,
    pipeline        TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    pipeline_file   TEXT NOT NULL,
    pipeline_source TEXT NOT NULL,
    status          TEXT NOT NULL,
    variables       TEXT NOT NULL,
    reason          TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (pipeline, seq)
);
CREATE TABLE phase_runs (
    id          INTEGER PRIMARY KEY,
    release_id  TEXT NOT NULL REFERENCES releases(id),
    position    INTEGER NOT NULL,
    phase       TEXT NOT NULL,
    run_no      INTEGER NOT NULL,
    status      TEXT NOT NULL,
    started_at  INTEGER,
    ended_at    INTEGER,
    UNIQUE (release_id, position)
);
CREATE TABLE task_runs (
    id           INTEGER PRIMARY KEY,
    release_id   TEXT NOT NULL REFERENCES releases(id),
    phase_run_id INTEGER NOT NULL REFERENCES phase_runs(id),
    position     INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    task         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    handle       TEXT,
    retry_at     INTEGER,
    error_class  TEXT,
    error        TEXT,
    started_at   INTEGER,
    ended_at     INTEGER
);
CREATE INDEX task_runs_by_release ON task_runs (release_id, phase_run_id, position);
CREATE TABLE attempts (
    task_run_id INTEGER NOT NULL REFERENCES task_runs(id),
    number      INTEGER NOT NULL,
    status      TEXT NOT NULL,
    error_class TEXT,
    message     TEXT,
    exit_code   INTEGER,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    PRIMARY KEY (task_run_id, number)
);
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    release_id  TEXT NOT NULL REFERENCES releases(id),
    task_run_id INTEGER REFERENCES task_runs(id),
    decision    TEXT NOT NULL,
    rule        TEXT NOT NULL,
    detail      TEXT,
    at          INTEGER NOT NULL
);
CREATE TABLE leases (
    release_id   TEXT PRIMARY KEY REFERENCES releases(id),
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    token        TEXT NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
"#,
    // 2: rollback jobs of completed deployments (`relflow rollback`).
    r#"
CREATE TABLE rollback_jobs (
    id          INTEGER PRIMARY KEY,
    release_id  TEXT NOT NULL REFERENCES releases(id),
    task_run_id INTEGER NOT NULL REFERENCES task_runs(id),
    status      TEXT NOT NULL,
    components  TEXT NOT NULL,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
"#,
    // 3: the variables a phase run started with (fix-forward refuses values that failed).
    r#"
ALTER TABLE phase_runs ADD COLUMN variables TEXT;
"#,
    // 4: lease epochs (a superseded runner writes nothing more), the holder's process start
    // time (a reused pid is not the holder), and requests a person makes to a live runner.
    r#"
ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN process_start INTEGER;
CREATE TABLE control_requests (
    id           INTEGER PRIMARY KEY,
    release_id   TEXT NOT NULL REFERENCES releases(id),
    action       TEXT NOT NULL,
    rollback     INTEGER NOT NULL DEFAULT 0,
    actor        TEXT NOT NULL,
    comment      TEXT,
    requested_at INTEGER NOT NULL,
    handled_at   INTEGER
);
CREATE INDEX control_requests_open ON control_requests (release_id, handled_at);
"#,
    // 5: secret values (secret variables, the pipeline text with its literal secrets),
    // encrypted with the key in `secret.key` (see `secrets.rs`).
    r#"
CREATE TABLE secret_values (
    release_id TEXT NOT NULL REFERENCES releases(id),
    name       TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (release_id, name)
);
"#,
    // 6: who ran which command on a release, and why (`--actor`, `--comment`).
    r#"
CREATE TABLE actions (
    id          INTEGER PRIMARY KEY,
    release_id  TEXT NOT NULL REFERENCES releases(id),
    task_run_id INTEGER REFERENCES task_runs(id),
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    comment     TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX actions_release ON actions (release_id);
"#,
    // 7: what each target runs, one row per change (see `targets.rs`); `origin_id` names the
    // `deployed` row that delivered what the target runs after the change.
    r#"
CREATE TABLE target_changes (
    id                 INTEGER PRIMARY KEY,
    backend            TEXT NOT NULL,
    backend_kind       TEXT NOT NULL,
    target_key         TEXT NOT NULL,
    target             TEXT NOT NULL,
    application        TEXT NOT NULL,
    version            TEXT NOT NULL,
    change             TEXT NOT NULL,
    components         TEXT NOT NULL,
    runs_version       TEXT,
    components_version TEXT,
    origin_id          INTEGER REFERENCES target_changes(id),
    release_id         TEXT NOT NULL REFERENCES releases(id),
    phase_run          TEXT NOT NULL,
    task               TEXT NOT NULL,
    task_run_id        INTEGER NOT NULL REFERENCES task_runs(id),
    job_id             INTEGER REFERENCES rollback_jobs(id),
    actor              TEXT,
    at                 INTEGER NOT NULL
);
CREATE INDEX target_changes_by_target ON target_changes (target_key, application, id);
CREATE INDEX target_changes_by_task_run ON target_changes (task_run_id);
CREATE INDEX target_changes_by_release ON target_changes (release_id);
"#,
    // 8: `relflow serve`: API tokens (only their SHA-256) and browser sessions, each tied to
    // the token it was opened with (revoking the token ends its sessions).
    r#"
CREATE TABLE tokens (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    token_name TEXT NOT NULL REFERENCES tokens(name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    // 9: a shared store (`--store postgres://...`): the lease TTL its holder declares, the
    // events and log lines readers on other machines need, and releases ordered to be driven
    // by a worker (`--detach`).
    r#"
ALTER TABLE leases ADD COLUMN ttl_ms INTEGER NOT NULL DEFAULT 30000;
CREATE TABLE events (
    release_id TEXT NOT NULL REFERENCES releases(id),
    seq        INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (release_id, seq)
);
CREATE TABLE log_lines (
    id          INTEGER PRIMARY KEY,
    release_id  TEXT NOT NULL REFERENCES releases(id),
    task_run_id INTEGER NOT NULL REFERENCES task_runs(id),
    attempt     INTEGER NOT NULL,
    line        TEXT NOT NULL
);
CREATE INDEX log_lines_by_task_run ON log_lines (task_run_id, id);
CREATE TABLE drive_requests (
    id           INTEGER PRIMARY KEY,
    release_id   TEXT NOT NULL REFERENCES releases(id),
    action       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    taken_at     INTEGER
);
CREATE INDEX drive_requests_open ON drive_requests (taken_at, release_id);
"#,
    // 10: target locks in a shared store (see `locks/in_store.rs`): one row per lock, its
    // record (NULL while free); SQLite stores keep their locks as files.
    r#"
CREATE TABLE target_locks (
    lock_key TEXT PRIMARY KEY,
    record   TEXT
);
"#,
];

/// Brings `conn` up to `SCHEMA_VERSION`. The caller has checked the store with [`check`]
/// (which refuses a store written by a newer relflow).
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// `PRAGMA user_version`: the schema version a store is at (0 = new).
pub fn user_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Table name → its column names.
type Tables = BTreeMap<String, BTreeSet<String>>;

/// What a store is found to be by [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Every table and column of this schema version is there.
    Whole(i64),
    /// Written by a newer relflow: not checked, refused by the caller.
    Newer(i64),
}

/// Checks that a store holds every table and column its schema version promises, so a store
/// that lost a table is refused instead of failing half-way through a release. `Err` is the
/// problem in words (a read error of SQLite itself is the caller's to report).
pub fn check(conn: &Connection) -> Result<Result<Checked, String>, rusqlite::Error> {
    let version = user_version(conn)?;
    if version > SCHEMA_VERSION {
        return Ok(Ok(Checked::Newer(version)));
    }
    let found = tables(conn)?;
    if version < 0 {
        return Ok(Err(format!(
            "its schema version ({version}) is not one relflow writes"
        )));
    }
    let expected = expected_tables(version);
    if version == 0 {
        // A new store holds nothing; relflow's own tables without a version mean damage.
        return Ok(
            match found
                .keys()
                .find(|t| expected_tables(SCHEMA_VERSION).contains_key(*t))
            {
                Some(table) => Err(format!(
                    "it holds relflow's table `{table}` but no schema version"
                )),
                None => Ok(Checked::Whole(0)),
            },
        );
    }
    for (table, columns) in &expected {
        let Some(present) = found.get(table) else {
            return Ok(Err(format!(
                "table `{table}` is missing (the store is at schema version {version})"
            )));
        };
        if let Some(column) = columns.difference(present).next() {
            return Ok(Err(format!(
                "column `{column}` of table `{table}` is missing (the store is at schema version {version})"
            )));
        }
    }
    Ok(Ok(Checked::Whole(version)))
}

/// The tables and columns of a store at `version`, built once from the migrations themselves
/// (so the check never drifts from what the migrations create).
fn expected_tables(version: i64) -> Tables {
    static BY_VERSION: OnceLock<Vec<Tables>> = OnceLock::new();
    let all = BY_VERSION.get_or_init(|| {
        let mut out = vec![Tables::new()];
        let Ok(conn) = Connection::open_in_memory() else {
            return out;
        };
        for sql in MIGRATIONS {
            // The migrations are constants of this build: they run on every new store.
            if conn.execute_batch(sql).is_err() {
                break;
            }
            out.push(tables(&conn).unwrap_or_default());
        }
        out
    });
    usize::try_from(version)
        .ok()
        .and_then(|v| all.get(v))
        .cloned()
        .unwrap_or_default()
}

/// Every table of `conn` (SQLite's own left out) with its columns.
fn tables(conn: &Connection) -> Result<Tables, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Tables::new();
    for row in rows {
        let (table, column) = row?;
        out.entry(table).or_default().insert(column);
    }
    Ok(out)
}

/// A copy of `conn`'s tables and rows in memory, at the same schema version: a read-only
/// command reads an older store through it after migrating the copy, never the file.
pub fn copy_to_memory(conn: &Connection) -> Result<Connection, rusqlite::Error> {
    let copy = Connection::open_in_memory()?;
    let mut stmt = conn.prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let definitions: Vec<(String, String)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (table, sql) in definitions {
        copy.execute_batch(&sql)?;
        let quoted = table.replace('"', "\"\"");
        let mut select = conn.prepare(&format!("SELECT * FROM \"{quoted}\""))?;
        let width = select.column_count();
        let marks = vec!["?"; width].join(", ");
        let mut insert = copy.prepare(&format!("INSERT INTO \"{quoted}\" VALUES ({marks})"))?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let values = (0..width)
                .map(|i| row.get::<_, rusqlite::types::Value>(i))
                .collect::<Result<Vec<_>, _>>()?;
            insert.execute(rusqlite::params_from_iter(values))?;
        }
    }
    copy.pragma_update(None, "user_version", user_version(conn)?)?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in MIGRATIONS.iter().take(version) {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    #[test]
    fn a_whole_store_passes_at_every_version() {
        for version in 0..=MIGRATIONS.len() {
            let conn = store_at(version);
            assert_eq!(
                check(&conn).unwrap(),
                Ok(Checked::Whole(version as i64)),
                "version {version}"
            );
        }
    }

    #[test]
    fn a_missing_table_or_column_is_named() {
        let conn = store_at(MIGRATIONS.len());
        conn.execute_batch("DROP TABLE attempts").unwrap();
        let problem = check(&conn).unwrap().unwrap_err();
        assert!(
            problem.starts_with("table `attempts` is missing"),
            "{problem}"
        );
        let conn = store_at(MIGRATIONS.len());
        conn.execute_batch("ALTER TABLE leases DROP COLUMN epoch")
            .unwrap();
        let problem = check(&conn).unwrap().unwrap_err();
        assert!(
            problem.starts_with("column `epoch` of table `leases`"),
            "{problem}"
        );
    }

    #[test]
    fn relflow_tables_without_a_version_are_damage_and_newer_stores_are_told() {
        let conn = store_at(1);
        conn.pragma_update(None, "user_version", 0).unwrap();
        assert!(check(&conn).unwrap().is_err());
        let conn = store_at(0);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert_eq!(
            check(&conn).unwrap(),
            Ok(Checked::Newer(SCHEMA_VERSION + 1))
        );
    }

    #[test]
    fn an_older_store_is_copied_to_memory_and_migrated_there() {
        let conn = store_at(1);
        conn.execute(
            "INSERT INTO releases VALUES ('p-1', 'p', 1, 'p.yaml', '', 'completed', '{}', NULL, 1, 2)",
            [],
        )
        .unwrap();
        let mut copy = copy_to_memory(&conn).unwrap();
        assert_eq!(user_version(&copy).unwrap(), 1);
        migrate(&mut copy).unwrap();
        assert_eq!(check(&copy).unwrap(), Ok(Checked::Whole(SCHEMA_VERSION)));
        let id: String = copy
            .query_row("SELECT id FROM releases", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, "p-1");
        assert_eq!(user_version(&conn).unwrap(), 1, "the original is untouched");
    }
}
