//! `relflow targets`: what each target runs after every step of the seed scenario (1.0, then
//! 2.2 failing and rolled back, restart-phase 2.3, `relflow rollback` of one component and of
//! all), its history, `list` marking a release rolled back later, an XL Deploy environment,
//! the pinned text, and a crash right after the new write.
//!
//! `RELFLOW_BLESS=1 cargo nextest run -p relflow-tests -E 'test(/targets/)'` rewrites the
//! pinned text in `tests/fixtures/targets/` (review the diff before committing).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fake_xld::{FakeXld, TaskScript};
use crate::harness::Sandbox;
use crate::tree;

const PIPELINE: &str = "pipelines/petportal.yaml";

/// The PetPortal example copied into the sandbox, its retries cut to none (the health check
/// of 2.2 fails at once, then the task is rolled back).
fn petportal() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("USER", "alice").env("RELFLOW_ACTOR", "alice");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&example, &sb.path().join("pipelines"));
    let yaml = sb.read(PIPELINE);
    assert_eq!(yaml.matches("retries: 3").count(), 1, "{yaml}");
    sb.write(PIPELINE, &yaml.replace("retries: 3", "retries: 0"));
    sb
}

fn targets_json(sb: &Sandbox, args: &[&str]) -> Value {
    let mut all = vec!["targets", "--json"];
    all.extend_from_slice(args);
    let out = sb.run(&all);
    out.expect_code(0);
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(
        doc.as_object()
            .and_then(|o| o.keys().next())
            .map(String::as_str),
        Some("format")
    );
    assert_eq!(doc["format"], 1);
    doc
}

