//! Target locks through the CLI (DESIGN → Sharing a host → Target locks): two releases from two
//! state dirs deploying into one local folder take turns, the second waiting with status
//! `waiting_lock` and a log line naming the holder, and the folder is never mixed;
//! `lock_timeout` fails the attempt with class `locked` and the policy's `then`; a failure
//! before delivery frees the lock, one after delivery keeps it; `relflow locks` shows it and
//! `relflow unlock` frees it only once its holder is no longer at work; restart-phase re-enters
//! its own lock; a rollback job waits for the lock; a runner killed right after taking a lock
//! keeps it until its release resumes.
//!
//! The first release is made to hold the lock deterministically: its health check waits for a
//! file the test creates. Nothing here depends on timing beyond generous upper bounds.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Outcome, Sandbox, wait_until};

const COMPONENTS: [&str; 3] = ["api", "config", "web"];

/// A sandbox with packages `App/{1.0,2.0,bad}` (every component's `v.txt` holds the version)
/// and a health check that fails on version `bad` or when the tree is not all its version, and
/// that, while `hold-<version>` exists, waits for `go-<version>` (writing `in-verify-<version>`
/// and its pid first) and checks the tree again after: a deployment that slipped in meanwhile
/// fails it.
fn world() -> Sandbox {
    let sb = Sandbox::new();
    for version in ["1.0", "2.0", "bad"] {
        for component in COMPONENTS {
            sb.write(
                &format!("pipe/packages/App/{version}/{component}/v.txt"),
                &format!("{version}\n"),
            );
        }
    }
    let root = root(&sb).display().to_string();
    sb.write_script(
        "pipe/verify.sh",
        &format!(
            r#"#!/bin/sh
set -eu
v="$RELFLOW_VERSION"
check() {{
  for c in api config web; do
    got=$(cat "$c/v.txt")
    if [ "$got" != "$v" ]; then echo "mixed tree: $c holds $got, expected $v" >&2; exit 1; fi
  done
}}
check
if [ -f '{root}/hold-'"$v" ]; then
  echo $$ > '{root}/verify-pid-'"$v"
  touch '{root}/in-verify-'"$v"
  while [ ! -f '{root}/go-'"$v" ]; do sleep 0.05; done
  check
fi
if [ "$v" = bad ]; then echo "unhealthy $v" >&2; exit 1; fi
echo "healthy $v"
"#
        ),
    );
    sb
}

fn root(sb: &Sandbox) -> PathBuf {
    std::fs::canonicalize(sb.path()).expect("canonical sandbox")
}

/// Writes `pipe/<file>`: one deploy task into `../shared/target` with `policy` and the task's
/// extra keys (`lock_timeout: 1s`, ...).
fn pipeline(sb: &Sandbox, file: &str, policy: &str, task_extra: &str) -> String {
    sb.write(
        &format!("pipe/{file}"),
        &format!(
            r#"name: app
variables: {{ version: "1.0" }}
backends:
  prod: {{ kind: local, target: ../shared/target, packages: packages, verify: [./verify.sh] }}
phases:
  - name: deploy
    on_failure: {policy}
    tasks:
      - name: deploy-app
        deploy: {{ backend: prod, package: "App/${{version}}" }}
        {task_extra}
"#
        ),
    );
    format!("pipe/{file}")
}

fn target(sb: &Sandbox) -> PathBuf {
    root(sb).join("shared/target")
}

fn lock_file(sb: &Sandbox) -> PathBuf {
    root(sb).join("shared/.target.relflow-lock")
}

fn run_args<'a>(state: &'a str, file: &'a str, version: &'a str) -> Vec<String> {
    ["--state-dir", state, "run", file, "--var"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("version={version}")])
        .collect()
}

