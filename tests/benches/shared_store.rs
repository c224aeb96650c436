//! The shared store's numbers, measured in one run against a real PostgreSQL 15 started here
//! (Debian's `postgresql`, as `.ci/run` installs it):
//!
//! - engine overhead per task: a 200-task release of `wait: 0s` tasks driven by
//!   `relflow run`, on PostgreSQL and on the embedded SQLite (median of 5 each, alternating);
//! - claims per second: 400 releases ordered with `--detach`, driven by 16 `relflow worker`
//!   processes (time from the workers' start to the last release completed);
//! - action → runner reaction: `relflow abort` on a release a runner drives (a 1 h wait), from
//!   the request's row to the runner's `aborted` write (p50/p99 over 40), on PostgreSQL (NOTIFY)
//!   and on SQLite (the keeper's 250 ms look).
//!
//! `cargo bench -p relflow-tests --bench shared_store`

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// The tests' PostgreSQL harness (its modules refer to each other as `super::`).
#[allow(dead_code)]
#[path = "../e2e/postgres/server.rs"]
mod server;
#[allow(dead_code)]
#[path = "../e2e/postgres/setup.rs"]
mod setup;
#[allow(dead_code)]
#[path = "../e2e/postgres/spawner.rs"]
mod spawner;

use server::PgServer;

const BIN: &str = env!("CARGO_BIN_EXE_relflow-e2e");

fn relflow(dir: &Path, store: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RELFLOW_STATE_DIR")
        .env_remove("RELFLOW_STORE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    if let Some(url) = store {
        cmd.env("RELFLOW_STORE", url);
    }
    cmd
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[at]
}

const TASKS: usize = 200;

fn overhead_pipeline() -> String {
    let mut yaml = String::from("name: bench\nphases:\n  - name: work\n    tasks:\n");
    for t in 0..TASKS {
        yaml.push_str(&format!("      - {{ name: t-{t}, wait: 0s }}\n"));
    }
    yaml
}

/// Milliseconds per task of one `relflow run` of the 200-task pipeline.
fn overhead_once(store: Option<&str>) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bench.yaml"), overhead_pipeline()).expect("write");
    let started = Instant::now();
    ok(
        relflow(dir.path(), store, &["run", "bench.yaml"])
            .output()
            .expect("run"),
        "run",
    );
    started.elapsed().as_secs_f64() * 1000.0 / TASKS as f64
}

