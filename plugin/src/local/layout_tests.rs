//! Scenario tests of `layout: releases` and retention through the backend API, which (unlike
//! the CLI) lets an older deployment be rolled back while a newer one is live.

use std::fs;

use super::tests::{Fixture, write};
use super::*;
use crate::backend::RevertAction;

fn releases_backend(fx: &Fixture) -> LocalBackend {
    LocalBackend {
        layout: LocalLayout::Releases,
        ..fx.backend()
    }
}

fn deploy_ok(backend: &LocalBackend, fx: &Fixture, version: &str, run: &str) -> Handle {
    let mut request = fx.request(version, run);
    request.verify = None;
    // Shaped like the runner's work folder: `<release>/<phase>/<task>/deploy`.
    request.work_dir = fx.root.join("work").join(run).join("deploy/task/deploy");
    backend
        .deploy(&request, &mut |_| Ok(()), &mut |_| {})
        .expect("deploy")
        .handle
}

fn current(fx: &Fixture) -> String {
    fs::read_link(fx.target().join("current"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn rolling_back_past_a_bad_release_returns_to_the_good_one_before_it() {
    let fx = Fixture::new();
    let backend = releases_backend(&fx);
    deploy_ok(&backend, &fx, "1.0", "r1");
    let second = deploy_ok(&backend, &fx, "2.2", "r2");
    let third = deploy_ok(&backend, &fx, "2.3", "r3");
    assert_eq!(current(&fx), "releases/r3-task");
    backend.roll_back(&second, &mut |_| {}).unwrap();
    assert_eq!(current(&fx), "releases/r1-task", "2.2 is bad now");
    backend.roll_back(&third, &mut |_| {}).unwrap();
    assert_eq!(
        current(&fx),
        "releases/r1-task",
        "2.3 returns past bad 2.2 to 1.0"
    );
    let again = backend.roll_back(&third, &mut |_| {}).unwrap();
    assert!(
        again
            .components
            .iter()
            .all(|c| c.action == RevertAction::Unchanged)
    );
}

#[test]
fn keep_snapshots_prunes_older_in_place_snapshots_and_refuses_their_rollback() {
    let fx = Fixture::new();
    let backend = LocalBackend {
        keep_snapshots: 1,
        ..fx.backend()
    };
    deploy_ok(&backend, &fx, "1.0", "r1");
    let second = deploy_ok(&backend, &fx, "2.3", "r2");
    write(
        &fx.root.join("packages/PetPortal/2.4/web/index.html"),
        "v2.4",
        0o644,
    );
    let third = deploy_ok(&backend, &fx, "2.4", "r3");
    let refused = backend.roll_back(&second, &mut |_| {}).unwrap_err();
    assert_eq!(refused.class, ErrorClass::Precondition);
    assert!(refused.message.contains("pruned"), "{refused}");
    backend.roll_back(&third, &mut |_| {}).unwrap();
    assert_eq!(
        fs::read(fx.target().join("web/index.html")).unwrap(),
        b"v2.3"
    );
    let pruned = collect_garbage(&fx.target()).unwrap();
    assert!(
        pruned.bytes_freed > 0,
        "the discarded 2.4 web is freed: {pruned:?}"
    );
}

#[test]
fn a_work_folder_on_another_filesystem_copies_the_snapshot_and_says_so() {
    let fx = Fixture::new();
    let Ok(elsewhere) = tempfile::tempdir_in("/dev/shm") else {
        return; // no second filesystem here
    };
    if link::same_filesystem(elsewhere.path(), &fx.root) {
        return;
    }
    let backend = fx.backend();
    deploy_ok(&backend, &fx, "1.0", "r1");
    let before = fs::read(fx.target().join("web/index.html")).unwrap();
    let mut request = fx.request("2.3", "r2");
    request.work_dir = elsewhere.path().join("work");
    let mut lines = Vec::new();
    let outcome = backend
        .deploy(&request, &mut |_| Ok(()), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("on another filesystem than the target")),
        "{lines:?}"
    );
    assert!(
        elsewhere
            .path()
            .join("work/snapshot/web/index.html")
            .exists()
    );
    backend.roll_back(&outcome.handle, &mut |_| {}).unwrap();
    assert_eq!(
        fs::read(fx.target().join("web/index.html")).unwrap(),
        before
    );
    assert!(
        !fx.target().join("api").exists(),
        "2.3 added api; rolled back it is gone"
    );
}
