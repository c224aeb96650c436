//! The CLI as a person meets it: the state directory found from a subfolder, completions and
//! the manual page, `--help` with examples and exit codes (the `run --help` text is pinned in
//! `tests/fixtures/help/run.txt`; `RELFLOW_BLESS=1` rewrites it), colour and NO_COLOR.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Outcome, Sandbox};

/// Runs `relflow ARGS...` with `dir` (inside the sandbox) as the working directory.
fn run_in(sb: &Sandbox, dir: &str, args: &[&str]) -> Outcome {
    let cwd = sb.path().join(dir);
    std::fs::create_dir_all(&cwd).expect("mkdir");
    sb.command(args)
        .current_dir(cwd)
        .output()
        .expect("spawn relflow")
        .into()
}

const TINY: &str = r#"
name: tiny
phases:
  - name: build
    tasks:
      - name: say
        command: { run: [echo, hi] }
"#;

#[test]
fn cli_the_state_dir_is_found_in_the_nearest_parent_like_git_finds_dot_git() {
    let sb = Sandbox::new();
    sb.write("p.yaml", TINY);
    sb.run(&["run", "p.yaml"]).expect_code(0);

    let status = run_in(&sb, "a/b/c", &["status", "tiny-1", "--json"]);
    status.expect_code(0);
    let doc: Value = serde_json::from_str(&status.stdout).expect("status --json");
    assert_eq!(doc["status"], "completed", "{}", status.stdout);
    let logs = run_in(&sb, "a/b", &["logs", "tiny-1", "--task", "say"]);
    logs.expect_code(0);
    assert!(logs.stdout.contains("hi"), "{}", logs.stdout);

    // A run from the subfolder goes into the same store: no second `.relflow` appears.
    run_in(&sb, "a/b/c", &["run", "../../../p.yaml"]).expect_code(0);
    assert!(!sb.exists("a/b/c/.relflow"), "run made a second state dir");
    let list = sb.run(&["list"]);
    assert!(list.stdout.contains("tiny-2"), "{}", list.stdout);
}

