//! The local backend through the CLI, on the PetPortal example copied into a sandbox: a
//! failing deployment is reverted to the previous tree byte for byte (also after a SIGKILL
//! and `resume`), completed deployments are rolled back later by component, a full disk is
//! refused before anything is touched, and tarball packages are deployed or refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{Sandbox, wait_until};
use crate::tree::{self, Entry};

const PIPELINE: &str = "pipelines/petportal.yaml";
const TARGET: &str = ".relflow-demo/petportal";

/// How the copied pipeline's deploy-phase failure policy is rewritten.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// The example as shipped: 3 retries 1 s apart, then rollback.
    AsShipped,
    /// No retry, then rollback.
    Fast,
    /// No retry, then pause (the release halts with exit 1).
    FastPause,
}

/// Copies `pipelines/` of the repository into the sandbox, so the example's target
/// (`../.relflow-demo/petportal`) lands inside it, and applies `policy`.
fn setup(sb: &Sandbox, policy: Policy) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&example, &sb.path().join("pipelines"));
    let shipped = sb.read(PIPELINE);
    let mut yaml = shipped.clone();
    if policy != Policy::AsShipped {
        yaml = replace_once(&yaml, "retries: 3", "retries: 0");
        yaml = replace_once(&yaml, "delay: 1s", "delay: 10ms");
    }
    if policy == Policy::FastPause {
        yaml = replace_once(&yaml, "then: rollback", "then: pause");
    }
    sb.write(PIPELINE, &yaml);
}

