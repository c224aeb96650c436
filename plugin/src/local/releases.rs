//! `layout: releases`: the target holds `releases/<release>-<task>/` folders and a `current`
//! symlink to the live one. A deploy builds its folder (unchanged files hard-linked from the
//! live release, changed files written as new files) and switches `current` with one atomic
//! rename; rollback switches back; a component rollback builds a folder mixing components.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::deliver::{cancelled, count_files};
use super::fsops;
use super::link;
use super::package::Package;
use super::registry::{self, Registry};
use super::rollback::{check_known, check_not_pruned, describe, fresh_journal};
use super::state::{
    Layout, Manifest, Phase, Plan, Previous, STATE_FORMAT, VERSION_FILE, VersionFile, io_error,
    load_journal, load_snapshot_index, save_journal, save_snapshot_index, set_phase,
};
use crate::ErrorClass;
use crate::backend::{
    BackendError, ComponentChange, ComponentReverted, DeliveredComponent, LogSink, RevertAction,
    RevertOutcome, RollbackReport,
};

/// `<target>/current`.
pub(crate) fn current_link(target: &Path) -> PathBuf {
    target.join("current")
}

fn releases_dir(target: &Path) -> PathBuf {
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

fn own_folder(plan: &Plan) -> Result<&str, BackendError> {
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

/// The folder a rollback returns to: `previous`, or, when it was itself rolled back (bad),
/// the one that was live before it, and so on. A pruned folder cannot be returned to.
fn destination(
    target: &Path,
    registry: Option<&Registry>,
    previous: Option<&str>,
) -> Result<Option<String>, BackendError> {
    let mut name = previous.map(str::to_string);
    let mut hops = 0;
    while let Some(n) = name.clone() {
        let is_bad = registry.is_some_and(|r| r.is_bad(&n));
        if !is_bad {
            if !fsops::exists(&releases_dir(target).join(&n)) {
                return Err(BackendError::new(
                    ErrorClass::Precondition,
                    format!(
                        "roll back in {}: the release folder to return to, releases/{n}, was pruned",
                        target.display()
                    ),
                ));
            }
            return Ok(Some(n));
        }
        hops += 1;
        name = registry
            .and_then(|r| r.owner_of(&n))
            .and_then(|e| e.previous.clone())
            .filter(|_| hops < 10_000);
    }
    Ok(None)
}

/// Switches `current` back to the folder that was live before the deployment (skipping bad
/// ones) and marks this deployment's folders bad.
pub(crate) fn roll_back_all(
    layout: &Layout,
    plan: &Plan,
    log: LogSink<'_>,
) -> Result<RollbackReport, BackendError> {
    check_not_pruned(layout)?;
    set_phase(layout, Phase::RollingBack)?;
    let target = &layout.target;
    let index = load_snapshot_index(layout)?;
    let report = match &index.previous {
        // Never got to building: nothing changed.
        None => unchanged(&plan.components, log),
        Some(previous) => {
            let registry = registry::read(target)?;
            let dest = destination(target, registry.as_ref(), previous.folder.as_deref())?;
            let live = live_folder(target);
            log(&format!(
                "Rolling back {} {}: switching current to {}",
                plan.application,
                plan.version,
                dest.as_deref()
                    .map_or("nothing (no release was live before)".into(), |d| format!(
                        "releases/{d}"
                    ))
            ));
            let report =
                component_report(target, &plan.components, dest.as_deref(), live == dest, log);
            if live != dest {
                switch(target, dest.as_deref())?;
            }
            report
        }
    };
    let mut journal = load_journal(layout)?.unwrap_or_else(|| fresh_journal(Phase::RolledBack));
    journal.phase = Phase::RolledBack;
    journal.reverted = plan.components.clone();
    journal.updated_at = fsops::now_rfc3339();
    save_journal(layout, &journal)?;
    Ok(report)
}

fn unchanged(components: &[String], log: LogSink<'_>) -> RollbackReport {
    let mut report = RollbackReport::default();
    for c in components {
        log(&describe(c, RevertAction::Unchanged, &RevertOutcome::Ok));
        report.components.push(ComponentReverted {
            component: c.clone(),
            action: RevertAction::Unchanged,
            outcome: RevertOutcome::Ok,
        });
    }
    report
}

fn component_report(
    target: &Path,
    components: &[String],
    dest: Option<&str>,
    is_done: bool,
    log: LogSink<'_>,
) -> RollbackReport {
    let mut report = RollbackReport::default();
    for c in components {
        let action = match dest {
            _ if is_done => RevertAction::Unchanged,
            Some(d) if fsops::exists(&releases_dir(target).join(d).join(c)) => {
                RevertAction::Restored
            }
            _ => RevertAction::Removed,
        };
        log(&describe(c, action, &RevertOutcome::Ok));
        report.components.push(ComponentReverted {
            component: c.clone(),
            action,
            outcome: RevertOutcome::Ok,
        });
    }
    report
}

/// Builds `releases/<folder>-rollback-<n>`: the live release with `components` taken from the
/// folder the deployment replaced (or left out where it had none), then switches to it.
pub(crate) fn roll_back_some(
    layout: &Layout,
    plan: &Plan,
    components: &[String],
    log: LogSink<'_>,
) -> Result<RollbackReport, BackendError> {
    check_known(plan, components)?;
    check_not_pruned(layout)?;
    let mut journal = load_journal(layout)?.unwrap_or_else(|| fresh_journal(Phase::Completed));
    let is_all = plan
        .components
        .iter()
        .all(|c| components.contains(c) || journal.reverted.contains(c));
    if is_all {
        return roll_back_all(layout, plan, log);
    }
    let target = &layout.target;
    let own = own_folder(plan)?;
    let index = load_snapshot_index(layout)?;
    let previous = index.previous.and_then(|p| p.folder);
    let registry = registry::read(target)?;
    let dest = destination(target, registry.as_ref(), previous.as_deref())?;
    let live = live_folder(target).ok_or_else(|| {
        BackendError::new(
            ErrorClass::Precondition,
            format!(
                "roll back components in {}: no release is live (no `current`)",
                target.display()
            ),
        )
    })?;
    for c in components {
        if !journal.reverted.contains(c) {
            journal.reverted.push(c.clone());
        }
    }
    let name = mixed_name(target, registry.as_ref(), own);
    if let Some(r) = &registry {
        registry::update(target, (r.layout, r.keep_releases, r.keep_snapshots), |r| {
            if let Some(e) = r.entry_mut(&layout.run_id) {
                e.mixed_dirs.push(name.clone());
            }
            Ok(())
        })?;
    }
    log(&format!(
        "Rolling back {} of {} {}: building releases/{name} from releases/{live}",
        components.join(", "),
        plan.application,
        plan.version
    ));
    let releases = releases_dir(target);
    build_mixed(
        &releases.join(&live),
        dest.as_ref().map(|d| releases.join(d)).as_deref(),
        &releases.join(&name),
        &journal.reverted,
        plan,
    )?;
    let report = component_report(target, components, dest.as_deref(), false, log);
    switch(target, Some(&name))?;
    journal.updated_at = fsops::now_rfc3339();
    save_journal(layout, &journal)?;
    Ok(report)
}

fn mixed_name(target: &Path, registry: Option<&Registry>, own: &str) -> String {
    let mut n = 1;
    loop {
        let name = format!("{own}-rollback-{n}");
        let taken = fsops::exists(&releases_dir(target).join(&name))
            || registry.is_some_and(|r| r.owner_of(&name).is_some());
        if !taken {
            return name;
        }
        n += 1;
    }
}

fn build_mixed(
    live: &Path,
    dest: Option<&Path>,
    dir: &Path,
    reverted: &[String],
    plan: &Plan,
) -> Result<(), BackendError> {
    let what = |p: &Path| io_error(format!("build {}", p.display()));
    fs::create_dir_all(dir).map_err(what(dir))?;
    for entry in fs::read_dir(live).map_err(what(live))? {
        let name = entry.map_err(what(live))?.file_name();
        let text = name.to_string_lossy();
        if text == VERSION_FILE || reverted.iter().any(|c| *c == text) {
            continue;
        }
        link::link_tree(&live.join(&name), &dir.join(&name)).map_err(what(dir))?;
    }
    for c in reverted {
        if let Some(old) = dest.map(|d| d.join(c)).filter(|p| fsops::exists(p)) {
            link::link_tree(&old, &dir.join(c)).map_err(what(dir))?;
        }
    }
    let mut version: VersionFile = fsops::read_json(&live.join(VERSION_FILE))
        .ok()
        .flatten()
        .unwrap_or(VersionFile {
            application: plan.application.clone(),
            version: plan.version.clone(),
            components: plan.components.clone(),
            deployed_at: fsops::now_rfc3339(),
            reverted_components: Vec::new(),
        });
    version.reverted_components = reverted.to_vec();
    let path = dir.join(VERSION_FILE);
    fsops::write_json_durably(&path, &version)
        .map_err(io_error(format!("write {}", path.display())))?;
    crate::failpoint::hit_with("local.release_built", || dir.display().to_string());
    Ok(())
}
