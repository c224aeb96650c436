//! Damaged state and other bad input (issue 10): a damaged or unreadable store is refused by
//! every command (exit 6) and never taken for an empty one, release ids are never reused,
//! reading commands work when nothing can be written, and bad pipeline files, names, shell
//! values and resolver lines are handled as the README says.
//!
//! CI runs as root, where file modes stop nothing: a store "the user cannot read" or a
//! read-only store is made real by running relflow as `nobody` (see [`as_nobody`]), and a
//! full disk by a file-size limit of 0 (see [`with_no_room`]).

mod bad_input;
mod damaged_store;
mod read_only;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{Outcome, Sandbox};

/// Exit code of an unusable state.
pub const STATE: i32 = 6;

/// A pipeline of one command task: `d` → release `d-1`.
pub const ONE_TASK: &str = r#"
name: d
phases:
  - name: build
    tasks:
      - { name: hi, command: { run: [echo, hello from d] } }
"#;

/// A sandbox with release `d-1` completed.
pub fn with_one_release() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("p.yaml", ONE_TASK);
    sb.run(&["run", "p.yaml"]).expect_code(0);
    sb
}

/// Runs `command` to completion.
pub fn outcome(mut command: Command) -> std::io::Result<Outcome> {
    let out = command.output()?;
    Ok(Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `relflow ARGS` run as user `nobody` (65534), for which file modes hold even when the tests
/// run as root. The sandbox becomes traversable for it. `None` when this test process cannot
/// switch users (not root) or the binary cannot be run as `nobody` (its folder is private).
pub fn as_nobody(sb: &Sandbox, args: &[&str]) -> Option<Outcome> {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        return None;
    }
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).ok()?;
    let mut command = sb.command(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match outcome(command) {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: the relflow binary cannot be run as nobody here: {e}");
            None
        }
        Err(e) => panic!("spawn relflow as nobody: {e}"),
    }
}

/// `relflow ARGS` with a file-size limit of 0 bytes: no file can grow (as on a full disk;
/// root is bound by it too). SIGXFSZ is ignored so a write fails with EFBIG instead.
pub fn with_no_room(sb: &Sandbox, args: &[&str]) -> Outcome {
    let mut command = sb.command(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    outcome(command).expect("spawn relflow")
}

/// `relflow ARGS` under `umask`.
pub fn with_umask(sb: &Sandbox, args: &[&str], umask: libc::mode_t) -> Outcome {
    let mut command = sb.command(args);
    // SAFETY: umask is async-signal-safe and cannot fail.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    outcome(command).expect("spawn relflow")
}

/// Mode bits (0o777) of `path`, not following a symlink.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Asserts `out` is exit 6 naming the store file and `problem`.
#[track_caller]
pub fn assert_refused(out: &Outcome, problem: &str) {
    out.expect_code(STATE);
    assert!(
        out.stderr.contains(".relflow/relflow.db") && out.stderr.contains(problem),
        "expected the store's path and `{problem}` in: {}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("no releases yet"),
        "a damaged store read as empty: {}",
        out.stdout
    );
}
