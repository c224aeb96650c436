//! The pre-deployment snapshot of the in-place layout, recorded once per task run before the
//! target is touched: which planned components exist (and a copy of `.relflow-version`). Their
//! content is not copied here: delivery moves each replaced component into `snapshot/` with one
//! rename as it swaps the new one in (see `deliver.rs`).

use super::fsops;
use super::state::{Layout, Plan, io_error, load_snapshot_index, save_snapshot_index};
use crate::backend::{BackendError, LogSink};

/// Records whatever of `plan.components` (and `.relflow-version`) the snapshot index does not
/// hold yet. Components already listed are kept as they are: by then the target may be
/// half-updated, and looking at it again would lose the pre-deployment state.
pub(crate) fn take(layout: &Layout, plan: &Plan, log: LogSink<'_>) -> Result<(), BackendError> {
    let mut index = load_snapshot_index(layout)?;
    let dir = layout.snapshot_dir();
    std::fs::create_dir_all(&dir).map_err(io_error(format!("create {}", dir.display())))?;
    if index.version_file_existed.is_none() {
        let existed = copy_fresh(
            &layout.version_file(),
            &dir.join(super::state::VERSION_FILE),
        )?;
        index.version_file_existed = Some(existed);
    }
    let missing: Vec<&String> = plan
        .components
        .iter()
        .filter(|c| !index.components.contains_key(*c))
        .collect();
    if missing.is_empty() {
        save_snapshot_index(layout, &index)?;
        log("Pre-deployment snapshot already taken for this task run; keeping it");
        return Ok(());
    }
    for component in missing {
        let existed = fsops::exists(&layout.target.join(component));
        index.components.insert(component.clone(), existed);
    }
    save_snapshot_index(layout, &index)?;
    let kept = index
        .components
        .values()
        .filter(|existed| **existed)
        .count();
    log(&format!(
        "Took the pre-deployment snapshot: {kept} existing component(s) move into {} as they are replaced",
        dir.display()
    ));
    Ok(())
}

/// Discards a partial copy at `dst`, then copies `src` there if it exists. Returns whether it did.
fn copy_fresh(src: &std::path::Path, dst: &std::path::Path) -> Result<bool, BackendError> {
    fsops::remove_tree(dst).map_err(io_error(format!(
        "discard the partial snapshot {}",
        dst.display()
    )))?;
    if !fsops::exists(src) {
        return Ok(false);
    }
    fsops::copy_tree(src, dst).map_err(io_error(format!(
        "snapshot {} into {}",
        src.display(),
        dst.display()
    )))?;
    Ok(true)
}
