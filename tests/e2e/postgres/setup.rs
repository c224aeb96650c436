//! What starting a PostgreSQL needs before the server runs: its binaries, the OS user that may
//! run them, a fresh cluster made by `initdb`, and the harness's error type.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where a test that found no PostgreSQL is sent: the one place that installs it.
pub const INSTALL_HINT: &str = "install it as `.ci/run` does (its install step runs \
`apt-get install -y postgresql` when `initdb` is missing), or set RELFLOW_PG_BINDIR to the \
folder that holds initdb, pg_ctl, postgres and psql";

/// The tools the harness runs; a folder counts as an installation only when it has all four.
const TOOLS: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];

/// Why the harness could not give a test its PostgreSQL.
#[derive(Debug)]
pub enum PgError {
    NotInstalled { looked_in: Vec<PathBuf> },
    NoPostgresUser,
    Io { what: String, source: io::Error },
    Failed { what: String, output: String },
    NotReady { what: String, log: String },
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::NotInstalled { looked_in } => {
                let dirs: Vec<String> = looked_in.iter().map(|d| d.display().to_string()).collect();
                write!(
                    f,
                    "PostgreSQL is not installed (no initdb, pg_ctl, postgres and psql in {}): \
                     these tests need a real PostgreSQL 15; {INSTALL_HINT}",
                    if dirs.is_empty() {
                        "any known folder".to_string()
                    } else {
                        dirs.join(", ")
                    }
                )
            }
            PgError::NoPostgresUser => write!(
                f,
                "running as root but there is no `postgres` OS user to run PostgreSQL as \
                 (PostgreSQL refuses root; Debian's package creates the user): {INSTALL_HINT}"
            ),
            PgError::Io { what, source } => write!(f, "failed to {what}: {source}"),
            PgError::Failed { what, output } => write!(f, "failed to {what}:\n{output}"),
            PgError::NotReady { what, log } => {
                write!(f, "failed to {what}; the server's log ends with:\n{log}")
            }
        }
    }
}

impl std::error::Error for PgError {}

/// Attaches what was being done to an I/O error.
pub fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> PgError {
    let what = what.into();
    move |source| PgError::Io { what, source }
}

/// The folder holding PostgreSQL's server binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Finds the binaries: in `explicit` only when given (`RELFLOW_PG_BINDIR`), else through
    /// `pg_config --bindir`, Debian's `/usr/lib/postgresql/15/bin`, then `initdb` on `PATH`.
    pub fn locate(explicit: Option<&Path>) -> Result<Binaries, PgError> {
        let looked_in = match explicit {
            Some(dir) => vec![dir.to_path_buf()],
            None => default_candidates(),
        };
        match looked_in.iter().find(|dir| has_all_tools(dir)) {
            Some(dir) => Ok(Binaries { dir: dir.clone() }),
            None => Err(PgError::NotInstalled { looked_in }),
        }
    }

    /// Path of one tool, e.g. `tool("psql")`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn default_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs.push(PathBuf::from("/usr/lib/postgresql/15/bin"));
    // `/usr/local/bin/initdb` may be a symlink into the real folder, which also has `postgres`.
    let on_path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&on_path) {
        let initdb = dir.join("initdb");
        if is_executable(&initdb) {
            let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
            dirs.extend(real.parent().map(Path::to_path_buf));
        }
    }
    dirs
}

fn has_all_tools(dir: &Path) -> bool {
    TOOLS.iter().all(|tool| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Who runs initdb, pg_ctl and postgres: PostgreSQL refuses root, and CI runs as root.
#[derive(Debug, Clone, Copy)]
pub enum RunAs {
    /// Not root: the server runs as the user running the tests.
    Current,
    /// Root: the server runs as the `postgres` OS user, which owns the temp folder.
    User { uid: u32, gid: u32 },
}

impl RunAs {
    pub fn detect() -> Result<RunAs, PgError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(RunAs::Current);
        }
        let (uid, gid) = lookup_user(c"postgres").ok_or(PgError::NoPostgresUser)?;
        Ok(RunAs::User { uid, gid })
    }

    /// Makes `command` run as this user (std's setgid/setuid in the child; no PAM, no shell).
    pub fn apply(self, command: &mut Command) {
        if let RunAs::User { uid, gid } = self {
            command.uid(uid).gid(gid);
        }
    }

    /// Hands `path` to this user so the server may write there.
    pub fn give(self, path: &Path) -> Result<(), PgError> {
        match self {
            RunAs::Current => Ok(()),
            RunAs::User { uid, gid } => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(io_err(format!(
                    "give {} to the postgres user",
                    path.display()
                ))),
        }
    }
}

fn lookup_user(name: &CStr) -> Option<(u32, u32)> {
    // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids) to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some((entry.pw_uid, entry.pw_gid))
}

/// Runs a PostgreSQL tool as `run_as` from `cwd` (the postgres user may not enter the test's
/// own working folder); a non-zero exit becomes `PgError::Failed` with both streams.
pub fn run_tool(
    mut command: Command,
    run_as: RunAs,
    cwd: &Path,
    what: &str,
) -> Result<Output, PgError> {
    command.current_dir(cwd).env("LC_ALL", "C");
    run_as.apply(&mut command);
    let out = command.output().map_err(io_err(what))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(PgError::Failed {
        what: what.to_string(),
        output: format!(
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// Makes a fresh cluster in `data`: trust auth, superuser `postgres`, UTF8. `--no-sync` because
/// a test cluster need not survive a power cut (1.0 s instead of 3.7 s here).
pub fn initdb(bin: &Binaries, run_as: RunAs, root: &Path, data: &Path) -> Result<(), PgError> {
    let mut command = Command::new(bin.tool("initdb"));
    command
        .arg("-D")
        .arg(data)
        .args(["--auth=trust", "--username=postgres", "-E", "UTF8"])
        .args(["--locale=C", "--no-sync"]);
    run_tool(command, run_as, root, "initdb a test cluster").map(drop)
}
