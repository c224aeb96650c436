//! Rollback in `layout: releases`: switch `current` back to the folder that was live before
//! the deployment (past bad ones), or build a folder mixing components for a component
//! rollback and switch to it.

use std::fs;
use std::path::Path;

use super::fsops;
use super::link;
use super::registry::{self, Registry};
use super::releases::{live_folder, own_folder, releases_dir, switch};
use super::rollback::{check_not_pruned, describe, fresh_journal, partial_journal};
use super::state::{
    Layout, Phase, Plan, VERSION_FILE, VersionFile, io_error, load_journal, load_snapshot_index,
    save_journal, set_phase,
};
use crate::ErrorClass;
use crate::backend::{
    BackendError, ComponentReverted, LogSink, RevertAction, RevertOutcome, RollbackReport,
};

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
    let Some(mut journal) = partial_journal(layout, plan, components)? else {
        return roll_back_all(layout, plan, log);
    };
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
