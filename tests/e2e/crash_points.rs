//! Deterministic crash tests: each scenario runs once with a failpoint trace to list every
//! durable write it makes, then once per write in a fresh sandbox with the runner killing
//! itself (SIGKILL) right after that write; `resume` (or the next command) must then end the
//! release as the uncrashed run did, run nothing completed again, repeat no backend call,
//! and leave the target as `status` says.

use std::path::Path;

use serde_json::Value;

use crate::harness::{Outcome, Sandbox};
use crate::policies::{status_json, task};
use crate::tree;

/// One line of a failpoint trace: the point and what it wrote (`store.task_status smoke completed`).
#[derive(Debug, Clone)]
struct Hit {
    point: String,
    detail: String,
}

/// Runs `args` in `sb` with a trace; returns its outcome and the durable writes it made.
fn trace(sb: &Sandbox, args: &[&str]) -> (Outcome, Vec<Hit>) {
    let file = sb.path().join("failpoints.trace");
    let out = sb.run_env(
        args,
        &[(
            "RELFLOW_FAILPOINT_TRACE",
            file.to_str().expect("utf-8 path"),
        )],
    );
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    let hits = text
        .lines()
        .map(|line| {
            let (point, detail) = line.split_once(' ').unwrap_or((line, ""));
            Hit {
                point: point.to_string(),
                detail: detail.to_string(),
            }
        })
        .collect();
    (out, hits)
}

/// The index of the first hit whose detail is `detail` (e.g. `build completed`).
fn index_of(hits: &[Hit], point: &str, detail: &str) -> usize {
    hits.iter()
        .position(|h| h.point == point && h.detail == detail)
        .unwrap_or_else(|| panic!("no `{point} {detail}` in the trace: {hits:#?}"))
}

/// How many times a command task ran (one line per run in `<name>.runs`).
fn runs(sb: &Sandbox, name: &str) -> usize {
    std::fs::read_to_string(sb.path().join(format!("{name}.runs")))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// A command task that ran once or, when the crash fell inside its run (after its attempt
/// started, before it was recorded completed), at most twice.
#[track_caller]
fn assert_ran_once_outside(sb: &Sandbox, hits: &[Hit], name: &str, crash: usize, what: &str) {
    let started = index_of(hits, "store.attempt_started", &format!("{name} attempt 1"));
    let done = index_of(hits, "store.task_status", &format!("{name} completed"));
    let count = runs(sb, name);
    if (started..done).contains(&crash) {
        assert!((1..=2).contains(&count), "{what}: {name} ran {count} times");
    } else {
        assert_eq!(count, 1, "{what}: {name} ran again (or never)");
    }
}

/// `relflow targets --history --json` as (release, change, version, runs), oldest first:
/// every change is recorded exactly once whatever the crash.
fn target_changes(sb: &Sandbox) -> Vec<String> {
    let out = sb.run(&["targets", "--history", "--json"]);
    out.expect_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let mut changes: Vec<String> = doc["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or("nothing").to_string();
            format!(
                "{} {} {} runs {}",
                text("release"),
                text("change"),
                text("version"),
                text("runs")
            )
        })
        .collect();
    changes.reverse();
    changes
}

/// Resumes until the release is settled the way a person would: `resume` once.
fn resume(sb: &Sandbox, release: &str) -> Outcome {
    sb.run(&["resume", release])
}

fn write_package(sb: &Sandbox, version: &str) {
    for (file, text) in [("web/index.html", version), ("api/VERSION", version)] {
        sb.write(
            &format!("packages/App/{version}/{file}"),
            &format!("{text}\n"),
        );
    }
}

fn target_matches(sb: &Sandbox, version: &str) -> bool {
    let package = tree::snapshot(&sb.path().join(format!("packages/App/{version}")));
    let target = tree::snapshot(&sb.path().join("target"));
    let target: Vec<_> = target
        .into_iter()
        .filter(|e| !e.path.starts_with(".relflow"))
        .collect();
    package == target
}

const DEPLOY: &str = r#"
name: cp
variables: { version: "2.0" }
backends:
  prod: { kind: local, target: target, packages: packages, verify: [sh, -c, "echo v >> ../verify.runs"] }