fn run(sb: &Sandbox, state: &str, file: &str, version: &str) -> Outcome {
    let args = run_args(state, file, version);
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn spawn(sb: &Sandbox, state: &str, file: &str, version: &str) -> Child {
    let args = run_args(state, file, version);
    sb.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Waits for a spawned runner to exit (at most `secs`), killing it past that.
fn finish(mut child: Child, secs: u64) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the runner did not finish within {secs}s\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts a release of 1.0 into the target from state dir `a` and waits until its health check
/// holds (the lock is then held, the target fully at 1.0).
fn first_holds(sb: &Sandbox, file: &str) -> Child {
    sb.write("hold-1.0", "");
    let child = spawn(sb, "a", file, "1.0");
    assert!(
        wait_until(120, || sb.exists("in-verify-1.0")),
        "the first release never reached its health check"
    );
    child
}

fn status(sb: &Sandbox, state: &str, release: &str) -> Value {
    let out = sb.run(&["--state-dir", state, "status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The status of `task_name` once the release exists.
fn task_status(sb: &Sandbox, state: &str, task_name: &str) -> Option<String> {
    let out = sb.run(&["--state-dir", state, "status", "app-1", "--json"]);
    let doc: Value = serde_json::from_str(&out.stdout).ok()?;
    task(&doc, task_name)["status"].as_str().map(String::from)
}

/// The newest run of `name` in a `status --json` document.
fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["tasks"].as_array().expect("tasks"))
        .rfind(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {doc:#}"))
}

fn log(sb: &Sandbox, state: &str, phase: &str) -> String {
    sb.read(&format!(
        "{state}/releases/app-1/{phase}/deploy-app/script_output.log"
    ))
}

fn locks(sb: &Sandbox) -> Vec<Value> {
    let out = sb.run(&["locks", "--json"]);
    out.expect_code(0);
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(doc["format"], 1);
    doc["locks"].as_array().expect("locks").clone()
}

/// Every component of the target holds `version`, and `.relflow-version` says so.
#[track_caller]
fn assert_target_at(sb: &Sandbox, version: &str) {
    for component in COMPONENTS {
        let file = target(sb).join(component).join("v.txt");
        let got =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(got.trim(), version, "{component} in the target");
    }
    let stamp = std::fs::read_to_string(target(sb).join(".relflow-version")).expect("version file");
    let stamp: Value = serde_json::from_str(&stamp).expect("version file JSON");
    assert_eq!(stamp["version"], version, "{stamp}");
}

fn is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Lets a held health check go and waits until its process is gone.
fn let_go(sb: &Sandbox, version: &str) {
    sb.write(&format!("go-{version}"), "");
    let pid: i32 = sb
        .read(&format!("verify-pid-{version}"))
        .trim()
        .parse()
        .expect("pid");
    assert!(
        wait_until(30, || !is_alive(pid)),
        "health check {pid} still runs"
    );
}

#[test]
fn target_locks_two_releases_from_two_state_dirs_take_turns_and_the_target_is_never_mixed() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "");
    let first = first_holds(&sb, &file);
    assert_target_at(&sb, "1.0");

    let second = spawn(&sb, "b", &file, "2.0");
    assert!(
        wait_until(60, || {
            task_status(&sb, "b", "deploy-app").as_deref() == Some("waiting_lock")
        }),
        "the second release never waited for the lock"
    );
    let waiting = log(&sb, "b", "deploy");
    let holder = format!(
        "Waiting for the lock of {}: held by release app-1 (task deploy-app, state dir {}) since ",
        target(&sb).display(),
        root(&sb).join("a").display()
    );
    assert!(waiting.contains(&holder), "{waiting}");
    assert!(
        waiting.contains(&format!("pid {}", first.id())),
        "{waiting}"
    );
    // While it waits, the second release has touched nothing.
    assert_target_at(&sb, "1.0");
    let shown = locks(&sb);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["target"], target(&sb).display().to_string());
    assert_eq!(shown[0]["release"], "app-1");
    assert_eq!(
        shown[0]["state_dir"],
        root(&sb).join("a").display().to_string()
    );
    assert_eq!(shown[0]["live"], true);

    let_go(&sb, "1.0");
    finish(first, 120).expect_code(0);
    finish(second, 120).expect_code(0);

    // The second health check passed, so the tree it saw was 2.0 throughout; it snapshotted
    // exactly what the first release left.
    assert_target_at(&sb, "2.0");
    let snapshot = sb
        .path()
        .join("b/releases/app-1/deploy/deploy-app/deploy/snapshot");
    for component in COMPONENTS {
        let saved =
            std::fs::read_to_string(snapshot.join(component).join("v.txt")).expect("snapshot");
        assert_eq!(
            saved, "1.0\n",
            "{component} in the second release's snapshot"
        );
    }
    let second_log = log(&sb, "b", "deploy");
    assert!(
        second_log.contains("Locked ") && second_log.contains("after waiting"),
        "{second_log}"
    );
    assert!(second_log.contains("healthy 2.0"), "{second_log}");
    for state in ["a", "b"] {
        let doc = status(&sb, state, "app-1");
        assert_eq!(doc["status"], "completed", "{doc:#}");
        assert_eq!(task(&doc, "deploy-app")["attempts"], 1, "{doc:#}");
    }
    assert!(locks(&sb).is_empty());
    assert!(!lock_file(&sb).exists());
}

#[test]
fn target_locks_lock_timeout_fails_with_class_locked_and_the_policy_then_applies() {
    let sb = world();
    let first_file = pipeline(&sb, "first.yaml", "{ then: pause }", "");
    let second_file = pipeline(
        &sb,
        "second.yaml",
        "{ retry: { retries: 2, delay: 10ms }, then: ignore }",
        "lock_timeout: 1s",
    );
    let first = first_holds(&sb, &first_file);

    let started = Instant::now();
    let out = run(&sb, "b", &second_file, "2.0");
    out.expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let doc = status(&sb, "b", "app-1");
    let t = task(&doc, "deploy-app");
    assert_eq!(t["status"], "ignored", "{t:#}");
    assert_eq!(t["error_class"], "locked", "{t:#}");
    assert_eq!(t["attempts"], 1, "locked is not transient: no retry\n{t:#}");
    let error = t["error"].as_str().expect("error");
    assert!(error.contains("stayed locked for 1s"), "{error}");
    assert!(error.contains("held by release app-1"), "{error}");
    let second_log = log(&sb, "b", "deploy");
    assert!(
        second_log.contains("Waiting for the lock of"),
        "{second_log}"
    );
    assert_target_at(&sb, "1.0");

    let_go(&sb, "1.0");
    finish(first, 120).expect_code(0);
    assert!(locks(&sb).is_empty());
}

#[test]
fn target_locks_a_failure_before_delivery_frees_the_lock() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "lock_timeout: 0s");
    // Not enough free space: refused after the handle is stored, before anything changed.
    let mut full = sb.command(&["--state-dir", "a", "run", &file]);
    full.env("RELFLOW_LOCAL_FREE_BYTES", "1000");
    let out = full.output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = status(&sb, "a", "app-1");
    let t = task(&doc, "deploy-app");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error_class"], "precondition");
    let first_log = log(&sb, "a", "deploy");
    assert!(
        first_log.contains(&format!("Unlocked {}", target(&sb).display())),
        "{first_log}"
    );
    assert!(locks(&sb).is_empty());

    // A package that does not exist: refused before anything started.
    run(&sb, "c", &file, "9.9").expect_code(1);
    assert_eq!(
        task(&status(&sb, "c", "app-1"), "deploy-app")["error_class"],
        "not_found"
    );
    assert!(locks(&sb).is_empty());

    // Another release deploys at once (lock_timeout: 0s would fail it otherwise).
    run(&sb, "b", &file, "2.0").expect_code(0);
    assert_target_at(&sb, "2.0");
}

