//! Scenario tests of the local backend on real temp folders: deploy, failed health check,
//! rollback, crashes, free space, tarballs, component rollback, retries.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use super::fault;
use super::*;
use crate::backend::{RevertAction, RevertOutcome};

pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(super) root: PathBuf,
}

impl Fixture {
    /// PetPortal 1.0 (web, bin, conf), 2.2 (web changed, bin changed, conf same, api added)
    /// and 2.3 (like 2.2).
    pub(super) fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let v1 = root.join("packages/PetPortal/1.0");
        write(&v1.join("web/index.html"), "v1", 0o644);
        write(&v1.join("web/old.css"), "body{}", 0o644);
        symlink("index.html", v1.join("web/home.html")).unwrap();
        write(&v1.join("bin/run.sh"), "#!/bin/sh\necho 1\n", 0o755);
        write(&v1.join("conf/app.conf"), "port=80\n", 0o600);
        for version in ["2.2", "2.3"] {
            let v = root.join("packages/PetPortal").join(version);
            write(&v.join("web/index.html"), &format!("v{version}"), 0o644);
            write(&v.join("web/new.js"), "js", 0o644);
            symlink("new.js", v.join("web/home.html")).unwrap();
            write(&v.join("bin/run.sh"), "#!/bin/sh\necho 2\n", 0o700);
            write(&v.join("conf/app.conf"), "port=80\n", 0o600);
            write(&v.join("api/server"), "api", 0o755);
        }
        Fixture { _tmp: tmp, root }
    }

    pub(super) fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    pub(super) fn backend(&self) -> LocalBackend {
        LocalBackend {
            free_space: FreeSpaceProbe::Fixed(u64::MAX),
            ..LocalBackend::new(self.target(), self.root.join("packages"))
        }
    }

    pub(super) fn request(&self, version: &str, run: &str) -> DeployRequest {
        DeployRequest {
            application: "PetPortal".into(),
            version: version.into(),
            components: vec![],
            work_dir: self.root.join("work").join(run),
            verify: (version == "2.2")
                .then(|| vec!["sh".into(), "-c".into(), "echo unhealthy; exit 3".into()]),
            environment: None,
        }
    }
}

pub(super) fn write(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every entry under `root` with its kind, mode, bytes or link target, and mtime.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, path: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let what = if meta.is_symlink() {
            format!("link {}", fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            walk(root, &path, out);
            "dir".into()
        } else {
            format!("file {:?}", fs::read(&path).unwrap())
        };
        let desc = format!(
            "{what} mode {:o} mtime {}.{}",
            meta.mode() & 0o7777,
            meta.mtime(),
            meta.mtime_nsec()
        );
        out.insert(path.strip_prefix(root).unwrap().to_path_buf(), desc);
    }
}

/// Deploys, returning the result, the handle reported and the log.
fn deploy(
    backend: &LocalBackend,
    request: &DeployRequest,
) -> (Result<DeployOutcome, BackendError>, Handle, Vec<String>) {
    let (mut handle, mut lines) = (None, Vec::new());
    let result = backend.deploy(
        request,
        &mut |h| {
            handle = Some(h.clone());
            Ok(())
        },
        &mut |l| lines.push(l.to_string()),
    );
    (result, handle.expect("handle reported"), lines)
}

fn actions(report: &RollbackReport) -> Vec<(String, RevertAction)> {
    assert_eq!(report.failure(), None);
    assert!(
        report
            .components
            .iter()
            .all(|c| c.outcome == RevertOutcome::Ok)
    );
    report
        .components
        .iter()
        .map(|c| (c.component.clone(), c.action))
        .collect()
}

fn no_staging(target: &Path) -> bool {
    fs::read_dir(target).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
    })
}

fn crash<T>(f: impl FnOnce() -> T, point: &'static str, after: usize) {
    fault::AT.with(|at| *at.borrow_mut() = Some((point, after)));
    let crashed = catch_unwind(AssertUnwindSafe(f)).is_err();
    assert!(crashed, "expected a simulated crash at {point}");
}