phases:
  - name: build
    tasks:
      - { name: build, command: { run: [sh, -c, "echo b >> build.runs"] } }
  - name: deploy
    tasks:
      - { name: deploy, deploy: { backend: prod, package: "App/${version}" } }
      - { name: smoke, command: { run: [sh, -c, "echo s >> smoke.runs"] } }
"#;

fn deploy_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("p.yaml", DEPLOY);
    write_package(&sb, "2.0");
    sb
}

#[test]
fn a_crash_at_every_durable_write_of_a_deploy_resumes_to_the_same_end() {
    let (out, hits) = trace(&deploy_sandbox(), &["run", "p.yaml"]);
    out.expect_code(0);
    for point in [
        "local.journal",
        "local.snapshot",
        "local.component",
        "store.handle",
        "store.target_change",
    ] {
        assert!(
            hits.iter().any(|h| h.point == point),
            "{point} not passed: {hits:#?}"
        );
    }
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {:?}", hit);
        let sb = deploy_sandbox();
        let crashed = sb.run_crashing_at(&["run", "p.yaml"], "*", crash + 1);
        assert_eq!(
            crashed.code, -1,
            "{what}: the failpoint did not fire: {crashed:?}"
        );
        let out = resume(&sb, "cp-1");
        if hit.detail == "release completed" {
            // Killed after its last write: nothing is left to do.
            out.expect_code(2);
        } else {
            assert_eq!(out.code, 0, "{what}: {out:?}");
        }
        let doc = status_json(&sb, "cp-1");
        assert_eq!(doc["status"], "completed", "{what}");
        assert!(target_matches(&sb, "2.0"), "{what}: the target is not 2.0");
        assert_ran_once_outside(&sb, &hits, "build", crash, &what);
        assert_ran_once_outside(&sb, &hits, "smoke", crash, &what);
        assert!(
            runs(&sb, "verify") <= 2,
            "{what}: verify ran {}",
            runs(&sb, "verify")
        );
        assert_eq!(task(&doc, "deploy")["status"], "completed", "{what}");
        assert_eq!(
            target_changes(&sb),
            ["cp-1 deployed 2.0 runs 2.0"],
            "{what}"
        );
    }
}

const RETRY: &str = r#"
name: cr
phases:
  - name: build
    tasks:
      - name: flaky
        command: { run: [sh, -c, "echo r >> flaky.runs; test $(wc -l < flaky.runs) -ge 2"] }
        on_failure: { retry: { retries: 2, when: [task_failed], delay: 200ms, backoff: fixed, jitter: false } }
      - { name: after, command: { run: [sh, -c, "echo a >> after.runs"] } }
"#;

#[test]
fn a_crash_at_every_durable_write_of_a_retry_resumes_to_the_same_end() {
    let first = Sandbox::new();
    first.write("p.yaml", RETRY);
    let (out, hits) = trace(&first, &["run", "p.yaml"]);
    out.expect_code(0);
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {:?}", hit);
        let sb = Sandbox::new();
        sb.write("p.yaml", RETRY);
        let crashed = sb.run_crashing_at(&["run", "p.yaml"], "*", crash + 1);
        assert_eq!(crashed.code, -1, "{what}: {crashed:?}");
        let out = resume(&sb, "cr-1");
        if hit.detail != "release completed" {
            assert_eq!(out.code, 0, "{what}: {out:?}");
        }
        let doc = status_json(&sb, "cr-1");
        assert_eq!(doc["status"], "completed", "{what}");
        let flaky = runs(&sb, "flaky");
        assert!((2..=3).contains(&flaky), "{what}: flaky ran {flaky} times");
        let retries = task(&doc, "flaky")["decisions"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["decision"] == "retry").count());
        assert_eq!(retries, 1, "{what}: the policy retried {retries} times");
        assert_ran_once_outside(&sb, &hits, "after", crash, &what);
    }
}

/// Release 1 deploys 1.0; release 2 deploys 2.0, its smoke test fails, and
/// `then: rollback_release` (undo_completed by default) brings 1.0 back; `later` never runs.
const ROLLBACK: &str = r#"
name: rb
variables: { version: "1.0" }
backends:
  prod: { kind: local, target: target, packages: packages }