#[test]
fn target_locks_a_failure_after_delivery_keeps_the_lock_until_unlocked() {
    let mut sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "lock_timeout: 1s");
    run(&sb, "a", &file, "bad").expect_code(1);
    let first_log = log(&sb, "a", "deploy");
    assert!(first_log.contains("Keeping the lock of"), "{first_log}");

    let shown = locks(&sb);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["release"], "app-1");
    assert_eq!(shown[0]["task"], "deploy-app");
    assert_eq!(shown[0]["live"], false, "its runner exited");
    let state = shown[0]["holder_state"].as_str().expect("holder_state");
    assert!(state.contains("task deploy-app failed"), "{state}");
    let text = sb.run(&["locks"]);
    text.expect_code(0);
    assert!(
        text.stdout.contains(&format!(
            "free it with: relflow unlock {}",
            target(&sb).display()
        )),
        "{}",
        text.stdout
    );

    // Another release cannot deploy over the unknown state.
    run(&sb, "b", &file, "2.0").expect_code(1);
    assert_eq!(
        task(&status(&sb, "b", "app-1"), "deploy-app")["error_class"],
        "locked"
    );

    sb.env("RELFLOW_ACTOR", "alice");
    let out = sb.run(&["unlock", &target(&sb).display().to_string()]);
    out.expect_code(0);
    assert!(out.stdout.contains("unlocked"), "{}", out.stdout);
    let record = sb.read(".relflow-locks/unlock.log");
    assert!(
        record.contains(&format!(
            "alice unlocked {}, held by release app-1",
            target(&sb).display()
        )),
        "{record}"
    );
    assert!(locks(&sb).is_empty());
    sb.run(&["--state-dir", "b", "retry", "app-1"])
        .expect_code(0);
    assert_target_at(&sb, "2.0");
}

