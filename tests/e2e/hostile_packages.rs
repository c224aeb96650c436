//! Hostile packages through the CLI: tarballs and folder packages whose links leave their
//! component (directly, through a chain, through a link the archive made earlier, or a whole
//! component that is a link) are refused with class `validation` and nothing written to the
//! target or outside it; setuid/setgid bits are stripped unless the backend sets `keep_setid`.

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::Sandbox;
use crate::tree;

const PIPELINE: &str = r#"
name: hp
variables: { version: "1.0" }
backends:
  prod: { kind: local, target: target, packages: packages KEEP }
phases:
  - name: deploy
    tasks:
      - { name: deploy, deploy: { backend: prod, package: "App/${version}" } }
"#;

/// A sandbox with the pipeline, an `outside/` folder beside the target holding a secret, and
/// `keep_setid: true` on the backend when asked.
fn sandbox(keep_setid: bool) -> Sandbox {
    let sb = Sandbox::new();
    let keep = if keep_setid { ", keep_setid: true" } else { "" };
    sb.write("p.yaml", &PIPELINE.replace(" KEEP", keep));
    sb.write("outside/secret.txt", "keep me\n");
    sb
}

fn deploy(sb: &Sandbox, version: &str) -> crate::harness::Outcome {
    sb.run(&["run", "p.yaml", "--var", &format!("version={version}")])
}

fn deploy_task(sb: &Sandbox, release: &str) -> Value {
    let out = sb.run(&["status", release, "--json"]);
    out.expect_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("status --json");
    assert_eq!(doc["status"], "failed", "{doc:#}");
    doc["phases"][0]["tasks"][0].clone()
}

/// The release halted with a validation error naming `entry` and `points_to`, logged in the
/// task's `script_output.log`; nothing reached the target, and `outside/` is as it was.
#[track_caller]
fn assert_refused(sb: &Sandbox, version: &str, release: &str, entry: &str, points_to: &str) {
    let out = deploy(sb, version);
    out.expect_code(1);
    let task = deploy_task(sb, release);
    assert_eq!(task["status"], "failed", "{task:#}");
    assert_eq!(task["error_class"], "validation", "{task:#}");
    let error = task["error"].as_str().expect("error");
    assert!(
        error.contains(&format!("entry `{entry}`")) && error.contains(points_to),
        "{version}: {error}"
    );
    let log = sb.read(&format!(
        ".relflow/releases/{release}/deploy/deploy/script_output.log"
    ));
    assert!(log.contains(&format!("entry `{entry}`")), "{log}");
    let target = sb.path().join("target");
    let written = if target.exists() {
        tree::snapshot(&target)
    } else {
        Vec::new()
    };
    assert!(
        written.is_empty(),
        "{version} wrote to the target: {written:?}"
    );
    let outside = tree::snapshot(&sb.path().join("outside"));
    assert_eq!(outside.len(), 1, "{version} changed outside/: {outside:?}");
    assert_eq!(sb.read("outside/secret.txt"), "keep me\n");
}

