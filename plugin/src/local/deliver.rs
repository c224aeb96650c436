//! In-place delivery: stage the package next to the target (unchanged files hard-linked from
//! the live tree), move each replaced component into the snapshot and rename the staged one
//! into place, then record the manifest and `.relflow-version`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::fault;
use super::fsops;
use super::link;
use super::package::Package;
use super::state::{Layout, Manifest, Plan, STATE_FORMAT, SnapshotIndex, VersionFile, io_error};
use crate::ErrorClass;
use crate::backend::{BackendError, ComponentChange, DeliveredComponent, LogSink};

/// Stages and swaps in every planned component (`how`: keep setid bits, trust mtimes). On an error the staging folder is removed; a
/// crash leaves it, and the next attempt or rollback removes it.
pub(crate) fn deliver(
    layout: &Layout,
    plan: &Plan,
    package: &Package,
    index: &SnapshotIndex,
    how: (bool, bool),
    log: LogSink<'_>,
) -> Result<Vec<DeliveredComponent>, BackendError> {
    let staging = layout.staging();
    let result = deliver_through(layout, plan, package, index, how, log);
    let cleanup =
        fsops::remove_tree(&staging).map_err(io_error(format!("remove {}", staging.display())));
    let delivered = result?;
    cleanup?;
    fsops::sync_dir(&layout.target)
        .map_err(io_error(format!("sync {}", layout.target.display())))?;
    write_records(layout, plan, &delivered)?;
    Ok(delivered)
}

fn deliver_through(
    layout: &Layout,
    plan: &Plan,
    package: &Package,
    index: &SnapshotIndex,
    (keep_setid, trust_mtime): (bool, bool),
    log: LogSink<'_>,
) -> Result<Vec<DeliveredComponent>, BackendError> {
    let (new, old) = prepare_staging(layout)?;
    let snapshot = layout.snapshot_dir();
    let is_same_fs = link::same_filesystem(&snapshot, &layout.target);
    if is_same_fs {
        log(&format!(
            "Snapshot by rename: each replaced component moves into {}",
            snapshot.display()
        ));
    } else {
        log(&format!(
            "The work folder {} is on another filesystem than the target {}: the snapshot is a copy",
            layout.work_dir.display(),
            layout.target.display()
        ));
    }
    // Unchanged files are linked from the live component, or from its snapshot when a crash
    // left it moved aside but not yet replaced.
    let link_from: BTreeMap<String, PathBuf> = plan
        .components
        .iter()
        .map(|c| {
            let live = layout.target.join(c);
            let from = if fsops::exists(&live) {
                live
            } else {
                snapshot.join(c)
            };
            (c.clone(), from)
        })
        .collect();
    log(&format!(
        "Staging {} component(s) from {}",
        plan.components.len(),
        package.path.display()
    ));
    let staged = super::package::stage(
        package,
        &plan.components,
        &new,
        keep_setid,
        &link_from,
        trust_mtime,
    )?;
    log(&format!(
        "Staged: {} file(s) linked unchanged, {} written ({} bytes)",
        staged.linked, staged.written, staged.bytes_written
    ));
    let files_path = layout.manifest_files();
    let files = fsops::private_file(&files_path)
        .map_err(io_error(format!("create {}", files_path.display())))?;
    let mut files = BufWriter::new(files);
    let mut delivered = Vec::new();
    for component in &plan.components {
        if fsops::exists(&layout.cancel_marker()) {
            return Err(cancelled(plan, layout));
        }
        let staged = new.join(component);
        let existed = index.components.get(component).copied().unwrap_or(false);
        let mut record = DeliveredComponent {
            name: component.clone(),
            change: if existed {
                ComponentChange::Replaced
            } else {
                ComponentChange::Added
            },
            files_added: 0,
            files_replaced: 0,
            bytes: 0,
        };
        let before = &link_from[component];
        count_files(
            &staged,
            before,
            existed,
            component.as_ref(),
            &mut record,
            &mut files,
        )
        .map_err(io_error(format!("write {}", files_path.display())))?;
        let (live, saved) = (layout.target.join(component), snapshot.join(component));
        if existed && !fsops::exists(&saved) && fsops::exists(&live) {
            move_into_snapshot(&live, &saved, is_same_fs)?;
        }
        swap_in(&staged, &live, &old.join(component))?;
        fault::point("deliver:after_component");
        log(&format!(
            "Delivered {component} ({}: {} file(s) added, {} replaced)",
            if existed { "replaced" } else { "added" },
            record.files_added,
            record.files_replaced
        ));
        delivered.push(record);
    }
    files
        .flush()
        .map_err(io_error(format!("write {}", files_path.display())))?;
    Ok(delivered)
}

