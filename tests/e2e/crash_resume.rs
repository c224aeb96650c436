//! A runner killed with SIGKILL loses nothing: `resume` records the killed attempt as
//! interrupted and runs nothing completed again. One runner owns a release at a time.

use std::process::Child;

use crate::harness::{Sandbox, wait_until};

/// `first` counts its runs; `slow` blocks the first time (until killed) and passes after.
const KILLABLE: &str = r#"
name: crashy
phases:
  - name: build
    tasks:
      - { name: first, command: { run: [sh, -c, "echo ran >> first.runs"] } }
      - name: slow
        command:
          run: [sh, -c, "echo run >> slow.runs; if [ -f slow.once ]; then sleep $HOLD; exit 0; fi; touch slow.once; sleep 60"]
          env: { HOLD: "${hold}" }
  - name: deploy
    tasks:
      - { name: last, command: { run: [sh, -c, "echo ran >> last.runs"] } }
variables: { hold: "0" }
"#;

fn kill_during_slow(sb: &Sandbox, hold: &str) -> String {
    sb.write("p.yaml", KILLABLE);
    let mut child: Child = sb.spawn(&["run", "p.yaml", "--var", &format!("hold={hold}")]);
    assert!(
        wait_until(20, || sb.exists("slow.once")),
        "the slow task never started"
    );
    child.kill().expect("SIGKILL the runner");
    child.wait().expect("reap the runner");
    "crashy-1".to_string()
}

fn lines(sb: &Sandbox, file: &str) -> usize {
    sb.read(file).lines().count()
}

#[test]
fn resume_after_sigkill_records_the_interrupted_attempt_and_reruns_nothing_completed() {
    let sb = Sandbox::new();
    let release = kill_during_slow(&sb, "0");

    let status = sb.run(&["status", &release]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("no live runner"),
        "{}",
        status.stdout
    );

    let out = sb.run(&["resume", &release]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("release crashy-1 completed"),
        "{}",
        out.stdout
    );
    assert_eq!(lines(&sb, "first.runs"), 1, "a completed task ran again");
    assert_eq!(lines(&sb, "slow.runs"), 2);
    assert_eq!(lines(&sb, "last.runs"), 1);

    let log = sb.read(".relflow/releases/crashy-1/build/slow/script_output.log");
    let interrupted = log
        .find("Attempt 1 was interrupted")
        .expect("interruption logged");
    let second = log
        .find("=== attempt 2 ===")
        .expect("second attempt logged");
    assert!(
        log.starts_with("=== attempt 1 ===") && interrupted < second,
        "{log}"
    );

    let json = sb.run(&["status", &release, "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let slow = &doc["phases"][0]["tasks"][1];
    assert_eq!(slow["status"], "completed");
    assert_eq!(slow["attempt_history"][0]["status"], "interrupted");
    assert_eq!(slow["attempt_history"][0]["error_class"], "interrupted");
    assert_eq!(slow["attempt_history"][1]["status"], "succeeded");
    let events = sb.read(".relflow/releases/crashy-1/events.jsonl");
    assert!(events.contains(r#""status":"interrupted""#), "{events}");
}

#[test]
fn a_second_runner_on_a_live_release_exits_6_naming_the_holder() {
    let sb = Sandbox::new();
    sb.write("p.yaml", KILLABLE);
    let mut runner = sb.spawn(&["run", "p.yaml"]);
    assert!(wait_until(20, || sb.exists("slow.once")));
    let second = sb.run(&["resume", "crashy-1"]);
    second.expect_code(6);
    let pid = runner.id().to_string();
    assert!(
        second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
}

#[test]
fn two_resumes_at_once_exactly_one_proceeds_the_other_exits_6() {
    let sb = Sandbox::new();
    let release = kill_during_slow(&sb, "3");
    let a = sb.spawn(&["resume", &release]);
    let b = sb.spawn(&["resume", &release]);
    let codes: Vec<i32> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 6], "exit codes {codes:?}");
    assert_eq!(
        lines(&sb, "slow.runs"),
        2,
        "the slow task ran in both resumes"
    );
    assert_eq!(lines(&sb, "last.runs"), 1);
}

#[test]
fn the_killed_runners_child_process_does_not_outlive_it() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: orphan\nphases:\n  - name: a\n    tasks:\n      - { name: t, command: { run: [sh, -c, \"echo $$ > child.pid; exec sleep 60\"] } }\n",
    );
    let mut runner = sb.spawn(&["run", "p.yaml"]);
    assert!(wait_until(20, || sb.exists("child.pid")
        && !sb.read("child.pid").trim().is_empty()));
    runner.kill().unwrap();
    runner.wait().unwrap();
    let pid: i32 = sb.read("child.pid").trim().parse().unwrap();
    // SAFETY: signal 0 only checks existence.
    let gone = wait_until(10, || unsafe { libc::kill(pid, 0) } != 0);
    assert!(gone, "task process {pid} outlived the killed runner");
}

/// A runner killed after a task ended `failed` but before its phase and release were marked
/// leaves the phase run `running`. `resume` must halt on that task again, not run it once more.
#[test]
fn resume_does_not_rerun_a_task_that_already_failed_when_the_runner_died_after_it() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: halted\nphases:\n  - name: a\n    tasks:\n      - { name: breaks, command: { run: [sh, -c, \"echo run >> breaks.runs; exit 1\"] } }\n",
    );
    sb.run(&["run", "p.yaml"]).expect_code(1);
    // Recreate what the crash window leaves: the phase run and the release still `running`.
    {
        let store = relflow::store::Store::open(&sb.path().join(".relflow")).expect("open store");
        let phase = &store.phase_runs("halted-1").expect("phase runs")[0];
        store
            .set_phase_status(phase.id, relflow::store::PhaseStatus::Running)
            .expect("phase running");
        store
            .set_release_status("halted-1", relflow::store::ReleaseStatus::Running, None)
            .expect("release running");
    }
    let out = sb.run(&["resume", "halted-1"]);
    out.expect_code(1);
    assert_eq!(lines(&sb, "breaks.runs"), 1, "the failed task ran again");
    assert!(
        out.stdout
            .contains("release halted-1 failed: task breaks failed"),
        "{}",
        out.stdout
    );
}