#[track_caller]
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` in the example:\n{text}"
    );
    text.replace(from, to)
}

fn deploy(sb: &Sandbox, version: &str) -> crate::harness::Outcome {
    sb.run(&["run", PIPELINE, "--var", &format!("version={version}")])
}

fn target(sb: &Sandbox) -> PathBuf {
    sb.path().join(TARGET)
}

fn target_tree(sb: &Sandbox) -> Vec<Entry> {
    tree::snapshot(&target(sb))
}

fn task_dir(release: &str, task: &str) -> String {
    format!(".relflow/releases/{release}/deploy/{task}")
}

fn status_json(sb: &Sandbox, release: &str) -> Value {
    let out = sb.run(&["status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The latest run of task `name` in a `status --json` document.
fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["tasks"].as_array().expect("tasks"))
        .rfind(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {doc:#}"))
}

/// Deploys 1.0, then changes the target by hand the way an operator might: one file made
/// 0640, an extra file inside the `web` component, an extra file beside the components.
/// Returns the tree a failed deployment must bring back.
fn deploy_1_0_and_touch_it(sb: &Sandbox) -> Vec<Entry> {
    deploy(sb, "1.0").expect_code(0);
    tree::chmod(&target(sb).join("config/app.conf"), 0o640);
    sb.write(&format!("{TARGET}/web/local-note.txt"), "kept by hand\n");
    sb.write(&format!("{TARGET}/notes.txt"), "not a component\n");
    target_tree(sb)
}

fn no_staging_left(sb: &Sandbox) {
    let left: Vec<String> = target_tree(sb)
        .into_iter()
        .map(|e| e.path)
        .filter(|p| p.starts_with(".relflow-staging-"))
        .collect();
    assert!(left.is_empty(), "staging left in the target: {left:?}");
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Components are swapped in whole, and the pre-deployment snapshot holds each replaced
/// component as it was (plugin/src/local/mod.rs: "snapshot/<component>: copies of what the
/// deployment replaces"). So a file the package does not know about inside a replaced
/// component (`web/local-note.txt`) is gone while the new version is in place and comes back
/// with the rollback; an entry beside the components is never touched.
#[test]
fn local_deploys_failed_health_check_after_four_attempts_restores_the_previous_tree_byte_for_byte()
{
    let sb = Sandbox::new();
    setup(&sb, Policy::AsShipped);
    let before = deploy_1_0_and_touch_it(&sb);

    let out = deploy(&sb, "2.2");
    out.expect_code(4);
    assert!(
        out.stdout.contains("release petportal-2 failed"),
        "{}",
        out.stdout
    );

    tree::assert_same(&before, &target_tree(&sb), "after the rollback of 2.2");
    assert_eq!(
        sb.read(&format!("{TARGET}/web/local-note.txt")),
        "kept by hand\n"
    );
    no_staging_left(&sb);

    let doc = status_json(&sb, "petportal-2");
    assert_eq!(doc["status"], "failed");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "rolled_back");
    assert_eq!(t["error_class"], "task_failed");
    assert_eq!(t["attempts"], 4);
    let history = t["attempt_history"].as_array().expect("attempt_history");
    assert_eq!(history.len(), 4, "{t:#}");
    assert!(history.iter().all(|a| a["status"] == "failed"), "{t:#}");
    assert_eq!(task(&doc, "smoke")["status"], "planned");

    let dir = task_dir("petportal-2", "deploy-petportal");
    let log = sb.read(&format!("{dir}/script_output.log"));
    let headers: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("=== attempt "))
        .collect();
    assert_eq!(
        headers,
        [
            "=== attempt 1 ===",
            "=== attempt 2 ===",
            "=== attempt 3 ===",
            "=== attempt 4 ==="
        ],
        "{log}"
    );
    assert!(
        log.contains("Delivered web"),
        "2.2 was never delivered:\n{log}"
    );
    let last = log.find("=== attempt 4 ===").expect("attempt 4");
    let rollback = log.find("Going to rollback").expect("Going to rollback");
    assert!(rollback > last, "{log}");
    assert_eq!(
        count(&log, "Took the pre-deployment snapshot"),
        1,
        "a retry snapshotted the half-updated target:\n{log}"
    );

    let rollback_log = sb.read(&format!("{dir}/rollback.log"));
    for component in ["api", "config", "web"] {
        assert!(
            rollback_log.contains(&format!("{component}: restored (ok)")),
            "{rollback_log}"
        );
    }
    assert_eq!(t["rollback_log"], format!("{dir}/rollback.log"));
}

/// A copy of the example's health check that, while `HOLD` exists in the sandbox, says it is
/// running (`in-health-check`) and waits for `release`.
fn holding_health_check(sb: &Sandbox) {
    let root = sb.path().display().to_string();
    sb.write_script(
        "pipelines/scripts/petportal-health.sh",
        &format!(
            r#"#!/bin/sh
set -eu
if [ -f '{root}/HOLD' ]; then
  touch '{root}/in-health-check'
  while [ ! -f '{root}/release' ]; do sleep 0.05; done
fi
version=$(sed -n 's/^version = //p' api/server.conf)
if grep -q '^healthy = true' config/app.conf; then
  echo "health check: PetPortal $version is healthy"
else
  echo "health check: PetPortal $version reports unhealthy (config/app.conf)" >&2
  exit 1
fi
"#
        ),
    );
}

#[test]
fn local_deploys_sigkill_during_the_health_check_then_resume_reattaches_and_restores_the_tree() {
    let sb = Sandbox::new();
    setup(&sb, Policy::Fast);
    holding_health_check(&sb);
    let before = deploy_1_0_and_touch_it(&sb);

    sb.write("HOLD", "");
    let mut runner = sb.spawn(&["run", PIPELINE, "--var", "version=2.2"]);
    assert!(
        wait_until(30, || sb.exists("in-health-check")),
        "the health check of 2.2 never started"
    );
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("reap the runner");
    // Killed mid-deploy: 2.2 is in place, not yet judged.
    assert!(
        sb.read(&format!("{TARGET}/api/server.conf"))
            .contains("version = 2.2")
    );
    std::fs::remove_file(sb.path().join("HOLD")).unwrap();
    sb.write("release", ""); // frees a health check that outlived the runner, if any

    let out = sb.run(&["resume", "petportal-2"]);
    out.expect_code(4);

    tree::assert_same(
        &before,
        &target_tree(&sb),
        "after SIGKILL, resume and rollback",
    );
    no_staging_left(&sb);

    let doc = status_json(&sb, "petportal-2");
    assert_eq!(doc["status"], "failed");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "rolled_back");
    let history = t["attempt_history"].as_array().expect("attempt_history");
    assert_eq!(history[0]["status"], "interrupted", "{t:#}");
    assert_eq!(history.last().unwrap()["status"], "failed", "{t:#}");
    assert_eq!(history.last().unwrap()["error_class"], "task_failed");

    let dir = task_dir("petportal-2", "deploy-petportal");
    let log = sb.read(&format!("{dir}/script_output.log"));
    assert!(log.contains("Attempt 1 was interrupted"), "{log}");
    assert!(
        log.contains("Re-attaching to the deployment")
            || log.contains("Pre-deployment snapshot already taken"),
        "the resumed attempt did not re-attach:\n{log}"
    );
    assert_eq!(
        count(&log, "Took the pre-deployment snapshot"),
        1,
        "the half-updated target was snapshotted again:\n{log}"
    );
    let resumed = log.find("=== attempt 2 ===").expect("attempt 2");
    assert!(log[resumed..].contains("Going to rollback"), "{log}");
    let rollback_log = sb.read(&format!("{dir}/rollback.log"));
    for component in ["api", "config", "web"] {
        assert!(
            rollback_log.contains(&format!("{component}: restored (ok)")),
            "{rollback_log}"
        );
    }
}

#[test]
fn local_deploys_component_rollback_reverts_only_the_named_component_then_the_rest() {
    let sb = Sandbox::new();
    setup(&sb, Policy::Fast);
    deploy(&sb, "1.0").expect_code(0);
    tree::chmod(&target(&sb).join("web/style.css"), 0o640);
    let v1 = target_tree(&sb);
    deploy(&sb, "2.3").expect_code(0);
    let v23 = target_tree(&sb);
    assert!(sb.exists(&format!("{TARGET}/web/app.js")));
    assert!(sb.exists(&format!("{TARGET}/docs/CHANGES.txt")));

    let out = sb.run(&["rollback", "petportal-2", "--component", "web"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("of task deploy-petportal (web): completed"),
        "{}",
        out.stdout
    );
    let dir = task_dir("petportal-2", "deploy-petportal");
    assert!(
        out.stdout.contains(&format!("{dir}/rollback.log")),
        "{}",
        out.stdout
    );

    let now = target_tree(&sb);
    tree::assert_same(
        &tree::under(&v1, "web"),
        &tree::under(&now, "web"),
        "web after --component web",
    );
    assert!(!sb.exists(&format!("{TARGET}/web/app.js")));
    for untouched in ["api", "config", "docs"] {
        tree::assert_same(
            &tree::under(&v23, untouched),
            &tree::under(&now, untouched),
            &format!("{untouched} after --component web"),
        );
    }
    let version: Value = serde_json::from_str(&sb.read(&format!("{TARGET}/.relflow-version")))
        .expect(".relflow-version is JSON");
    assert_eq!(version["version"], "2.3");
    assert_eq!(version["reverted_components"], serde_json::json!(["web"]));

    let rollback_log = sb.read(&format!("{dir}/rollback.log"));
    assert!(
        rollback_log.contains("web: restored (ok)"),
        "{rollback_log}"
    );
    for other in ["api:", "config:", "docs:"] {
        assert!(!rollback_log.contains(other), "{rollback_log}");
    }

    let doc = status_json(&sb, "petportal-2");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "completed");
    let jobs = t["rollback_jobs"].as_array().expect("rollback_jobs");
    assert_eq!(jobs.len(), 1, "{t:#}");
    assert_eq!(jobs[0]["status"], "completed");
    assert_eq!(jobs[0]["components"], serde_json::json!(["web"]));
    assert_eq!(jobs[0]["error"], Value::Null);

    // The rest: docs (added by 2.3) removed, api and config back to 1.0, version file too.
    let out = sb.run(&["rollback", "petportal-2"]);
    out.expect_code(0);
    assert!(out.stdout.contains(": completed"), "{}", out.stdout);
    tree::assert_same(&v1, &target_tree(&sb), "after the full rollback");
    assert!(!sb.exists(&format!("{TARGET}/docs")));
    no_staging_left(&sb);
    let rollback_log = sb.read(&format!("{dir}/rollback.log"));
    assert!(rollback_log.contains("docs: "), "{rollback_log}");
    assert!(
        rollback_log.contains("api: restored (ok)"),
        "{rollback_log}"
    );

    let doc = status_json(&sb, "petportal-2");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "rolled_back");
    let jobs = t["rollback_jobs"].as_array().expect("rollback_jobs");
    assert_eq!(jobs.len(), 2, "{t:#}");
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{t:#}");

    // No longer a completed deployment.
    let out = sb.run(&["rollback", "petportal-2", "--task", "deploy-petportal"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("only completed deployments can be rolled back"),
        "{}",
        out.stderr
    );
    let out = sb.run(&["rollback", "petportal-2"]);
    out.expect_code(2);
    tree::assert_same(&v1, &target_tree(&sb), "after the refused rollbacks");
}

#[test]
fn local_deploys_rollback_refuses_tasks_that_are_not_completed_deployments() {
    let sb = Sandbox::new();
    setup(&sb, Policy::Fast);
    deploy(&sb, "1.0").expect_code(0);
    deploy(&sb, "2.2").expect_code(4);
    let before = target_tree(&sb);

    let out = sb.run(&["rollback", "petportal-2", "--task", "deploy-petportal"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("deploy-petportal")
            && out.stderr.contains("rolled_back")
            && out
                .stderr
                .contains("only completed deployments can be rolled back"),
        "{}",
        out.stderr
    );

    let out = sb.run(&["rollback", "petportal-2"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("no completed deployment to roll back"),
        "{}",
        out.stderr
    );

    let out = sb.run(&["rollback", "petportal-2", "--task", "check-package"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("check-package") && out.stderr.contains("only deploy tasks"),
        "{}",
        out.stderr
    );

    let out = sb.run(&["rollback", "petportal-2", "--task", "no-such-task"]);
    out.expect_code(2);
    assert!(out.stderr.contains("no-such-task"), "{}", out.stderr);

    tree::assert_same(&before, &target_tree(&sb), "after the refused rollbacks");
    let doc = status_json(&sb, "petportal-2");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "rolled_back");
    assert_eq!(t["rollback_jobs"], serde_json::json!([]));
}

#[test]
fn local_deploys_not_enough_free_space_is_a_precondition_failure_that_touches_nothing() {
    let mut sb = Sandbox::new();
    setup(&sb, Policy::FastPause);
    deploy(&sb, "1.0").expect_code(0);
    let before = target_tree(&sb);
    let package = tree::snapshot(&sb.path().join("pipelines/packages/PetPortal/2.3"));

    sb.env("RELFLOW_LOCAL_FREE_BYTES", "1000");
    let out = deploy(&sb, "2.3");
    out.expect_code(1);

    tree::assert_same(&before, &target_tree(&sb), "after the refused deployment");
    no_staging_left(&sb);

    let doc = status_json(&sb, "petportal-2");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error_class"], "precondition");
    let error = t["error"].as_str().expect("error");
    // The three figures: free space, current folder size, update size (and the 10 MB margin).
    let figures = [
        "1000".to_string(),
        tree::file_bytes(&before).to_string(),
        tree::file_bytes(&package).to_string(),
        (10 * 1024 * 1024).to_string(),
    ];
    for figure in &figures {
        assert!(error.contains(figure.as_str()), "{figure} not in: {error}");
    }
    let log = sb.read(&format!(
        "{}/script_output.log",
        task_dir("petportal-2", "deploy-petportal")
    ));
    assert!(log.contains(error), "{log}");
    assert!(!log.contains("pre-deployment snapshot"), "{log}");
}

/// check-package.sh of the example only knows folder packages; the copy also accepts a
/// readable tarball.
fn accept_tarballs_in_check_package(sb: &Sandbox) {
    let original = sb.read("pipelines/scripts/check-package.sh");
    let body = original.trim_start_matches("#!/bin/sh\n");
    sb.write_script(
        "pipelines/scripts/check-package.sh",
        &format!(
            "#!/bin/sh\nif [ -f \"packages/$1.tar.gz\" ]; then\n  tar -tzf \"packages/$1.tar.gz\" >/dev/null && echo \"package $1: tarball\" && exit 0\n  exit 1\nfi\n{body}"
        ),
    );
}

#[track_caller]
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn local_deploys_a_tarball_package() {
    let sb = Sandbox::new();
    setup(&sb, Policy::Fast);
    accept_tarballs_in_check_package(&sb);
    // 3.0 = 2.3 relabelled (the smoke test looks for "PetPortal 3.0"), with an executable.
    let build = sb.path().join("build/3.0");
    tree::copy_dir(&sb.path().join("pipelines/packages/PetPortal/2.3"), &build);
    let index = sb.read("build/3.0/web/index.html").replace("2.3", "3.0");
    sb.write("build/3.0/web/index.html", &index);
    let server = sb.read("build/3.0/api/server.conf").replace("2.3", "3.0");
    sb.write("build/3.0/api/server.conf", &server);
    sb.write_script("build/3.0/api/start.sh", "#!/bin/sh\necho start\n");
    tree::chmod(&build.join("config/app.conf"), 0o640);
    run_ok(
        Command::new("tar")
            .arg("-czf")
            .arg(sb.path().join("pipelines/packages/PetPortal/3.0.tar.gz"))
            .arg("-C")
            .arg(&build)
            .arg("."),
    );

    deploy(&sb, "1.0").expect_code(0);
    let out = deploy(&sb, "3.0");
    out.expect_code(0);

    let deployed: Vec<Entry> = target_tree(&sb)
        .into_iter()
        .filter(|e| e.path != ".relflow-version")
        .collect();
    tree::assert_same(
        &tree::snapshot(&build),
        &deployed,
        "target after deploying 3.0.tar.gz",
    );
    no_staging_left(&sb);
    let version: Value = serde_json::from_str(&sb.read(&format!("{TARGET}/.relflow-version")))
        .expect(".relflow-version is JSON");
    assert_eq!(version["version"], "3.0");
    let doc = status_json(&sb, "petportal-2");
    assert_eq!(doc["status"], "completed");
    assert_eq!(task(&doc, "smoke")["status"], "completed");
}

/// Writes a gzipped tarball with Python's tarfile: GNU tar would strip `..` on creation.
fn hostile_tarball(path: &Path, escape: &str) {
    let script = format!(
        r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    add("web/index.html", b"<h1>PetPortal 6.6</h1>\n")
    {escape}
"#
    );
    run_ok(Command::new("python3").arg("-c").arg(script).arg(path));
}

#[test]
fn local_deploys_hostile_tarballs_are_refused_with_validation_and_write_nothing_outside() {
    let sb = Sandbox::new();
    setup(&sb, Policy::Fast);
    accept_tarballs_in_check_package(&sb);
    let packages = sb.path().join("pipelines/packages/PetPortal");
    hostile_tarball(
        &packages.join("6.6.tar.gz"),
        r#"add("../escape.txt", b"escaped\n")"#,
    );
    hostile_tarball(
        &packages.join("6.7.tar.gz"),
        r#"link = tarfile.TarInfo("web/escape.txt"); link.type = tarfile.SYMTYPE; link.linkname = "../../../escape.txt"; t.addfile(link)"#,
    );

    deploy(&sb, "1.0").expect_code(0);
    let before = target_tree(&sb);
    for (n, (version, entry)) in [("6.6", "../escape.txt"), ("6.7", "web/escape.txt")]
        .into_iter()
        .enumerate()
    {
        let release = format!("petportal-{}", n + 2);
        let out = deploy(&sb, version);
        assert_ne!(out.code, 0, "{version} deployed:\n{}", out.stdout);

        let doc = status_json(&sb, &release);
        assert_eq!(doc["status"], "failed");
        let t = task(&doc, "deploy-petportal");
        assert_eq!(t["error_class"], "validation", "{version}: {t:#}");
        let error = t["error"].as_str().expect("error");
        assert!(
            error.contains(entry) && error.contains(&format!("{version}.tar.gz")),
            "{version}: {error}"
        );

        tree::assert_same(&before, &target_tree(&sb), version);
        no_staging_left(&sb);
        let escaped = tree::find_named(sb.path(), "escape.txt");
        assert!(
            escaped.is_empty(),
            "{version} wrote outside the target: {escaped:?}"
        );
        assert!(!Path::new("/escape.txt").exists());
    }
}

/// Rolling back a deployment that a later release has superseded restores a snapshot that no
/// longer describes the target: here 1.0's (empty) snapshot, so it deletes the live 2.3
/// deployment of another release, whose task still reads `completed`. The target must keep
/// what is live, and the user be told which release holds it.
#[test]
fn local_deploys_rolling_back_a_superseded_deployment_does_not_destroy_the_newer_one() {
    let sb = Sandbox::new();
    setup(&sb, Policy::Fast);
    deploy(&sb, "1.0").expect_code(0);
    deploy(&sb, "2.3").expect_code(0);
    let live = target_tree(&sb);

    let out = sb.run(&["rollback", "petportal-1"]);
    tree::assert_same(&live, &target_tree(&sb), "after rolling back petportal-1");
    out.expect_code(2);
    assert!(out.stderr.contains("2.3"), "{}", out.stderr);
}
