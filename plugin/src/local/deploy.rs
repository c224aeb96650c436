//! The deploy flow and its journal: plan → free space → snapshot → deliver → verify, and
//! resuming it from whatever phase a crash left.

use std::path::Path;

use super::fsops;
use super::package::{self, Package};
use super::snapshot;
use super::state::{
    Layout, Manifest, Phase, Plan, STATE_FORMAT, io_error, load_journal, load_plan,
    load_snapshot_index, set_phase,
};
use super::{FreeSpaceProbe, LocalBackend, LocalLayout, deliver, releases, retention};
use crate::ErrorClass;
use crate::backend::{
    BackendError, DeployOutcome, DeployRequest, HANDLE_FORMAT, Handle, LocalHandle, LogSink,
};
use crate::process::{self, ProcessSpec};

/// Bytes that must stay free beyond the target folder and the update.
pub const FREE_SPACE_MARGIN: u64 = 10 * 1024 * 1024;

/// Whether an attempt continues where the last one stopped or delivers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continue {
    /// `resume`: finish what is left (a delivered deployment only runs its health check).
    Resume,
    /// `retry` and a repeated `deploy`: deliver again, then check.
    Redeliver,
}

/// Resolves the request, writes the plan, reports the handle, then runs the deployment.
pub(crate) fn start(
    backend: &LocalBackend,
    request: &DeployRequest,
    on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
    log: LogSink<'_>,
) -> Result<DeployOutcome, BackendError> {
    let package = package::find(&backend.packages, &request.application, &request.version)?;
    let components = package::select(&package, &request.components)?;
    let work_dir = &request.work_dir;
    std::fs::create_dir_all(work_dir)
        .map_err(io_error(format!("create {}", work_dir.display())))?;
    let mut plan = Plan {
        format: STATE_FORMAT,
        run_id: new_run_id(),
        target: backend.target.clone(),
        application: request.application.clone(),
        version: request.version.clone(),
        package: package.path.clone(),
        package_kind: package.kind,
        components,
        verify: request.verify.clone().or_else(|| backend.verify.clone()),
        update_bytes: 0,
        layout: backend.layout,
        release_dir: None,
    };
    plan.update_bytes = plan
        .components
        .iter()
        .filter_map(|c| package.components.get(c))
        .sum();
    let probe = Layout {
        work_dir: work_dir.clone(),
        target: plan.target.clone(),
        run_id: plan.run_id.clone(),
    };
    let how = match load_plan(&probe) {
        Ok(earlier) => {
            check_same_deployment(&earlier, &plan, work_dir)?;
            plan = Plan {
                run_id: earlier.run_id,
                layout: earlier.layout,
                release_dir: earlier.release_dir,
                ..plan
            };
            Continue::Redeliver
        }
        Err(e) if e.class == ErrorClass::NotFound => Continue::Resume,
        Err(e) => return Err(e),
    };
    if plan.layout == LocalLayout::Releases && plan.release_dir.is_none() {
        plan.release_dir = Some(releases::folder_name(&plan.target, work_dir, &plan.run_id));
    }
    let layout = Layout {
        work_dir: work_dir.clone(),
        target: plan.target.clone(),
        run_id: plan.run_id.clone(),
    };
    fsops::write_json_durably(&layout.plan(), &plan)
        .map_err(io_error(format!("write {}", layout.plan().display())))?;
    if load_journal(&layout)?.is_none() {
        set_phase(&layout, Phase::Planned)?;
    }
    on_handle(&handle_of(&layout, &plan))?;
    run(backend, &layout, &plan, &package, how, log)
}

