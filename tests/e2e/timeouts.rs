//! Timeouts and the processes relflow starts (issue 9, findings 1 and 2): a task's or a
//! backend's `timeout:` bounds every attempt of every kind — a hanging health check, a hanging
//! exec deploy, a command that forks, a long `wait:` — and ends the whole process group; and no
//! process a backend started outlives a runner killed with SIGKILL, so `resume` never races
//! an orphan. Processes are found by a token unique to the test in their argv (`$0` of an
//! inner `sh -c`, which sits between the runner's child and `sleep`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Sandbox, assert_none_left, processes_with, wait_until};

/// A token no other test uses: the sandbox's own folder name.
fn token(sb: &Sandbox) -> String {
    let name = sb
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    format!("relflow-token-{}", name.unwrap_or_default())
}

fn status_json(sb: &Sandbox, release: &str) -> Value {
    let out = sb.run(&["status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The first task of the first phase.
fn first_task(doc: &Value) -> &Value {
    &doc["phases"][0]["tasks"][0]
}

/// Runs `relflow run p.yaml`, returning the exit code and how long it took.
fn run_timed(sb: &Sandbox) -> (crate::harness::Outcome, Duration) {
    let started = Instant::now();
    let out = sb.run(&["run", "p.yaml"]);
    (out, started.elapsed())
}

/// `target/web/index.html` says `1.0`; `packages/App/2.0/web/index.html` says `2.0`.
fn local_fixture(sb: &Sandbox) {
    sb.write("target/web/index.html", "1.0\n");
    sb.write("packages/App/2.0/web/index.html", "2.0\n");
}

#[test]
fn timeouts_a_hanging_health_check_ends_at_the_task_timeout_and_is_rolled_back() {
    let sb = Sandbox::new();
    let token = token(&sb);
    local_fixture(&sb);
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: hang
backends:
  prod: {{ kind: local, target: target, packages: packages }}
phases:
  - name: deploy
    tasks:
      - name: ship
        deploy:
          backend: prod
          package: App/2.0
          verify: [sh, -c, 'echo checking; sh -c "sleep 300; true" {token}; echo never']
        timeout: 3s
        on_failure: {{ then: rollback }}
"#
        ),
    );
    let (out, took) = run_timed(&sb);
    out.expect_code(4);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_none_left(&token);
    assert_eq!(sb.read("target/web/index.html"), "1.0\n", "not rolled back");

    let doc = status_json(&sb, "hang-1");
    let task = first_task(&doc);
    assert_eq!(task["status"], "rolled_back", "{task:#}");
    assert_eq!(task["attempt_history"][0]["error_class"], "timeout");
    let error = task["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("health check") && error.ends_with("timed out after 3s"),
        "{error}"
    );
    let log = sb.read(".relflow/releases/hang-1/deploy/ship/script_output.log");
    assert!(log.lines().any(|l| l == "checking"), "{log}");
    assert!(!log.lines().any(|l| l == "never"), "{log}");
}

#[test]
fn timeouts_a_hanging_exec_deploy_ends_at_the_backend_timeout() {
    let sb = Sandbox::new();
    let token = token(&sb);
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: hang
backends:
  cluster:
    kind: exec
    deploy: [sh, -c, 'echo deploying; sh -c "sleep 300; true" {token}; touch deployed']
    rollback: [touch, rolled-back]
    timeout: 2s
phases:
  - name: deploy
    tasks:
      - name: ship
        deploy: {{ backend: cluster, package: App/2.0 }}
        on_failure: {{ then: rollback }}
"#
        ),
    );
    let (out, took) = run_timed(&sb);
    out.expect_code(4);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_none_left(&token);
    assert!(sb.exists("rolled-back"), "the rollback command did not run");
    assert!(!sb.exists("deployed"), "the deploy command finished");

    let doc = status_json(&sb, "hang-1");
    let task = first_task(&doc);
    assert_eq!(task["status"], "rolled_back", "{task:#}");
    assert_eq!(task["attempt_history"][0]["error_class"], "timeout");
    assert_eq!(task["error"], "deploy App 2.0: `sh` timed out after 2s");
}

