//! Rollback from the pre-deployment snapshot: restore what was replaced, remove what was
//! added, leave alone what is already as before. Each component is swapped atomically, so
//! running it again after a crash (or twice) is safe.

use super::deliver::{prepare_staging, swap_in};
use super::fault;
use super::fsops;
use super::state::{
    Layout, Phase, Plan, SnapshotIndex, VERSION_FILE, io_error, load_journal, load_snapshot_index,
    read_version_file, save_journal, set_phase,
};
use crate::ErrorClass;
use crate::backend::{
    BackendError, ComponentReverted, LogSink, RevertAction, RevertOutcome, RollbackReport,
};

/// Reverts every component of the deployment and `.relflow-version`.
pub(crate) fn roll_back_all(
    layout: &Layout,
    plan: &Plan,
    log: LogSink<'_>,
) -> Result<RollbackReport, BackendError> {
    check_not_pruned(layout)?;
    set_phase(layout, Phase::RollingBack)?;
    log(&format!(
        "Rolling back {} {} in {}",
        plan.application,
        plan.version,
        layout.target.display()
    ));
    let report = revert(layout, &plan.components, log)?;
    let index = load_snapshot_index(layout)?;
    restore_version_file(layout, &index)?;
    sync_target(layout)?;
    if report.failure().is_none() {
        let mut journal = load_journal(layout)?.unwrap_or_else(|| fresh_journal(Phase::RolledBack));
        journal.phase = Phase::RolledBack;
        journal.reverted = plan.components.clone();
        journal.updated_at = fsops::now_rfc3339();
        save_journal(layout, &journal)?;
    }
    Ok(report)
}

/// Reverts chosen components of the deployment; the others stay as deployed.
pub(crate) fn roll_back_some(
    layout: &Layout,
    plan: &Plan,
    components: &[String],
    log: LogSink<'_>,
) -> Result<RollbackReport, BackendError> {
    let Some(mut journal) = partial_journal(layout, plan, components)? else {
        return roll_back_all(layout, plan, log);
    };
    log(&format!(
        "Rolling back {} of {} {}",
        components.join(", "),
        plan.application,
        plan.version
    ));
    let report = revert(layout, components, log)?;
    sync_target(layout)?;
    for c in components {
        if !journal.reverted.contains(c) {
            journal.reverted.push(c.clone());
        }
    }
    journal.updated_at = fsops::now_rfc3339();
    save_journal(layout, &journal)?;
    note_reverted(layout, plan, &journal.reverted)?;
    Ok(report)
}

/// Refuses component names the deployment did not deliver.
/// What a rollback of `components` starts from: their names checked, the snapshot not pruned,
/// and the journal (a fresh one before the first step); `None` when the components are every
/// one not yet reverted, which is a rollback of the whole deployment.
pub(crate) fn partial_journal(
    layout: &Layout,
    plan: &Plan,
    components: &[String],
) -> Result<Option<super::state::Journal>, BackendError> {
    check_known(plan, components)?;
    check_not_pruned(layout)?;
    let journal = load_journal(layout)?.unwrap_or_else(|| fresh_journal(Phase::Completed));
    let is_all = plan
        .components
        .iter()
        .all(|c| components.contains(c) || journal.reverted.contains(c));
    Ok((!is_all).then_some(journal))
}

pub(crate) fn check_known(plan: &Plan, components: &[String]) -> Result<(), BackendError> {
    let unknown: Vec<&str> = components
        .iter()
        .filter(|c| !plan.components.contains(c))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(BackendError::new(
            ErrorClass::Validation,
            format!(
                "roll back {} {}: unknown component(s) {}; the deployment delivered: {}",
                plan.application,
                plan.version,
                unknown.join(", "),
                plan.components.join(", ")
            ),
        ));
    }
    Ok(())
}

pub(crate) fn fresh_journal(phase: Phase) -> super::state::Journal {
    super::state::Journal {
        format: super::state::STATE_FORMAT,
        phase,
        reverted: Vec::new(),
        updated_at: fsops::now_rfc3339(),
    }
}

fn revert(
    layout: &Layout,
    components: &[String],
    log: LogSink<'_>,
) -> Result<RollbackReport, BackendError> {
    let index = load_snapshot_index(layout)?;
    prepare_staging(layout)?;
    let mut report = RollbackReport::default();
    for component in components {
        let (action, outcome) = match revert_one(layout, &index, component) {
            Ok(action) => (action, RevertOutcome::Ok),
            Err(e) => {
                let intended = if index.components.get(component) == Some(&false) {
                    RevertAction::Removed
                } else {
                    RevertAction::Restored
                };
                (
                    intended,
                    RevertOutcome::Failed {
                        class: e.class,
                        message: e.message,
                    },
                )
            }
        };
        fault::point("rollback:after_component");
        log(&describe(component, action, &outcome));
        report.components.push(ComponentReverted {
            component: component.clone(),
            action,
            outcome,
        });
    }
    let staging = layout.staging();
    fsops::remove_tree(&staging).map_err(io_error(format!("remove {}", staging.display())))?;
    Ok(report)
}

/// One sync for every rename of a rollback, before the journal says they happened.
fn sync_target(layout: &Layout) -> Result<(), BackendError> {
    fsops::sync_dir(&layout.target).map_err(io_error(format!("sync {}", layout.target.display())))
}