/// Writes `packages/App/<version>.tar.gz` with Python's tarfile, which keeps names and modes
/// as given; `body` adds entries with `add(name, data, mode)` and `link(name, target)`.
fn python_tarball(sb: &Sandbox, version: &str, body: &str) {
    let path = sb.path().join(format!("packages/App/{version}.tar.gz"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let script = format!(
        r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    def add(name, data, mode=0o644):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        t.addfile(info, io.BytesIO(data))
    def link(name, target):
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        t.addfile(info)
    def folder(name, mode):
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        t.addfile(info)
{body}
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("spawn python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_packages_a_tarball_writing_through_its_own_link_is_refused() {
    let sb = sandbox(false);
    // The lexical check counted `a/l/a/up` three folders deep, but `a/l` is the target itself:
    // delivered, `a/up` pointed two folders above the target.
    python_tarball(
        &sb,
        "1.0",
        "    add('web/index.html', b'hi')\n    link('a/l', '..')\n    link('a/l/a/up', '../../..')",
    );
    assert_refused(&sb, "1.0", "hp-1", "a/l/a/up", "through the link `a/l`");
}

#[test]
fn hostile_packages_a_tarball_link_escaping_through_a_later_link_is_refused() {
    let sb = sandbox(false);
    // Each link looks harmless alone; `web/b` -> `.` makes `web/up` point above `web`.
    python_tarball(
        &sb,
        "1.0",
        "    add('web/index.html', b'hi')\n    link('web/up', 'b/../../outside/secret.txt')\n    link('web/b', '.')",
    );
    assert_refused(
        &sb,
        "1.0",
        "hp-1",
        "web/up",
        "links to `b/../../outside/secret.txt`, which resolves outside its component `web`",
    );
}

#[test]
fn hostile_packages_folder_links_out_of_their_component_are_refused() {
    let sb = sandbox(false);
    let packages = sb.path().join("packages/App");
    let folder = |version: &str| {
        sb.write(&format!("packages/App/{version}/web/index.html"), "hi");
        packages.join(version)
    };
    symlink("/etc/shadow", folder("1.1").join("web/shadow")).expect("symlink");
    symlink("../../outside", folder("1.2").join("web/out")).expect("symlink");
    let whole = folder("1.3");
    std::fs::remove_dir_all(whole.join("web")).expect("rm");
    symlink("../../../outside", whole.join("web")).expect("symlink");
    // A chain: `web/a/b` -> `..` is `web`, so `a/b/..` is the target root.
    let chain = folder("1.4");
    std::fs::create_dir_all(chain.join("web/a")).expect("mkdir");
    symlink("..", chain.join("web/a/b")).expect("symlink");
    symlink("a/b/../../outside", chain.join("web/up")).expect("symlink");

    let outside = "which resolves outside its component `web`";
    let cases = [
        (
            "1.1",
            "web/shadow",
            format!("links to `/etc/shadow`, {outside}"),
        ),
        (
            "1.2",
            "web/out",
            format!("links to `../../outside`, {outside}"),
        ),
        (
            "1.3",
            "web",
            "is a symlink to `../../../outside` as a whole component".to_string(),
        ),
        (
            "1.4",
            "web/up",
            format!("links to `a/b/../../outside`, {outside} (through the link `web/a/b`)"),
        ),
    ];
    for (n, (version, entry, why)) in cases.iter().enumerate() {
        assert_refused(&sb, version, &format!("hp-{}", n + 1), entry, why);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// A folder package (2.0) and a tarball (2.1) with a setuid file, a setgid file and a sticky
/// setgid folder; returns the modes deployed for each.
fn deployed_modes(keep_setid: bool) -> Vec<[u32; 3]> {
    let sb = sandbox(keep_setid);
    let folder = sb.path().join("packages/App/2.0");
    sb.write("packages/App/2.0/bin/su", "x");
    sb.write("packages/App/2.0/bin/sg", "x");
    std::fs::create_dir_all(folder.join("tmp")).expect("mkdir");
    tree::chmod(&folder.join("bin/su"), 0o4755);
    tree::chmod(&folder.join("bin/sg"), 0o2711);
    tree::chmod(&folder.join("tmp"), 0o3777);
    python_tarball(
        &sb,
        "2.1",
        "    add('bin/su', b'x', 0o4755)\n    add('bin/sg', b'x', 0o2711)\n    folder('tmp', 0o3777)",
    );
    let mut modes = Vec::new();
    for version in ["2.0", "2.1"] {
        deploy(&sb, version).expect_code(0);
        let target = sb.path().join("target");
        modes.push(["bin/su", "bin/sg", "tmp"].map(|p| mode(&target.join(p))));
    }
    modes
}

#[test]
fn hostile_packages_setid_bits_are_stripped_and_sticky_bits_kept() {
    assert_eq!(deployed_modes(false), vec![[0o755, 0o711, 0o1777]; 2]);
}

#[test]
fn hostile_packages_keep_setid_delivers_setid_bits_as_packaged() {
    assert_eq!(deployed_modes(true), vec![[0o4755, 0o2711, 0o3777]; 2]);
}
