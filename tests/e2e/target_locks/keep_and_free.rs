//! When a lock is freed and when it is kept: failures before and after delivery, `relflow
//! unlock`, `skip`, restart-phase re-entry, and a runner killed right after taking a lock.

use super::*;

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

#[test]
fn target_locks_skipping_a_task_that_kept_its_lock_frees_it() {
    let sb = world();
    let file = pipeline(&sb, "app.yaml", "{ then: pause }", "");
    run(&sb, "a", &file, "bad").expect_code(1);
    assert_eq!(locks(&sb).len(), 1);
    sb.run(&["--state-dir", "a", "skip", "app-1", "--task", "deploy-app"])
        .expect_code(0);
    assert!(locks(&sb).is_empty());
    assert!(log(&sb, "a", "deploy").contains("Unlocked"));
}