#[test]
fn target_locks_unlock_refuses_a_live_holder_and_frees_a_dead_ones() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "");
    let shown = target(&sb).display().to_string();
    let mut first = first_holds(&sb, &file);

    let out = sb.run(&["unlock", &shown]);
    out.expect_code(2);
    assert!(out.stderr.contains("still at work"), "{}", out.stderr);
    sb.run(&["unlock", "/no/such/target"]).expect_code(2);
    assert!(lock_file(&sb).exists());

    // The runner dies holding the lock: nobody frees it by itself...
    first.kill().expect("SIGKILL the runner");
    first.wait().expect("reap the runner");
    let shown_locks = locks(&sb);
    assert_eq!(shown_locks[0]["live"], false, "{shown_locks:?}");
    let state = shown_locks[0]["holder_state"]
        .as_str()
        .expect("holder_state");
    assert!(state.starts_with("runner gone"), "{state}");
    // ...but a person may.
    sb.run(&["unlock", &shown]).expect_code(0);
    assert!(!lock_file(&sb).exists());
    assert!(locks(&sb).is_empty());
    let_go(&sb, "1.0");
}

#[test]
fn target_locks_restart_phase_re_enters_its_own_lock() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "lock_timeout: 2s");
    run(&sb, "a", &file, "bad").expect_code(1);
    assert_eq!(locks(&sb).len(), 1);

    sb.run(&[
        "--state-dir",
        "a",
        "restart-phase",
        "app-1",
        "deploy",
        "--var",
        "version=2.0",
    ])
    .expect_code(0);
    let doc = status(&sb, "a", "app-1");
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let again = log(&sb, "a", "deploy#2");
    assert!(!again.contains("Waiting for the lock"), "{again}");
    assert!(again.contains("Unlocked"), "{again}");
    assert_target_at(&sb, "2.0");
    assert!(locks(&sb).is_empty());
}

#[test]
fn target_locks_a_rollback_job_waits_for_the_lock_and_leaves_a_held_target_alone() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "lock_timeout: 1s");
    run(&sb, "a", &file, "2.0").expect_code(0);
    sb.write("hold-1.0", "");
    let holder = spawn(&sb, "b", &file, "1.0");
    assert!(wait_until(120, || sb.exists("in-verify-1.0")));

    let out = sb.run(&["--state-dir", "a", "rollback", "app-1"]);
    out.expect_code(1);
    let rollback_log = sb.read("a/releases/app-1/deploy/deploy-app/rollback.log");
    assert!(rollback_log.contains("locked"), "{rollback_log}");
    assert!(rollback_log.contains("exception"), "{rollback_log}");
    assert_target_at(&sb, "1.0");

    let_go(&sb, "1.0");
    finish(holder, 120).expect_code(0);
    assert!(locks(&sb).is_empty());
}

#[test]
fn target_locks_a_runner_killed_right_after_taking_the_lock_keeps_it_until_resume() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "lock_timeout: 1s");
    let trace = root(&sb).join("trace");
    let mut killed = sb.command(&["--state-dir", "a", "run", &file]);
    killed
        .env("RELFLOW_FAILPOINT", "lock.write@1")
        .env("RELFLOW_FAILPOINT_TRACE", &trace);
    let out = killed.output().expect("run");
    assert_eq!(out.status.code(), None, "killed by its failpoint");
    assert!(lock_file(&sb).exists());
    let shown = locks(&sb);
    assert_eq!(shown[0]["live"], false, "{shown:?}");

    // Another release waits for it and gives up: the dead runner's target is not taken over.
    run(&sb, "b", &file, "2.0").expect_code(1);
    assert_eq!(
        task(&status(&sb, "b", "app-1"), "deploy-app")["error_class"],
        "locked"
    );

    sb.run(&["--state-dir", "a", "resume", "app-1"])
        .expect_code(0);
    assert_target_at(&sb, "1.0");
    assert!(locks(&sb).is_empty());
    let hits = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        hits.lines().filter(|l| *l == "lock.write").count(),
        1,
        "{hits}"
    );
}