fn check_same_deployment(earlier: &Plan, plan: &Plan, work_dir: &Path) -> Result<(), BackendError> {
    let same = earlier.application == plan.application
        && earlier.version == plan.version
        && earlier.components == plan.components
        && earlier.target == plan.target
        && earlier.layout == plan.layout;
    if same {
        return Ok(());
    }
    Err(BackendError::new(
        ErrorClass::Precondition,
        format!(
            "deploy {} {}: the work folder {} already holds the deployment of {} {} ({}) into {}; \
             another attempt of a task run must deploy the same",
            plan.application,
            plan.version,
            work_dir.display(),
            earlier.application,
            earlier.version,
            earlier.components.join(", "),
            earlier.target.display()
        ),
    ))
}

/// Unique enough to name a staging folder: time and pid.
fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", nanos, std::process::id())
}

pub(crate) fn handle_of(layout: &Layout, plan: &Plan) -> Handle {
    Handle::Local(LocalHandle {
        format: HANDLE_FORMAT,
        run_id: layout.run_id.clone(),
        work_dir: layout.work_dir.clone(),
        target: layout.target.clone(),
        application: plan.application.clone(),
        version: plan.version.clone(),
        components: plan.components.clone(),
    })
}

/// Runs the deployment from the phase its journal records. The backend's interrupt is checked
/// between steps and bounds the health check.
pub(crate) fn run(
    backend: &LocalBackend,
    layout: &Layout,
    plan: &Plan,
    package: &Package,
    how: Continue,
    log: LogSink<'_>,
) -> Result<DeployOutcome, BackendError> {
    let phase = load_journal(layout)?.map_or(Phase::Planned, |j| j.phase);
    let what = format!(
        "deploy {} {} into {}",
        plan.application,
        plan.version,
        layout.target.display()
    );
    match phase {
        Phase::RollingBack | Phase::RolledBack => {
            return Err(BackendError::new(
                ErrorClass::Precondition,
                format!(
                    "{what}: this task run's deployment was rolled back; deploy again in a new task run"
                ),
            ));
        }
        Phase::Completed if how == Continue::Resume => return outcome(layout, plan),
        Phase::Delivered if how == Continue::Resume => {
            return verify_and_complete(backend, layout, plan, log);
        }
        Phase::Planned | Phase::Snapshotting => {
            check_free_space(&backend.free_space, layout, plan, &what)?;
        }
        Phase::Delivering | Phase::Delivered | Phase::Completed | Phase::Cancelled => {}
    }
    backend.interrupt.check(&what)?;
    let _ = std::fs::remove_file(layout.cancel_marker());
    set_phase(layout, Phase::Snapshotting)?;
    let result = match plan.layout {
        LocalLayout::InPlace => deliver_in_place(backend, layout, plan, package, &what, log),
        LocalLayout::Releases => deliver_release(backend, layout, plan, package, &what, log),
    };
    if let Err(e) = result {
        if fsops::exists(&layout.cancel_marker()) {
            set_phase(layout, Phase::Cancelled)?;
        }
        return Err(e);
    }
    set_phase(layout, Phase::Delivered)?;
    verify_and_complete(backend, layout, plan, log)
}

fn deliver_in_place(
    backend: &LocalBackend,
    layout: &Layout,
    plan: &Plan,
    package: &Package,
    what: &str,
    log: LogSink<'_>,
) -> Result<(), BackendError> {
    snapshot::take(layout, plan, log)?;
    retention::record_start(layout, plan, backend.settings(), None)?;
    backend.interrupt.check(what)?;
    set_phase(layout, Phase::Delivering)?;
    let index = load_snapshot_index(layout)?;
    std::fs::create_dir_all(&layout.target)
        .map_err(io_error(format!("create {}", layout.target.display())))?;
    deliver::deliver(
        layout,
        plan,
        package,
        &index,
        (backend.keep_setid, backend.trust_mtime),
        log,
    )
    .map(|_| ())
}

