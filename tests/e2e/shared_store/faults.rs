//! PostgreSQL faults as a user meets them: a store that is down, refuses the login or is
//! newer than the binary (exit 6, the URL shown without its password), a `--store` that is
//! no store (exit 2), and a connection lost mid-release: ended backends (idle, or inside a
//! statement the server then never ran) and an immediate restart are reconnected (nothing
//! committed lost, nothing run twice); a server that stays
//! down stops the runner cleanly (exit 6), and `resume` finishes once it is back.

use std::process::Child;
use std::time::Duration;

use crate::harness::{Outcome, Sandbox, wait_or_kill, wait_until};
use crate::policies::{status_json, task};
use crate::postgres::PgServer;

/// The password in every URL these tests give; it must never be printed. The test server
/// trusts local logins, so a password it does not need is simply ignored.
const SECRET: &str = "s3cret-pw-4711";

/// `postgres://postgres:SECRET@127.0.0.1:PORT/DB` of `server`.
fn url_with_password(server: &PgServer, db: &str) -> String {
    server
        .url(db)
        .replacen("postgres@", &format!("postgres:{SECRET}@"), 1)
}

#[track_caller]
fn assert_no_password(out: &Outcome) {
    assert!(
        !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
        "the password was printed:\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
}

/// A store that cannot be used: exit 6, the URL named without its password.
#[track_caller]
fn refused_with(sb: &Sandbox, url: &str, args: &[&str], shown: &str, why: &str) {
    let mut full = vec!["--store", url];
    full.extend_from_slice(args);
    let out = sb.run(&full);
    out.expect_code(6);
    assert_no_password(&out);
    assert!(
        out.stderr.contains(shown) && out.stderr.contains(why),
        "`relflow {}`: expected `{shown}` and `{why}` in:\n{}",
        args.join(" "),
        out.stderr
    );
}

const SIMPLE: &str = r#"
name: simple
phases:
  - name: one
    tasks:
      - { name: a, command: { run: [sh, -c, "echo run >> a.runs"] } }
"#;

#[test]
fn shared_store_down_at_start_exits_6_naming_the_url_without_its_password() {
    let sb = Sandbox::new();
    sb.write("p.yaml", SIMPLE);
    // A port nobody listens on.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("probe a port")
        .port();
    let url = format!("postgres://relflow:{SECRET}@127.0.0.1:{port}/rel");
    let shown = format!("postgres://relflow:***@127.0.0.1:{port}/rel");
    for args in [&["list"][..], &["run", "p.yaml"], &["status", "simple-1"]] {
        refused_with(&sb, &url, args, &shown, "Connection refused");
    }
    assert!(!sb.exists("a.runs"), "nothing ran");

    // A server that was there and is stopped now.
    let server = PgServer::start();
    let db = server.create_database();
    let url = url_with_password(&server, &db);
    sb.run(&["--store", &url, "list"]).expect_code(0);
    server.stop();
    let shown = server.url(&db).replacen("postgres@", "postgres:***@", 1);
    refused_with(&sb, &url, &["run", "p.yaml"], &shown, "cannot connect");
    assert!(!sb.exists("a.runs"), "nothing ran");
}

#[test]
fn shared_store_refusing_the_login_or_without_the_database_exits_6_without_the_password() {
    let server = PgServer::start();
    let db = server.create_database();
    server.psql(&db, "CREATE ROLE app LOGIN PASSWORD 'the-right-one'");
    // `postgres` (the harness's psql) stays trusted; everyone else needs a password.
    let hba = server.dir().join("data/pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("write pg_hba.conf");
    server.restart();
    let sb = Sandbox::new();
    sb.write("p.yaml", SIMPLE);

    let wrong = server
        .url(&db)
        .replacen("postgres@", &format!("app:{SECRET}@"), 1);
    let shown = server.url(&db).replacen("postgres@", "app:***@", 1);
    refused_with(
        &sb,
        &wrong,
        &["run", "p.yaml"],
        &shown,
        "password authentication failed",
    );

    let missing = url_with_password(&server, "no_such_db");
    let shown = server
        .url("no_such_db")
        .replacen("postgres@", "postgres:***@", 1);
    refused_with(
        &sb,
        &missing,
        &["list"],
        &shown,
        "database \"no_such_db\" does not exist",
    );
    assert!(!sb.exists("a.runs"), "nothing ran");
}

#[test]
fn a_store_url_relflow_does_not_know_exits_2_naming_the_flag() {
    let sb = Sandbox::new();
    sb.write("p.yaml", SIMPLE);
    for args in [&["list"][..], &["run", "p.yaml"]] {
        let mut full = vec!["--store", "garbage://x"];
        full.extend_from_slice(args);
        let out = sb.run(&full);
        out.expect_code(2);
        assert!(
            out.stderr.contains("--store") && out.stderr.contains("garbage://x"),
            "{}",
            out.stderr
        );
    }
    assert!(
        !sb.exists("a.runs") && !sb.exists(".relflow"),
        "nothing ran"
    );
}

#[test]
fn a_shared_store_newer_than_the_binary_is_refused_by_every_command() {
    let server = PgServer::start();
    let db = server.create_database();
    let mut sb = Sandbox::new();
    sb.env("RELFLOW_STORE", &url_with_password(&server, &db));
    sb.write("p.yaml", SIMPLE);
    sb.run(&["run", "p.yaml"]).expect_code(0);
    server.psql(&db, "UPDATE relflow_schema SET version = 99");

    let commands: [&[&str]; 10] = [
        &["list"],
        &["status", "simple-1"],
        &["status", "simple-1", "--json"],
        &["run", "p.yaml"],
        &["resume", "simple-1"],
        &["restart-phase", "simple-1", "one"],
        &["logs", "simple-1"],
        &["targets", "--history"],
        &["token", "list"],
        &["rollback", "simple-1"],
    ];
    for args in commands {
        let out = sb.run(args);
        out.expect_code(6);
        assert_no_password(&out);
        assert!(
            out.stderr
                .contains("schema version 99, newer than this relflow supports"),
            "`relflow {}`: {}",
            args.join(" "),
            out.stderr
        );
    }
    assert_eq!(sb.read("a.runs"), "run\n", "nothing ran again");
    assert_eq!(server.psql(&db, "SELECT version FROM relflow_schema"), "99");
}

/// `first`; `hold` records that it started, then waits until the test writes `go`; `after`;
/// then a second phase with `last`. Each appends a line to `<task>.runs` when it runs.
const HOLDING: &str = r#"
name: w
phases:
  - name: one
    tasks:
      - { name: first, command: { run: [sh, -c, "echo run >> first.runs"] } }
      - name: hold
        command:
          run: [sh, -c, "echo run >> hold.runs; touch hold.started; while [ ! -f go ]; do sleep 0.05; done"]
      - { name: after, command: { run: [sh, -c, "echo run >> after.runs"] } }
  - name: two
    tasks:
      - { name: last, command: { run: [sh, -c, "echo run >> last.runs"] } }
"#;

/// A sandbox on a fresh database of `server`, running [`HOLDING`] until `hold` waits.
fn holding(server: &PgServer, db: &str, extra: &[(&str, &str)]) -> (Sandbox, Child) {
    let mut sb = Sandbox::new();
    sb.env("RELFLOW_STORE", &url_with_password(server, db));
    for (key, value) in extra {
        sb.env(key, value);
    }
    sb.write("p.yaml", HOLDING);
    let runner = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_until(60, || sb.exists("hold.started")),
        "the task never started"
    );
    (sb, runner)
}

fn runs(sb: &Sandbox, name: &str) -> usize {
    std::fs::read_to_string(sb.path().join(format!("{name}.runs")))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The release completed with every task run once, one attempt each.
#[track_caller]
fn completed_once(sb: &Sandbox, out: &Outcome) {
    out.expect_code(0);
    assert_no_password(out);
    let doc = status_json(sb, "w-1");
    assert_eq!(doc["status"], "completed", "{doc:#}");
    for name in ["first", "hold", "after", "last"] {
        let t = task(&doc, name);
        assert_eq!(t["status"], "completed", "{name}: {t:#}");
        assert_eq!(
            t["attempt_history"].as_array().map(Vec::len),
            Some(1),
            "{name}"
        );
        assert_eq!(runs(sb, name), 1, "{name} ran once");
    }
}

#[test]
fn shared_store_backends_ended_while_a_task_runs_the_release_completes_running_each_task_once() {
    let server = PgServer::start();
    let db = server.create_database();
    let (sb, runner) = holding(&server, &db, &[]);
    let ended = server.terminate_backends(&db);
    assert!(ended >= 1, "the runner had no connection to end");
    sb.write("go", "");
    let (out, exited) = wait_or_kill(runner, Duration::from_secs(120));
    assert!(exited, "the runner hung: {}", out.stderr);
    completed_once(&sb, &out);
}

#[test]
fn shared_store_backend_ended_inside_a_write_stops_the_runner_cleanly_and_resume_finishes() {
    let server = PgServer::start();
    let db = server.create_database();
    let (sb, runner) = holding(&server, &db, &[]);
    // A session of the test holds `task_runs`, so the runner's write of `hold`'s end waits.
    let mut locker = server
        .psql_command(
            &db,
            "BEGIN; LOCK TABLE task_runs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)",
        )
        .spawn()
        .expect("spawn psql");
    let locked = "SELECT count(*) FROM pg_locks WHERE relation = 'task_runs'::regclass \
                  AND mode = 'AccessExclusiveLock' AND granted";
    assert!(
        wait_until(30, || server.psql(&db, locked) == "1"),
        "the test never held the table"
    );
    sb.write("go", "");
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND application_name = 'relflow' AND wait_event_type = 'Lock'";
    assert!(
        wait_until(60, || server.psql(&db, waiting) == "1"),
        "the runner never waited on the table"
    );
    // Ends the runner's connections, the one inside its transaction too, and the locker's.
    assert!(server.terminate_backends(&db) >= 2);
    let _ = locker.wait();
    let (out, exited) = wait_or_kill(runner, Duration::from_secs(120));
    assert!(exited, "the runner hung: {}", out.stderr);
    // The transaction died with its connection: nothing of it was stored, so the runner
    // stops rather than go on from a state it cannot vouch for.
    // The write that was lost is `hold`'s attempt end (with its log lines, which name the
    // task run): its end was never stored, so `resume` runs it again as a new attempt, as after
    // any interruption (README: "a command task whose end could not be stored").
    stopped_then_resumed(&sb, &out, &["interrupted", "succeeded"]);
}

#[test]
fn shared_store_restarted_while_a_task_runs_the_release_completes_running_each_task_once() {
    let server = PgServer::start();
    let db = server.create_database();
    let (sb, runner) = holding(&server, &db, &[]);
    server.restart();
    sb.write("go", "");
    let (out, exited) = wait_or_kill(runner, Duration::from_secs(120));
    assert!(exited, "the runner hung: {}", out.stderr);
    completed_once(&sb, &out);
}

#[test]
fn shared_store_gone_for_good_stops_the_runner_with_exit_6_and_resume_finishes_once_it_is_back() {
    let server = PgServer::start();
    let db = server.create_database();
    // A short reconnect window, so the runner gives up in seconds rather than 30.
    let (sb, runner) = holding(&server, &db, &[("RELFLOW_STORE_RECONNECT", "1s")]);
    server.stop();
    sb.write("go", "");
    let (out, exited) = wait_or_kill(runner, Duration::from_secs(120));
    assert!(exited, "the runner hung: {}", out.stderr);
    server.start_again();
    // `hold` ended while its result could not be stored: resume runs it again, as after
    // any interruption.
    stopped_then_resumed(&sb, &out, &["interrupted", "succeeded"]);
    assert!(
        out.stderr.contains("tried again for 1s"),
        "the runner says how long it tried: {}",
        out.stderr
    );
}

/// The runner stopped with exit 6 saying why and what to run; `resume` finishes the release
/// with `hold`'s attempts as `hold_attempts` (one run per attempt); what was stored (`first`)
/// is not run again.
#[track_caller]
fn stopped_then_resumed(sb: &Sandbox, out: &Outcome, hold_attempts: &[&str]) {
    out.expect_code(6);
    assert_no_password(out);
    for said in [
        "the connection to the store was lost",
        "this runner stopped",
        "relflow resume w-1",
    ] {
        assert!(out.stderr.contains(said), "`{said}` in:\n{}", out.stderr);
    }
    assert_eq!(
        (runs(sb, "after"), runs(sb, "last")),
        (0, 0),
        "nothing ran on"
    );
    sb.run(&["resume", "w-1"]).expect_code(0);
    let doc = status_json(sb, "w-1");
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let hold = task(&doc, "hold");
    let attempts: Vec<&str> = hold["attempt_history"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(attempts, hold_attempts, "{hold:#}");
    let counts: Vec<usize> = ["first", "hold", "after", "last"]
        .iter()
        .map(|name| runs(sb, name))
        .collect();
    assert_eq!(counts, [1, hold_attempts.len(), 1, 1]);
}
