//! `layout: releases`: the target holds `releases/<release>-<task>/` folders and a `current`
//! symlink to the live one. A deploy builds its folder (unchanged files hard-linked from the
//! live release, changed files written as new files) and switches `current` with one atomic
//! rename. Rollback is in `release_rollback.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::deliver::{cancelled, count_files};
use super::fsops;
use super::link;
use super::package::Package;
use super::registry;
use super::state::{
    Layout, Manifest, Plan, Previous, STATE_FORMAT, VERSION_FILE, VersionFile, io_error,
    load_snapshot_index, save_snapshot_index,
};
use crate::ErrorClass;
use crate::backend::{BackendError, ComponentChange, DeliveredComponent, LogSink};

/// `<target>/current`.
pub(crate) fn current_link(target: &Path) -> PathBuf {
    target.join("current")
}

pub(crate) fn releases_dir(target: &Path) -> PathBuf {
    target.join("releases")
}

/// The release folder `current` points to, if any.
pub(crate) fn live_folder(target: &Path) -> Option<String> {
    let to = fs::read_link(current_link(target)).ok()?;
    let name = to.strip_prefix("releases").ok()?;
    name.to_str().map(str::to_string)
}

/// `<release>-<task>` from the runner's work folder (`.../<release>/<phase>/<task>/deploy`),
/// made unique among the target's release folders; `run-<run_id>` when the path says nothing.
pub(crate) fn folder_name(target: &Path, work_dir: &Path, run_id: &str) -> String {
    let part = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
    };
    let task = part(work_dir.parent());
    let release = part(
        work_dir
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent),
    );
    let base = match (release, task) {
        (Some(r), Some(t)) => format!("{r}-{t}"),
        _ => format!("run-{run_id}"),
    };
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let known = registry::read(target).ok().flatten();
    let taken = |name: &str| {
        fsops::exists(&releases_dir(target).join(name))
            || known.as_ref().is_some_and(|r| r.owner_of(name).is_some())
    };
    let mut name = base.clone();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}

pub(crate) fn own_folder(plan: &Plan) -> Result<&str, BackendError> {
    plan.release_dir.as_deref().ok_or_else(|| {
        BackendError::new(
            ErrorClass::Protocol,
            format!(
                "deploy {} {}: the plan of a releases-layout deployment names no release folder",
                plan.application, plan.version
            ),
        )
    })
}

/// Records, once, which folder was live before the deployment: the rollback destination.
pub(crate) fn record_previous(
    layout: &Layout,
    log: LogSink<'_>,
) -> Result<Option<String>, BackendError> {
    let mut index = load_snapshot_index(layout)?;
    if let Some(previous) = &index.previous {
        return Ok(previous.folder.clone());
    }
    let folder = live_folder(&layout.target);
    index.previous = Some(Previous {
        folder: folder.clone(),
    });
    save_snapshot_index(layout, &index)?;
    log(&match &folder {
        Some(f) => format!("Live release before this deployment: releases/{f}"),
        None => "No live release before this deployment".to_string(),
    });
    Ok(folder)
}