fn claims_per_second(pg: &PgServer) -> (usize, usize, f64) {
    const RELEASES: usize = 400;
    const WORKERS: usize = 16;
    let db = pg.create_database();
    let url = pg.url(&db);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("one.yaml"),
        "name: one\nphases:\n  - name: p\n    tasks:\n      - { name: t, wait: 0s }\n",
    )
    .expect("write");
    std::thread::scope(|scope| {
        for shell in 0..8 {
            let (dir, url) = (dir.path(), url.as_str());
            scope.spawn(move || {
                for _ in (shell..RELEASES).step_by(8) {
                    ok(
                        relflow(dir, Some(url), &["run", "one.yaml", "--detach"])
                            .output()
                            .expect("run"),
                        "run --detach",
                    );
                }
            });
        }
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            relflow(
                dir.path(),
                Some(&url),
                &[
                    "worker",
                    "--until-idle",
                    "--concurrency",
                    "2",
                    "--poll",
                    "100ms",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker")
        })
        .collect();
    for mut worker in workers {
        assert!(worker.wait().expect("wait").success());
    }
    let seconds = started.elapsed().as_secs_f64();
    let completed: usize = pg
        .psql(
            &db,
            "SELECT count(*) FROM releases WHERE status = 'completed'",
        )
        .trim()
        .parse()
        .expect("count");
    assert_eq!(completed, RELEASES);
    (RELEASES, WORKERS, RELEASES as f64 / seconds)
}

/// Milliseconds from each `abort` request to the runner's `aborted` write, `rounds` times: a
/// runner drives a release waiting 1 h in a task; `relflow abort` asks it from another shell
/// (abort ends a running task at once; `pause` would let it finish).
fn reaction_times(
    dir: &Path,
    store: Option<&str>,
    sql: &dyn Fn(&str) -> String,
    rounds: usize,
) -> (Vec<f64>, Vec<f64>) {
    std::fs::write(
        dir.join("long.yaml"),
        "name: long\nphases:\n  - name: p\n    tasks:\n      - { name: hold, wait: 1h }\n",
    )
    .expect("write");
    // The store (and its schema) exists before anything is asked of it.
    ok(
        relflow(dir, store, &["list"]).output().expect("list"),
        "list",
    );
    let (mut reacted, mut ended) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let release = format!("long-{round}");
        let mut runner = relflow(dir, store, &["run", "long.yaml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run");
        let running = format!(
            "SELECT count(*) FROM task_runs WHERE release_id = '{release}' AND status = 'running'"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while sql(&running).trim() != "1" {
            assert!(
                Instant::now() < deadline,
                "{release}: the runner never started the task"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = relflow(dir, store, &["abort", &release])
            .output()
            .expect("abort");
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = runner.wait();
        // The runner's first write in answer (the running attempt ended) and its last (the
        // release aborted).
        let row = sql(&format!(
            "SELECT c.requested_at, a.ended_at, r.updated_at
             FROM control_requests c, releases r, task_runs t, attempts a
             WHERE r.id = c.release_id AND r.id = '{release}' AND t.release_id = r.id
               AND a.task_run_id = t.id"
        ));
        let ms: Vec<f64> = row
            .trim()
            .split('|')
            .map(|v| v.parse().expect("ms"))
            .collect();
        reacted.push(ms[1] - ms[0]);
        ended.push(ms[2] - ms[0]);
    }
    (reacted, ended)
}

fn main() {
    let pg = PgServer::start();

    // Engine overhead per task, alternating stores.
    let db = pg.create_database();
    let url = pg.url(&db);
    let (mut on_pg, mut on_sqlite) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        on_pg.push(overhead_once(Some(&url)));
        on_sqlite.push(overhead_once(None));
    }
    let (pg_ms, sqlite_ms) = (median(on_pg), median(on_sqlite));
    println!(
        "engine overhead per task ({TASKS} wait: 0s tasks, median of 5): PostgreSQL {pg_ms:.2} ms, SQLite {sqlite_ms:.2} ms ({:.2}x)",
        pg_ms / sqlite_ms
    );

    let (releases, workers, rate) = claims_per_second(&pg);
    println!(
        "claims: {releases} releases driven by {workers} workers: {rate:.0} releases claimed and driven per second"
    );

    let db = pg.create_database();
    let url = pg.url(&db);
    let dir = tempfile::tempdir().expect("tempdir");
    let (pg_reacted, pg_ended) = reaction_times(dir.path(), Some(&url), &|q| pg.psql(&db, q), 40);
    let dir = tempfile::tempdir().expect("tempdir");
    let db_file = dir.path().join(".relflow/relflow.db");
    let sqlite = |q: &str| sqlite_query(&db_file, q);
    let (sqlite_reacted, sqlite_ended) = reaction_times(dir.path(), None, &sqlite, 40);
    let p = |v: &Vec<f64>| (percentile(v.clone(), 0.5), percentile(v.clone(), 0.99));
    for (store, reacted, ended) in [
        ("PostgreSQL (NOTIFY)", &pg_reacted, &pg_ended),
        ("SQLite (250 ms look)", &sqlite_reacted, &sqlite_ended),
    ] {
        let ((r50, r99), (e50, e99)) = (p(reacted), p(ended));
        println!(
            "abort -> runner, 40 rounds, {store}: first write in answer p50 {r50:.0} ms, p99 {r99:.0} ms; release aborted p50 {e50:.0} ms, p99 {e99:.0} ms"
        );
    }
}

/// One query on a SQLite store, as psql prints it (`|` between columns, a line per row).
fn sqlite_query(db: &Path, sql: &str) -> String {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return String::new();
    };
    let Ok(mut stmt) = conn.prepare(sql) else {
        return String::new();
    };
    let width = stmt.column_count();
    let rows = stmt.query_map([], |row| {
        Ok((0..width)
            .map(|i| match row.get::<_, rusqlite::types::Value>(i) {
                Ok(rusqlite::types::Value::Integer(n)) => n.to_string(),
                Ok(rusqlite::types::Value::Text(t)) => t,
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("|"))
    });
    match rows {
        Ok(rows) => rows.flatten().collect::<Vec<_>>().join("\n"),
        Err(_) => String::new(),
    }
}