pub(crate) fn describe(component: &str, action: RevertAction, outcome: &RevertOutcome) -> String {
    match (outcome, action) {
        (RevertOutcome::Failed { message, .. }, _) => {
            format!("Could not revert {component}: failed to {message}")
        }
        (RevertOutcome::Ok, RevertAction::Restored) => {
            format!("Restored {component} from the pre-deployment snapshot")
        }
        (RevertOutcome::Ok, RevertAction::Removed) => {
            format!("Removed {component}, which the deployment added")
        }
        (RevertOutcome::Ok, RevertAction::Unchanged) => {
            format!("{component} is already as before the deployment")
        }
    }
}

/// A component the snapshot does not list was never delivered by this task run: delivery
/// starts only once every planned component is in the snapshot.
fn revert_one(
    layout: &Layout,
    index: &SnapshotIndex,
    component: &str,
) -> Result<RevertAction, BackendError> {
    match index.components.get(component) {
        None => Ok(RevertAction::Unchanged),
        Some(true) => restore(layout, component),
        Some(false) => remove(layout, component),
    }
}

/// Renames the snapshot back into place, the deployed entry moved out of the way first. A
/// snapshot that is no longer there was renamed back by an earlier (perhaps killed) rollback.
fn restore(layout: &Layout, name: &str) -> Result<RevertAction, BackendError> {
    let (saved, current) = (layout.snapshot_dir().join(name), layout.target.join(name));
    if !fsops::exists(&saved) {
        check_not_pruned(layout)?;
        return Ok(RevertAction::Unchanged);
    }
    discard(layout, &current, name)?;
    if let Err(e) = std::fs::rename(&saved, &current) {
        if e.raw_os_error() != Some(libc::EXDEV) {
            return Err(io_error(format!(
                "rename {} back to {}",
                saved.display(),
                current.display()
            ))(e));
        }
        // The work folder is on another filesystem: copy next to the target, then rename.
        let staged = layout.staging().join("new").join(name);
        fsops::remove_tree(&staged).map_err(io_error(format!("remove {}", staged.display())))?;
        fsops::copy_tree(&saved, &staged).map_err(io_error(format!(
            "copy {} to {}",
            saved.display(),
            staged.display()
        )))?;
        swap_in(&staged, &current, &layout.staging().join("old").join(name))?;
        fsops::remove_tree(&saved).map_err(io_error(format!("remove {}", saved.display())))?;
        return Ok(RevertAction::Restored);
    }
    crate::failpoint::hit_with("local.component", || current.display().to_string());
    Ok(RevertAction::Restored)
}

fn remove(layout: &Layout, name: &str) -> Result<RevertAction, BackendError> {
    let current = layout.target.join(name);
    if !fsops::exists(&current) {
        return Ok(RevertAction::Unchanged);
    }
    discard(layout, &current, name)?;
    crate::failpoint::hit_with("local.component", || current.display().to_string());
    Ok(RevertAction::Removed)
}

/// Moves `current` (if any) out of the target into `discarded/`, one rename, so a rollback
/// does not wait for a large tree to be deleted; retention removes it later. On another
/// filesystem it is deleted at once.
fn discard(layout: &Layout, current: &std::path::Path, name: &str) -> Result<(), BackendError> {
    if !fsops::exists(current) {
        return Ok(());
    }
    let bin = layout.discarded_dir();
    std::fs::create_dir_all(&bin).map_err(io_error(format!("create {}", bin.display())))?;
    let mut slot = bin.join(name);
    let mut n = 1;
    while fsops::exists(&slot) {
        n += 1;
        slot = bin.join(format!("{name}.{n}"));
    }
    match std::fs::rename(current, &slot) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let trash = layout.staging().join("old").join(name);
            std::fs::rename(current, &trash)
                .map_err(io_error(format!("move {} aside", current.display())))?;
            fsops::remove_tree(&trash).map_err(io_error(format!("remove {}", trash.display())))
        }
        Err(e) => Err(io_error(format!("move {} aside", current.display()))(e)),
    }
}

/// Fails when retention pruned this deployment's snapshot: it can no longer be rolled back.
pub(crate) fn check_not_pruned(layout: &Layout) -> Result<(), BackendError> {
    let marker = layout.pruned_marker();
    match std::fs::read_to_string(&marker) {
        Ok(why) => Err(BackendError::new(
            ErrorClass::Precondition,
            format!(
                "roll back the deployment in {}: its pre-deployment snapshot was pruned ({})",
                layout.target.display(),
                why.trim()
            ),
        )),
        Err(_) => Ok(()),
    }
}

/// Puts back the `.relflow-version` the target had before (or removes the one written).
fn restore_version_file(layout: &Layout, index: &SnapshotIndex) -> Result<(), BackendError> {
    match index.version_file_existed {
        None => Ok(()),
        Some(false) => {
            let path = layout.version_file();
            fsops::remove_tree(&path).map_err(io_error(format!("remove {}", path.display())))
        }
        Some(true) => {
            prepare_staging(layout)?;
            restore(layout, VERSION_FILE)?;
            let staging = layout.staging();
            fsops::remove_tree(&staging).map_err(io_error(format!("remove {}", staging.display())))
        }
    }
}

/// After a partial rollback, `.relflow-version` says which components are no longer at the
/// deployed version (only while it still describes this deployment).
fn note_reverted(layout: &Layout, plan: &Plan, reverted: &[String]) -> Result<(), BackendError> {
    let Some(mut file) = read_version_file(&layout.target)? else {
        return Ok(());
    };
    if file.application != plan.application || file.version != plan.version {
        return Ok(());
    }
    file.reverted_components = reverted.to_vec();
    let path = layout.version_file();
    fsops::write_json_durably(&path, &file).map_err(io_error(format!("write {}", path.display())))
}