fn deliver_release(
    backend: &LocalBackend,
    layout: &Layout,
    plan: &Plan,
    package: &Package,
    what: &str,
    log: LogSink<'_>,
) -> Result<(), BackendError> {
    std::fs::create_dir_all(&layout.target)
        .map_err(io_error(format!("create {}", layout.target.display())))?;
    let previous = releases::record_previous(layout, log)?;
    retention::record_start(layout, plan, backend.settings(), previous.clone())?;
    backend.interrupt.check(what)?;
    set_phase(layout, Phase::Delivering)?;
    releases::deliver(
        layout,
        plan,
        package,
        previous.as_deref(),
        (backend.keep_setid, backend.trust_mtime),
        log,
    )
}

/// Runs the health check, if any, then marks the deployment completed.
fn verify_and_complete(
    backend: &LocalBackend,
    layout: &Layout,
    plan: &Plan,
    log: LogSink<'_>,
) -> Result<DeployOutcome, BackendError> {
    let interrupt = &backend.interrupt;
    if fsops::exists(&layout.cancel_marker()) {
        set_phase(layout, Phase::Cancelled)?;
        return Err(deliver::cancelled(plan, layout));
    }
    if let Some(argv) = &plan.verify {
        let what = format!(
            "deploy {} {} into {}: health check",
            plan.application,
            plan.version,
            layout.target.display()
        );
        interrupt.check(&what)?;
        log(&format!(
            "Running the health check: {}",
            process::show(argv)
        ));
        let spec = ProcessSpec {
            argv: argv.clone(),
            cwd: Some(match plan.layout {
                LocalLayout::InPlace => layout.target.clone(),
                LocalLayout::Releases => releases::current_link(&layout.target),
            }),
            env: vec![
                ("RELFLOW_APPLICATION".into(), plan.application.clone()),
                ("RELFLOW_VERSION".into(), plan.version.clone()),
            ],
            search_path: None,
            interrupt: interrupt.clone(),
        };
        let end = process::run(&spec, &mut |_| {}, &mut |line| log(&line));
        if let Some(error) = end.error(&what, spec.program()) {
            return Err(error);
        }
        log("Health check passed");
    }
    set_phase(layout, Phase::Completed)?;
    retention::after_deploy(layout, backend.settings(), log)?;
    log(&format!(
        "Deployed {} {} into {}",
        plan.application,
        plan.version,
        layout.target.display()
    ));
    outcome(layout, plan)
}

fn outcome(layout: &Layout, plan: &Plan) -> Result<DeployOutcome, BackendError> {
    let path = layout.manifest();
    let manifest: Option<Manifest> =
        fsops::read_json(&path).map_err(io_error(format!("read {}", path.display())))?;
    Ok(DeployOutcome {
        handle: handle_of(layout, plan),
        components: manifest.map(|m| m.components).unwrap_or_default(),
        is_verified: plan.verify.is_some(),
    })
}

/// Free space must exceed the target folder + the update + [`FREE_SPACE_MARGIN`].
fn check_free_space(
    probe: &FreeSpaceProbe,
    layout: &Layout,
    plan: &Plan,
    what: &str,
) -> Result<(), BackendError> {
    // The releases layout's live tree is behind `current`; older folders share its files.
    let live = match plan.layout {
        LocalLayout::InPlace => layout.target.clone(),
        LocalLayout::Releases => std::fs::canonicalize(releases::current_link(&layout.target))
            .unwrap_or_else(|_| layout.target.join("current")),
    };
    let current =
        fsops::tree_size(&live).map_err(io_error(format!("{what}: measure the target")))?;
    let free = probe
        .free_bytes(&layout.target)
        .map_err(io_error(format!("{what}: measure free space")))?;
    let needed = current
        .saturating_add(plan.update_bytes)
        .saturating_add(FREE_SPACE_MARGIN);
    if free > needed {
        return Ok(());
    }
    Err(BackendError::new(
        ErrorClass::Precondition,
        format!(
            "{what}: not enough free space: {free} bytes free on the target's filesystem, need more than {needed} \
             (target folder {current} + update {} + margin {FREE_SPACE_MARGIN})",
            plan.update_bytes
        ),
    ))
}