#[test]
fn failed_health_check_then_rollback_restores_the_previous_version_byte_for_byte() {
    let fx = Fixture::new();
    let backend = fx.backend();
    deploy(&backend, &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let (result, handle, lines) = deploy(&backend, &fx.request("2.2", "b"));
    let err = result.unwrap_err();
    assert_eq!(err.class, ErrorClass::TaskFailed);
    assert!(
        err.message
            .ends_with("health check: `sh` exited with code 3"),
        "{err}"
    );
    assert!(lines.contains(&"unhealthy".to_string()), "{lines:?}");
    assert!(fx.target().join("api/server").exists() && !fx.target().join("web/old.css").exists());

    let report = backend.roll_back(&handle, &mut |_| {}).unwrap();
    let expected = [
        ("api", RevertAction::Removed),
        ("bin", RevertAction::Restored),
        ("conf", RevertAction::Restored),
        ("web", RevertAction::Restored),
    ];
    assert_eq!(actions(&report), expected.map(|(c, a)| (c.to_string(), a)));
    assert_eq!(tree(&fx.target()), before);
    assert!(no_staging(&fx.target()));

    let again = fresh_backend(&fx).roll_back(&handle, &mut |_| {}).unwrap();
    assert!(
        actions(&again)
            .iter()
            .all(|(_, a)| *a == RevertAction::Unchanged)
    );
    assert_eq!(tree(&fx.target()), before);
    assert_eq!(
        backend
            .current_version(&mut |_| {})
            .unwrap()
            .unwrap()
            .version,
        "1.0"
    );
}

fn fresh_backend(fx: &Fixture) -> LocalBackend {
    fx.backend()
}

#[test]
fn crash_mid_delivery_then_a_fresh_backend_rolls_back_from_the_handle() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let mut handle = None;
    crash(
        || {
            fx.backend().deploy(
                &fx.request("2.3", "b"),
                &mut |h| {
                    handle = Some(h.to_json());
                    Ok(())
                },
                &mut |_| {},
            )
        },
        "deliver:after_component",
        1,
    );
    assert_ne!(
        tree(&fx.target()),
        before,
        "the crash left a half-updated target"
    );
    let handle = Handle::from_json(&handle.unwrap()).unwrap();
    fresh_backend(&fx).roll_back(&handle, &mut |_| {}).unwrap();
    assert_eq!(tree(&fx.target()), before);
    assert!(no_staging(&fx.target()));
}

#[test]
fn crash_mid_delivery_then_resume_finishes_the_deployment() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let mut handle = None;
    crash(
        || {
            fx.backend().deploy(
                &fx.request("2.3", "b"),
                &mut |h| {
                    handle = Some(h.clone());
                    Ok(())
                },
                &mut |_| {},
            )
        },
        "deliver:after_component",
        0,
    );
    let outcome = fresh_backend(&fx)
        .resume(&handle.unwrap(), &mut |_| {})
        .unwrap();
    assert_eq!(outcome.components.len(), 4);
    let package = fx.root.join("packages/PetPortal/2.3");
    for component in ["api", "bin", "conf", "web"] {
        assert!(
            fsops::trees_equal(&package.join(component), &fx.target().join(component)).unwrap(),
            "{component}"
        );
    }
    assert_eq!(
        fx.backend()
            .current_version(&mut |_| {})
            .unwrap()
            .unwrap()
            .version,
        "2.3"
    );
    assert!(no_staging(&fx.target()));
}

#[test]
fn crash_right_after_the_first_component_moved_into_the_snapshot_then_resume_and_roll_back() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let mut handle = None;
    crash(
        || {
            fx.backend().deploy(
                &fx.request("2.3", "b"),
                &mut |h| {
                    handle = Some(h.clone());
                    Ok(())
                },
                &mut |_| {},
            )
        },
        "deliver:after_snapshot_move",
        0,
    );
    // bin (the first replaced component) was moved into the snapshot; 2.3's is not in yet.
    assert!(!fx.target().join("bin").exists());
    assert!(fx.root.join("work/b/snapshot/bin/run.sh").exists());
    let handle = handle.unwrap();
    fresh_backend(&fx).resume(&handle, &mut |_| {}).unwrap();
    let v23 = fx.root.join("packages/PetPortal/2.3");
    assert!(fsops::trees_equal(&v23.join("bin"), &fx.target().join("bin")).unwrap());
    fresh_backend(&fx).roll_back(&handle, &mut |_| {}).unwrap();
    assert_eq!(tree(&fx.target()), before);
}

