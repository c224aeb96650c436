//! The files a pipeline names relative to itself, checked before a release starts: every
//! `script:` and every relative program (`./scripts/smoke.sh`) must exist, be a regular file
//! and be executable by this user; a `ca_cert` must be a readable file.
//!
//! Only `load_file` asks for these checks (`validate`, `plan`, `run`): a stored pipeline that
//! `resume` loads again is not refused because a script went away meanwhile. Paths written
//! with `${...}` are not checked: their value is known only when the release runs.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::checks::closest;
use super::{Checker, Pos};
use crate::pipeline::raw::Scalar;

/// The first bytes of a file the kernel can execute directly.
const SHEBANG: &[u8] = b"#!";
const ELF: &[u8] = b"\x7fELF";

/// What is wrong with a file, and what to do about it.
struct Problem {
    message: String,
    help: Option<String>,
}

impl Checker<'_> {
    /// Checks a `script:` path: resolved against the pipeline folder, run directly.
    pub(super) fn check_script_file(&mut self, value: &Spanned<Scalar>, field: &str) {
        let written = value.value.0.as_str();
        if self.check_files && is_literal(written) {
            let resolved = crate::pipeline::paths::resolve(self.base_dir, written);
            let problem = program_problem(written, &resolved, &self.shown(written));
            self.report(value.referenced.into(), field, problem);
        }
    }

    /// Checks the program of an argv list when it is a relative path (`./bin/smoke`): resolved
    /// against `dir` (relative to the pipeline folder; `None` = the folder itself). A bare name
    /// (`helm`) is looked up in `PATH` when it runs, and an absolute path is the host's own.
    pub(super) fn check_program(
        &mut self,
        argv: &[Spanned<Scalar>],
        field: &str,
        dir: Option<&str>,
    ) {
        let Some(program) = argv.first() else {
            return;
        };
        let written = program.value.0.as_str();
        let is_relative_path = written.contains('/') && !written.starts_with('/');
        if !self.check_files || !is_relative_path || !is_literal(written) {
            return;
        }
        let relative = match dir {
            Some(dir) if !is_literal(dir) => return,
            Some(dir) => Path::new(dir).join(written),
            None => PathBuf::from(written),
        };
        let resolved = crate::pipeline::paths::resolve(self.base_dir, &relative);
        let shown = self.shown(&relative.to_string_lossy());
        let problem = program_problem(written, &resolved, &shown);
        self.report(program.referenced.into(), &format!("{field}[0]"), problem);
    }

    /// Checks a file relflow reads (a CA certificate): it must be a readable regular file.
    pub(super) fn check_readable_file(&mut self, value: &Spanned<Scalar>, field: &str) {
        let written = value.value.0.as_str();
        if !self.check_files || !is_literal(written) {
            return;
        }
        let resolved = crate::pipeline::paths::resolve(self.base_dir, written);
        let problem = match regular_file_problem(written, &resolved) {
            Some(problem) => Some(problem),
            None => std::fs::File::open(&resolved).err().map(|e| Problem {
                message: format!("`{written}` cannot be read: {}", e.kind()),
                help: None,
            }),
        };
        self.report(value.referenced.into(), field, problem);
    }

    fn report(&mut self, at: Pos, field: &str, problem: Option<Problem>) {
        let Some(problem) = problem else {
            return;
        };
        let message = format!("{field}: {}", problem.message);
        match problem.help {
            Some(help) => self.error_with_help(at, message, help),
            None => self.error(at, message),
        }
    }

    /// A path relative to the pipeline folder as the user would type it from where relflow
    /// runs: `ci/scripts/deploy.sh` for `scripts/deploy.sh` in `ci/p.yaml`.
    fn shown(&self, relative: &str) -> String {
        let relative = relative.strip_prefix("./").unwrap_or(relative);
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                dir.join(relative).to_string_lossy().into_owned()
            }
            _ => format!("./{relative}"),
        }
    }
}

/// Without `${...}` (or `$${`): the text is the path.
fn is_literal(text: &str) -> bool {
    !text.contains('$')
}

/// Why `resolved` (written `written`) cannot be run directly, if it cannot.
fn program_problem(written: &str, resolved: &Path, shown: &str) -> Option<Problem> {
    if let Some(problem) = regular_file_problem(written, resolved) {
        return Some(problem);
    }
    if !is_executable(resolved) {
        return Some(Problem {
            message: format!("`{written}` is not executable"),
            help: Some(format!("make it executable: chmod +x {shown}")),
        });
    }
    let mut head = [0u8; 4];
    let read = std::fs::File::open(resolved)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..read];
    // An unreadable file is left to the kernel: execute permission may be all it needs.
    if read > 0 && !head.starts_with(SHEBANG) && !head.starts_with(ELF) {
        return Some(Problem {
            message: format!("`{written}` has no `#!` line: the system cannot run it"),
            help: Some("start it with an interpreter line, e.g. `#!/bin/sh`".to_string()),
        });
    }
    None
}

/// Why `resolved` is not an existing regular file (a symlink to one is fine).
fn regular_file_problem(written: &str, resolved: &Path) -> Option<Problem> {
    match std::fs::metadata(resolved) {
        Ok(meta) if meta.is_file() => None,
        Ok(meta) => Some(Problem {
            message: format!(
                "`{written}` is {}, not a file",
                crate::store::describe_kind(meta.file_type())
            ),
            help: None,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Problem {
            message: format!("`{written}` does not exist"),
            help: Some(match sibling_like(resolved) {
                Some(near) => {
                    let near = Path::new(written).with_file_name(near);
                    format!("did you mean `{}`?", near.display())
                }
                None => format!("looked for {}", resolved.display()),
            }),
        }),
        Err(e) => Some(Problem {
            message: format!("`{written}` cannot be read: {}", e.kind()),
            help: None,
        }),
    }
}

/// The name of a file beside where `missing` was looked for, close to its name
/// (`deploy.sh` for `deplyo.sh`).
fn sibling_like(missing: &Path) -> Option<String> {
    let name = missing.file_name()?.to_str()?;
    let dir = missing.parent()?;
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let near = closest(name, names.iter().map(String::as_str))?;
    Some(near.to_string())
}

/// Whether this user may execute `path` (`access(2)` with `X_OK`: owner, groups and root's
/// rule that at least one execute bit is set).
fn is_executable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    unsafe { libc::access(c_path.as_ptr(), libc::X_OK) == 0 }
}