#[test]
fn timeouts_a_command_that_forks_leaves_nothing_behind() {
    let sb = Sandbox::new();
    let token = token(&sb);
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: forks
phases:
  - name: build
    tasks:
      - name: background
        command: {{ run: [sh, -c, 'sh -c "sleep 300; true" {token}-bg & echo started'] }}
      - name: hangs
        command: {{ run: [sh, -c, 'sh -c "sleep 300; true" {token}-wait & wait'], timeout: 2s }}
"#
        ),
    );
    let (out, took) = run_timed(&sb);
    out.expect_code(1);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // The first task's child exited at once: its background grandchild was ended with it.
    assert_none_left(&format!("{token}-bg"));
    assert_none_left(&format!("{token}-wait"));

    let doc = status_json(&sb, "forks-1");
    let tasks = &doc["phases"][0]["tasks"];
    assert_eq!(tasks[0]["status"], "completed", "{tasks:#}");
    assert_eq!(tasks[1]["status"], "failed", "{tasks:#}");
    assert_eq!(tasks[1]["error_class"], "timeout");
    assert_eq!(tasks[1]["error"], "sh timed out after 2s");
}

#[test]
fn timeouts_a_wait_longer_than_the_timeout_fails_with_timeout() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: waits
phases:
  - name: soak
    tasks:
      - { name: soak, wait: 10m, timeout: 1s }
"#,
    );
    let (out, took) = run_timed(&sb);
    out.expect_code(1);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let doc = status_json(&sb, "waits-1");
    let task = first_task(&doc);
    assert_eq!(task["error_class"], "timeout", "{task:#}");
    assert_eq!(task["error"], "wait 10m: timed out after 1s");
}

/// Starts `relflow run p.yaml` and SIGKILLs it once a process carrying `token` runs.
fn kill_runner_when_running(sb: &Sandbox, token: &str) {
    let mut runner = sb.spawn(&["run", "p.yaml"]);
    let started = wait_until(30, || !processes_with(token).is_empty());
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("reap the runner");
    assert!(
        started,
        "the process to kill the runner under never started"
    );
}

#[test]
fn timeouts_sigkill_during_an_exec_deploy_leaves_no_orphan_and_resume_rolls_back() {
    let sb = Sandbox::new();
    let token = token(&sb);
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: orphan
backends:
  cluster:
    kind: exec
    deploy: [sh, -c, 'sh -c "sleep 300; true" {token}; echo 2.0 > deployed-version']
    rollback: [sh, -c, 'echo 1.0 > deployed-version']
phases:
  - name: deploy
    tasks:
      - name: ship
        deploy: {{ backend: cluster, package: App/2.0 }}
        on_failure: {{ then: rollback }}
"#
        ),
    );
    kill_runner_when_running(&sb, &token);
    // The deploy command and what it started died with the runner.
    assert_none_left(&token);

    let out = sb.run(&["resume", "orphan-1"]);
    out.expect_code(4);
    assert_eq!(sb.read("deployed-version"), "1.0\n");
    // Nothing is left that could still finish the deployment after the rollback.
    assert!(processes_with(&token).is_empty());
    let doc = status_json(&sb, "orphan-1");
    let task = first_task(&doc);
    assert_eq!(task["status"], "rolled_back", "{task:#}");
    assert_eq!(task["attempt_history"][0]["status"], "interrupted");
}

#[test]
fn timeouts_sigkill_during_a_health_check_leaves_no_orphan_and_resume_checks_once_more() {
    let sb = Sandbox::new();
    let token = token(&sb);
    local_fixture(&sb);
    let root = sb.path().display().to_string();
    // The first check hangs; later ones note that they ran and pass.
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: check
backends:
  prod: {{ kind: local, target: target, packages: packages }}
phases:
  - name: deploy
    tasks:
      - name: ship
        deploy:
          backend: prod
          package: App/2.0
          verify:
            - sh
            - -c
            - 'if [ -f "{root}/checked" ]; then echo again >> "{root}/checked"; exit 0; fi; echo first > "{root}/checked"; sh -c "sleep 300; true" {token}; echo late >> "{root}/checked"'
"#
        ),
    );
    kill_runner_when_running(&sb, &token);
    assert_none_left(&token);

    let out = sb.run(&["resume", "check-1"]);
    out.expect_code(0);
    assert_eq!(sb.read("target/web/index.html"), "2.0\n");
    // The killed check never went on: only the resumed one ran after it.
    assert_eq!(sb.read("checked"), "first\nagain\n");
    assert!(processes_with(&token).is_empty());
}