rollback: {}
phases:
  - name: deploy
    tasks:
      - { name: deploy, deploy: { backend: prod, package: "App/${version}" } }
      - name: smoke
        command: { run: [sh, -c, "echo s >> smoke.runs; test ${version} = 1.0"] }
        on_failure:
          then: rollback_release
          actions: [{ run: [sh, -c, "echo x >> action.runs"] }]
  - name: later
    tasks:
      - { name: later, command: { run: [sh, -c, "echo l >> later.runs"] } }
"#;

fn rollback_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("p.yaml", ROLLBACK);
    write_package(&sb, "1.0");
    write_package(&sb, "2.0");
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let _ = std::fs::remove_file(sb.path().join("later.runs"));
    let _ = std::fs::remove_file(sb.path().join("smoke.runs"));
    sb
}

#[test]
fn a_crash_at_every_durable_write_of_a_release_rollback_resumes_to_the_same_end() {
    let (out, hits) = trace(
        &rollback_sandbox(),
        &["run", "p.yaml", "--var", "version=2.0"],
    );
    out.expect_code(4);
    let action_start = index_of(&hits, "store.decision", "smoke rollback_release");
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {:?}", hit);
        let sb = rollback_sandbox();
        let crashed =
            sb.run_crashing_at(&["run", "p.yaml", "--var", "version=2.0"], "*", crash + 1);
        assert_eq!(crashed.code, -1, "{what}: {crashed:?}");
        let out = resume(&sb, "rb-2");
        if hit.detail != "release rolled_back" {
            assert_eq!(out.code, 4, "{what}: {out:?}");
        }
        let doc = status_json(&sb, "rb-2");
        assert_eq!(doc["status"], "rolled_back", "{what}");
        assert!(target_matches(&sb, "1.0"), "{what}: 1.0 is not back");
        assert_eq!(task(&doc, "later")["status"], "cancelled", "{what}");
        for phase in doc["phases"].as_array().expect("phases") {
            assert_ne!(phase["status"], "running", "{what}: {phase:#}");
        }
        assert_eq!(runs(&sb, "later"), 0, "{what}");
        assert_eq!(
            target_changes(&sb),
            [
                "rb-1 deployed 1.0 runs 1.0",
                "rb-2 deployed 2.0 runs 2.0",
                "rb-2 rolled_back 2.0 runs 1.0"
            ],
            "{what}"
        );
        let actions = runs(&sb, "action");
        if crash < action_start {
            assert!((1..=2).contains(&actions), "{what}: action ran {actions}");
        } else {
            assert!(actions <= 2, "{what}: action ran {actions}");
        }
    }
}

/// `relflow rollback` of a completed deployment, killed after each of its writes: the next
/// command ends the abandoned job (`exception`, with the reason), and rolling back again
/// brings 1.0 back.
#[test]
fn a_crash_at_every_durable_write_of_a_rollback_job_is_repaired_by_the_next_command() {
    let prepare = || {
        let sb = rollback_sandbox();
        sb.write("p.yaml", &ROLLBACK.replace("test ${version} = 1.0", "true"));
        sb.run(&["run", "p.yaml", "--var", "version=2.0"])
            .expect_code(0);
        sb
    };
    let (out, hits) = trace(&prepare(), &["rollback", "rb-2"]);
    out.expect_code(0);
    assert!(!hits.is_empty());
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {:?}", hit);
        let sb = prepare();
        let crashed = sb.run_crashing_at(&["rollback", "rb-2"], "*", crash + 1);
        assert_eq!(crashed.code, -1, "{what}: {crashed:?}");
        let doc: Value = status_json(&sb, "rb-2");
        let jobs = task(&doc, "deploy")["rollback_jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for job in &jobs {
            assert!(
                job["status"] == "completed" || job["status"] == "exception",
                "{what}: a job was left {job:#}"
            );
        }
        let again = sb.run(&["rollback", "rb-2"]);
        // Either there is still something to revert, or the first job had reverted it all.
        let already_done = again
            .stderr
            .contains("no completed deployment to roll back")
            || again.stderr.contains("is rolled_back");
        assert!(
            again.code == 0 || (again.code == 2 && already_done),
            "{what}: {again:?}"
        );
        let doc: Value = status_json(&sb, "rb-2");
        assert_eq!(task(&doc, "deploy")["status"], "rolled_back", "{what}");
        assert!(target_matches(&sb, "1.0"), "{what}: 1.0 is not back");
        assert!(!Path::new(&sb.path().join("target/.relflow-staging")).exists());
        assert_eq!(
            target_changes(&sb),
            [
                "rb-1 deployed 1.0 runs 1.0",
                "rb-2 deployed 2.0 runs 2.0",
                "rb-2 rolled_back 2.0 runs 1.0"
            ],
            "{what}"
        );
    }
}

