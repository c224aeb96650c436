//! Retention: the newest `keep_snapshots` deployments of a target that were not rolled back
//! stay revertible; older snapshots (in place) and release folders that no revertible
//! deployment returns to, beyond the newest `keep_releases`, are pruned. Runs after each
//! completed deploy and from `relflow gc`; a rollback only marks (it must stay O(1)).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fsops;
use super::registry::{self, Entry, EntryState, Registry};
use super::state::{Layout, Plan, io_error};
use super::{LocalLayout, releases};
use crate::backend::{BackendError, LogSink};

/// What one pruning pass removed from a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub target: PathBuf,
    /// Work folders whose snapshot was removed (their deployments can no longer be rolled back).
    pub snapshots: Vec<PathBuf>,
    /// Release folders removed (`releases/<name>`).
    pub release_folders: Vec<String>,
    /// Bytes of files that had no other link, so the space really came back.
    pub bytes_freed: u64,
}

impl Pruned {
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty() && self.release_folders.is_empty() && self.bytes_freed == 0
    }
}

/// Prunes what no revertible deployment of `target` needs, as its registry's settings say.
/// A target with no registry has nothing to prune.
pub fn collect_garbage(target: &Path) -> Result<Pruned, BackendError> {
    let Some(known) = registry::read(target)? else {
        return Ok(Pruned {
            target: target.to_path_buf(),
            ..Pruned::default()
        });
    };
    let settings = (known.layout, known.keep_releases, known.keep_snapshots);
    registry::update(target, settings, |r| prune(target, r))
}

/// Records the deployment as started (once), before the target is touched.
pub(crate) fn record_start(
    layout: &Layout,
    plan: &Plan,
    settings: (LocalLayout, u32, u32),
    previous: Option<String>,
) -> Result<(), BackendError> {
    registry::update(&layout.target, settings, |r| {
        apply_settings(r, settings);
        if r.entry_mut(&layout.run_id).is_none() {
            r.deployments.push(Entry {
                run_id: layout.run_id.clone(),
                work_dir: layout.work_dir.clone(),
                application: plan.application.clone(),
                version: plan.version.clone(),
                started_at: fsops::now_rfc3339(),
                state: EntryState::Deploying,
                release_dir: plan.release_dir.clone(),
                mixed_dirs: Vec::new(),
                previous,
                pruned: false,
            });
        }
        Ok(())
    })
}

/// The backend's current settings win: they are what the pipeline says now.
fn apply_settings(
    r: &mut Registry,
    (layout, keep_releases, keep_snapshots): (LocalLayout, u32, u32),
) {
    r.layout = layout;
    r.keep_releases = keep_releases;
    r.keep_snapshots = keep_snapshots;
}

/// Marks the deployment completed and prunes; logs what was freed.
pub(crate) fn after_deploy(
    layout: &Layout,
    settings: (LocalLayout, u32, u32),
    log: LogSink<'_>,
) -> Result<(), BackendError> {
    let pruned = registry::update(&layout.target, settings, |r| {
        apply_settings(r, settings);
        if let Some(e) = r.entry_mut(&layout.run_id) {
            e.state = EntryState::Completed;
        }
        prune(&layout.target, r)
    })?;
    if !pruned.is_empty() {
        log(&format!(
            "Retention: pruned {} snapshot(s) and {} release folder(s), {} bytes freed (keep_snapshots {}, keep_releases {})",
            pruned.snapshots.len(),
            pruned.release_folders.len(),
            pruned.bytes_freed,
            settings.2,
            settings.1
        ));
    }
    Ok(())
}

/// Marks the deployment rolled back (its release folders become bad); prunes nothing, so
/// the rollback does not wait on deleting a tree.
pub(crate) fn after_rollback(
    layout: &Layout,
    plan: &Plan,
    settings: (LocalLayout, u32, u32),
) -> Result<(), BackendError> {
    if registry::read(&layout.target)?.is_none() && plan.layout == LocalLayout::InPlace {
        // Deployed before the registry existed: nothing to mark.
        return Ok(());
    }
    registry::update(&layout.target, settings, |r| {
        if let Some(e) = r.entry_mut(&layout.run_id) {
            e.state = EntryState::RolledBack;
        }
        Ok(())
    })
}

