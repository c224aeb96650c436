//! The files a local deployment keeps in its work folder and in the target, and where they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsops;
use crate::ErrorClass;
use crate::backend::BackendError;

/// Format of every JSON file below.
pub(crate) const STATE_FORMAT: u32 = 1;
/// Name of the file in the target that says what is deployed there.
pub const VERSION_FILE: &str = ".relflow-version";
/// Prefix of the staging folder in the target (`.relflow-staging-<run_id>`).
pub const STAGING_PREFIX: &str = ".relflow-staging-";

/// Paths of one task run's deployment.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub work_dir: PathBuf,
    pub target: PathBuf,
    pub run_id: String,
}

impl Layout {
    pub fn plan(&self) -> PathBuf {
        self.work_dir.join("plan.json")
    }
    pub fn journal(&self) -> PathBuf {
        self.work_dir.join("journal.json")
    }
    pub fn snapshot_index(&self) -> PathBuf {
        self.work_dir.join("snapshot.json")
    }
    /// Holds `<component>` (moved aside, or copied from another filesystem) and
    /// `.relflow-version` as they were before the deployment.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.work_dir.join("snapshot")
    }
    /// What rollbacks moved out of the target, removed by retention (not while rolling back).
    pub fn discarded_dir(&self) -> PathBuf {
        self.work_dir.join("discarded")
    }
    /// Present once retention pruned the snapshot; holds why.
    pub fn pruned_marker(&self) -> PathBuf {
        self.work_dir.join("snapshot-pruned")
    }
    pub fn manifest(&self) -> PathBuf {
        self.work_dir.join("manifest.json")
    }
    pub fn manifest_files(&self) -> PathBuf {
        self.work_dir.join("manifest-files.txt")
    }
    pub fn cancel_marker(&self) -> PathBuf {
        self.work_dir.join("cancel")
    }
    /// Same filesystem as the target, so components can be renamed into place.
    pub fn staging(&self) -> PathBuf {
        self.target.join(format!("{STAGING_PREFIX}{}", self.run_id))
    }
    pub fn version_file(&self) -> PathBuf {
        self.target.join(VERSION_FILE)
    }
}

/// Whether the package is a folder or a `.tar.gz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PackageKind {
    Folder,
    Tarball,
}

/// The resolved request, written before anything is touched (`plan.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub format: u32,
    pub run_id: String,
    pub target: PathBuf,
    pub application: String,
    pub version: String,
    pub package: PathBuf,
    pub package_kind: PackageKind,
    pub components: Vec<String>,
    /// The health check's argv: never written (it may hold secrets, e.g. `${env.TOKEN}`); a
    /// resumed or retried deployment runs the one its backend was given again.
    #[serde(skip_serializing, default)]
    pub verify: Option<Vec<String>>,
    /// Uncompressed bytes of the delivered components.
    pub update_bytes: u64,
    /// Plans written before layouts existed are in place.
    #[serde(default)]
    pub layout: super::LocalLayout,
    /// `layout: releases`: the folder under `releases/` this deployment builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_dir: Option<String>,
}

/// Where a deployment stands (`journal.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Plan written; nothing touched.
    Planned,
    /// Copying what will be replaced; the target is untouched.
    Snapshotting,
    /// Swapping components into the target; the target may be half-updated.
    Delivering,
    /// Every component is in place; the health check has not passed (yet).
    Delivered,
    /// Delivered and verified.
    Completed,
    /// Stopped by `cancel`; the target may be half-updated.
    Cancelled,
    RollingBack,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub format: u32,
    pub phase: Phase,
    /// Components reverted by component rollbacks so far.
    #[serde(default)]
    pub reverted: Vec<String>,
    pub updated_at: String,
}

/// What the snapshot holds (`snapshot.json`). A component is listed only once its copy is
/// complete; one that is missing here is retaken, never trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotIndex {
    pub format: u32,
    /// Component → whether it existed in the target before the deployment.
    pub components: BTreeMap<String, bool>,
    /// Whether `.relflow-version` existed before; `None` until it was captured.
    pub version_file_existed: Option<bool>,
    /// `layout: releases`: the folder `current` pointed to before the deployment; `None`
    /// until recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
}

