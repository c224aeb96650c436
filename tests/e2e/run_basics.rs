//! A release runs end to end: phases in order, parallel groups, variables, logs, exit codes.

use crate::harness::Sandbox;

const THREE_PHASES: &str = r#"
name: demo
variables: { version: "1.0" }
phases:
  - name: build
    tasks:
      - name: compile
        command: { run: [sh, -c, "echo building $0; echo artifact=app-$0.tgz >> $RELFLOW_OUTPUT", "${version}"] }
      - parallel:
          max: 2
          tasks:
            - { name: unit, command: { run: [echo, "unit of ${release.id}"] } }
            - { name: lint, command: { run: [echo, "lint in ${phase.name}/${task.name}"] } }
            - { name: pause-a-moment, wait: 0s }
  - name: package
    tasks:
      - name: show-artifact
        command: { run: [echo, "packaging ${artifact}"] }
  - name: deploy
    tasks:
      - name: ship
        command: { run: [sh, -c, "echo shipping; echo to stderr >&2"] }
"#;

fn with_artifact_var(s: &str) -> String {
    s.replace(
        r#"variables: { version: "1.0" }"#,
        r#"variables: { version: "1.0", artifact: "" }"#,
    )
}

#[test]
fn a_multi_phase_release_completes_and_prints_where_each_log_is() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &with_artifact_var(THREE_PHASES));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("release demo-1 completed"),
        "{}",
        out.stdout
    );
    for task in [
        "build/compile",
        "build/unit",
        "build/lint",
        "package/show-artifact",
        "deploy/ship",
    ] {
        let path = format!(".relflow/releases/demo-1/{task}/script_output.log");
        assert!(
            out.stdout.contains(&path),
            "summary misses {path}:\n{}",
            out.stdout
        );
        assert!(sb.exists(&path), "{path} not written");
    }
    let log = sb.read(".relflow/releases/demo-1/build/unit/script_output.log");
    assert_eq!(
        log,
        "=== attempt 1 ===\n$ echo 'unit of demo-1'\nunit of demo-1\n"
    );
    let lint = sb.read(".relflow/releases/demo-1/build/lint/script_output.log");
    assert!(lint.contains("lint in build/lint"), "{lint}");
    // A variable written to $RELFLOW_OUTPUT reaches a later task.
    let show = sb.read(".relflow/releases/demo-1/package/show-artifact/script_output.log");
    assert!(show.contains("packaging app-1.0.tgz"), "{show}");
    // stderr lands in the same log.
    let ship = sb.read(".relflow/releases/demo-1/deploy/ship/script_output.log");
    assert!(ship.contains("shipping\nto stderr\n"), "{ship}");
}

#[test]
fn var_overrides_a_default_and_release_ids_count_up() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &with_artifact_var(THREE_PHASES));
    sb.run(&["run", "p.yaml"]).expect_code(0);
    sb.run(&["run", "p.yaml", "--var", "version=2.3"])
        .expect_code(0);
    let log = sb.read(".relflow/releases/demo-2/build/compile/script_output.log");
    assert!(log.contains("building 2.3"), "{log}");
    let list = sb.run(&["list"]);
    list.expect_code(0);
    assert!(
        list.stdout.contains("demo-1") && list.stdout.contains("demo-2"),
        "{}",
        list.stdout
    );
}

#[test]
fn an_undeclared_var_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &with_artifact_var(THREE_PHASES));
    let out = sb.run(&["run", "p.yaml", "--var", "verison=2.3"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("`verison` is not a variable of pipeline demo"),
        "{}",
        out.stderr
    );
    assert!(!sb.exists(".relflow/releases/demo-1"));
    sb.run(&["run", "p.yaml", "--var", "novalue"])
        .expect_code(2);
}

#[test]
fn a_failing_command_halts_the_release_with_exit_1_and_later_tasks_do_not_run() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: halts
phases:
  - name: build
    tasks:
      - { name: breaks, command: { run: [sh, -c, "echo about to fail; exit 3"] } }
      - { name: never, command: { run: [touch, never-ran] } }
