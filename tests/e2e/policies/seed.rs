//! The seed scenario on the local backend: 2.2 rolled back after 4 attempts, then fixed forward to 2.3.

use super::*;

const PETPORTAL: &str = "pipelines/petportal.yaml";
const TARGET: &str = ".relflow-demo/petportal";

#[track_caller]
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` in:\n{text}");
    text.replace(from, to)
}

#[test]
fn policies_seed_scenario_2_2_rolls_back_after_4_attempts_then_restart_phase_with_2_3_completes() {
    let sb = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&example, &sb.path().join("pipelines"));
    let yaml = replace_once(&sb.read(PETPORTAL), "delay: 1s", "delay: 10ms");
    assert!(yaml.contains("retries: 3") && yaml.contains("then: rollback"));
    sb.write(PETPORTAL, &yaml);

    sb.run(&["run", PETPORTAL]).expect_code(0);
    let version_file = format!("{TARGET}/.relflow-version");
    assert!(sb.read(&version_file).contains("1.0"));
    let before = tree::snapshot(&sb.path().join(TARGET));

    let out = sb.run(&["run", PETPORTAL, "--var", "version=2.2"]);
    out.expect_code(4);
    let release = "petportal-2";
    let log = log(&sb, release, "deploy", "deploy-petportal");
    assert_eq!(
        lines_starting(&log, "=== attempt "),
        [
            "=== attempt 1 ===",
            "=== attempt 2 ===",
            "=== attempt 3 ===",
            "=== attempt 4 ==="
        ],
        "{log}"
    );
    // The example's backoff is exponential: 10ms, 20ms, 40ms.
    let retrying = lines_starting(&log, "Retrying in ");
    assert_eq!(retrying.len(), 3, "{log}");
    for (line, head) in retrying.iter().zip([
        "Retrying in 10ms (attempt 2 of 4): task_failed: ",
        "Retrying in 20ms (attempt 3 of 4): task_failed: ",
        "Retrying in 40ms (attempt 4 of 4): task_failed: ",
    ]) {
        assert!(line.starts_with(head), "{line}");
    }
    let going = log.find("Going to rollback").expect("Going to rollback");
    assert!(going > log.find("=== attempt 4 ===").unwrap(), "{log}");
    tree::assert_same(
        &before,
        &tree::snapshot(&sb.path().join(TARGET)),
        "after the rollback of 2.2",
    );
    assert!(sb.read(&version_file).contains("1.0"));

    let doc = status_json(&sb, release);
    assert_eq!(doc["status"], "failed");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "rolled_back");
    assert_eq!(attempts(t), 4);
    assert_eq!(
        decision_kinds(t).iter().filter(|d| *d == "retry").count(),
        3
    );

    let out = sb.run(&["restart-phase", release, "deploy", "--var", "version=2.3"]);
    out.expect_code(0);
    let doc = status_json(&sb, release);
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(labels(&doc), ["build", "deploy", "deploy#2"]);
    let first = phase(&doc, "deploy");
    assert_eq!(first["status"], "rolled_back");
    assert_eq!(first["variables"]["version"], "2.2");
    let second = phase(&doc, "deploy#2");
    assert_eq!(second["status"], "completed");
    assert_eq!(second["variables"]["version"], "2.3");
    assert_eq!(
        task_in(&doc, "deploy#2", "deploy-petportal")["status"],
        "completed"
    );
    assert_eq!(task_in(&doc, "deploy#2", "smoke")["status"], "completed");
    // The first run's task and its log stay as they were.
    assert_eq!(
        task_in(&doc, "deploy", "deploy-petportal")["status"],
        "rolled_back"
    );
    assert!(sb.exists(&format!(
        ".relflow/releases/{release}/deploy/deploy-petportal/script_output.log"
    )));
    let version = sb.read(&version_file);
    assert!(version.contains("2.3"), "{version}");

    let text = sb.run(&["status", release]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("deploy#2"),
        "status does not show the second run:\n{}",
        text.stdout
    );
}