/// Builds the release folder and switches `current` to it. A folder that is already live (a
/// crash after the switch, or a retry) is kept: it was complete before it was switched to.
pub(crate) fn deliver(
    layout: &Layout,
    plan: &Plan,
    package: &Package,
    previous: Option<&str>,
    (keep_setid, trust_mtime): (bool, bool),
    log: LogSink<'_>,
) -> Result<(), BackendError> {
    let name = own_folder(plan)?;
    let target = &layout.target;
    if live_folder(target).as_deref() == Some(name) {
        log(&format!("releases/{name} is already live; keeping it"));
        return Ok(());
    }
    let dir = releases_dir(target).join(name);
    fsops::remove_tree(&dir).map_err(io_error(format!("remove the partial {}", dir.display())))?;
    fs::create_dir_all(&dir).map_err(io_error(format!("create {}", dir.display())))?;
    let prev_dir = previous.map(|p| releases_dir(target).join(p));
    let link_from: BTreeMap<String, PathBuf> = match &prev_dir {
        Some(p) => plan
            .components
            .iter()
            .map(|c| (c.clone(), p.join(c)))
            .collect(),
        None => BTreeMap::new(),
    };
    log(&format!(
        "Building releases/{name} from {}",
        package.path.display()
    ));
    let mut staged = super::package::stage(
        package,
        &plan.components,
        &dir,
        keep_setid,
        &link_from,
        trust_mtime,
    )?;
    if let Some(prev) = &prev_dir {
        staged.linked += carry_over(prev, &dir, &plan.components)?;
    }
    log(&format!(
        "Built releases/{name}: {} file(s) linked unchanged, {} written ({} bytes)",
        staged.linked, staged.written, staged.bytes_written
    ));
    let delivered = describe_delivery(layout, plan, &dir, prev_dir.as_deref())?;
    let version = VersionFile {
        application: plan.application.clone(),
        version: plan.version.clone(),
        components: plan.components.clone(),
        deployed_at: fsops::now_rfc3339(),
        reverted_components: Vec::new(),
    };
    let version_path = dir.join(VERSION_FILE);
    fsops::write_json_durably(&version_path, &version)
        .map_err(io_error(format!("write {}", version_path.display())))?;
    crate::failpoint::hit_with("local.release_built", || name.to_string());
    if fsops::exists(&layout.cancel_marker()) {
        return Err(cancelled(plan, layout));
    }
    let manifest = Manifest {
        format: STATE_FORMAT,
        application: plan.application.clone(),
        version: plan.version.clone(),
        components: delivered,
        delivered_at: version.deployed_at,
    };
    let path = layout.manifest();
    fsops::write_json_durably(&path, &manifest)
        .map_err(io_error(format!("write {}", path.display())))?;
    switch(target, Some(name))?;
    log(&format!("Switched current to releases/{name}"));
    Ok(())
}

/// Links the live release's entries the deployment does not deliver into the new folder.
fn carry_over(prev: &Path, dir: &Path, delivered: &[String]) -> Result<u64, BackendError> {
    let mut linked = 0;
    let entries = match fs::read_dir(prev) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(format!("read {}", prev.display()))(e)),
    };
    for entry in entries {
        let name = entry
            .map_err(io_error(format!("read {}", prev.display())))?
            .file_name();
        let text = name.to_string_lossy();
        if text == VERSION_FILE || delivered.iter().any(|c| *c == text) {
            continue;
        }
        linked += link::link_tree(&prev.join(&name), &dir.join(&name))
            .map_err(io_error(format!(
                "link {} into {}",
                prev.join(&name).display(),
                dir.display()
            )))?
            .linked;
    }
    Ok(linked)
}

/// The manifest lines (`manifest-files.txt`) and per-component counts against the folder
/// that was live before.
fn describe_delivery(
    layout: &Layout,
    plan: &Plan,
    dir: &Path,
    prev: Option<&Path>,
) -> Result<Vec<DeliveredComponent>, BackendError> {
    let files_path = layout.manifest_files();
    let write_error = || io_error(format!("write {}", files_path.display()));
    let mut out = BufWriter::new(fsops::private_file(&files_path).map_err(write_error())?);
    let mut delivered = Vec::new();
    for component in &plan.components {
        let before = prev.map_or_else(PathBuf::new, |p| p.join(component));
        let existed = prev.is_some() && fsops::exists(&before);
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
        count_files(
            &dir.join(component),
            &before,
            existed,
            component.as_ref(),
            &mut record,
            &mut out,
        )
        .map_err(write_error())?;
        delivered.push(record);
    }
    std::io::Write::flush(&mut out).map_err(write_error())?;
    Ok(delivered)
}

/// Points `current` at `releases/<folder>` (or removes it for `None`) with one rename.
pub(crate) fn switch(target: &Path, folder: Option<&str>) -> Result<(), BackendError> {
    let current = current_link(target);
    match folder {
        Some(folder) => {
            let tmp = target.join(format!(".relflow-current-{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            symlink(Path::new("releases").join(folder), &tmp)
                .map_err(io_error(format!("create {}", tmp.display())))?;
            fs::rename(&tmp, &current).map_err(io_error(format!(
                "switch {} to releases/{folder}",
                current.display()
            )))?;
        }
        None => match fs::remove_file(&current) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(format!("remove {}", current.display()))(e)),
        },
    }
    fsops::sync_dir(target).map_err(io_error(format!("sync {}", target.display())))?;
    crate::failpoint::hit_with("local.switch", || folder.unwrap_or("-").to_string());
    Ok(())
}
