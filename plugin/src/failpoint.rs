//! Named crash points for deterministic crash tests.
//!
//! Every durable write relflow makes (a store change, a journal step, an XL Deploy create
//! intent, ...) calls [`hit`] with a stable name. In the shipped binary failpoints are inert:
//! only the test build of the CLI (`relflow-e2e`) calls [`enable_from_env`], which reads
//!
//! - `RELFLOW_FAILPOINT=NAME` or `NAME@N`: at the N-th hit (default 1) of NAME — or of any
//!   point when NAME is `*` — the process kills itself with SIGKILL, as a power cut would;
//! - `RELFLOW_FAILPOINT_TRACE=FILE`: every hit is appended to FILE (`NAME DETAIL` per line), so a
//!   test can first list the points a scenario passes, then crash at each in turn.
//!
//! The names in use are listed in [`NAMES`]; `tests/e2e/crash_points.rs` kills the runner at
//! every point a deploy, a retry, a release rollback, a rollback job and a cancel pass.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Every failpoint name, with what has just been made durable when it is hit.
pub const NAMES: &[(&str, &str)] = &[
    (
        "store.release_created",
        "a new release with its phases, tasks and encrypted secret values committed",
    ),
    ("store.release_status", "a release's status committed"),
    ("store.phase_status", "a phase run's status committed"),
    ("store.task_status", "a task run's status committed"),
    ("store.attempt_started", "an attempt's start committed"),
    ("store.attempt_finished", "an attempt's end committed"),
    (
        "store.retry_scheduled",
        "the time of the next attempt committed",
    ),
    (
        "store.decision",
        "a decision (policy, person, rollback step) committed",
    ),
    (
        "store.handle",
        "a backend's handle committed, before anyone waits on it",
    ),
    (
        "store.rollback_job",
        "a rollback job created or its status committed",
    ),
    (
        "store.phase_restarted",
        "new phase runs appended (restart-phase, fix-forward)",
    ),
    ("store.variables", "release variables committed"),
    (
        "store.action",
        "who ran a command on the release, and why, committed",
    ),
    (
        "store.target_change",
        "what a target runs now committed, with the task status or rollback job it reflects",
    ),
    (
        "local.journal",
        "a step of the local backend's journal written",
    ),
    (
        "local.component",
        "a component renamed into place (delivery or rollback)",
    ),
    (
        "local.snapshot",
        "the pre-deployment snapshot of a local deploy completed",
    ),
    (
        "local.snapshot_moved",
        "a replaced component moved (or copied) into the in-place snapshot",
    ),
    (
        "local.release_built",
        "a release folder (layout: releases) built, before `current` is switched",
    ),
    (
        "local.switch",
        "`current` switched to another release folder (deploy or rollback)",
    ),
    (
        "exec.journal",
        "the exec backend's record of a deploy command's start or end written",
    ),
    (
        "xld.create_intent",
        "the intent to create an XL Deploy task written, before the POST",
    ),
    (
        "xld.task_created",
        "the id of a created XL Deploy task stored",
    ),
    ("lock.write", "a target lock taken or released"),
];

struct Config {
    name: String,
    at: u64,
    seen: u64,
    trace: Option<std::fs::File>,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static CONFIG: OnceLock<Mutex<Config>> = OnceLock::new();

/// Arms failpoints from the environment. Only the test build of the CLI calls this.
pub fn enable_from_env() {
    let spec = std::env::var("RELFLOW_FAILPOINT").unwrap_or_default();
    let trace = std::env::var_os("RELFLOW_FAILPOINT_TRACE").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    if spec.is_empty() && trace.is_none() {
        return;
    }
    let (name, at) = match spec.rsplit_once('@') {
        Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    let config = Config {
        name,
        at,
        seen: 0,
        trace,
    };
    if CONFIG.set(Mutex::new(config)).is_ok() {
        ENABLED.store(true, Ordering::SeqCst);
    }
}

/// Marks that the durable write `name` has just been made; may end the process there.
pub fn hit(name: &str) {
    hit_with(name, String::new);
}

/// As [`hit`]; the trace line also carries `detail()` (e.g. the task and its new status), so
/// a test can tell which step of a scenario each point belongs to.
pub fn hit_with(name: &str, detail: impl FnOnce() -> String) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some(config) = CONFIG.get() else {
        return;
    };
    let mut config = match config.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(trace) = config.trace.as_mut() {
        let detail = detail();
        let _ = if detail.is_empty() {
            writeln!(trace, "{name}")
        } else {
            writeln!(trace, "{name} {detail}")
        };
        let _ = trace.sync_data();
    }
    if config.name == name || config.name == "*" {
        config.seen += 1;
        if config.seen == config.at {
            // SAFETY: raising SIGKILL on ourselves touches no memory; nothing after runs.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
