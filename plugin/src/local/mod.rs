//! The `local` backend: deploys `packages/<Application>/<version>/` (a folder or
//! `<version>.tar.gz`) into a target folder, with a pre-deployment state to revert to.
//!
//! On disk, per task run, in the runner's `work_dir`:
//! - `plan.json`: the resolved request (package, components, layout, release folder, run id);
//! - `journal.json`: the phase (`planned`, `snapshotting`, `delivering`, `delivered`,
//!   `completed`, `cancelled`, `rolling_back`, `rolled_back`) and the components reverted so
//!   far, written temp-then-rename with fsync;
//! - `snapshot.json`: which components existed before (in place) or which release folder was
//!   live (releases), recorded before the target is touched;
//! - in place: `snapshot/<component>` — the replaced component itself, moved there by one
//!   rename as the new one goes in (a copy when the work folder is on another filesystem) —
//!   and `snapshot/.relflow-version`; `discarded/`: what a rollback moved out of the target;
//!   `snapshot-pruned` once retention removed the snapshot;
//! - `manifest.json`: the delivered components with files added / replaced, and
//!   `manifest-files.txt`: one `added|replaced<TAB><component>/<path>` line per file;
//! - `cancel`: present once `cancel` was asked for.
//!
//! Unchanged files are hard-linked from the live tree (`link.rs`); changed ones are written as
//! new files. Packages are hostile input: every entry must stay inside its component (no link
//! out, no write through a link, no device), and setuid/setgid bits are stripped unless the
//! backend keeps them (see `confine.rs`, `tarball.rs`).
//!
//! In the target, in place: the components, `.relflow-version` (JSON: `application`,
//! `version`, `components`, `deployed_at`, and `reverted_components` after a partial rollback),
//! and while an operation runs `.relflow-staging-<run_id>/`. With `layout: releases`:
//! `releases/<folder>/` (components and `.relflow-version`) and `current` (`releases.rs`).
//! Beside the target: `.<name>.relflow-deployments.json`, the deployments made there, which
//! retention prunes from (`registry.rs`, `retention.rs`).

mod confine;
mod deliver;
mod deploy;
mod fsops;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod layout_tests;
mod link;
mod package;
mod registry;
mod release_rollback;
mod releases;
mod retention;
mod rollback;
mod snapshot;
mod state;
mod tarball;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use deploy::FREE_SPACE_MARGIN;
pub use registry::REGISTRY_SUFFIX;
pub use retention::{Pruned, collect_garbage};
pub use state::{STAGING_PREFIX, VERSION_FILE, VersionFile};

use crate::ErrorClass;
use crate::backend::{
    Backend, BackendError, CurrentVersion, DeployOutcome, DeployRequest, Handle, LogSink,
    RollbackReport,
};
use state::{Layout, load_plan};

/// Test hook: when set to a number of bytes, [`FreeSpaceProbe::Statvfs`] reports it instead of
/// asking the filesystem, so end-to-end tests can simulate a full disk.
pub const FREE_BYTES_ENV: &str = "RELFLOW_LOCAL_FREE_BYTES";

/// How the free space on the target's filesystem is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FreeSpaceProbe {
    /// `statvfs` on the target (or its nearest existing parent); honours [`FREE_BYTES_ENV`].
    #[default]
    Statvfs,
    /// A fixed figure, for tests.
    Fixed(u64),
}

impl FreeSpaceProbe {
    /// Bytes available to an unprivileged user on the filesystem holding `target`.
    pub fn free_bytes(&self, target: &Path) -> std::io::Result<u64> {
        match self {
            FreeSpaceProbe::Fixed(bytes) => Ok(*bytes),
            FreeSpaceProbe::Statvfs => {
                if let Some(bytes) = std::env::var(FREE_BYTES_ENV)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                {
                    return Ok(bytes);
                }
                statvfs_free(target)
            }
        }
    }
}

