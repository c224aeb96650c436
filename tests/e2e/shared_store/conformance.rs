//! One conformance suite for both stores: every scenario runs twice, on the embedded SQLite
//! store and on a fresh PostgreSQL database (`RELFLOW_STORE`), and asserts the same things a
//! user sees (exit codes, `status --json` statuses, attempts, decisions, phase runs, targets,
//! `list`, tokens). `both_stores!` makes a `sqlite` and a `postgres` test of each scenario.

use std::path::Path;

use serde_json::Value;

use crate::harness::{Outcome, Sandbox, wait_until};
use crate::policies::{decision_kinds, labels, status_json, task, task_in};
use crate::postgres::PgServer;
use crate::tree;

/// A sandbox and the store its commands use.
pub struct World {
    pub sb: Sandbox,
    /// The PostgreSQL server and database, when the store is the shared one.
    pub pg: Option<(PgServer, String)>,
}

impl World {
    /// The embedded store in the sandbox's `.relflow/`.
    pub fn sqlite() -> World {
        World {
            sb: Sandbox::new(),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, named to every command by `RELFLOW_STORE`.
    pub fn postgres() -> World {
        let server = PgServer::start();
        let db = server.create_database();
        let mut sb = Sandbox::new();
        sb.env("RELFLOW_STORE", &server.url(&db));
        World {
            sb,
            pg: Some((server, db)),
        }
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        self.sb.run(args)
    }

    /// The first column of the first row of `sql`, a number, read from whichever store is used.
    pub fn count(&self, sql: &str) -> i64 {
        match &self.pg {
            Some((server, db)) => server.psql(db, sql).trim().parse().unwrap_or(-1),
            None => rusqlite::Connection::open(self.sb.path().join(".relflow/relflow.db"))
                .and_then(|db| db.query_row(sql, [], |row| row.get(0)))
                .unwrap_or(-1),
        }
    }
}

/// `scenario(&World)` as two tests, `NAME::sqlite` and `NAME::postgres`.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::World::sqlite());
            }

            #[test]
            fn postgres() {
                super::$name(&super::World::postgres());
            }
        }
    )*};
}

both_stores!(
    seed_scenario,
    retry_with_backoff_then_success,
    skip_a_failed_task,
    abort_with_rollback,
    pause_then_resume,
    approve_and_reject,
    rollback_of_one_component_and_targets_history,
    token_create_list_revoke,
    restart_phase_twice_numbers_the_runs,
    crash_at_a_durable_write_then_resume,
);

/// `(phase label, status, [(task, status, attempts)])` of every phase run: the timeline's shape.
type Shape = Vec<(String, String, Vec<(String, String, usize)>)>;

fn shape(doc: &Value) -> Shape {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| {
            let tasks = p["tasks"].as_array().expect("tasks").iter();
            let tasks = tasks
                .map(|t| {
                    let attempts = t["attempt_history"].as_array().map_or(0, Vec::len);
                    (text(&t["task"]), text(&t["status"]), attempts)
                })
                .collect();
            (text(&p["label"]), text(&p["status"]), tasks)
        })
        .collect()
}

/// `(task, status, attempts)` as a test writes it.
type TaskShape<'a> = &'a [(&'a str, &'a str, usize)];

fn expected(phases: &[(&str, &str, TaskShape)]) -> Shape {
    phases
        .iter()
        .map(|(label, status, tasks)| {
            let tasks = tasks
                .iter()
                .map(|(t, s, n)| (t.to_string(), s.to_string(), *n))
                .collect();
            (label.to_string(), status.to_string(), tasks)
        })
        .collect()
}