#[test]
fn crash_mid_rollback_then_rollback_again_restores() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let (_, handle, _) = deploy(&fx.backend(), &fx.request("2.2", "b"));
    crash(
        || fx.backend().roll_back(&handle, &mut |_| {}),
        "rollback:after_component",
        1,
    );
    let report = fresh_backend(&fx).roll_back(&handle, &mut |_| {}).unwrap();
    assert_eq!(report.failure(), None);
    assert_eq!(tree(&fx.target()), before);
    let resumed = fx.backend().resume(&handle, &mut |_| {}).unwrap_err();
    assert_eq!(resumed.class, ErrorClass::Precondition);
}

#[test]
fn not_enough_free_space_is_refused_with_nothing_touched() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let backend = LocalBackend {
        free_space: FreeSpaceProbe::Fixed(1_000),
        ..fx.backend()
    };
    let (result, _, _) = deploy(&backend, &fx.request("2.3", "b"));
    let err = result.unwrap_err();
    assert_eq!(err.class, ErrorClass::Precondition);
    // target folder: index.html 2 + old.css 6 + run.sh 17 + app.conf 8 + .relflow-version
    let current = fsops::tree_size(&fx.target()).unwrap();
    assert!(err.message.contains("1000 bytes free"), "{err}");
    assert!(
        err.message.contains(&format!(
            "target folder {current} + update 34 + margin 10485760"
        )),
        "{err}"
    );
    assert_eq!(tree(&fx.target()), before);
    assert!(no_staging(&fx.target()));
    assert!(!fx.root.join("work/b/snapshot").exists());
}

#[test]
fn a_retry_of_the_same_task_run_keeps_the_first_snapshot() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let (first, handle, _) = deploy(&fx.backend(), &fx.request("2.2", "b"));
    assert!(first.is_err());
    let (second, again, lines) = deploy(&fx.backend(), &fx.request("2.2", "b"));
    assert!(second.is_err());
    assert_eq!(handle, again, "same task run, same handle");
    assert!(
        lines.iter().any(|l| l.contains("snapshot already taken")),
        "{lines:?}"
    );
    // The runner gives a retry the task's health check again (plan.json does not keep it).
    let retrying = LocalBackend {
        verify: fx.request("2.2", "b").verify,
        ..fx.backend()
    };
    assert_eq!(
        retrying.retry(&handle, &mut |_| {}).unwrap_err().class,
        ErrorClass::TaskFailed
    );
    fx.backend().roll_back(&handle, &mut |_| {}).unwrap();
    assert_eq!(tree(&fx.target()), before);
    let other = fx
        .backend()
        .deploy(&fx.request("2.3", "b"), &mut |_| Ok(()), &mut |_| {})
        .unwrap_err();
    assert_eq!(other.class, ErrorClass::Precondition);
}

#[test]
fn component_rollback_reverts_only_the_named_components() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let v1 = fx.root.join("packages/PetPortal/1.0");
    let (outcome, handle, _) = deploy(&fx.backend(), &fx.request("2.3", "b"));
    outcome.unwrap();
    let backend = fresh_backend(&fx);
    let err = backend
        .roll_back_components(&handle, &["db".into()], &mut |_| {})
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Validation);
    assert!(
        err.message
            .contains("the deployment delivered: api, bin, conf, web"),
        "{err}"
    );

    let report = backend
        .roll_back_components(&handle, &["web".into()], &mut |_| {})
        .unwrap();
    assert_eq!(
        actions(&report),
        vec![("web".to_string(), RevertAction::Restored)]
    );
    assert!(fsops::trees_equal(&v1.join("web"), &fx.target().join("web")).unwrap());
    assert!(fx.target().join("api/server").exists(), "api is left alone");
    assert_eq!(
        fs::read_to_string(fx.target().join("bin/run.sh")).unwrap(),
        "#!/bin/sh\necho 2\n"
    );
    let current = state::read_version_file(&fx.target()).unwrap().unwrap();
    assert_eq!(
        (current.version.as_str(), current.reverted_components),
        ("2.3", vec!["web".to_string()])
    );

    let rest = ["api", "bin", "conf"].map(String::from);
    let report = backend
        .roll_back_components(&handle, &rest, &mut |_| {})
        .unwrap();
    let expected = [
        ("api", RevertAction::Removed),
        ("bin", RevertAction::Restored),
        ("conf", RevertAction::Restored),
    ];
    assert_eq!(
        actions(&report)[..3],
        expected.map(|(c, a)| (c.to_string(), a))
    );
    assert_eq!(
        backend
            .current_version(&mut |_| {})
            .unwrap()
            .unwrap()
            .version,
        "1.0"
    );
}

