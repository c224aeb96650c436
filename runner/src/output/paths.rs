//! Where a release's files live under the state directory.

use std::path::{Path, PathBuf};

/// `releases/<release>/`
pub fn release_dir(state_dir: &Path, release: &str) -> PathBuf {
    state_dir.join("releases").join(release)
}

/// `releases/<release>/<phase>[#n]/<task>/`
pub fn task_dir(state_dir: &Path, release: &str, phase_label: &str, task: &str) -> PathBuf {
    release_dir(state_dir, release).join(phase_label).join(task)
}

/// `releases/<release>/<phase>[#n]/<task>/script_output.log`
pub fn script_log(state_dir: &Path, release: &str, phase_label: &str, task: &str) -> PathBuf {
    task_dir(state_dir, release, phase_label, task).join("script_output.log")
}

/// `releases/<release>/<phase>[#n]/<task>/rollback.log`
pub fn rollback_log(state_dir: &Path, release: &str, phase_label: &str, task: &str) -> PathBuf {
    task_dir(state_dir, release, phase_label, task).join("rollback.log")
}

/// `releases/<release>/events.jsonl`
pub fn events_file(state_dir: &Path, release: &str) -> PathBuf {
    release_dir(state_dir, release).join("events.jsonl")
}