fn statvfs_free(target: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = target
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c_path = std::ffi::CString::new(existing.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value that the call overwrites.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and stats is a valid, writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[expect(
        clippy::useless_conversion,
        reason = "the field types differ between platforms"
    )]
    Ok(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

/// Release folders kept and deployments revertible per target unless the backend says otherwise.
pub const DEFAULT_KEEP: u32 = 5;

/// How a deployment lands in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalLayout {
    /// Components swapped into the target; the replaced ones moved aside as the snapshot.
    #[default]
    InPlace,
    /// `current` symlink into `releases/<release>-<task>/`, switched by one rename.
    Releases,
}

/// Deploys packages into a folder on this host.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// The folder deployed into; created when missing.
    pub target: PathBuf,
    /// Holds `<Application>/<version>/` folders and `<Application>/<version>.tar.gz` files.
    pub packages: PathBuf,
    /// Default health check (argv, run with cwd = target) when the request has none.
    pub verify: Option<Vec<String>>,
    pub free_space: FreeSpaceProbe,
    /// Deliver setuid/setgid bits as the package has them; by default they are stripped.
    pub keep_setid: bool,
    /// The attempt's deadline and stop flag; the health check is ended when it fires.
    pub interrupt: crate::Interrupt,
    pub layout: LocalLayout,
    /// `layout: releases`: newest release folders kept besides those still needed.
    pub keep_releases: u32,
    /// The newest deployments per target that can still be rolled back.
    pub keep_snapshots: u32,
    /// Link a package file that has the live file's size, mtime and mode without comparing
    /// bytes (rsync's quick check): faster, wrong when a changed file keeps both.
    pub trust_mtime: bool,
}

impl LocalBackend {
    pub fn new(target: impl Into<PathBuf>, packages: impl Into<PathBuf>) -> Self {
        LocalBackend {
            target: target.into(),
            packages: packages.into(),
            verify: None,
            free_space: FreeSpaceProbe::Statvfs,
            keep_setid: false,
            interrupt: crate::Interrupt::none(),
            layout: LocalLayout::InPlace,
            keep_releases: DEFAULT_KEEP,
            keep_snapshots: DEFAULT_KEEP,
            trust_mtime: false,
        }
    }

    /// What a new registry of the target starts with.
    fn settings(&self) -> (LocalLayout, u32, u32) {
        (self.layout, self.keep_releases, self.keep_snapshots)
    }

    fn layout(handle: &Handle) -> Result<Layout, BackendError> {
        match handle {
            Handle::Local(h) => Ok(Layout {
                work_dir: h.work_dir.clone(),
                target: h.target.clone(),
                run_id: h.run_id.clone(),
            }),
            other => Err(BackendError::new(
                ErrorClass::Validation,
                format!(
                    "use a handle of another backend with the local backend: {}",
                    other.to_json()
                ),
            )),
        }
    }

    fn reattach(
        &self,
        handle: &Handle,
        how: deploy::Continue,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        let layout = Self::layout(handle)?;
        let mut plan = load_plan(&layout)?;
        // plan.json does not keep the health check (see `Plan::verify`).
        plan.verify = self.verify.clone();
        let package =
            package::find(&self.packages, &plan.application, &plan.version).or_else(|_| {
                package::find(
                    package_root(&plan.package),
                    &plan.application,
                    &plan.version,
                )
            })?;
        deploy::run(self, &layout, &plan, &package, how, log)
    }
}

/// Whether the deployment behind `handle` may have changed its target. Only one whose journal
/// still says `planned` or `snapshotting` (package resolved, free space checked, snapshot
/// being taken) has left the target untouched; an unreadable journal counts as changed.
pub fn may_have_changed_target(handle: &crate::backend::LocalHandle) -> bool {
    let layout = Layout {
        work_dir: handle.work_dir.clone(),
        target: handle.target.clone(),
        run_id: handle.run_id.clone(),
    };
    !matches!(
        state::load_journal(&layout),
        Ok(None
            | Some(state::Journal {
                phase: state::Phase::Planned | state::Phase::Snapshotting,
                ..
            }))
    )
}

/// `packages/` from `packages/<Application>/<version>[.tar.gz]`, for a backend whose
/// configuration moved since the deployment started.
fn package_root(package: &Path) -> &Path {
    package.parent().and_then(Path::parent).unwrap_or(package)
}

impl Backend for LocalBackend {
    fn deploy(
        &self,
        request: &DeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        deploy::start(self, request, on_handle, log)
    }

    fn resume(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.reattach(handle, deploy::Continue::Resume, log)
    }

    fn retry(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.reattach(handle, deploy::Continue::Redeliver, log)
    }

    fn roll_back(&self, handle: &Handle, log: LogSink<'_>) -> Result<RollbackReport, BackendError> {
        let layout = Self::layout(handle)?;
        let plan = load_plan(&layout)?;
        let report = match plan.layout {
            LocalLayout::InPlace => rollback::roll_back_all(&layout, &plan, log)?,
            LocalLayout::Releases => release_rollback::roll_back_all(&layout, &plan, log)?,
        };
        retention::after_rollback(&layout, &plan, self.settings())?;
        Ok(report)
    }

    fn roll_back_components(
        &self,
        handle: &Handle,
        components: &[String],
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let layout = Self::layout(handle)?;
        let plan = load_plan(&layout)?;
        match plan.layout {
            LocalLayout::InPlace => rollback::roll_back_some(&layout, &plan, components, log),
            LocalLayout::Releases => {
                release_rollback::roll_back_some(&layout, &plan, components, log)
            }
        }
    }

    /// Leaves a `cancel` marker that a running deploy checks before each component and before
    /// its health check; the target keeps whatever was delivered by then.
    fn cancel(&self, handle: &Handle, log: LogSink<'_>) -> Result<(), BackendError> {
        let layout = Self::layout(handle)?;
        let marker = layout.cancel_marker();
        std::fs::write(&marker, b"")
            .map_err(state::io_error(format!("write {}", marker.display())))?;
        log(
            "Cancel requested; the deployment stops before its next component and the target may be half-updated",
        );
        Ok(())
    }

    fn current_version(&self, _log: LogSink<'_>) -> Result<Option<CurrentVersion>, BackendError> {
        // In the releases layout `.relflow-version` is in the live release folder.
        let live = match self.layout {
            LocalLayout::InPlace => self.target.clone(),
            LocalLayout::Releases => releases::current_link(&self.target),
        };
        Ok(state::read_version_file(&live)?.map(|file| CurrentVersion {
            application: Some(file.application),
            version: file.version,
            components: file.components,
            deployed_at: Some(file.deployed_at),
        }))
    }
}

/// Failure points for crash tests: a test names one, the code panics there, leaving the disk
/// exactly as a killed process would (no cleanup runs on a panic path).
pub(crate) mod fault {
    #[cfg(test)]
    thread_local! {
        pub static AT: std::cell::RefCell<Option<(&'static str, usize)>> = const { std::cell::RefCell::new(None) };
    }

    /// Panics on the n-th time (0-based) `name` is reached, when a test armed it.
    #[cfg(test)]
    pub fn point(name: &str) {
        AT.with(|at| {
            let mut at = at.borrow_mut();
            if let Some((armed, left)) = at.as_mut()
                && *armed == name
            {
                if *left == 0 {
                    *at = None;
                    panic!("simulated crash at {name}");
                }
                *left -= 1;
            }
        });
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub fn point(_name: &str) {}
}