fn prune(target: &Path, r: &mut Registry) -> Result<Pruned, BackendError> {
    let mut pruned = Pruned {
        target: target.to_path_buf(),
        ..Pruned::default()
    };
    let window: BTreeSet<String> = r
        .deployments
        .iter()
        .rev()
        .filter(|e| e.state != EntryState::RolledBack)
        .take(r.keep_snapshots as usize)
        .map(|e| e.run_id.clone())
        .collect();
    let why = format!(
        "keep_snapshots {}: only the newest {} deployment(s) of {} can be rolled back",
        r.keep_snapshots,
        r.keep_snapshots,
        target.display()
    );
    for e in r.deployments.iter_mut() {
        let layout = Layout {
            work_dir: e.work_dir.clone(),
            target: target.to_path_buf(),
            run_id: e.run_id.clone(),
        };
        pruned.bytes_freed += remove_counted(&layout.discarded_dir())?;
        if window.contains(&e.run_id) || e.pruned {
            continue;
        }
        if fsops::exists(&layout.work_dir) && e.state != EntryState::RolledBack {
            fs::write(layout.pruned_marker(), &why).map_err(io_error(format!(
                "write {}",
                layout.pruned_marker().display()
            )))?;
        }
        let snapshot = layout.snapshot_dir();
        if fsops::exists(&snapshot) {
            pruned.bytes_freed += remove_counted(&snapshot)?;
            pruned.snapshots.push(e.work_dir.clone());
        }
        e.pruned = r.layout == LocalLayout::InPlace || e.release_dir.is_none();
    }
    if r.layout == LocalLayout::Releases {
        prune_folders(target, r, &window, &mut pruned)?;
    }
    // Forget entries that can no longer matter: pruned, and no kept entry returns to them.
    let referenced: BTreeSet<String> = r
        .deployments
        .iter()
        .filter(|e| !e.pruned)
        .filter_map(|e| e.previous.clone())
        .collect();
    r.deployments
        .retain(|e| !e.pruned || e.folders().any(|f| referenced.contains(f)));
    Ok(pruned)
}

fn prune_folders(
    target: &Path,
    r: &mut Registry,
    window: &BTreeSet<String>,
    pruned: &mut Pruned,
) -> Result<(), BackendError> {
    let mut keep: BTreeSet<String> = releases::live_folder(target).into_iter().collect();
    let good: Vec<String> = r
        .deployments
        .iter()
        .rev()
        .filter(|e| e.state != EntryState::RolledBack)
        .flat_map(|e| {
            e.mixed_dirs
                .iter()
                .rev()
                .chain(e.release_dir.iter())
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    keep.extend(good.into_iter().take(r.keep_releases as usize));
    for e in r.deployments.iter().filter(|e| window.contains(&e.run_id)) {
        // Everything up to the first good folder: a rollback walks past bad ones.
        let mut name = e.previous.clone();
        while let Some(n) = name {
            keep.insert(n.clone());
            if !r.is_bad(&n) {
                break;
            }
            name = r
                .owner_of(&n)
                .and_then(|o| o.previous.clone())
                .filter(|p| !keep.contains(p));
        }
        // An in-flight or failed deployment keeps its own folders too.
        keep.extend(e.folders().cloned());
    }
    let dir = target.join("releases");
    for e in r.deployments.iter_mut() {
        for folder in e.folders().cloned().collect::<Vec<_>>() {
            if keep.contains(&folder) {
                continue;
            }
            let path = dir.join(&folder);
            if fsops::exists(&path) {
                pruned.bytes_freed += remove_counted(&path)?;
                pruned.release_folders.push(folder);
            }
        }
        if !window.contains(&e.run_id) && e.folders().all(|f| !keep.contains(f)) {
            e.pruned = true;
        }
    }
    Ok(())
}

/// Removes `path`, returning the bytes of regular files that had no other link.
fn remove_counted(path: &Path) -> Result<u64, BackendError> {
    let freed = unique_bytes(path).map_err(io_error(format!("measure {}", path.display())))?;
    fsops::remove_tree(path).map_err(io_error(format!("remove {}", path.display())))?;
    Ok(freed)
}

fn unique_bytes(path: &Path) -> std::io::Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        let mut total = 0;
        for entry in fs::read_dir(path)? {
            total += unique_bytes(&entry?.path())?;
        }
        return Ok(total);
    }
    Ok(if meta.is_file() && meta.nlink() == 1 {
        meta.len()
    } else {
        0
    })
}
