//! Two folders, one shared store: the PetPortal release that fails on 2.2 in folder A is
//! listed, shown, logged (every attempt, the same bytes as A's `script_output.log`), streamed
//! through the server's SSE route and fixed forward with `restart-phase --var version=2.3`
//! from folder B, which has its own working directory and state directory; and a SIGKILL
//! right after a durable write leaves the events table and the state agreeing.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use crate::harness::{Outcome, Sandbox};
use crate::postgres::PgServer;
use crate::serve::Server;

const PIPELINE: &str = "pipelines/petportal.yaml";
const TARGET: &str = ".relflow-demo/petportal";
/// B's state directory: a folder of its own, not A's and not B's working directory's.
const B_STATE: &str = "elsewhere/state";

/// Folder A with the PetPortal example (retries 10 ms apart), folder B empty; both on `url`.
fn two_folders(url: &str) -> (Sandbox, Sandbox) {
    let mut a = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    crate::tree::copy_dir(&example, &a.path().join("pipelines"));
    let yaml = a.read(PIPELINE).replace("delay: 1s", "delay: 10ms");
    a.write(PIPELINE, &yaml);
    a.env("RELFLOW_STORE", url);
    let mut b = Sandbox::new();
    b.env("RELFLOW_STORE", url);
    (a, b)
}

/// `relflow --state-dir elsewhere/state ARGS...` in folder B.
fn in_b(b: &Sandbox, args: &[&str]) -> Outcome {
    let mut all = vec!["--state-dir", B_STATE];
    all.extend(args);
    b.run(&all)
}

