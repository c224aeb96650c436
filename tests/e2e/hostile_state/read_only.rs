//! `status`, `list`, `logs` and `plan` read without writing: they work on a read-only store
//! and on a full disk, and create nothing.

use std::path::Path;

use super::{as_nobody, is_root, with_no_room, with_one_release};
use crate::harness::{Outcome, Sandbox};

/// The reading verbs and what each must print about release `d-1`.
const READERS: [(&[&str], &str); 5] = [
    (&["status"], "release d-1  completed"),
    (&["status", "d-1", "--json"], "\"status\": \"completed\""),
    (&["list"], "d-1"),
    (&["logs", "d-1"], "hello from d"),
    (&["plan", "p.yaml"], "build"),
];

#[track_caller]
fn assert_read(out: &Outcome, args: &[&str], expected: &str) {
    assert_eq!(out.code, 0, "{args:?}: {out:?}");
    assert!(out.stdout.contains(expected), "{args:?}: {}", out.stdout);
}

/// A full disk: no file may grow. Reading commands used to open the store for writing.
#[test]
fn reading_commands_work_on_a_full_disk() {
    let sb = with_one_release();
    for (args, expected) in READERS {
        assert_read(&with_no_room(&sb, args), args, expected);
    }
    // Writing commands still say why they cannot go on.
    let out = with_no_room(&sb, &["run", "p.yaml"]);
    assert_ne!(out.code, 0, "{out:?}");
}

/// A store in a read-only folder (owned by the user, modes 0555/0444). As root modes stop
/// nothing, so the commands run as `nobody`, who then owns the state.
#[test]
fn reading_commands_work_on_a_read_only_store_and_write_nothing() {
    let sb = with_one_release();
    let state = sb.path().join(".relflow");
    if is_root() {
        chown_tree(&state, 65534);
    }
    make_read_only(&state);
    let before = listing(&state);
    for (args, expected) in READERS {
        let out = if is_root() {
            match as_nobody(&sb, args) {
                Some(out) => out,
                None => return,
            }
        } else {
            sb.run(args)
        };
        assert_read(&out, args, expected);
    }
    assert_eq!(
        listing(&state),
        before,
        "a reading command changed the state folder"
    );
}

/// A reading command in a folder without state prints that there is none and creates
/// nothing.
#[test]
fn reading_commands_create_no_state() {
    let sb = Sandbox::new();
    let out = sb.run(&["list"]);
    out.expect_code(0);
    let out = sb.run(&["status"]);
    out.expect_code(0);
    assert!(out.stdout.contains("no releases yet"), "{}", out.stdout);
    assert!(!sb.exists(".relflow"));
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

fn make_read_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            make_read_only(&entry.unwrap().path());
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
}

/// Every path under `dir` with its size, sorted.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.push((path.display().to_string(), meta.len()));
        }
    }
    out.sort();
    out
}
