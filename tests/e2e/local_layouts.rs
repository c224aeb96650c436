//! Both layouts of the local backend through the CLI: in place (replaced components moved
//! into the snapshot, unchanged files hard-linked) and releases (`current` switched between
//! `releases/<release>-<task>/` folders). Byte-for-byte restores, SIGKILLs at each new durable
//! step during deploy and rollback, old trees that never change through a shared link, bad
//! release folders never chosen, and retention / `relflow gc`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{Outcome, Sandbox};
use crate::tree::{self, Entry};

const FILE: &str = "pipe/app.yaml";

/// Packages 1.0, 2.0 and 2.1 (web changed each time, api and conf unchanged: same bytes and
/// mtimes, as a build that keeps them would leave them) and `bad` (like 2.0; its health check
/// fails). `layout`/`keep` go into the backend's keys.
fn world(backend_keys: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("pipe/packages/App/1.0/web/index.html", "web 1.0\n");
    sb.write(
        "pipe/packages/App/1.0/api/server.bin",
        &"api bytes ".repeat(1000),
    );
    sb.write("pipe/packages/App/1.0/conf/app.conf", "port=80\n");
    for (version, web) in [
        ("2.0", "web 2.0!\n"),
        ("2.1", "web 2.1!\n"),
        ("bad", "web bad!\n"),
    ] {
        let dir = sb.path().join("pipe/packages/App").join(version);
        let status = Command::new("cp")
            .arg("-a")
            .arg(sb.path().join("pipe/packages/App/1.0"))
            .arg(&dir)
            .status()
            .expect("cp -a");
        assert!(status.success());
        std::fs::write(dir.join("web/index.html"), web).expect("write web");
    }
    sb.write_script(
        "pipe/verify.sh",
        "#!/bin/sh\nif [ \"$RELFLOW_VERSION\" = bad ]; then echo unhealthy >&2; exit 1; fi\necho healthy\n",
    );
    sb.write(
        FILE,
        &format!(
            r#"name: app
variables: {{ version: "1.0" }}
backends:
  prod: {{ kind: local, target: ../target, packages: packages, verify: [./verify.sh]{backend_keys} }}
phases:
  - name: deploy
    on_failure: {{ then: rollback }}
    tasks:
      - name: deploy-app
        deploy: {{ backend: prod, package: "App/${{version}}" }}
"#
        ),
    );
    sb
}

const RELEASES: &str = ", layout: releases";

fn deploy(sb: &Sandbox, version: &str) -> Outcome {
    sb.run(&["run", FILE, "--var", &format!("version={version}")])
}

fn target(sb: &Sandbox) -> PathBuf {
    sb.path().join("target")
}

/// The live tree: the target (in place) or what `current` points to (releases).
fn live(sb: &Sandbox) -> Vec<Entry> {
    let current = target(sb).join("current");
    if current.exists() {
        tree::snapshot(&std::fs::canonicalize(current).expect("current resolves"))
    } else {
        tree::snapshot(&target(sb))
    }
}