fn json_of(out: &Outcome) -> Value {
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The latest run of task `name` in a `status --json` document.
fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["tasks"].as_array().expect("tasks"))
        .rfind(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {doc:#}"))
}

/// A's release 1.0 then 2.2 (health check fails 4 times, rolled back to 1.0, exit 4).
fn fail_on_2_2_in_a(a: &Sandbox) {
    a.run(&["run", PIPELINE]).expect_code(0);
    let out = a.run(&["run", PIPELINE, "--var", "version=2.2"]);
    out.expect_code(4);
    assert!(out.stdout.contains("petportal-2"), "{}", out.stdout);
}

#[test]
fn shared_store_a_release_run_in_one_folder_is_seen_logged_and_fixed_forward_from_another() {
    let pg = PgServer::start();
    let url = pg.url(&pg.create_database());
    let (a, b) = two_folders(&url);
    fail_on_2_2_in_a(&a);

    // Seen from B.
    let list = json_of(&in_b(&b, &["list", "--json"]));
    let ids: Vec<&str> = list["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(ids.contains(&"petportal-2"), "{list:#}");
    let doc = json_of(&in_b(&b, &["status", "petportal-2", "--json"]));
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert_eq!(task(&doc, "deploy-petportal")["attempts"], 4, "{doc:#}");

    // Logged from B: the same bytes A's runner wrote to its local file, attempt by attempt.
    let local = a.read(".relflow/releases/petportal-2/deploy/deploy-petportal/script_output.log");
    let logs = in_b(&b, &["logs", "petportal-2", "--task", "deploy-petportal"]);
    logs.expect_code(0);
    assert_eq!(logs.stdout, local);
    for n in 1..=4 {
        assert!(local.contains(&format!("=== attempt {n} ===")), "{local}");
    }
    assert!(local.contains("health check"), "{local}");
    let second = in_b(
        &b,
        &[
            "logs",
            "petportal-2",
            "--task",
            "deploy-petportal",
            "--attempt",
            "2",
        ],
    );
    second.expect_code(0);
    assert!(
        second.stdout.starts_with("=== attempt 2 ===\n"),
        "{}",
        second.stdout
    );
    assert!(
        !second.stdout.contains("=== attempt 3 ==="),
        "{}",
        second.stdout
    );
    assert!(local.contains(&second.stdout), "{}", second.stdout);
    let all = json_of(&in_b(&b, &["logs", "petportal-2", "--json"]));
    let texts: Vec<&str> = all["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter(|l| l["task"] == "deploy-petportal")
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert_eq!(texts, [local.as_str()], "{all:#}");
    // B's logs come from the store, not from files of its own.
    assert!(!b.exists(&format!("{B_STATE}/releases/petportal-2")));

    // What A deployed is what B sees each target run.
    let targets_a = json_of(&a.run(&["targets", "--json"]));
    let targets_b = json_of(&in_b(&b, &["targets", "--json"]));
    assert_eq!(targets_a, targets_b);
    assert!(targets_b.to_string().contains("\"1.0\""), "{targets_b:#}");

    // Fixed forward from B, which drives it to the end.
    let out = in_b(
        &b,
        &[
            "restart-phase",
            "petportal-2",
            "deploy",
            "--var",
            "version=2.3",
        ],
    );
    out.expect_code(0);
    let doc = json_of(&a.run(&["status", "petportal-2", "--json"]));
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(task(&doc, "smoke")["status"], "completed", "{doc:#}");
    assert!(a.exists(&format!("{TARGET}/web/app.js")), "2.3 is deployed");
    // B's runner wrote its local files too, and A reads them from the store.
    let restarted = "releases/petportal-2/deploy#2/deploy-petportal/script_output.log";
    let b_log = b.read(&format!("{B_STATE}/{restarted}"));
    let a_view = a.run(&["logs", "petportal-2", "--task", "deploy-petportal"]);
    a_view.expect_code(0);
    assert!(a_view.stdout.ends_with(&b_log), "{}", a_view.stdout);
    let targets = json_of(&in_b(&b, &["targets", "--json"]));
    assert!(targets.to_string().contains("\"2.3\""), "{targets:#}");
}

/// The `data:` lines of the first `count` server-sent events, with their ids.
fn read_events(response: reqwest::blocking::Response, count: usize) -> Vec<(String, String)> {
    let mut events = Vec::new();
    let mut id = String::new();
    for line in BufReader::new(response).lines() {
        let line = line.expect("line");
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((id.clone(), data.to_string()));
            if events.len() == count {
                break;
            }
        }
    }
    events
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

#[test]
fn shared_store_the_server_in_another_folder_streams_the_events_of_both_runners_by_seq() {
    let pg = PgServer::start();
    let url = pg.url(&pg.create_database());
    let (a, b) = two_folders(&url);
    fail_on_2_2_in_a(&a);
    in_b(
        &b,
        &[
            "restart-phase",
            "petportal-2",
            "deploy",
            "--var",
            "version=2.3",
        ],
    )
    .expect_code(0);
    let from_a = lines_of(&a.read(".relflow/releases/petportal-2/events.jsonl"));
    let from_b = lines_of(&b.read(&format!("{B_STATE}/releases/petportal-2/events.jsonl")));
    assert!(!from_a.is_empty() && !from_b.is_empty());

    let server = Server::start(&b);
    let stream = crate::serve::send(
        server
            .client
            .get(server.url("/releases/petportal-2/events")),
        Some(&server.token),
    );
    assert_eq!(stream.status().as_u16(), 200);
    let events = read_events(stream, from_a.len() + from_b.len());
    let ids: Vec<String> = events.iter().map(|(id, _)| id.clone()).collect();
    let expected: Vec<String> = (1..=events.len()).map(|n| n.to_string()).collect();
    assert_eq!(
        ids, expected,
        "seq numbers the release's events across runners"
    );
    let bodies: Vec<String> = events.into_iter().map(|(_, body)| body).collect();
    assert_eq!(bodies, [from_a.clone(), from_b.clone()].concat());

    // Last-Event-ID resumes after A's events: B's come next.
    let resumed = crate::serve::send(
        server
            .client
            .get(server.url("/releases/petportal-2/events"))
            .header("Last-Event-ID", from_a.len().to_string()),
        Some(&server.token),
    );
    let next = read_events(resumed, 1);
    assert_eq!(next[0].0, (from_a.len() + 1).to_string());
    assert_eq!(next[0].1, from_b[0]);

    // The log route serves B's view of A's lines, attempt by attempt.
    let log = crate::serve::send(
        server
            .client
            .get(server.url("/releases/petportal-2/logs/deploy/deploy-petportal?attempt=3")),
        Some(&server.token),
    );
    assert_eq!(log.status().as_u16(), 200);
    let text = log.text().expect("body");
    let local = a.read(".relflow/releases/petportal-2/deploy/deploy-petportal/script_output.log");
    assert!(
        text.starts_with("=== attempt 3 ===\n") && local.contains(&text),
        "{text}"
    );
}

/// What the store's rows say of a release, beside what its events say: each must be the
/// other's image (an event row exists iff its state change does).
fn assert_events_match_state(pg: &PgServer, db: &str, release: &str) {
    let bodies = pg.psql(
        db,
        &format!("SELECT body FROM events WHERE release_id = '{release}' ORDER BY seq"),
    );
    let seqs = pg.psql(
        db,
        &format!("SELECT seq FROM events WHERE release_id = '{release}' ORDER BY seq"),
    );
    let events: Vec<Value> = bodies
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let expected: Vec<String> = (1..=events.len()).map(|n| n.to_string()).collect();
    assert_eq!(lines_of(&seqs), expected, "seq has no gap");
    let of = |kind: &'static str| events.iter().filter(move |e| e["event"] == kind);

    if let Some(last) = of("release_status").next_back() {
        let status = pg.psql(
            db,
            &format!("SELECT status FROM releases WHERE id = '{release}'"),
        );
        assert_eq!(
            last["status"],
            status.as_str(),
            "release status vs {events:#?}"
        );
    }
    let rows = pg.psql(
        db,
        &format!(
            "SELECT p.phase, t.task, t.status,
                    (SELECT count(*) FROM attempts a WHERE a.task_run_id = t.id),
                    (SELECT count(*) FROM attempts a WHERE a.task_run_id = t.id AND a.ended_at IS NOT NULL)
             FROM task_runs t JOIN phase_runs p ON p.id = t.phase_run_id
             WHERE t.release_id = '{release}'"
        ),
    );
    for row in rows.lines() {
        let cols: Vec<&str> = row.split('|').collect();
        let (phase, name) = (cols[0], cols[1]);
        let mine = |e: &&Value| e["phase"] == phase && e["task"] == name;
        let last = of("task_status").rfind(mine);
        let shown = last.map_or("planned", |e| e["status"].as_str().unwrap_or_default());
        assert_eq!(shown, cols[2], "{phase}/{name}: {events:#?}");
        assert_eq!(
            of("attempt_started").filter(mine).count().to_string(),
            cols[3],
            "{row}"
        );
        assert_eq!(
            of("attempt_finished").filter(mine).count().to_string(),
            cols[4],
            "{row}"
        );
    }
    let decisions = pg.psql(
        db,
        &format!("SELECT count(*) FROM decisions WHERE release_id = '{release}'"),
    );
    let decided = of("decision").count() + of("release_decision").count();
    assert_eq!(decided.to_string(), decisions, "{events:#?}");
}

#[test]
fn shared_store_a_sigkill_right_after_a_durable_write_leaves_its_event_row_with_it() {
    let pg = PgServer::start();
    let points = [
        ("store.attempt_started", 2),
        ("store.attempt_finished", 4),
        ("store.decision", 1),
        ("store.task_status", 6),
    ];
    for (point, n) in points {
        let db = pg.create_database();
        let (a, _b) = two_folders(&pg.url(&db));
        a.run(&["run", PIPELINE]).expect_code(0);
        let args = ["run", PIPELINE, "--var", "version=2.2"];
        let out = a.run_crashing_at(&args, point, n);
        assert_eq!(out.code, -1, "{point}@{n} was hit\n{}", out.stderr);
        assert_events_match_state(&pg, &db, "petportal-2");
        // The runner died before its local file got the line the store has.
        let local = a.read(".relflow/releases/petportal-2/events.jsonl");
        let stored = pg.psql(
            &db,
            "SELECT count(*) FROM events WHERE release_id = 'petportal-2'",
        );
        assert_eq!(
            lines_of(&local).len() + 1,
            stored.parse::<usize>().unwrap_or(0)
        );

        // Resumed, it goes on numbering after the killed runner's events.
        a.run(&["resume", "petportal-2"]).expect_code(4);
        assert_events_match_state(&pg, &db, "petportal-2");
        let status = pg.psql(&db, "SELECT status FROM releases WHERE id = 'petportal-2'");
        assert_eq!(status, "failed", "{point}@{n}");
    }
}

/// Prints a line, then waits for `go` in the sandbox: no state event follows the line
/// until the test lets it.
const HOLD: &str = r#"
name: hold
phases:
  - name: work
    tasks:
      - name: hold
        command: { run: [sh, -c, "echo waiting for go; while [ ! -e ../go ]; do sleep 0.05; done; echo went"] }
"#;

#[test]
fn shared_store_logs_follow_in_another_folder_sees_a_line_before_the_next_state_event() {
    use std::sync::mpsc;
    let pg = PgServer::start();
    let url = pg.url(&pg.create_database());
    let (a, b) = two_folders(&url);
    a.write("pipelines/hold.yaml", HOLD);
    let runner = a.spawn(&["run", "pipelines/hold.yaml"]);
    // Followed once its task runs: a runner holds it then (`--follow` ends at once otherwise).
    let is_running = || {
        let out = in_b(&b, &["status", "hold-1", "--json"]);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        out.code == 0 && doc["phases"][0]["tasks"][0]["status"] == "running"
    };
    assert!(
        crate::harness::wait_until(30, is_running),
        "the task never ran, as seen from B"
    );
    let mut follower = b
        .command(&[
            "--state-dir",
            B_STATE,
            "logs",
            "hold-1",
            "--task",
            "hold",
            "--follow",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn logs --follow");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    // The task prints, then waits: the line reaches B while nothing else happens.
    while !seen.iter().any(|l: &String| l == "waiting for go") {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no `waiting for go` from B's follower ({e}): {seen:?}"),
        }
    }
    assert!(!a.exists("go"));
    a.write("go", "");
    let (out, exited) = crate::harness::wait_or_kill(runner, std::time::Duration::from_secs(60));
    assert!(exited, "the runner did not end");
    out.expect_code(0);
    // The follower ends with the release, having printed the whole log.
    seen.extend(rx.iter());
    let local = a.read(".relflow/releases/hold-1/work/hold/script_output.log");
    assert_eq!(seen, lines_of(&local));
    assert_eq!(seen.last().map(String::as_str), Some("went"), "{seen:?}");
    let _ = follower.wait();
}
