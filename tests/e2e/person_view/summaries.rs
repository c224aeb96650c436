//! The end-of-drive summary and the status timeline, pinned as a person reads them.

use super::{person_sandbox, with_examples};
use crate::harness::Sandbox;
use crate::snapshot::{assert_snapshot, redact};

const HALTS: &str = r#"
name: halts
phases:
  - name: build
    tasks:
      - { name: compile, command: { run: [sh, -c, "echo compiling; exit 3"] } }
      - { name: never, command: { run: [echo, never] } }
"#;

const GATED: &str = r#"
name: gated
variables: { version: "2.3" }
phases:
  - name: deploy
    tasks:
      - { name: promote, manual: { prompt: "Promote ${version} to prod?" } }
"#;

fn summary_of(sb: &Sandbox, out: &crate::harness::Outcome) -> String {
    // The summary starts at the blank line before `release ... <status>`.
    let start = out.stdout.rfind("\nrelease ").expect("a summary");
    redact(&out.stdout[start..], sb.path())
}

#[test]
fn the_summary_of_a_completed_release_names_the_rollback_it_allows() {
    let sb = with_examples();
    let out = sb.run(&["run", "pipelines/petportal.yaml"]);
    out.expect_code(0);
    assert_snapshot("summary_completed", &summary_of(&sb, &out));
}

#[test]
fn the_summary_of_a_halted_release_says_what_failed_and_every_command_that_applies() {
    let sb = person_sandbox();
    sb.write("p.yaml", HALTS);
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    let summary = summary_of(&sb, &out);
    assert!(
        summary.contains("relflow retry halts-1 --task compile"),
        "{summary}"
    );
    assert_snapshot("summary_halted", &summary);
}

#[test]
fn the_summary_of_a_paused_release_shows_the_prompt_and_the_answers() {
    let sb = person_sandbox();
    sb.write("p.yaml", GATED);
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(5);
    let summary = summary_of(&sb, &out);
    assert!(summary.contains("Promote 2.3 to prod?"), "{summary}");
    assert_snapshot("summary_paused", &summary);
    let status = sb.run(&["status", "gated-1"]);
    assert!(
        status
            .stdout
            .contains("waiting for approval: Promote 2.3 to prod?"),
        "{}",
        status.stdout
    );
}

#[test]
fn the_seed_scenario_reads_as_a_timeline_from_failure_to_fix_forward() {
    let sb = with_examples();
    sb.run(&["run", "pipelines/petportal.yaml"]).expect_code(0);
    let failed = sb.run(&["run", "pipelines/petportal.yaml", "--var", "version=2.2"]);
    failed.expect_code(4);
    let summary = summary_of(&sb, &failed);
    assert!(
        summary.contains("relflow restart-phase petportal-2 deploy --var version=..."),
        "{summary}"
    );
    assert_snapshot("summary_rolled_back", &summary);

    // `retry` has no failed task to run: it says so and what applies instead.
    let retry = sb.run(&["retry", "petportal-2"]);
    retry.expect_code(2);
    assert!(
        retry.stderr.contains("what applies now")
            && retry
                .stderr
                .contains("relflow restart-phase petportal-2 deploy"),
        "{}",
        retry.stderr
    );

    sb.run_env(
        &[
            "restart-phase",
            "petportal-2",
            "deploy",
            "--var",
            "version=2.3",
            "--comment",
            "2.3 carries the health fix",
        ],
        &[("RELFLOW_ACTOR", "ann")],
    )
    .expect_code(0);
    let status = sb.run(&["status", "petportal-2"]);
    status.expect_code(0);
    let text = redact(&status.stdout, sb.path());
    // The error is said once, later attempts refer to it; no internal keys as rules.
    assert_eq!(text.matches("exited with code 1").count(), 1, "{text}");
    assert_eq!(text.matches("the same error").count(), 3, "{text}");
    assert!(text.contains("attempt 4 of 4"), "{text}");
    assert!(
        text.contains("ann ran relflow restart-phase: \"2.3 carries the health fix\""),
        "{text}"
    );
    assert_snapshot("status_seed_scenario", &text);
}