/// `list --json`: `(release, status)` of every release.
fn listed(w: &World) -> Vec<(String, String)> {
    let out = w.run(&["list", "--json"]);
    out.expect_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("list --json");
    doc["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("status"))
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Lines in `<name>.runs`: how often a command task ran.
fn runs(w: &World, name: &str) -> usize {
    std::fs::read_to_string(w.sb.path().join(format!("{name}.runs")))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The example pipelines, with the retry delay of PetPortal's deploy phase shortened.
fn petportal(w: &World) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&example, &w.sb.path().join("pipelines"));
    let yaml = w.sb.read(PETPORTAL).replace("delay: 1s", "delay: 10ms");
    w.sb.write(PETPORTAL, &yaml);
}

const PETPORTAL: &str = "pipelines/petportal.yaml";

fn seed_scenario(w: &World) {
    petportal(w);
    w.run(&["run", PETPORTAL]).expect_code(0);
    w.run(&["run", PETPORTAL, "--var", "version=2.2"])
        .expect_code(4);
    let doc = status_json(&w.sb, "petportal-2");
    assert_eq!(doc["status"], "failed");
    let deploy = task(&doc, "deploy-petportal");
    assert_eq!(deploy["status"], "rolled_back");
    assert_eq!(
        decision_kinds(deploy),
        ["retry", "retry", "retry", "rollback", "rollback_step"]
    );

    w.run(&[
        "restart-phase",
        "petportal-2",
        "deploy",
        "--var",
        "version=2.3",
    ])
    .expect_code(0);
    let doc = status_json(&w.sb, "petportal-2");
    assert_eq!(doc["status"], "completed");
    assert_eq!(
        shape(&doc),
        expected(&[
            (
                "build",
                "completed",
                &[("check-package", "completed", 1), ("lint", "completed", 1)]
            ),
            (
                "deploy",
                "rolled_back",
                &[
                    ("deploy-petportal", "rolled_back", 4),
                    ("smoke", "superseded", 0)
                ]
            ),
            (
                "deploy#2",
                "completed",
                &[
                    ("deploy-petportal", "completed", 1),
                    ("smoke", "completed", 1)
                ]
            ),
        ])
    );
    assert_eq!(doc["phases"][2]["variables"]["version"], "2.3");
    assert_eq!(
        listed(w),
        pairs(&[("petportal-1", "completed"), ("petportal-2", "completed")])
    );
    let targets = w.run(&["targets", "--json"]);
    targets.expect_code(0);
    let targets: Value = serde_json::from_str(&targets.stdout).expect("targets --json");
    assert_eq!(targets["targets"][0]["version"], "2.3", "{targets:#}");
    assert_eq!(targets["targets"][0]["deployed_by"]["phase"], "deploy#2");
}

fn retry_with_backoff_then_success(w: &World) {
    w.sb.write(
        "p.yaml",
        r#"
name: flaky
phases:
  - name: deploy
    tasks:
      - name: flaky
        command: { run: [sh, -c, "echo run >> flaky.runs; [ $(wc -l < flaky.runs) -ge 3 ]"] }
        on_failure:
          retry: { retries: 3, when: [task_failed], delay: 10ms, backoff: exponential, jitter: false }
"#,
    );
    w.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(runs(w, "flaky"), 3);
    let doc = status_json(&w.sb, "flaky-1");
    assert_eq!(doc["status"], "completed");
    let flaky = task(&doc, "flaky");
    assert_eq!(flaky["status"], "completed");
    let statuses: Vec<&str> = flaky["attempt_history"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"], "{flaky:#}");
    assert_eq!(decision_kinds(flaky), ["retry", "retry"]);
}

/// build: `a`; `b` fails until `fixed` exists (one retry, then the release halts); `c`.
/// deploy: `d`. The flow rollback appends `flow` to `order.log`.
const HALTING: &str = r#"
name: cm
rollback: { run: [sh, -c, "echo flow >> order.log"] }
phases:
  - name: build
    tasks:
      - { name: a, command: { run: [sh, -c, "echo run >> a.runs"] } }
      - name: b
        command: { run: [sh, -c, "echo run >> b.runs; test -f fixed"] }
        on_failure:
          retry: { retries: 1, when: [task_failed], delay: 10ms, backoff: fixed, jitter: false }
      - { name: c, command: { run: [sh, -c, "echo run >> c.runs"] } }
  - name: deploy
    tasks:
      - { name: d, command: { run: [sh, -c, "echo run >> d.runs"] } }
"#;

fn halted(w: &World) {
    w.sb.write("p.yaml", HALTING);
    w.run(&["run", "p.yaml"]).expect_code(1);
    let doc = status_json(&w.sb, "cm-1");
    assert_eq!(doc["status"], "failed");
    assert_eq!(task(&doc, "b")["status"], "failed");
    assert_eq!(runs(w, "b"), 2);
}

fn skip_a_failed_task(w: &World) {
    halted(w);
    w.run(&["skip", "cm-1", "--task", "b", "--comment", "known issue"])
        .expect_code(0);
    let doc = status_json(&w.sb, "cm-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(
        shape(&doc),
        expected(&[
            (
                "build",
                "completed",
                &[
                    ("a", "completed", 1),
                    ("b", "skipped", 2),
                    ("c", "completed", 1)
                ]
            ),
            ("deploy", "completed", &[("d", "completed", 1)]),
        ])
    );
    assert_eq!(
        decision_kinds(task(&doc, "b")).last().map(String::as_str),
        Some("skip")
    );
    assert_eq!((runs(w, "b"), runs(w, "c"), runs(w, "d")), (2, 1, 1));
}

fn abort_with_rollback(w: &World) {
    halted(w);
    w.run(&["abort", "cm-1", "--rollback", "--comment", "bad build"])
        .expect_code(3);
    let doc = status_json(&w.sb, "cm-1");
    assert_eq!(doc["status"], "aborted");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("bad build"),
        "{doc:#}"
    );
    assert_eq!(
        shape(&doc),
        expected(&[
            (
                "build",
                "failed",
                &[
                    ("a", "completed", 1),
                    ("b", "failed", 2),
                    ("c", "cancelled", 0)
                ]
            ),
            ("deploy", "aborted", &[("d", "cancelled", 0)]),
        ])
    );
    assert_eq!(
        w.sb.read("order.log"),
        "flow\n",
        "the flow rollback ran once"
    );
    assert_eq!((runs(w, "c"), runs(w, "d")), (0, 0));
}

fn pause_then_resume(w: &World) {
    w.sb.write(
        "p.yaml",
        r#"
name: live
phases:
  - name: work
    tasks:
      - name: hold
        command:
          run: [sh, -c, "echo run >> hold.runs; touch hold.started; while [ ! -f go ]; do sleep 0.05; done"]
      - { name: after, command: { run: [sh, -c, "echo run >> after.runs"] } }
"#,
    );
    let runner = w.sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_until(30, || w.sb.exists("hold.started")),
        "hold never started"
    );
    let pauser = w.sb.spawn(&["pause", "live-1"]);
    // The request is stored before the running task is let go.
    assert!(
        wait_until(30, || w.count("SELECT count(*) FROM control_requests") == 1),
        "the pause request was never stored"
    );
    w.sb.write("go", "");
    let paused: Outcome = pauser.wait_with_output().expect("pause").into();
    paused.expect_code(5);
    let ran: Outcome = runner.wait_with_output().expect("run").into();
    ran.expect_code(5);
    let doc = status_json(&w.sb, "live-1");
    assert_eq!(doc["status"], "paused");
    assert_eq!(task(&doc, "after")["status"], "planned");

    w.run(&["resume", "live-1"]).expect_code(0);
    let doc = status_json(&w.sb, "live-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(
        shape(&doc),
        expected(&[(
            "work",
            "completed",
            &[("hold", "completed", 1), ("after", "completed", 1)]
        )])
    );
    assert_eq!((runs(w, "hold"), runs(w, "after")), (1, 1));
}

const GATED: &str = r#"
name: gated
variables: { version: "2.3" }
phases:
  - name: deploy
    tasks:
      - { name: before, command: { run: [echo, before] } }
      - { name: promote, manual: { prompt: "Promote ${version}?" } }
      - { name: after, command: { run: [sh, -c, "echo run >> after.runs"] } }
"#;

fn approve_and_reject(w: &World) {
    w.sb.write("p.yaml", GATED);
    w.run(&["run", "p.yaml"]).expect_code(5);
    assert_eq!(status_json(&w.sb, "gated-1")["status"], "paused");
    w.run(&[
        "approve",
        "gated-1",
        "--task",
        "promote",
        "--comment",
        "CAB 4711",
    ])
    .expect_code(0);
    let doc = status_json(&w.sb, "gated-1");
    assert_eq!(doc["status"], "completed");
    let promote = task(&doc, "promote");
    assert_eq!(promote["decisions"][0]["decision"], "approve");
    assert_eq!(runs(w, "after"), 1);
    w.run(&["approve", "gated-1", "--task", "promote"])
        .expect_code(2);

    w.run(&["run", "p.yaml"]).expect_code(5);
    w.run(&["reject", "gated-2", "--task", "promote"])
        .expect_code(1);
    let doc = status_json(&w.sb, "gated-2");
    assert_eq!(doc["status"], "failed");
    assert_eq!(task(&doc, "promote")["decisions"][0]["decision"], "reject");
    assert_eq!(runs(w, "after"), 1, "nothing runs after a rejection");
    assert_eq!(
        listed(w),
        pairs(&[("gated-1", "completed"), ("gated-2", "failed")])
    );
}

fn rollback_of_one_component_and_targets_history(w: &World) {
    petportal(w);
    w.run(&["run", PETPORTAL]).expect_code(0);
    w.run(&["run", PETPORTAL, "--var", "version=2.3"])
        .expect_code(0);
    w.run(&["rollback", "petportal-2", "--component", "web"])
        .expect_code(0);
    let doc = status_json(&w.sb, "petportal-2");
    let deploy = task_in(&doc, "deploy", "deploy-petportal");
    assert_eq!(
        deploy["rollback_jobs"][0]["status"], "completed",
        "{deploy:#}"
    );

    let now = w.run(&["targets", "--json"]);
    now.expect_code(0);
    let now: Value = serde_json::from_str(&now.stdout).expect("targets --json");
    let target = &now["targets"][0];
    assert_eq!(target["version"], "2.3");
    assert_eq!(target["components_rolled_back"], serde_json::json!(["web"]));
    assert_eq!(target["components_version"], "1.0");

    let history = w.run(&["targets", "--history", "--json"]);
    history.expect_code(0);
    let history: Value = serde_json::from_str(&history.stdout).expect("targets --history");
    let changes: Vec<(String, String)> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("change"), s("version"))
        })
        .collect();
    assert_eq!(
        changes,
        pairs(&[
            ("components_rolled_back", "2.3"),
            ("deployed", "2.3"),
            ("deployed", "1.0"),
        ]),
        "{history:#}"
    );
}

