//! Hostile packages against the local backend: entries and links that would leave their
//! component (directly, through chains, through links the archive made earlier), components
//! that are links, hard links out, devices, and setuid/setgid bits.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use super::fuzzing::{Entry, EntryKind, tarball_bytes};
use super::tests::{Fixture, tarball, write};
use super::*;

fn entry(kind: EntryKind, path: &str, link: &str, mode: u32) -> Entry {
    Entry {
        kind,
        path: path.into(),
        link: link.into(),
        mode,
        data: b"data".to_vec(),
    }
}

/// Deploys PetPortal `version` into a fresh target; the error must be a validation error
/// containing `expected`, with nothing written to the target.
#[track_caller]
fn assert_refused(fx: &Fixture, version: &str, expected: &str) {
    let err = fx
        .backend()
        .deploy(&fx.request(version, version), &mut |_| Ok(()), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Validation, "{err}");
    assert!(err.message.contains(expected), "{err}");
    assert!(
        !fx.target().exists(),
        "nothing written to the target: {err}"
    );
}

#[test]
fn tarball_entries_escaping_the_target_are_refused_with_nothing_written() {
    use tar::EntryType::{Char, Link, Regular, Symlink};
    let outside = "which resolves outside its component `web`";
    let cases = [
        ("../evil", Regular, "x", "contains `..`".to_string()),
        ("web/../../evil", Regular, "x", "contains `..`".into()),
        ("/etc/x", Regular, "x", "has an absolute path".into()),
        (
            "web/link",
            Symlink,
            "../../outside",
            format!("links to `../../outside`, {outside}"),
        ),
        (
            "web/abs",
            Symlink,
            "/etc/passwd",
            format!("links to `/etc/passwd`, {outside}"),
        ),
        ("web/up", Symlink, "..", format!("links to `..`, {outside}")),
        (
            "api",
            Symlink,
            "../outside",
            "is a symlink to `../outside` as a whole component".into(),
        ),
        (
            "web/h",
            Link,
            "../etc/passwd",
            "is a hard link to `../etc/passwd`, outside".into(),
        ),
        (
            "web/h",
            Link,
            "/etc/passwd",
            "is a hard link to `/etc/passwd`, outside".into(),
        ),
        (
            "api/h",
            Link,
            "web/ok",
            "is a hard link to `web/ok`, outside its component".into(),
        ),
        ("web/dev", Char, "", "is a device file".into()),
    ];
    for (name, kind, data, why) in cases {
        let fx = Fixture::new();
        tarball(
            &fx.root.join("packages/PetPortal/6.6.tar.gz"),
            &[("web/ok", Regular, "ok"), (name, kind, data)],
        );
        assert_refused(&fx, "6.6", &format!("entry `{name}` {why}"));
        assert!(!fx.root.join("evil").exists() && !fx.root.join("outside").exists());
    }
}

#[test]
fn tarball_links_through_earlier_links_are_resolved_not_counted() {
    use EntryKind::{File, Symlink};
    let cases: [(&[Entry], &str); 4] = [
        // The lexical check counted `a/l/a` as two folders deep; `a/l` is the target root.
        (
            &[
                entry(Symlink, "a/l", "..", 0o777),
                entry(Symlink, "a/l/a/up", "../../..", 0o777),
            ],
            "entry `a/l/a/up` would be written through the link `a/l`",
        ),
        // Each link alone stays inside; `b` leads to `web`, so `b/..` is the target root.
        (
            &[
                entry(Symlink, "web/a/b", "..", 0o777),
                entry(Symlink, "web/up", "a/b/..", 0o777),
            ],
            "entry `web/up` links to `a/b/..`, which resolves outside its component `web` \
             (through the link `web/a/b`)",
        ),
        // A link made before the one it uses is changed by a later entry.
        (
            &[
                entry(Symlink, "web/up", "b/../x", 0o777),
                entry(Symlink, "web/b", ".", 0o777),
            ],
            "entry `web/up` links to `b/../x`, which resolves outside its component `web` \
             (through the link `web/b`)",
        ),
        // Writing a file through a link the archive made.
        (
            &[
                entry(Symlink, "web/l", ".", 0o777),
                entry(File, "web/l/x", "", 0o644),
            ],
            "entry `web/l/x` would be written through the link `web/l`",
        ),
    ];
    for (entries, expected) in cases {
        let fx = Fixture::new();
        let bytes = tarball_bytes(entries).unwrap();
        fs::write(fx.root.join("packages/PetPortal/6.6.tar.gz"), bytes).unwrap();
        assert_refused(&fx, "6.6", expected);
    }
}

