//! Tests of the PostgreSQL harness itself: data in and out through psql, a restart that keeps
//! what was committed, ended backends, and a drop (also during a panic) that leaves no process
//! and no folder, a killed test process (no Drop) that leaves no server; a missing installation fails naming `.ci/run`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::PgServer;
use super::setup::Binaries;
use crate::harness::{wait_or_kill, wait_until};

/// Set in the child process that holds a server until it is killed.
const HOLD: &str = "RELFLOW_PG_HOLD_UNTIL_KILLED";

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
fn pg_killed_test_process_leaves_no_server() {
    let mut holder = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "postgres::harness_tests::pg_server_held_until_killed",
        ])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env(HOLD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the holding test");
    let stdout = holder.stdout.take().expect("piped stdout");
    let mut pids = Vec::new();
    let mut dir = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        // libtest prints `test NAME ... ` before the test's own output, on the same line.
        if let Some((_, rest)) = line.split_once("holding ") {
            let (pm_children, folder) = rest.split_once(" in ").expect("pids and folder");
            pids = pm_children.split(',').map(str::to_string).collect();
            dir = Some(PathBuf::from(folder));
            break;
        }
    }
    assert!(
        !pids.is_empty(),
        "the holding test never started its server"
    );

    // SIGKILL: no unwinding, no Drop; only the parent-death signal can stop the server.
    holder.kill().expect("kill the holding test");
    holder.wait().expect("reap the holding test");

    let gone = wait_until(60, || live_processes(&pids).is_empty());
    assert!(
        gone,
        "postgres outlived its test: {:?}",
        live_processes(&pids)
    );
    // The folder of a killed test stays (nothing ran to remove it); tidy up after this one.
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Run by `pg_killed_test_process_leaves_no_server` in a child process, which it kills.
#[test]
#[ignore = "a helper process of pg_killed_test_process_leaves_no_server"]
fn pg_server_held_until_killed() {
    if std::env::var_os(HOLD).is_none() {
        return;
    }
    let pg = PgServer::start();
    let (pids, dir) = server_processes(&pg);
    println!("holding {} in {}", pids.join(","), dir.display());
    loop {
        std::thread::park();
    }
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

/// Those of `pids` still running: a zombie waiting for its reaper runs no server.
fn live_processes(pids: &[String]) -> Vec<String> {
    still_running(pids)
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|stat| !stat.starts_with('Z'))
        })
        .map(str::to_string)
        .collect()
}

/// `ps` lines for those of `pids` that still exist (zombies included), empty when none.
fn still_running(pids: &[String]) -> String {
    let out = Command::new("ps")
        .args(["-o", "pid=,stat=,args=", "-p", &pids.join(",")])
        .output()
        .expect("run ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
