//! Target locks through the CLI (DESIGN → Sharing a host → Target locks): two releases from two
//! state dirs deploying into one local folder take turns, the second waiting with status
//! `waiting_lock` and a log line naming the holder, and the folder is never mixed;
//! `lock_timeout` fails the attempt with class `locked` and the policy's `then`; a failure
//! before delivery frees the lock, one after delivery keeps it until the task is skipped or a
//! person runs `relflow unlock` (refused while the holder is at work); `relflow locks` shows
//! it; restart-phase re-enters its own lock; an exec backend locks its `lock:` key; a rollback
//! job waits for the lock; a runner killed right after taking a lock keeps it until resume.
//!
//! The first release is made to hold the lock deterministically: its health check waits for a
//! file the test creates. Nothing here depends on timing beyond generous upper bounds.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Outcome, Sandbox, wait_or_kill, wait_until};

mod keep_and_free;
mod waiting;

pub(super) const COMPONENTS: [&str; 3] = ["api", "config", "web"];

/// A sandbox with packages `App/{1.0,2.0,bad}` (every component's `v.txt` holds the version)
/// and a health check that fails on version `bad` or when the tree is not all its version, and
/// that, while `hold-<version>` exists, waits for `go-<version>` (writing `in-verify-<version>`
/// and its pid first) and checks the tree again after: a deployment that slipped in meanwhile
/// fails it.
pub(super) fn world() -> Sandbox {
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

pub(super) fn root(sb: &Sandbox) -> PathBuf {
    std::fs::canonicalize(sb.path()).expect("canonical sandbox")
}

/// Writes `pipe/<file>`: one deploy task into `../shared/target` with `policy` and the task's
/// extra keys (`lock_timeout: 1s`, ...).
pub(super) fn pipeline(sb: &Sandbox, file: &str, policy: &str, task_extra: &str) -> String {
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

pub(super) fn target(sb: &Sandbox) -> PathBuf {
    root(sb).join("shared/target")
}

pub(super) fn lock_file(sb: &Sandbox) -> PathBuf {
    root(sb).join("shared/.target.relflow-lock")
}

pub(super) fn run_args<'a>(state: &'a str, file: &'a str, version: &'a str) -> Vec<String> {
    ["--state-dir", state, "run", file, "--var"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("version={version}")])
        .collect()
}

pub(super) fn run(sb: &Sandbox, state: &str, file: &str, version: &str) -> Outcome {
    let args = run_args(state, file, version);
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

pub(super) fn spawn(sb: &Sandbox, state: &str, file: &str, version: &str) -> Child {
    let args = run_args(state, file, version);
    sb.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Waits for a spawned runner to exit (at most `secs`), killing it past that.
pub(super) fn finish(child: Child, secs: u64) -> Outcome {
    let (out, exited) = wait_or_kill(child, Duration::from_secs(secs));
    assert!(
        exited,
        "the runner did not finish within {secs}s\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    out
}

/// Starts a release of 1.0 into the target from state dir `a` and waits until its health check
/// holds (the lock is then held, the target fully at 1.0).
pub(super) fn first_holds(sb: &Sandbox, file: &str) -> Child {
    sb.write("hold-1.0", "");
    let child = spawn(sb, "a", file, "1.0");
    assert!(
        wait_until(120, || sb.exists("in-verify-1.0")),
        "the first release never reached its health check"
    );
    child
}

pub(super) fn status(sb: &Sandbox, state: &str, release: &str) -> Value {
    let out = sb.run(&["--state-dir", state, "status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The status of `task_name` once the release exists.
pub(super) fn task_status(sb: &Sandbox, state: &str, task_name: &str) -> Option<String> {
    let out = sb.run(&["--state-dir", state, "status", "app-1", "--json"]);
    let doc: Value = serde_json::from_str(&out.stdout).ok()?;
    task(&doc, task_name)["status"].as_str().map(String::from)
}

/// The newest run of `name` in a `status --json` document.
pub(super) fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["tasks"].as_array().expect("tasks"))
        .rfind(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {doc:#}"))
}

pub(super) fn log(sb: &Sandbox, state: &str, phase: &str) -> String {
    sb.read(&format!(
        "{state}/releases/app-1/{phase}/deploy-app/script_output.log"
    ))
}

pub(super) fn locks(sb: &Sandbox) -> Vec<Value> {
    let out = sb.run(&["locks", "--json"]);
    out.expect_code(0);
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(doc["format"], 1);
    doc["locks"].as_array().expect("locks").clone()
}

/// Every component of the target holds `version`, and `.relflow-version` says so.
#[track_caller]
pub(super) fn assert_target_at(sb: &Sandbox, version: &str) {
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

pub(super) fn is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Lets a held health check go and waits until its process is gone.
pub(super) fn let_go(sb: &Sandbox, version: &str) {
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