fn token_create_list_revoke(w: &World) {
    let created = w.run(&["token", "create", "alice", "--role", "operator"]);
    created.expect_code(0);
    let token = created.stdout.trim();
    assert!(
        token.starts_with("relflow_") && !token.contains('\n'),
        "{token}"
    );
    w.run(&["token", "create", "alice", "--role", "viewer"])
        .expect_code(2);
    w.run(&["token", "create", "bob", "--role", "viewer"])
        .expect_code(0);
    let tokens = |w: &World| -> Vec<(String, String)> {
        let out = w.run(&["token", "list", "--json"]);
        out.expect_code(0);
        let doc: Value = serde_json::from_str(&out.stdout).expect("token list --json");
        doc["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                (s("name"), s("role"))
            })
            .collect()
    };
    assert_eq!(
        tokens(w),
        pairs(&[("alice", "operator"), ("bob", "viewer")])
    );
    assert!(!w.run(&["token", "list"]).stdout.contains(token));
    w.run(&["token", "revoke", "alice"]).expect_code(0);
    w.run(&["token", "revoke", "alice"]).expect_code(2);
    assert_eq!(tokens(w), pairs(&[("bob", "viewer")]));
}

fn restart_phase_twice_numbers_the_runs(w: &World) {
    halted(w);
    w.run(&["restart-phase", "cm-1", "build"]).expect_code(1);
    w.sb.write("fixed", "");
    w.run(&["restart-phase", "cm-1", "build"]).expect_code(0);
    let doc = status_json(&w.sb, "cm-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(labels(&doc), ["build", "build#2", "build#3", "deploy"]);
    let halted_run: &[(&str, &str, usize)] = &[
        ("a", "completed", 1),
        ("b", "failed", 2),
        ("c", "superseded", 0),
    ];
    assert_eq!(
        shape(&doc),
        expected(&[
            ("build", "failed", halted_run),
            ("build#2", "failed", halted_run),
            (
                "build#3",
                "completed",
                &[
                    ("a", "completed", 1),
                    ("b", "completed", 1),
                    ("c", "completed", 1)
                ]
            ),
            ("deploy", "completed", &[("d", "completed", 1)]),
        ])
    );
    assert_eq!((runs(w, "a"), runs(w, "b"), runs(w, "d")), (3, 5, 1));
}

fn crash_at_a_durable_write_then_resume(w: &World) {
    w.sb.write(
        "p.yaml",
        r#"
name: crash
phases:
  - name: one
    tasks:
      - { name: a, command: { run: [sh, -c, "echo run >> a.runs"] } }
      - { name: b, command: { run: [sh, -c, "echo run >> b.runs"] } }
  - name: two
    tasks:
      - { name: c, command: { run: [sh, -c, "echo run >> c.runs"] } }
"#,
    );
    // Killed right after `b`'s result is stored, before the runner goes on.
    let killed =
        w.sb.run_crashing_at(&["run", "p.yaml"], "store.attempt_finished", 2);
    assert_eq!(killed.code, -1, "the failpoint fired: {}", killed.stderr);
    assert_eq!((runs(w, "a"), runs(w, "b"), runs(w, "c")), (1, 1, 0));
    assert_eq!(status_json(&w.sb, "crash-1")["status"], "running");

    w.run(&["resume", "crash-1"]).expect_code(0);
    let doc = status_json(&w.sb, "crash-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(
        shape(&doc),
        expected(&[
            (
                "one",
                "completed",
                &[("a", "completed", 1), ("b", "completed", 1)]
            ),
            ("two", "completed", &[("c", "completed", 1)]),
        ])
    );
    assert_eq!((runs(w, "a"), runs(w, "b"), runs(w, "c")), (1, 1, 1));
}