fn current(sb: &Sandbox) -> String {
    std::fs::read_link(target(sb).join("current"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn package(sb: &Sandbox, version: &str) -> Vec<Entry> {
    tree::snapshot(&sb.path().join("pipe/packages/App").join(version))
}

/// The live tree without `.relflow-version` (its time varies).
fn components(entries: &[Entry]) -> Vec<Entry> {
    entries
        .iter()
        .filter(|e| !e.path.starts_with(".relflow-version"))
        .cloned()
        .collect()
}

fn status(sb: &Sandbox, release: &str) -> Value {
    let out = sb.run(&["status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn task_status(sb: &Sandbox, release: &str) -> String {
    let doc = status(sb, release);
    doc["phases"][0]["tasks"][0]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no task status: {doc:#}"))
        .to_string()
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

fn work(sb: &Sandbox, release: &str) -> PathBuf {
    sb.path()
        .join(".relflow/releases")
        .join(release)
        .join("deploy/deploy-app/deploy")
}

fn log(sb: &Sandbox, release: &str) -> String {
    sb.read(&format!(
        ".relflow/releases/{release}/deploy/deploy-app/script_output.log"
    ))
}

#[test]
fn in_place_a_failed_deploy_is_rolled_back_byte_for_byte_and_unchanged_files_are_linked() {
    let sb = world("");
    deploy(&sb, "1.0").expect_code(0);
    let before = live(&sb);
    assert_eq!(components(&before), package(&sb, "1.0"));
    deploy(&sb, "bad").expect_code(4);
    assert_eq!(
        live(&sb),
        before,
        "rolled back byte for byte, .relflow-version too"
    );
    let text = log(&sb, "app-2");
    assert!(text.contains("Snapshot by rename"), "{text}");
    assert!(
        text.contains("2 file(s) linked unchanged, 1 written"),
        "{text}"
    );
    assert_eq!(task_status(&sb, "app-2"), "rolled_back");
}

#[test]
fn in_place_the_snapshot_keeps_its_bytes_when_a_later_release_changes_a_linked_file() {
    let sb = world("");
    deploy(&sb, "1.0").expect_code(0);
    deploy(&sb, "2.0").expect_code(0);
    let snapshot = work(&sb, "app-2").join("snapshot");
    // api is unchanged: the live file and the snapshot's are one inode.
    let api = "api/server.bin";
    assert_eq!(inode(&snapshot.join(api)), inode(&target(&sb).join(api)));
    deploy(&sb, "2.1").expect_code(0);
    // web changed in 2.1: written as a new file, the 2.0 snapshot's web is still 1.0's.
    assert_eq!(
        std::fs::read_to_string(snapshot.join("web/index.html")).unwrap_or_default(),
        "web 1.0\n"
    );
    assert_eq!(
        std::fs::read_to_string(work(&sb, "app-3").join("snapshot/web/index.html"))
            .unwrap_or_default(),
        "web 2.0!\n"
    );
    // Rolling back 2.1 gives 2.0 byte for byte.
    sb.run(&["rollback", "app-3"]).expect_code(0);
    assert_eq!(components(&live(&sb)), package(&sb, "2.0"));
}

#[test]
fn releases_layout_switches_current_and_a_failed_deploy_switches_back_byte_for_byte() {
    let sb = world(RELEASES);
    deploy(&sb, "1.0").expect_code(0);
    assert_eq!(current(&sb), "releases/app-1-deploy-app");
    let before = live(&sb);
    assert_eq!(components(&before), package(&sb, "1.0"));
    deploy(&sb, "bad").expect_code(4);
    assert_eq!(current(&sb), "releases/app-1-deploy-app");
    assert_eq!(live(&sb), before);
    let text = log(&sb, "app-2");
    assert!(
        text.contains("Switched current to releases/app-2-deploy-app"),
        "{text}"
    );
    assert!(
        text.contains("switching current to releases/app-1-deploy-app"),
        "{text}"
    );
}

#[test]
fn releases_layout_an_older_release_never_changes_through_a_hard_link() {
    let sb = world(RELEASES);
    deploy(&sb, "1.0").expect_code(0);
    deploy(&sb, "2.0").expect_code(0);
    let releases = target(&sb).join("releases");
    let (one, two) = (
        releases.join("app-1-deploy-app"),
        releases.join("app-2-deploy-app"),
    );
    let api = "api/server.bin";
    assert_eq!(
        inode(&one.join(api)),
        inode(&two.join(api)),
        "unchanged file linked"
    );
    assert_ne!(
        inode(&one.join("web/index.html")),
        inode(&two.join("web/index.html"))
    );
    assert_eq!(components(&tree::snapshot(&one)), package(&sb, "1.0"));
    assert_eq!(components(&tree::snapshot(&two)), package(&sb, "2.0"));
    assert_eq!(current(&sb), "releases/app-2-deploy-app");
}

#[test]
fn releases_layout_a_rolled_back_folder_is_never_chosen_again() {
    let sb = world(RELEASES);
    deploy(&sb, "1.0").expect_code(0);
    // bad fails its health check: switched back to 1.0, its folder marked bad.
    deploy(&sb, "bad").expect_code(4);
    deploy(&sb, "2.0").expect_code(0);
    let registry: Value =
        serde_json::from_str(&sb.read(".target.relflow-deployments.json")).expect("registry");
    let states: Vec<&str> = registry["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .filter_map(|d| d["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["completed", "completed"],
        "the bad one is pruned and forgotten: {registry:#}"
    );
    assert!(
        !target(&sb).join("releases/app-2-deploy-app").exists(),
        "bad folder pruned"
    );
    // The folder before 2.0's is 1.0's, not the bad one that was built in between.
    sb.run(&["rollback", "app-3"]).expect_code(0);
    assert_eq!(current(&sb), "releases/app-1-deploy-app");
    assert_eq!(components(&live(&sb)), package(&sb, "1.0"));
}

#[test]
fn releases_layout_component_rollback_builds_a_mixed_folder() {
    let sb = world(RELEASES);
    deploy(&sb, "1.0").expect_code(0);
    deploy(&sb, "2.0").expect_code(0);
    sb.run(&["rollback", "app-2", "--component", "web"])
        .expect_code(0);
    assert_eq!(current(&sb), "releases/app-2-deploy-app-rollback-1");
    assert_eq!(
        components(&live(&sb)),
        package(&sb, "1.0"),
        "web is 1.0's again; api and conf are the same in both"
    );
    let version: Value =
        serde_json::from_str(&sb.read("target/current/.relflow-version")).expect("json");
    assert_eq!(version["reverted_components"], serde_json::json!(["web"]));
    // The 2.0 folder itself is untouched.
    let two = target(&sb).join("releases/app-2-deploy-app");
    assert_eq!(components(&tree::snapshot(&two)), package(&sb, "2.0"));
}

/// SIGKILL at the `n`-th hit of `point` during `relflow run ... bad`, then `relflow resume`:
/// the deploy fails its health check and is rolled back to 1.0 byte for byte.
fn killed_then_resumed(backend_keys: &str, point: &str, n: usize) {
    let sb = world(backend_keys);
    deploy(&sb, "1.0").expect_code(0);
    let before = live(&sb);
    let out = sb.run_crashing_at(&["run", FILE, "--var", "version=bad"], point, n);
    assert_eq!(
        out.code, -1,
        "killed at {point}@{n}: {}{}",
        out.stdout, out.stderr
    );
    sb.run(&["resume", "app-2"]).expect_code(4);
    assert_eq!(live(&sb), before, "after a kill at {point}@{n}");
    assert_eq!(
        task_status(&sb, "app-2"),
        "rolled_back",
        "after a kill at {point}@{n}"
    );
}

#[test]
fn in_place_sigkill_after_a_component_moved_into_the_snapshot_then_resume() {
    killed_then_resumed("", "local.snapshot_moved", 1);
    killed_then_resumed("", "local.snapshot_moved", 2);
}

#[test]
fn in_place_sigkill_during_the_rollback_then_resume() {
    // Delivery renames 3 components in; the 4th and 5th hits are the rollback's.
    killed_then_resumed("", "local.component", 4);
    killed_then_resumed("", "local.component", 5);
}

#[test]
fn releases_layout_sigkill_after_building_or_switching_then_resume() {
    killed_then_resumed(RELEASES, "local.release_built", 1);
    killed_then_resumed(RELEASES, "local.switch", 1);
}

#[test]
fn releases_layout_sigkill_during_the_rollback_switch_then_resume() {
    killed_then_resumed(RELEASES, "local.switch", 2);
}

#[test]
fn retention_keeps_what_can_be_rolled_back_and_gc_frees_the_rest() {
    let sb = world(", keep_snapshots: 1");
    deploy(&sb, "1.0").expect_code(0);
    deploy(&sb, "2.0").expect_code(0);
    deploy(&sb, "2.1").expect_code(0);
    // Only the newest deployment can still be rolled back: 2.0's snapshot was pruned.
    assert!(!work(&sb, "app-2").join("snapshot").exists());
    assert!(work(&sb, "app-3").join("snapshot/web").exists());
    let refused = sb.run(&["rollback", "app-2"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert_eq!(
        components(&live(&sb)),
        package(&sb, "2.1"),
        "a refused rollback touches nothing"
    );
    sb.run(&["rollback", "app-3"]).expect_code(0);
    assert_eq!(components(&live(&sb)), package(&sb, "2.0"));
    // The rollback moved 2.1's tree aside without deleting it; gc does.
    assert!(work(&sb, "app-3").join("discarded").exists());
    let out = sb.run(&["gc", "--json"]);
    out.expect_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("gc --json");
    assert_eq!(doc["format"], 1);
    assert!(doc["bytes_freed"].as_u64().unwrap_or(0) > 0, "{doc:#}");
    assert!(!work(&sb, "app-3").join("discarded").exists());
    let again = sb.run(&["gc"]);
    again.expect_code(0);
    assert!(
        again.stdout.contains("nothing to prune"),
        "{}",
        again.stdout
    );
}

#[test]
fn releases_layout_keeps_keep_releases_folders_plus_rollback_destinations() {
    let sb = world(", layout: releases, keep_releases: 1, keep_snapshots: 1");
    for version in ["1.0", "2.0", "2.1"] {
        deploy(&sb, version).expect_code(0);
    }
    let mut kept: Vec<String> = std::fs::read_dir(target(&sb).join("releases"))
        .expect("releases/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    // 2.1 is live (keep_releases 1); 2.0 is where its rollback returns; 1.0 is pruned.
    assert_eq!(kept, ["app-2-deploy-app", "app-3-deploy-app"]);
    sb.run(&["rollback", "app-3"]).expect_code(0);
    assert_eq!(components(&live(&sb)), package(&sb, "2.0"));
}

#[test]
fn unknown_layout_and_keep_releases_in_place_are_refused_with_their_line() {
    let sb = world(", layout: blue_green");
    let out = sb.run(&["validate", FILE]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("unknown layout `blue_green`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("app.yaml:4:"), "{}", out.stderr);
    let sb = world(", keep_releases: 3");
    let out = sb.run(&["validate", FILE]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("applies to `layout: releases` only"),
        "{}",
        out.stderr
    );
    let sb = world(", layout: releases, keep_snapshots: 0");
    let out = sb.run(&["validate", FILE]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("keep_snapshots: 0 is out of range"),
        "{}",
        out.stderr
    );
}
