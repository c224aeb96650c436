//! Target locks (DESIGN → Sharing a host → Target locks): one deployment at a time per target,
//! across state directories and users on one host.
//!
//! A lock is a small JSON record ([`LockRecord`]) that names its holder: the release (with its
//! state directory), the task runs that hold it, the runner's pid and host, and since when. The
//! record exists only while the lock is held: taking a free lock creates it, freeing removes it.
//!
//! - `local` targets: the record lives beside the target folder, as
//!   `<parent>/.<name>.relflow-lock` of its canonical path, so every state directory and user
//!   that deploys there sees it. A pointer in the lock folder lets `relflow locks` list it.
//! - keys that are not paths (`exec:<key>`, `xl-deploy:<environment>:<application>@<url>`): the
//!   record lives in the host-wide lock folder, `$RELFLOW_LOCK_DIR` or `/tmp/relflow-locks`.
//!
//! Every change is made under a short `flock` of the folder holding the record (records are
//! replaced by rename and removed when freed, so the folder is the stable thing to lock), so
//! two processes racing for one target see one winner. Records are written temp + rename with
//! fsync; [`crate::failpoint`] `lock.write` is hit after each durable change.

mod dir;
mod holder;
mod in_store;
mod key;
mod record;

use std::path::PathBuf;

pub use holder::{HolderState, assess, frees_lock};
pub use key::{LockKey, lock_dir};
pub use record::{
    Claim, HeldBy, Holder, Listed, LockRecord, Taken, free, list, log_unlock, read, release, take,
};
pub use relflow_plugin::process::{host_name, is_running, start_time as process_start};

/// A lock could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot use the lock folder {path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lock record {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the folder {path} stayed locked by another process for {secs}s")]
    Busy { path: PathBuf, secs: u64 },
}
