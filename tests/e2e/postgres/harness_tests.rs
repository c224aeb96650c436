//! Tests of the PostgreSQL harness itself: data in and out through psql, a restart that keeps
//! what was committed, ended backends, and a drop (also during a panic) that leaves no process
//! and no folder; a missing installation fails naming `.ci/run`.

use std::path::PathBuf;
use std::process::Command;

use super::PgServer;
use super::setup::Binaries;
use crate::harness::{wait_or_kill, wait_until};

#[test]
fn pg_server_stores_and_reads_back_rows_through_psql() {
    let pg = PgServer::start();
    let db = pg.create_database();
    assert!(db.starts_with("test_"), "{db}");
    let url = pg.url(&db);
    assert!(url.starts_with("postgres://postgres@127.0.0.1:") && url.ends_with(&format!("/{db}")));

    pg.psql(
        &db,
        "CREATE TABLE release (id int PRIMARY KEY, name text NOT NULL)",
    );
    pg.psql(&db, "INSERT INTO release VALUES (1, 'alpha'), (2, 'beta')");
    assert_eq!(
        pg.psql(&db, "SELECT id, name FROM release ORDER BY id"),
        "1|alpha\n2|beta"
    );

    // Only loopback, and each test's database is its own.
    assert_eq!(pg.psql(&db, "SHOW listen_addresses"), "127.0.0.1");
    let other = pg.create_database();
    assert_ne!(other, db);
    assert_eq!(
        pg.psql(
            &other,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'release'"
        ),
        "0"
    );
}

#[test]
fn pg_restart_keeps_committed_data() {
    let pg = PgServer::start();
    let db = pg.create_database();
    pg.psql(
        &db,
        "CREATE TABLE lease (release text PRIMARY KEY, epoch int NOT NULL)",
    );
    pg.psql(&db, "INSERT INTO lease VALUES ('R1', 7)");
    let before = pg.pid();

    pg.restart();

    assert_ne!(pg.pid(), before, "a new postmaster runs after restart");
    assert_eq!(pg.psql(&db, "SELECT release, epoch FROM lease"), "R1|7");
    assert!(pg.url(&db).contains(&format!("/{db}")));
}

#[test]
fn pg_terminate_backends_ends_a_sleeping_session_at_once() {
    let pg = PgServer::start();
    let db = pg.create_database();
    let sleeper = pg
        .psql_command(&db, "SELECT pg_sleep(60)")
        .spawn()
        .expect("spawn psql");
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'";
    assert!(
        wait_until(30, || pg.psql("postgres", waiting) == "1"),
        "the background psql never started its query"
    );

    assert_eq!(pg.terminate_backends(&db), 1);

    // Had it not been ended, psql would sleep on and then succeed; the bound only avoids a hang.
    let (out, exited) = wait_or_kill(sleeper, std::time::Duration::from_secs(50));
    assert!(exited, "psql still sleeping after terminate_backends");
    assert_ne!(out.code, 0, "psql should fail: {out:?}");
    assert!(
        out.stderr
            .contains("terminating connection due to administrator command"),
        "{}",
        out.stderr
    );
    // The server itself carries on.
    assert_eq!(pg.psql(&db, "SELECT 1"), "1");
}

#[test]
fn pg_drop_leaves_no_process_and_no_folder() {
    let pg = PgServer::start();
    let db = pg.create_database();
    let mut session = pg
        .psql_command(&db, "SELECT pg_sleep(60)")
        .spawn()
        .expect("spawn psql");
    let (pids, dir) = server_processes(&pg);
    assert!(pids.len() > 1, "postmaster and its children: {pids:?}");

    drop(pg);

    assert_eq!(still_running(&pids), "", "postgres processes left behind");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !session.wait().expect("reap psql").success(),
        "the session ended with its server"
    );
}

#[test]
fn pg_drop_during_a_panic_stops_the_server() {
    let mut seen = None;
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pg = PgServer::start();
        seen = Some(server_processes(&pg));
        panic!("a failing test");
    }));
    assert!(unwound.is_err());

    let (pids, dir) = seen.expect("the server had started");
    assert_eq!(still_running(&pids), "", "postgres processes left behind");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn pg_missing_installation_fails_naming_the_ci_install_step() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = Binaries::locate(Some(empty.path())).expect_err("no PostgreSQL in an empty folder");
    let message = err.to_string();
    assert!(message.contains("PostgreSQL is not installed"), "{message}");
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("`.ci/run`"), "{message}");
    assert!(
        message.contains("apt-get install -y postgresql"),
        "{message}"
    );
}

/// The postmaster, its children (from `ps`), and the server's folder.
fn server_processes(pg: &PgServer) -> (Vec<String>, PathBuf) {
    let pm = pg.pid().expect("postmaster running").to_string();
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &pm])
        .output()
        .expect("run ps");
    let mut pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    pids.push(pm);
    (pids, pg.dir().to_path_buf())
}

/// `ps` lines for those of `pids` that still exist (zombies included), empty when none.
fn still_running(pids: &[String]) -> String {
    let out = Command::new("ps")
        .args(["-o", "pid=,stat=,args=", "-p", &pids.join(",")])
        .output()
        .expect("run ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