#[test]
fn a_subset_of_components_delivers_only_those_and_unknown_ones_are_named() {
    let fx = Fixture::new();
    let mut request = fx.request("2.3", "a");
    request.components = vec!["web".into()];
    let outcome = deploy(&fx.backend(), &request).0.unwrap();
    assert_eq!(outcome.components.len(), 1);
    assert_eq!(outcome.components[0].files_added, 3);
    assert!(fx.target().join("web/new.js").exists() && !fx.target().join("api").exists());
    request.components = vec!["nope".into()];
    request.work_dir = fx.root.join("work/b");
    let err = fx
        .backend()
        .deploy(&request, &mut |_| Ok(()), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Validation);
    assert!(
        err.message.contains("the package has: api, bin, conf, web"),
        "{err}"
    );
    let err = fx
        .backend()
        .deploy(&fx.request("9.9", "c"), &mut |_| Ok(()), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
    assert!(
        err.message.contains("packages/PetPortal/9.9.tar.gz"),
        "{err}"
    );
}

/// Writes a `.tar.gz` with raw header names, so hostile paths are possible.
pub(super) fn tarball(path: &Path, entries: &[(&str, tar::EntryType, &str)]) {
    let file = fs::File::create(path).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o640);
        header.set_mtime(1_600_000_000);
        let body = if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            header.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
            ""
        } else {
            data
        };
        header.set_size(body.len() as u64);
        header.set_cksum();
        builder.append(&header, body.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

#[test]
fn tarball_packages_deploy_with_modes_links_and_mtimes() {
    let fx = Fixture::new();
    use tar::EntryType::{Directory, Regular, Symlink};
    let entries = [
        ("web/", Directory, ""),
        ("web/a.txt", Regular, "hello"),
        ("web/b", Symlink, "a.txt"),
        ("./api", Regular, "x"),
    ];
    tarball(&fx.root.join("packages/PetPortal/3.0.tar.gz"), &entries);
    let outcome = deploy(&fx.backend(), &fx.request("3.0", "a")).0.unwrap();
    let names: Vec<_> = outcome.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    let meta = fs::metadata(fx.target().join("web/a.txt")).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.mtime()), (0o640, 1_600_000_000));
    assert_eq!(
        fs::read_link(fx.target().join("web/b")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(fs::read_to_string(fx.target().join("api")).unwrap(), "x");
}

#[test]
fn cancel_stops_before_the_next_component_and_rollback_still_works() {
    let fx = Fixture::new();
    deploy(&fx.backend(), &fx.request("1.0", "a")).0.unwrap();
    let before = tree(&fx.target());
    let handle = std::cell::RefCell::new(None);
    let backend = fx.backend();
    let err = backend
        .deploy(
            &fx.request("2.3", "b"),
            &mut |h| {
                *handle.borrow_mut() = Some(h.clone());
                Ok(())
            },
            &mut |line| {
                if line.starts_with("Staging") {
                    let h = handle.borrow().clone().unwrap();
                    fx.backend().cancel(&h, &mut |_| {}).unwrap();
                }
            },
        )
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::TaskFailed);
    assert!(
        err.message
            .contains("cancelled; the target may be half-updated"),
        "{err}"
    );
    assert!(no_staging(&fx.target()));
    let handle = handle.into_inner().unwrap();
    backend.roll_back(&handle, &mut |_| {}).unwrap();
    assert_eq!(tree(&fx.target()), before);
}