"#,
    );
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    assert!(
        out.stdout
            .contains("release halts-1 failed: task breaks failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("relflow logs halts-1 --task breaks"),
        "{}",
        out.stdout
    );
    assert!(!sb.exists("never-ran"));
    let log = sb.read(".relflow/releases/halts-1/build/breaks/script_output.log");
    assert!(
        log.contains("about to fail\nAttempt 1 failed: task_failed: sh exited with code 3"),
        "{log}"
    );
    let status = sb.run(&["status", "halts-1"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("release halts-1  failed"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("breaks") && status.stdout.contains("failed"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["never", "planned", "command"]),
        "{}",
        status.stdout
    );
}

#[test]
fn a_command_timeout_is_class_timeout() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: slow
phases:
  - name: build
    tasks:
      - { name: hangs, command: { run: [sleep, "30"], timeout: 300ms } }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let json = sb.run(&["status", "slow-1", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("status --json is JSON");
    let task = &doc["phases"][0]["tasks"][0];
    assert_eq!(task["status"], "failed");
    assert_eq!(task["error_class"], "timeout");
    assert_eq!(task["attempt_history"][0]["error_class"], "timeout");
}

#[test]
fn shell_true_runs_one_command_line_and_argv_is_never_a_shell() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: shells
variables: { evil: "x; touch pwned" }
phases:
  - name: build
    tasks:
      - { name: argv, command: { run: [echo, "${evil}"] } }
      - { name: piped, command: { run: "echo one two | wc -w", shell: true } }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    assert!(!sb.exists("pwned"));
    let argv = sb.read(".relflow/releases/shells-1/build/argv/script_output.log");
    assert!(argv.contains("\nx; touch pwned\n"), "{argv}");
    let piped = sb.read(".relflow/releases/shells-1/build/piped/script_output.log");
    assert!(piped.trim_end().ends_with('2'), "{piped}");
}

#[test]
fn scripts_run_from_the_pipeline_folder_and_json_reports_the_release() {
    let sb = Sandbox::new();
    sb.write_script(
        "ci/scripts/hello.sh",
        "#!/bin/sh\necho \"script says $1 from $(basename \"$PWD\")\"\n",
    );
    sb.write(
        "ci/p.yaml",
        r#"
name: scripted
phases:
  - name: build
    tasks:
      - name: greet
        script: { path: scripts/hello.sh, args: [hi] }
"#,
    );
    let out = sb.run(&["run", "ci/p.yaml", "--json"]);
    out.expect_code(0);
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("--json prints one JSON document");
    assert_eq!(doc["id"], "scripted-1");
    assert_eq!(doc["status"], "completed");
    let log = sb.read(".relflow/releases/scripted-1/build/greet/script_output.log");
    assert!(log.contains("script says hi from ci"), "{log}");
}

#[test]
fn logs_shows_one_task_or_one_attempt() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &with_artifact_var(THREE_PHASES));
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let all = sb.run(&["logs", "demo-1"]);
    all.expect_code(0);
    assert!(
        all.stdout.contains("==> build/unit <==") && all.stdout.contains("==> deploy/ship <=="),
        "{}",
        all.stdout
    );
    let one = sb.run(&["logs", "demo-1", "--task", "ship", "--attempt", "1"]);
    one.expect_code(0);
    assert!(
        one.stdout.starts_with("=== attempt 1 ===\n$ sh -c"),
        "{}",
        one.stdout
    );
    sb.run(&["logs", "demo-1", "--task", "ship", "--attempt", "2"])
        .expect_code(2);
    let unknown = sb.run(&["logs", "demo-1", "--task", "nope"]);
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("has no task `nope`"),
        "{}",
        unknown.stderr
    );
    sb.run(&["logs", "demo-9"]).expect_code(2);
}

#[test]
fn the_state_directory_is_private_and_can_be_moved() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: tiny\nphases:\n  - name: a\n    tasks:\n      - { name: t, wait: 0s }\n",
    );
    sb.run(&["run", "p.yaml", "--state-dir", "state"])
        .expect_code(0);
    let mode = std::fs::metadata(sb.path().join("state"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let db = std::fs::metadata(sb.path().join("state/relflow.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(db & 0o077, 0, "relflow.db is readable by others: {db:o}");
    assert!(!sb.exists(".relflow"));
    let status = sb.run(&["status", "--state-dir", "state"]);
    assert!(
        status.stdout.contains("release tiny-1  completed"),
        "{}",
        status.stdout
    );
}

#[test]
fn status_and_list_on_an_empty_state_say_so_and_leave_nothing_behind() {
    let sb = Sandbox::new();
    let out = sb.run(&["status"]);
    out.expect_code(0);
    assert!(out.stdout.contains("no releases yet"));
    sb.run(&["list"]).expect_code(0);
    sb.run(&["status", "nope-1"]).expect_code(2);
    assert!(!sb.exists(".relflow"));
}