/// The only target of `targets --json`.
fn only_target(sb: &Sandbox) -> Value {
    let doc = targets_json(sb, &[]);
    let targets = doc["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "{doc:#}");
    targets[0].clone()
}

fn is_rfc3339(value: &Value) -> bool {
    value.as_str().is_some_and(|s| time_at(s.as_bytes(), 0))
}

/// Whether `bytes[i..]` starts with `dddd-dd-ddTdd:dd:dd.dddZ`.
fn time_at(bytes: &[u8], i: usize) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    bytes.len() >= i + SHAPE.len()
        && SHAPE.iter().enumerate().all(|(k, want)| {
            let got = bytes[i + k];
            if *want == b'd' {
                got.is_ascii_digit()
            } else {
                got == *want
            }
        })
}

/// `text` with times as `<time>`, the sandbox as `<sandbox>`, and column padding (which
/// follows the temp path's length) as two spaces.
fn redact(text: &str, sandbox: &Path) -> String {
    let mut text = text.to_string();
    let canonical = std::fs::canonicalize(sandbox).unwrap_or_else(|_| sandbox.to_path_buf());
    for path in [canonical, sandbox.to_path_buf()] {
        text = text.replace(path.to_string_lossy().as_ref(), "<sandbox>");
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if time_at(bytes, i) {
            out.push_str("<time>");
            i += 24;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        out.push(c);
        i += c.len_utf8();
    }
    out.lines()
        .map(|line| {
            let mut cells = line.split("  ").filter(|c| !c.trim().is_empty());
            let first = cells.next().unwrap_or_default().to_string();
            cells.fold(first, |acc, c| format!("{acc}  {}", c.trim()))
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/targets")
        .join(name)
}

/// Compares `actual` with the pinned fixture (rewritten under `RELFLOW_BLESS=1`).
#[track_caller]
fn assert_pinned(name: &str, actual: &str) {
    let path = fixture(name);
    if std::env::var_os("RELFLOW_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
        std::fs::write(&path, actual).expect("bless");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless it with RELFLOW_BLESS=1)", path.display()));
    assert_eq!(
        actual, expected,
        "{name} changed; RELFLOW_BLESS=1 rewrites it"
    );
}

fn list_line(sb: &Sandbox, release: &str) -> String {
    let out = sb.run(&["list"]);
    out.expect_code(0);
    out.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{release} ")))
        .unwrap_or_else(|| panic!("no {release} in:\n{}", out.stdout))
        .to_string()
}

/// Runs the seed scenario, checking `targets` after each step; returns the sandbox.
fn seed_scenario() -> Sandbox {
    let sb = petportal();
    let empty = sb.run(&["targets"]);
    empty.expect_code(0);
    assert!(
        empty.stdout.contains("no deployment recorded yet"),
        "{}",
        empty.stdout
    );
    assert_eq!(targets_json(&sb, &[])["targets"], serde_json::json!([]));

    sb.run(&["run", PIPELINE]).expect_code(0);
    let now = only_target(&sb);
    assert_eq!(now["backend"], "prod");
    assert_eq!(now["backend_kind"], "local");
    assert!(
        now["target"]
            .as_str()
            .is_some_and(|t| t.ends_with(".relflow-demo/petportal")),
        "{now:#}"
    );
    assert_eq!(now["application"], "PetPortal");
    assert_eq!(now["version"], "1.0");
    assert!(is_rfc3339(&now["since"]), "{now:#}");
    assert_eq!(now["deployed_by"]["release"], "petportal-1");

    sb.run(&["run", PIPELINE, "--var", "version=2.2"])
        .expect_code(4);
    let now = only_target(&sb);
    assert_eq!(now["version"], "1.0", "2.2 was rolled back: {now:#}");
    assert_eq!(now["last_change"]["change"], "rolled_back");
    assert_eq!(now["last_change"]["version"], "2.2");
    assert_eq!(now["last_change"]["release"], "petportal-2");
    assert_eq!(now["deployed_by"]["release"], "petportal-1");
    let text = sb.run(&["targets"]).stdout;
    assert!(
        text.contains("petportal-1 deploy/deploy-petportal, restored by rollback of petportal-2"),
        "{text}"
    );

    sb.run(&[
        "restart-phase",
        "petportal-2",
        "deploy",
        "--var",
        "version=2.3",
    ])
    .expect_code(0);
    let now = only_target(&sb);
    assert_eq!(now["version"], "2.3");
    assert_eq!(now["deployed_by"]["release"], "petportal-2");
    assert_eq!(now["deployed_by"]["phase"], "deploy#2");
    assert_eq!(now["deployed_by"]["task"], "deploy-petportal");
    assert!(!list_line(&sb, "petportal-2").contains("rolled back later"));

    sb.run(&["rollback", "petportal-2", "--component", "web"])
        .expect_code(0);
    let now = only_target(&sb);
    assert_eq!(now["version"], "2.3", "only web went back: {now:#}");
    assert_eq!(now["components_rolled_back"], serde_json::json!(["web"]));
    assert_eq!(now["components_version"], "1.0");
    assert_eq!(now["last_change"]["change"], "components_rolled_back");
    assert_eq!(now["last_change"]["actor"], "alice");
    assert!(list_line(&sb, "petportal-2").contains("rolled back later: prod (web)"));

    sb.run(&["rollback", "petportal-2"]).expect_code(0);
    let now = only_target(&sb);
    assert_eq!(now["version"], "1.0", "{now:#}");
    assert_eq!(now["deployed_by"]["release"], "petportal-1");
    assert_eq!(now["last_change"]["change"], "rolled_back");
    assert_eq!(now["last_change"]["rollback_job"], 2);
    sb
}

#[test]
fn targets_show_the_version_each_step_of_the_seed_scenario_leaves() {
    let sb = seed_scenario();
    // `list` no longer shows a bare `completed version=2.3` while the target runs 1.0.
    let line = list_line(&sb, "petportal-2");
    assert!(line.contains("completed"), "{line}");
    assert!(
        line.contains("version=2.3  (rolled back later: prod)"),
        "{line}"
    );
    let listed = sb.run(&["list", "--json"]);
    assert!(
        listed.stdout.contains("\"rolled_back_later\""),
        "{}",
        listed.stdout
    );
}

#[test]
fn targets_history_lists_every_change_newest_first() {
    let sb = seed_scenario();
    let doc = targets_json(&sb, &["--history"]);
    let changes = doc["changes"].as_array().expect("changes");
    let seen: Vec<(String, String, String, String)> = changes
        .iter()
        .map(|c| {
            assert!(is_rfc3339(&c["at"]), "{c:#}");
            let text = |k: &str| c[k].as_str().unwrap_or("nothing").to_string();
            (
                text("release"),
                text("change"),
                text("version"),
                text("runs"),
            )
        })
        .collect();
    let want = [
        ("petportal-2", "rolled_back", "2.3", "1.0"),
        ("petportal-2", "components_rolled_back", "2.3", "2.3"),
        ("petportal-2", "deployed", "2.3", "2.3"),
        ("petportal-2", "rolled_back", "2.2", "1.0"),
        ("petportal-1", "deployed", "1.0", "1.0"),
    ];
    let want: Vec<(String, String, String, String)> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(seen, want, "{doc:#}");
    assert_eq!(changes[1]["components"], serde_json::json!(["web"]));
    assert_eq!(changes[2]["phase"], "deploy#2");
    assert_eq!(changes[0]["actor"], "alice");
    assert_eq!(
        changes[3]["actor"],
        Value::Null,
        "the policy rolled 2.2 back"
    );
}

#[test]
fn targets_text_is_pinned() {
    let sb = seed_scenario();
    let now = sb.run(&["targets"]);
    now.expect_code(0);
    assert_pinned("seed-now.txt", &redact(&now.stdout, sb.path()));
    let history = sb.run(&["targets", "--history"]);
    history.expect_code(0);
    assert_pinned("seed-history.txt", &redact(&history.stdout, sb.path()));
}

/// A deployment that failed and was left in place (`then: pause`) is shown as such, not as
/// the version before it; `abort --rollback` brings that version back and names who ordered it.
#[test]
fn targets_show_a_failed_deployment_left_in_place_until_an_abort_rolls_it_back() {
    let sb = petportal();
    let yaml = sb.read(PIPELINE);
    sb.write(PIPELINE, &yaml.replace("then: rollback", "then: pause"));
    sb.run(&["run", PIPELINE]).expect_code(0);
    sb.run(&["run", PIPELINE, "--var", "version=2.2"])
        .expect_code(1);
    let now = only_target(&sb);
    assert_eq!(now["version"], "2.2", "2.2 is in the target: {now:#}");
    assert_eq!(now["is_state_unknown"], true);
    assert_eq!(now["last_change"]["change"], "failed");
    let text = sb.run(&["targets"]).stdout;
    assert!(text.contains("2.2?"), "{text}");

    sb.run_env(
        &["abort", "petportal-2", "--rollback"],
        &[("USER", "bob"), ("RELFLOW_ACTOR", "bob")],
    )
    .expect_code(3);
    let now = only_target(&sb);
    assert_eq!(now["version"], "1.0", "{now:#}");
    assert_eq!(now["is_state_unknown"], false);
    assert_eq!(now["deployed_by"]["release"], "petportal-1");
    assert_eq!(now["last_change"]["change"], "rolled_back");
    assert_eq!(now["last_change"]["actor"], "bob");
}

/// `abort --rollback` killed right after its rollback step (and the target change with it)
/// was committed: running it again ends the abort and the rollback is recorded once.
#[test]
fn targets_a_crash_after_the_rollback_step_of_an_abort_leaves_one_row() {
    let sb = petportal();
    let yaml = sb.read(PIPELINE);
    sb.write(PIPELINE, &yaml.replace("then: rollback", "then: pause"));
    sb.run(&["run", PIPELINE]).expect_code(0);
    sb.run(&["run", PIPELINE, "--var", "version=2.2"])
        .expect_code(1);
    let abort = ["abort", "petportal-2", "--rollback"];
    let crashed = sb.run_crashing_at(&abort, "store.target_change", 1);
    assert_eq!(crashed.code, -1, "the failpoint did not fire: {crashed:?}");
    sb.run(&abort).expect_code(3);
    let history = targets_json(&sb, &["--history"]);
    let changes: Vec<&str> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["change"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        changes,
        ["rolled_back", "failed", "deployed"],
        "{history:#}"
    );
    assert_eq!(only_target(&sb)["version"], "1.0");
}

/// Killed right after the target change (with its task status) was committed: `resume` ends
/// the release and the deployment is recorded exactly once.
#[test]
fn targets_a_crash_after_the_target_change_write_leaves_one_row() {
    let sb = petportal();
    let crashed = sb.run_crashing_at(&["run", PIPELINE], "store.target_change", 1);
    assert_eq!(crashed.code, -1, "the failpoint did not fire: {crashed:?}");
    sb.run(&["resume", "petportal-1"]).expect_code(0);
    let history = targets_json(&sb, &["--history"]);
    let changes = history["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{history:#}");
    assert_eq!(changes[0]["change"], "deployed");
    assert_eq!(only_target(&sb)["version"], "1.0");
}

const PROD: &str = "Environments/Prod";

fn xld_pipeline(url: &str) -> String {
    format!(
        r#"
name: petportal
variables: {{ version: "2.2" }}
backends:
  xld: {{ kind: xl-deploy, url: "{url}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms }}
phases:
  - name: deploy
    on_failure: {{ then: rollback }}
    tasks:
      - name: deploy-petportal
        deploy: {{ backend: xld, package: "Applications/PetPortal/${{version}}", environment: {PROD} }}
"#
    )
}

/// An XL Deploy environment: the application by its name, the environment as the target, and
/// after rolling back a deployment relflow never saw the version XL Deploy had before.
#[tokio::test(flavor = "multi_thread")]
async fn targets_show_an_xl_deploy_environment_and_application() {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .with_package("Applications/PetPortal/2.3")
        .script_deploy(TaskScript::always_fail());
    let mut sb = Sandbox::new();
    sb.env("XLD_PASSWORD", "s3cret");
    sb.write("p.yaml", &xld_pipeline(&fake.url()));
    sb.run_async(&["run", "p.yaml"]).await.expect_code(4);
    let now = only_target(&sb);
    assert_eq!(now["backend"], "xld");
    assert_eq!(now["backend_kind"], "xl-deploy");
    assert_eq!(now["target"], PROD);
    assert_eq!(now["application"], "PetPortal");
    assert_eq!(now["version"], "1.0", "XL Deploy ran 1.0 before: {now:#}");
    assert_eq!(
        now["deployed_by"],
        Value::Null,
        "1.0 came from outside relflow"
    );

    fake.script_deploy(TaskScript::succeed());
    sb.run_async(&[
        "restart-phase",
        "petportal-1",
        "deploy",
        "--var",
        "version=2.3",
    ])
    .await
    .expect_code(0);
    let now = only_target(&sb);
    assert_eq!(now["version"], "2.3");
    assert_eq!(now["deployed_by"]["phase"], "deploy#2");
    let text = sb.run_async(&["targets"]).await.stdout;
    let line = text
        .lines()
        .find(|l| l.starts_with("xld "))
        .unwrap_or_else(|| panic!("{text}"));
    for part in [
        "Environments/Prod",
        "PetPortal",
        "2.3",
        "petportal-1 deploy#2/deploy-petportal",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(!text.contains("s3cret"));
}