/// `then: cancel` followed by more tasks, killed after each write: `resume` always ends the
/// release `aborted` with every phase closed and the later tasks cancelled (issue 9 finding 6:
/// a kill right after the terminal status used to leave the phase `running`).
#[test]
fn a_crash_at_every_durable_write_of_a_cancel_leaves_no_phase_open() {
    const CANCEL: &str = r#"
name: cc
phases:
  - name: one
    tasks:
      - name: bad
        command: { run: [sh, -c, "echo b >> bad.runs; exit 3"] }
        on_failure: { then: cancel }
      - { name: next, command: { run: [sh, -c, "echo n >> next.runs"] } }
  - name: two
    tasks:
      - { name: later, command: { run: [sh, -c, "echo l >> later.runs"] } }
"#;
    let first = Sandbox::new();
    first.write("p.yaml", CANCEL);
    let (out, hits) = trace(&first, &["run", "p.yaml"]);
    out.expect_code(3);
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {:?}", hit);
        let sb = Sandbox::new();
        sb.write("p.yaml", CANCEL);
        let crashed = sb.run_crashing_at(&["run", "p.yaml"], "*", crash + 1);
        assert_eq!(crashed.code, -1, "{what}: {crashed:?}");
        let out = resume(&sb, "cc-1");
        if hit.detail == "release aborted" {
            out.expect_code(2);
        } else {
            assert_eq!(out.code, 3, "{what}: {out:?}");
        }
        let doc = status_json(&sb, "cc-1");
        assert_eq!(doc["status"], "aborted", "{what}");
        for phase in doc["phases"].as_array().expect("phases") {
            assert_eq!(phase["status"], "aborted", "{what}: {phase:#}");
        }
        for name in ["bad", "next", "later"] {
            assert_eq!(task(&doc, name)["status"], "cancelled", "{what}: {name}");
        }
        assert_eq!(runs(&sb, "next") + runs(&sb, "later"), 0, "{what}");
        assert!(runs(&sb, "bad") <= 2, "{what}");
    }
}

/// `rollback: {}` means undo every completed deployment (issue 9 finding 10).
#[test]
fn rollback_release_with_an_empty_rollback_block_undoes_the_completed_deployment() {
    let sb = rollback_sandbox();
    let out = sb.run(&["run", "p.yaml", "--var", "version=2.0"]);
    out.expect_code(4);
    assert!(target_matches(&sb, "1.0"), "2.0 stayed in the target");
    let doc = status_json(&sb, "rb-2");
    assert_eq!(doc["status"], "rolled_back");
    assert_eq!(task(&doc, "deploy")["status"], "rolled_back");
}