#[test]
fn tarball_links_that_stay_in_their_component_are_delivered() {
    use EntryKind::{Dir, File, HardLink, Symlink};
    let fx = Fixture::new();
    let entries = [
        entry(Dir, "web/assets", "", 0o755),
        entry(File, "web/assets/app.js", "", 0o644),
        entry(Symlink, "web/app.js", "assets/app.js", 0o777),
        entry(Symlink, "web/assets/self", "../assets/./app.js", 0o777),
        entry(HardLink, "web/copy.js", "web/assets/app.js", 0o644),
    ];
    let bytes = tarball_bytes(&entries).unwrap();
    fs::write(fx.root.join("packages/PetPortal/7.0.tar.gz"), bytes).unwrap();
    fx.backend()
        .deploy(&fx.request("7.0", "a"), &mut |_| Ok(()), &mut |_| {})
        .unwrap();
    let web = fx.target().join("web");
    assert_eq!(fs::read_to_string(web.join("app.js")).unwrap(), "data");
    assert_eq!(fs::read_to_string(web.join("copy.js")).unwrap(), "data");
    assert_eq!(fs::read_to_string(web.join("assets/self")).unwrap(), "data");
}

#[test]
fn folder_packages_with_links_out_or_a_linked_component_are_refused() {
    let outside = "which resolves outside its component `web`";
    let cases: [(&str, &str, String); 5] = [
        (
            "web/shadow",
            "/etc/shadow",
            format!("links to `/etc/shadow`, {outside}"),
        ),
        (
            "web/out",
            "../../outside",
            format!("links to `../../outside`, {outside}"),
        ),
        ("web/up", "..", format!("links to `..`, {outside}")),
        (
            "web",
            "../../elsewhere",
            "is a symlink to `../../elsewhere` as a whole component".into(),
        ),
        (
            "web/loop",
            "loop",
            "links to `loop`, a chain of more than 40 links".into(),
        ),
    ];
    for (path, link, why) in cases {
        let fx = Fixture::new();
        let package = fx.root.join("packages/PetPortal/6.6");
        write(&package.join("bin/ok"), "ok", 0o755);
        fs::create_dir_all(package.join("web")).unwrap();
        if path == "web" {
            fs::remove_dir(package.join("web")).unwrap();
        }
        symlink(link, package.join(path)).unwrap();
        assert_refused(&fx, "6.6", &format!("entry `{path}` {why}"));
    }
}

#[test]
fn folder_packages_with_a_fifo_are_refused() {
    let fx = Fixture::new();
    let package = fx.root.join("packages/PetPortal/6.6");
    fs::create_dir_all(package.join("web")).unwrap();
    let fifo = std::ffi::CString::new(package.join("web/pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert_refused(
        &fx,
        "6.6",
        "entry `web/pipe` is a device file, fifo or socket",
    );
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn setid_bits_are_stripped_unless_kept_and_sticky_bits_stay() {
    use EntryKind::{Dir, File};
    for keep_setid in [false, true] {
        let fx = Fixture::new();
        let folder = fx.root.join("packages/PetPortal/8.0");
        write(&folder.join("bin/su"), "x", 0o4755);
        write(&folder.join("bin/sg"), "x", 0o2711);
        fs::create_dir_all(folder.join("tmp")).unwrap();
        fs::set_permissions(folder.join("tmp"), fs::Permissions::from_mode(0o3777)).unwrap();
        let entries = [
            entry(File, "bin/su", "", 0o4755),
            entry(File, "bin/sg", "", 0o2711),
            entry(Dir, "tmp", "", 0o3777),
        ];
        let bytes = tarball_bytes(&entries).unwrap();
        fs::write(fx.root.join("packages/PetPortal/8.1.tar.gz"), bytes).unwrap();
        let backend = LocalBackend {
            keep_setid,
            ..fx.backend()
        };
        for version in ["8.0", "8.1"] {
            backend
                .deploy(&fx.request(version, version), &mut |_| Ok(()), &mut |_| {})
                .unwrap();
            let modes = ["bin/su", "bin/sg", "tmp"].map(|p| mode_of(&fx.target().join(p)));
            let expected = if keep_setid {
                [0o4755, 0o2711, 0o3777]
            } else {
                [0o755, 0o711, 0o1777]
            };
            assert_eq!(modes, expected, "{version}, keep_setid {keep_setid}");
        }
    }
}