/// Saves the live component as the snapshot: one rename on the same filesystem (the target
/// then lacks it until the staged one is renamed in, which a resumed delivery finishes), else
/// a copy made complete before it is named `saved`, leaving the live one in place.
fn move_into_snapshot(live: &Path, saved: &Path, is_same_fs: bool) -> Result<(), BackendError> {
    let what = format!(
        "move {} into the snapshot {}",
        live.display(),
        saved.display()
    );
    if is_same_fs {
        match fs::rename(live, saved) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return copy_into_snapshot(live, saved);
            }
            Err(e) => return Err(io_error(what)(e)),
        }
        for dir in [saved.parent(), live.parent()].into_iter().flatten() {
            fsops::sync_dir(dir).map_err(io_error(format!("sync {}", dir.display())))?;
        }
        crate::failpoint::hit_with("local.snapshot_moved", || live.display().to_string());
        fault::point("deliver:after_snapshot_move");
        return Ok(());
    }
    copy_into_snapshot(live, saved)
}

fn copy_into_snapshot(live: &Path, saved: &Path) -> Result<(), BackendError> {
    let partial = saved.with_extension("partial");
    let what = format!(
        "copy {} into the snapshot {}",
        live.display(),
        saved.display()
    );
    fsops::remove_tree(&partial).map_err(io_error(&what))?;
    fsops::copy_tree(live, &partial).map_err(io_error(&what))?;
    fs::rename(&partial, saved).map_err(io_error(&what))?;
    if let Some(dir) = saved.parent() {
        fsops::sync_dir(dir).map_err(io_error(format!("sync {}", dir.display())))?;
    }
    crate::failpoint::hit_with("local.snapshot_moved", || live.display().to_string());
    Ok(())
}

pub(crate) fn cancelled(plan: &Plan, layout: &Layout) -> BackendError {
    BackendError::new(
        ErrorClass::TaskFailed,
        format!(
            "deploy {} {} into {}: cancelled; the target may be half-updated",
            plan.application,
            plan.version,
            layout.target.display()
        ),
    )
}

/// Creates `<target>/.relflow-staging-<run>/{new,old}` afresh; leftovers of a crash go first.
pub(crate) fn prepare_staging(
    layout: &Layout,
) -> Result<(std::path::PathBuf, std::path::PathBuf), BackendError> {
    let staging = layout.staging();
    fsops::remove_tree(&staging).map_err(io_error(format!("remove {}", staging.display())))?;
    let (new, old) = (staging.join("new"), staging.join("old"));
    for dir in [&new, &old] {
        fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
    }
    Ok((new, old))
}

/// Moves whatever is at `dst` to `trash`, renames `staged` to `dst`, deletes the trash.
pub(crate) fn swap_in(staged: &Path, dst: &Path, trash: &Path) -> Result<(), BackendError> {
    let had_old = fsops::exists(dst);
    if had_old {
        fs::rename(dst, trash).map_err(io_error(format!("move {} aside", dst.display())))?;
    }
    fs::rename(staged, dst).map_err(io_error(format!(
        "rename {} to {}",
        staged.display(),
        dst.display()
    )))?;
    crate::failpoint::hit_with("local.component", || dst.display().to_string());
    if !had_old {
        return Ok(());
    }
    fsops::remove_tree(trash).map_err(io_error(format!("remove {}", trash.display())))
}

/// Walks the staged component, writing `added`/`replaced` lines relative to the snapshot.
pub(crate) fn count_files(
    staged: &Path,
    before: &Path,
    existed: bool,
    relative: &Path,
    record: &mut DeliveredComponent,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(staged)?;
    if meta.is_dir() {
        for entry in fs::read_dir(staged)? {
            let name = entry?.file_name();
            count_files(
                &staged.join(&name),
                &before.join(&name),
                existed,
                &relative.join(&name),
                record,
                out,
            )?;
        }
        return Ok(());
    }
    record.bytes += if meta.is_file() { meta.len() } else { 0 };
    if existed && fsops::exists(before) {
        record.files_replaced += 1;
        writeln!(out, "replaced\t{}", relative.display())
    } else {
        record.files_added += 1;
        writeln!(out, "added\t{}", relative.display())
    }
}

fn write_records(
    layout: &Layout,
    plan: &Plan,
    delivered: &[DeliveredComponent],
) -> Result<(), BackendError> {
    let now = fsops::now_rfc3339();
    let manifest = Manifest {
        format: STATE_FORMAT,
        application: plan.application.clone(),
        version: plan.version.clone(),
        components: delivered.to_vec(),
        delivered_at: now.clone(),
    };
    let path = layout.manifest();
    fsops::write_json_durably(&path, &manifest)
        .map_err(io_error(format!("write {}", path.display())))?;
    let version = VersionFile {
        application: plan.application.clone(),
        version: plan.version.clone(),
        components: plan.components.clone(),
        deployed_at: now,
        reverted_components: Vec::new(),
    };
    let path = layout.version_file();
    fsops::write_json_durably(&path, &version)
        .map_err(io_error(format!("write {}", path.display())))
}
