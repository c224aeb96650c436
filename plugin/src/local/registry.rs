//! The per-target record of deployments, `<parent>/.<target>.relflow-deployments.json` beside
//! the target (like its lock, so it holds across state directories): which task runs deployed
//! there, in order, which can still be rolled back, which release folder each made and which
//! were rolled back (bad). Retention and `relflow gc` decide from it what to prune.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LocalLayout;
use super::fsops;
use super::state::{STATE_FORMAT, io_error};
use crate::ErrorClass;
use crate::backend::BackendError;

/// Suffix of the registry's file name beside the target.
pub const REGISTRY_SUFFIX: &str = ".relflow-deployments.json";

/// Where a recorded deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EntryState {
    /// Started; not completed yet (or failed and waiting for a person).
    Deploying,
    Completed,
    /// Rolled back: its release folders are bad and never chosen again.
    RolledBack,
}

/// One deployment (task run) into the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub run_id: String,
    pub work_dir: PathBuf,
    pub application: String,
    pub version: String,
    pub started_at: String,
    pub state: EntryState,
    /// `layout: releases`: its folder under `releases/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_dir: Option<String>,
    /// Folders built by component rollbacks of this deployment (they mix in older components).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixed_dirs: Vec<String>,
    /// `layout: releases`: the folder `current` pointed to before, the rollback destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Its snapshot (in place) or its own folders (releases) were pruned.
    #[serde(default)]
    pub pruned: bool,
}

impl Entry {
    /// Every release folder of this deployment.
    pub fn folders(&self) -> impl Iterator<Item = &String> {
        self.release_dir.iter().chain(&self.mixed_dirs)
    }
}

/// The registry file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Registry {
    pub format: u32,
    pub layout: LocalLayout,
    pub keep_releases: u32,
    pub keep_snapshots: u32,
    /// Oldest first.
    pub deployments: Vec<Entry>,
}

impl Registry {
    pub fn entry_mut(&mut self, run_id: &str) -> Option<&mut Entry> {
        self.deployments.iter_mut().find(|e| e.run_id == run_id)
    }

    /// The deployment that made (or mixed) release folder `name`.
    pub fn owner_of(&self, name: &str) -> Option<&Entry> {
        self.deployments
            .iter()
            .find(|e| e.folders().any(|f| f == name))
    }

    /// Whether release folder `name` belongs to a rolled-back deployment (never chosen again).
    pub fn is_bad(&self, name: &str) -> bool {
        self.owner_of(name)
            .is_some_and(|e| e.state == EntryState::RolledBack)
    }
}

/// `<parent>/.<name>.relflow-deployments.json` of `target`.
pub(crate) fn registry_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    target
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!(".{name}{REGISTRY_SUFFIX}"))
}

/// Reads the registry of `target`; `None` when nothing was ever recorded there.
pub(crate) fn read(target: &Path) -> Result<Option<Registry>, BackendError> {
    let path = registry_path(target);
    let registry: Option<Registry> =
        fsops::read_json(&path).map_err(io_error(format!("read {}", path.display())))?;
    match registry {
        Some(r) if r.format != STATE_FORMAT => Err(BackendError::new(
            ErrorClass::Protocol,
            format!("read {}: format {} is unknown", path.display(), r.format),
        )),
        other => Ok(other),
    }
}

/// Runs `change` on the registry of `target` (a fresh one when there is none, with
/// `settings`) while holding an exclusive `flock` on the target folder, then writes it
/// durably: deploys, rollbacks and `relflow gc` may run at once from different processes.
pub(crate) fn update<T>(
    target: &Path,
    settings: (LocalLayout, u32, u32),
    change: impl FnOnce(&mut Registry) -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let _guard = lock(target)?;
    let (layout, keep_releases, keep_snapshots) = settings;
    let mut registry = read(target)?.unwrap_or(Registry {
        format: STATE_FORMAT,
        layout,
        keep_releases,
        keep_snapshots,
        deployments: Vec::new(),
    });
    let value = change(&mut registry)?;
    let path = registry_path(target);
    fsops::write_json_durably(&path, &registry)
        .map_err(io_error(format!("write {}", path.display())))?;
    Ok(value)
}

/// An exclusive `flock` on the target folder, released when dropped (the file closes).
pub(crate) fn lock(target: &Path) -> Result<File, BackendError> {
    std::fs::create_dir_all(target).map_err(io_error(format!("create {}", target.display())))?;
    let dir = File::open(target).map_err(io_error(format!("open {}", target.display())))?;
    // SAFETY: flock on a descriptor this function owns; it touches no memory.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_error(format!("lock {}", target.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(dir)
}