/// An exec-backend deploy (its command, its journal `exec.json`, its `status` check after a
/// crash), killed after each durable write: it completes, and the deploy command ran at most
/// once more than needed.
#[test]
fn a_crash_at_every_durable_write_of_an_exec_deploy_resumes_to_the_same_end() {
    const EXEC: &str = r#"
name: ce
backends:
  tool:
    kind: exec
    deploy: [sh, -c, "echo d >> deploy.runs; touch deployed"]
    status: [sh, -c, "test -f deployed"]
    rollback: [sh, -c, "echo r >> rollback.runs; rm -f deployed"]
phases:
  - name: deploy
    tasks:
      - { name: ship, deploy: { backend: tool, package: "App/1.0" } }
      - { name: smoke, command: { run: [sh, -c, "echo s >> smoke.runs"] } }
"#;
    let first = Sandbox::new();
    first.write("p.yaml", EXEC);
    let (out, hits) = trace(&first, &["run", "p.yaml"]);
    out.expect_code(0);
    assert!(hits.iter().any(|h| h.point == "exec.journal"), "{hits:#?}");
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {hit:?}");
        let sb = Sandbox::new();
        sb.write("p.yaml", EXEC);
        let crashed = sb.run_crashing_at(&["run", "p.yaml"], "*", crash + 1);
        assert_eq!(crashed.code, -1, "{what}: {crashed:?}");
        let out = resume(&sb, "ce-1");
        let doc = status_json(&sb, "ce-1");
        // Killed while the deploy command ran (its group dies with the runner): how far it
        // got is unknown, so `status` decides. Healthy: completed; not: the task failed
        // (the policy pauses) with the status command named, and nothing ran twice.
        if out.code == 1 && hit.point == "exec.journal" {
            assert_eq!(doc["status"], "failed", "{what}");
            let ship = task(&doc, "ship");
            assert!(
                ship["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("the status command"),
                "{what}: {ship:#}"
            );
            assert!(!sb.exists("deployed"), "{what}: status said unhealthy");
            assert!(runs(&sb, "deploy") <= 1, "{what}: the deploy ran again");
            // A deployment that began and failed leaves the target in doubt, and says so.
            assert_eq!(target_changes(&sb), ["ce-1 failed 1.0 runs 1.0"], "{what}");
            continue;
        }
        if hit.detail != "release completed" {
            assert_eq!(out.code, 0, "{what}: {out:?}");
        }
        assert_eq!(doc["status"], "completed", "{what}");
        assert!(sb.exists("deployed"), "{what}");
        assert!(
            (1..=2).contains(&runs(&sb, "deploy")),
            "{what}: deploy ran {}",
            runs(&sb, "deploy")
        );
        assert_eq!(
            runs(&sb, "rollback"),
            0,
            "{what}: a completed deploy was rolled back"
        );
        assert_ran_once_outside(&sb, &hits, "smoke", crash, &what);
        assert_eq!(
            target_changes(&sb),
            ["ce-1 deployed 1.0 runs 1.0"],
            "{what}"
        );
    }
}

/// `relflow abort --rollback` of a paused release, killed after each of its writes: running it
/// again finishes the abort without repeating a rollback step, and nothing else runs.
#[test]
fn a_crash_at_every_durable_write_of_an_abort_is_finished_by_resume() {
    const ABORT: &str = r#"
name: ca
rollback: { run: [sh, -c, "echo f >> flow.runs"] }
phases:
  - name: one
    tasks:
      - { name: first, command: { run: [sh, -c, "echo a >> first.runs"] } }
      - { name: gate, manual: { prompt: "go?" } }
      - { name: after, command: { run: [sh, -c, "echo x >> after.runs"] } }
"#;
    let prepare = || {
        let sb = Sandbox::new();
        sb.write("p.yaml", ABORT);
        sb.run(&["run", "p.yaml"]).expect_code(5);
        sb
    };
    let (out, hits) = trace(&prepare(), &["abort", "ca-1", "--rollback"]);
    out.expect_code(3);
    assert!(!hits.is_empty());
    for (crash, hit) in hits.iter().enumerate() {
        let what = format!("crash at #{crash} {hit:?}");
        let sb = prepare();
        let crashed = sb.run_crashing_at(&["abort", "ca-1", "--rollback"], "*", crash + 1);
        assert_eq!(crashed.code, -1, "{what}: {crashed:?}");
        let doc = status_json(&sb, "ca-1");
        if doc["status"] != "aborted" {
            // The person runs the abort again; the steps already done are not repeated.
            let out = sb.run(&["abort", "ca-1", "--rollback"]);
            assert_eq!(out.code, 3, "{what}: {out:?}");
        }
        let doc = status_json(&sb, "ca-1");
        assert_eq!(doc["status"], "aborted", "{what}");
        assert_eq!(task(&doc, "after")["status"], "cancelled", "{what}");
        assert_eq!(runs(&sb, "after"), 0, "{what}: a task ran after the abort");
        assert_eq!(runs(&sb, "first"), 1, "{what}");
        assert!(
            (1..=2).contains(&runs(&sb, "flow")),
            "{what}: flow rollback ran {}",
            runs(&sb, "flow")
        );
    }
}