#[test]
fn cli_without_a_state_dir_reading_commands_name_where_they_looked_and_create_nothing() {
    let sb = Sandbox::new();
    let here = sb.path().join("x/y");
    let out = run_in(&sb, "x/y", &["status", "tiny-1"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("no release `tiny-1`: no .relflow state directory in")
            && out.stderr.contains(&here.display().to_string())
            && out.stderr.contains("--state-dir"),
        "{}",
        out.stderr
    );
    // A writing command about a release refuses the same way instead of making a store.
    let retry = run_in(&sb, "x/y", &["retry", "tiny-1"]);
    retry.expect_code(2);
    assert!(
        retry.stderr.contains("no .relflow state directory"),
        "{}",
        retry.stderr
    );
    let list = run_in(&sb, "x/y", &["list"]);
    list.expect_code(0);
    assert!(list.stdout.contains("no releases yet"), "{}", list.stdout);
    assert!(
        list.stderr.contains("no .relflow state directory"),
        "{}",
        list.stderr
    );
    for dir in [".relflow", "x/.relflow", "x/y/.relflow"] {
        assert!(!sb.exists(dir), "{dir} was created by a reading command");
    }

    // `run` creates `./.relflow` where it runs; the parent still has none.
    sb.write("x/y/p.yaml", TINY);
    run_in(&sb, "x/y", &["run", "p.yaml"]).expect_code(0);
    assert!(sb.exists("x/y/.relflow/relflow.db"));
    assert!(!sb.exists(".relflow"));
}

#[test]
fn cli_relflow_state_dir_wins_over_discovery() {
    let mut sb = Sandbox::new();
    sb.write("p.yaml", TINY);
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let elsewhere = sb.path().join("elsewhere");
    sb.env("RELFLOW_STATE_DIR", &elsewhere.display().to_string());
    let out = sb.run(&["status", "tiny-1"]);
    out.expect_code(2);
    assert!(out.stderr.contains("no release `tiny-1`"), "{}", out.stderr);
}

/// The verbs `relflow --help` lists (without `help`).
fn verbs(sb: &Sandbox) -> Vec<String> {
    let out = sb.run(&["--help"]);
    out.expect_code(0);
    out.stdout
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn cli_completions_cover_every_verb_and_bash_sources_cleanly() {
    let sb = Sandbox::new();
    let verbs = verbs(&sb);
    assert!(verbs.len() >= 20, "{verbs:?}");
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.run(&["completions", shell]);
        out.expect_code(0);
        for verb in &verbs {
            assert!(out.stdout.contains(verb.as_str()), "{shell}: no {verb}");
        }
    }
    let script = sb.write("relflow.bash", &sb.run(&["completions", "bash"]).stdout);
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let bad = sb.run(&["completions", "tcsh"]);
    bad.expect_code(2);
}

#[test]
fn cli_man_pages_are_roff_and_mention_every_verb() {
    let sb = Sandbox::new();
    let page = sb.run(&["man"]);
    page.expect_code(0);
    assert!(page.stdout.contains(".TH relflow 1"), "{}", page.stdout);
    for verb in verbs(&sb) {
        let roff_name = format!("relflow\\-{}", verb.replace('-', "\\-"));
        assert!(page.stdout.contains(&roff_name), "no {roff_name}");
    }
    assert!(page.stdout.contains("Exit codes:"));
    let run = sb.run(&["man", "run"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(".TH relflow-run 1") && run.stdout.contains("Examples:"),
        "{}",
        run.stdout
    );
    sb.run(&["man", "nope"]).expect_code(2);
    let dir = sb.path().join("man1");
    std::fs::create_dir(&dir).expect("mkdir");
    sb.run(&["man", "--dir", &dir.display().to_string()])
        .expect_code(0);
    for file in ["relflow.1", "relflow-run.1", "relflow-restart-phase.1"] {
        assert!(dir.join(file).exists(), "no {file}");
    }
}

#[test]
fn cli_every_verb_has_examples_argument_help_and_the_release_verbs_exit_codes() {
    let sb = Sandbox::new();
    let root = sb.run(&["--help"]);
    assert!(root.stdout.contains("Exit codes:") && root.stdout.contains("NO_COLOR"));
    let drives = [
        "run",
        "resume",
        "retry",
        "skip",
        "abort",
        "pause",
        "restart-phase",
        "approve",
        "reject",
    ];
    for verb in verbs(&sb) {
        let help = sb.run(&[&verb, "--help"]);
        help.expect_code(0);
        assert!(
            help.stdout.contains("\nExamples:\n  relflow "),
            "{verb}: {}",
            help.stdout
        );
        let has_codes = help.stdout.contains("4  the release ended by a rollback");
        assert_eq!(
            has_codes,
            drives.contains(&verb.as_str()),
            "{verb}: {}",
            help.stdout
        );
        // Every argument line carries a text: `  <RELEASE>  The release, ...`.
        for line in help
            .stdout
            .lines()
            .filter(|l| l.starts_with("  <") || l.starts_with("      --"))
        {
            let name_end = line.trim_start().find("  ");
            assert!(name_end.is_some(), "{verb}: no help text on `{line}`");
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/help")
        .join(name)
}

#[test]
fn cli_run_help_is_pinned() {
    let sb = Sandbox::new();
    let out: Outcome = sb
        .command(&["run", "--help"])
        .env("COLUMNS", "100")
        .output()
        .expect("spawn relflow")
        .into();
    out.expect_code(0);
    let path = fixture("run.txt");
    if std::env::var_os("RELFLOW_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &out.stdout).expect("bless");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        out.stdout,
        expected,
        "`relflow run --help` differs from {} (RELFLOW_BLESS=1 rewrites it)",
        path.display()
    );
}

/// A release whose one task fails and is rolled back, run with colour forced or refused.
fn failing_run(no_color: bool) -> Outcome {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: red\nphases:\n  - name: b\n    tasks:\n      - { name: t, command: { run: [sh, -c, \"exit 3\"] } }\n",
    );
    let mut cmd = sb.command(&["run", "p.yaml"]);
    cmd.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    cmd.output().expect("spawn relflow").into()
}

#[test]
fn cli_statuses_are_coloured_unless_no_color_is_set() {
    let coloured = failing_run(false);
    coloured.expect_code(1);
    assert!(
        coloured
            .stdout
            .contains("\u{1b}[1m\u{1b}[31mfailed\u{1b}[0m"),
        "{:?}",
        coloured.stdout
    );
    let plain = failing_run(true);
    plain.expect_code(1);
    assert!(!plain.stdout.contains('\u{1b}'), "{:?}", plain.stdout);
    let sb = Sandbox::new();
    let help: Outcome = sb
        .command(&["--help"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .expect("spawn relflow")
        .into();
    assert!(
        !help.stdout.contains('\u{1b}'),
        "NO_COLOR ignored by --help"
    );
    let forced: Outcome = sb
        .command(&["--help"])
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .output()
        .expect("spawn relflow")
        .into();
    assert!(forced.stdout.contains('\u{1b}'), "{:?}", forced.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_rust_log_relflow_debug_traces_xl_deploy_calls_without_secrets() {
    use crate::fake_xld::{FakeXld, TaskScript};
    let fake = FakeXld::start().await;
    fake.with_package("Applications/PetPortal/2.3")
        .script_deploy(TaskScript::succeed());
    let mut sb = Sandbox::new();
    sb.env("XLD_PASSWORD", "s3cret")
        .env("RUST_LOG", "relflow=debug");
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: traced
backends:
  xld: {{ kind: xl-deploy, url: "{}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms }}
phases:
  - name: deploy
    tasks:
      - name: web
        deploy: {{ backend: xld, package: "Applications/PetPortal/2.3", environment: Environments/Prod }}
"#,
            fake.url()
        ),
    );
    let out = sb.run_async(&["run", "p.yaml"]).await;
    out.expect_code(0);
    let call = out
        .stderr
        .lines()
        .find(|l| l.contains("relflow::xld") && l.contains("XL Deploy call"))
        .unwrap_or_else(|| panic!("no HTTP call traced:\n{}", out.stderr));
    assert!(
        call.contains("request=") && call.contains("/deployit/") && call.contains("status=2"),
        "{call}"
    );
    for expected in ["relflow::lease", "relflow::lock", "XL Deploy task polled"] {
        assert!(
            out.stderr.contains(expected),
            "no {expected}:\n{}",
            out.stderr
        );
    }
    // Neither the password nor the basic-auth header's base64 of `admin:s3cret`.
    let basic = "YWRtaW46czNjcmV0";
    assert!(
        !out.stderr.contains("s3cret") && !out.stderr.contains(basic),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\u{1b}'), "tracing coloured a pipe");
}
