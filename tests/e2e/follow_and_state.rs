//! `logs --follow` while a release runs, and state written by an older relflow still loads.

use std::io::BufRead;

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
    let mut follower = sb.spawn(&["logs", "chatty-1", "--follow"]);
    // The follower has shown the early line before the task may write the next one, so
    // `two` can only reach it by following (no sleep that hopes it attached in time).
    let mut lines = std::io::BufReader::new(follower.stdout.take().expect("piped stdout")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        seen.push(line);
        if seen.last().is_some_and(|l| l.contains("one")) {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("one")),
        "early line: {seen:?}"
    );
    sb.write("go", "");
    seen.extend(lines.map_while(Result::ok));
    assert!(follower.wait().expect("follower ends").success());
    runner.wait().unwrap();
    let text = seen.join("\n");
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
