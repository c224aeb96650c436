//! `relflow status --watch [--exit-status]` follows a release to its end.

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{Sandbox, wait_or_kill, wait_until};

const WAITS: &str = r#"
name: waits
phases:
  - name: build
    tasks:
      - { name: hold, command: { run: [sh, -c, "touch started; while [ ! -e go ]; do sleep 0.05; done; test -e pass"] } }
"#;

/// Runs the release, watches it from a second process, lets the task end once the watcher
/// has shown it running; returns the watcher's exit code and everything it printed.
fn watched(pass: bool) -> (Option<i32>, String) {
    let sb = Sandbox::new();
    sb.write("p.yaml", WAITS);
    let runner = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_until(30, || sb.exists("started")),
        "the task never started"
    );
    let mut watcher = sb.spawn(&["status", "waits-1", "--watch", "--exit-status"]);
    let stdout = watcher.stdout.take().expect("piped stdout");
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let first = seen
        .recv_timeout(Duration::from_secs(30))
        .expect("the watcher shows the running release");
    if pass {
        sb.write("pass", "");
    }
    sb.write("go", "");
    let (_, exited) = wait_or_kill(runner, Duration::from_secs(60));
    assert!(exited, "the release did not end");
    let mut printed = vec![first];
    while let Ok(line) = seen.recv_timeout(Duration::from_secs(60)) {
        printed.push(line);
    }
    let code = watcher.wait().expect("watcher exits").code();
    (code, printed.join("\n"))
}

#[test]
fn watch_with_exit_status_ends_with_the_release_and_its_exit_code() {
    let (code, printed) = watched(true);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("build/hold  running"), "{printed}");
    assert!(printed.contains("release waits-1  completed"), "{printed}");

    let (code, printed) = watched(false);
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("release waits-1  failed"), "{printed}");
}

#[test]
fn watch_of_a_finished_release_prints_it_at_once() {
    let sb = Sandbox::new();
    sb.write("p.yaml", WAITS);
    sb.write("go", "");
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let out = sb.run(&["status", "waits-1", "--watch", "--exit-status"]);
    out.expect_code(1);
    let out = sb.run(&["status", "waits-1", "--watch"]);
    out.expect_code(0);
}
