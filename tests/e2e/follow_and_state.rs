//! `logs --follow` while a release runs, and state written by an older relflow still loads.

use crate::harness::{Sandbox, wait_until};

#[test]
fn logs_follow_prints_lines_as_they_come_and_stops_with_the_release() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: chatty
phases:
  - name: build
    tasks:
      - name: talk
        command: { run: [sh, -c, "echo one; touch started; while [ ! -f go ]; do sleep 0.05; done; echo two"] }
      - { name: after, command: { run: [echo, three] } }
"#,
    );
    let mut runner = sb.spawn(&["run", "p.yaml"]);
    assert!(wait_until(20, || sb.exists("started")));
    let follower = sb.spawn(&["logs", "chatty-1", "--follow"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    sb.write("go", "");
    let out = follower
        .wait_with_output()
        .expect("follower ends when the release does");
    runner.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let one = text.find("one").expect("early line");
    let two = text.find("two").expect("line written while following");
    assert!(one < two, "{text}");
    assert!(text.contains("[build/after] three"), "{text}");
}

/// `tests/fixtures/state-v1/relflow.db` was written by the first relflow (schema 1):
/// release `hello-1` completed, `hello-2` halted on a failure. Later builds must read it.
#[test]
fn a_schema_1_state_store_still_loads() {
    let sb = Sandbox::new();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/state-v1/relflow.db");
    std::fs::create_dir_all(sb.path().join(".relflow")).unwrap();
    std::fs::copy(&fixture, sb.path().join(".relflow/relflow.db")).expect("copy fixture");
    let list = sb.run(&["list"]);
    list.expect_code(0);
    assert!(
        list.stdout.contains("hello-1") && list.stdout.contains("completed"),
        "{}",
        list.stdout
    );
    let status = sb.run(&["status", "hello-2"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("release hello-2  failed"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("task_failed"), "{}", status.stdout);
}
