//! The SQLite schema and its migrations. `PRAGMA user_version` holds the schema version.

use rusqlite::Connection;

use super::StoreError;

/// The schema this build writes. Bump it with a new entry in `MIGRATIONS`.
pub const SCHEMA_VERSION: i64 = 5;

/// `MIGRATIONS[n]` takes a store from version n to n + 1.
const MIGRATIONS: &[&str] = &[
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
];

/// Brings `conn` up to `SCHEMA_VERSION`; refuses a store written by a newer relflow.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