/// The live release folder before a deployment (`None`: there was none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Previous {
    pub folder: Option<String>,
}

/// What was delivered (`manifest.json`); per-file lines are in `manifest-files.txt`
/// (`added\t<component>/<path>` or `replaced\t...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub application: String,
    pub version: String,
    pub components: Vec<crate::backend::DeliveredComponent>,
    pub delivered_at: String,
}

/// `<target>/.relflow-version`: what is deployed in the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFile {
    pub application: String,
    pub version: String,
    pub components: Vec<String>,
    /// RFC 3339, UTC.
    pub deployed_at: String,
    /// Components reverted since by a component rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverted_components: Vec<String>,
}

/// Maps an I/O error into a backend error about `what`.
pub(crate) fn io_error(
    what: impl std::fmt::Display,
) -> impl FnOnce(std::io::Error) -> BackendError {
    move |e| {
        let class = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorClass::NotFound,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ErrorClass::Precondition
            }
            _ => ErrorClass::TaskFailed,
        };
        BackendError::new(class, format!("{what}: {e}"))
    }
}

pub(crate) fn load_plan(layout: &Layout) -> Result<Plan, BackendError> {
    let path = layout.plan();
    match fsops::read_json::<Plan>(&path).map_err(io_error(format!("read {}", path.display())))? {
        Some(plan) if plan.format == STATE_FORMAT => Ok(plan),
        Some(plan) => Err(BackendError::new(
            ErrorClass::Protocol,
            format!("read {}: format {} is unknown", path.display(), plan.format),
        )),
        None => Err(BackendError::new(
            ErrorClass::NotFound,
            format!(
                "find the deployment's plan at {}: the work folder is gone",
                path.display()
            ),
        )),
    }
}

pub(crate) fn load_journal(layout: &Layout) -> Result<Option<Journal>, BackendError> {
    let path = layout.journal();
    fsops::read_json(&path).map_err(io_error(format!("read {}", path.display())))
}

/// Durably records the phase, keeping the list of reverted components.
pub(crate) fn set_phase(layout: &Layout, phase: Phase) -> Result<(), BackendError> {
    let reverted = load_journal(layout)?
        .map(|j| j.reverted)
        .unwrap_or_default();
    save_journal(
        layout,
        &Journal {
            format: STATE_FORMAT,
            phase,
            reverted,
            updated_at: fsops::now_rfc3339(),
        },
    )
}

pub(crate) fn save_journal(layout: &Layout, journal: &Journal) -> Result<(), BackendError> {
    let path = layout.journal();
    fsops::write_json_durably(&path, journal)
        .map_err(io_error(format!("write {}", path.display())))?;
    crate::failpoint::hit_with("local.journal", || format!("{:?}", journal.phase));
    Ok(())
}

pub(crate) fn load_snapshot_index(layout: &Layout) -> Result<SnapshotIndex, BackendError> {
    let path = layout.snapshot_index();
    let index: Option<SnapshotIndex> =
        fsops::read_json(&path).map_err(io_error(format!("read {}", path.display())))?;
    Ok(index.unwrap_or(SnapshotIndex {
        format: STATE_FORMAT,
        ..SnapshotIndex::default()
    }))
}

pub(crate) fn save_snapshot_index(
    layout: &Layout,
    index: &SnapshotIndex,
) -> Result<(), BackendError> {
    let path = layout.snapshot_index();
    fsops::write_json_durably(&path, index)
        .map_err(io_error(format!("write {}", path.display())))?;
    crate::failpoint::hit("local.snapshot");
    Ok(())
}

/// Reads `.relflow-version` in `target`; `None` when there is none.
pub(crate) fn read_version_file(target: &Path) -> Result<Option<VersionFile>, BackendError> {
    let path = target.join(VERSION_FILE);
    fsops::read_json(&path).map_err(|e| {
        BackendError::new(
            ErrorClass::Protocol,
            format!("read the deployed version from {}: {e}", path.display()),
        )
    })
}
