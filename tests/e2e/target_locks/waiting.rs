//! Releases that wait for a held target: the two-release race, `lock_timeout`, an exec
//! backend's `lock:` key, and a rollback job.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::harness::wait_until;

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

/// Two releases through an exec backend whose `lock:` names what they change: the lock is
/// `exec:<key>` in the lock folder, and the second release gives up after `lock_timeout`.
#[test]
fn target_locks_an_exec_backend_locks_its_lock_key() {
    let sb = world();
    let dir = root(&sb).display().to_string();
    sb.write_script(
        "pipe/exec-deploy.sh",
        &format!(
            r#"#!/bin/sh
set -eu
if [ -f '{dir}/hold-exec' ]; then
  echo $$ > '{dir}/verify-pid-exec'
  touch '{dir}/in-deploy'
  while [ ! -f '{dir}/go-exec' ]; do sleep 0.05; done
fi
echo "deployed $RELFLOW_APPLICATION $RELFLOW_VERSION"
"#
        ),
    );
    sb.write(
        "pipe/exec.yaml",
        r#"name: app
variables: { version: "1.0" }
backends:
  cluster: { kind: exec, deploy: [./exec-deploy.sh], lock: "cluster-a/${application}", lock_timeout: 1s }
phases:
  - name: deploy
    tasks:
      - name: deploy-app
        deploy: { backend: cluster, package: "App/${version}" }
"#,
    );
    sb.write("hold-exec", "");
    let first = spawn(&sb, "a", "pipe/exec.yaml", "1.0");
    assert!(wait_until(120, || sb.exists("in-deploy")));
    let shown = locks(&sb);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["target"], "exec:cluster-a/App");
    let file = shown[0]["lock_file"].as_str().expect("lock_file");
    assert!(
        Path::new(file).starts_with(root(&sb).join(".relflow-locks")),
        "{file}"
    );

    run(&sb, "b", "pipe/exec.yaml", "2.0").expect_code(1);
    let t = task(&status(&sb, "b", "app-1"), "deploy-app").clone();
    assert_eq!(t["error_class"], "locked", "{t:#}");

    let_go(&sb, "exec");
    finish(first, 120).expect_code(0);
    assert!(locks(&sb).is_empty());
    sb.run(&["--state-dir", "b", "retry", "app-1"])
        .expect_code(0);
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
