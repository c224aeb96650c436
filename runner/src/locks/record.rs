//! Lock records: taking, re-entering, freeing and listing them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dir::{FolderLock, check_shared_folder, read_file};
use super::{LockError, LockKey, in_store};
use crate::failpoint;

/// Format of [`LockRecord`].
const RECORD_FORMAT: u32 = 1;

/// Who holds a lock: written while it is held, removed when it is freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub format: u32,
    /// The target as `relflow locks` shows it.
    pub target: String,
    pub holder: Holder,
    /// The task runs of the holder's release that hold the lock (one, or several when a
    /// rollback of an earlier deployment of the release re-enters it).
    pub runs: Vec<HeldBy>,
}

/// The release holding a lock, and its runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub release: String,
    /// The holder's state directory (canonical): release ids are unique only within one.
    pub state_dir: PathBuf,
    /// The task run that took (or last re-entered) the lock.
    pub task: String,
    pub task_run: i64,
    /// The runner: its pid and that process's start time (to tell a reused pid).
    pub pid: u32,
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub host: String,
    /// When the release took the lock, RFC 3339 and milliseconds since the epoch.
    pub since: String,
    pub since_ms: i64,
}

/// One task run holding a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBy {
    pub task_run: i64,
    pub task: String,
}

/// A task run asking for a lock, and the runner it runs in.
#[derive(Debug, Clone)]
pub struct Claim {
    pub release: String,
    pub state_dir: PathBuf,
    pub task: String,
    pub task_run: i64,
    pub pid: u32,
    pub pid_start: Option<u64>,
    pub host: String,
}

impl Claim {
    /// Release ids are unique in one store: the state directory tells releases apart only
    /// when each has its own (on a shared store, another machine may drive the same release).
    fn is_same_release(&self, holder: &Holder) -> bool {
        holder.release == self.release
            && (holder.state_dir == self.state_dir || in_store::store_in_use())
    }
}

/// What [`take`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The claim holds the lock now; `was_held` when its task run already held it.
    Holds { was_held: bool },
    /// Another release holds it.
    HeldBy(Box<LockRecord>),
}

fn parse(path: &Path, text: &str) -> Result<LockRecord, LockError> {
    serde_json::from_str(text).map_err(|e| LockError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The record of `key`'s lock, `None` when it is free.
pub fn read(key: &LockKey) -> Result<Option<LockRecord>, LockError> {
    let text = match in_store::reader() {
        Some(db) => in_store::read(&db?, key)?,
        None => read_file(&key.file)?,
    };
    text.map(|text| parse(&key.file, &text)).transpose()
}

fn write(folder: &FolderLock, key: &LockKey, record: &LockRecord) -> Result<(), LockError> {
    folder.write(&key.file, &to_json(key, record)?)?;
    failpoint::hit("lock.write");
    Ok(())
}

fn to_json(key: &LockKey, record: &LockRecord) -> Result<Vec<u8>, LockError> {
    serde_json::to_vec_pretty(record).map_err(|e| LockError::Corrupt {
        path: key.file.clone(),
        reason: e.to_string(),
    })
}

/// Changes `key`'s record under the lock of where it lives (its row in a shared store, else
/// its folder): `decide` gets the record as it stands and answers the record to leave (`None`:
/// free) and a value. Nothing is written when the record stays as it was.
fn change<T>(
    key: &LockKey,
    decide: impl FnOnce(Option<LockRecord>) -> Result<(Option<LockRecord>, T), LockError>,
) -> Result<T, LockError> {
    if let Some(db) = in_store::store() {
        let db = db?;
        return in_store::change(&db, key, |text| {
            let current = text.map(|t| parse(&key.file, &t)).transpose()?;
            let (next, value) = decide(current.clone())?;
            if next == current {
                return Ok((text_of(key, current.as_ref())?, value));
            }
            let written = text_of(key, next.as_ref())?;
            failpoint::hit("lock.write");
            Ok((written, value))
        });
    }
    let folder = FolderLock::lock(key.folder())?;
    let current = read(key)?;
    let (next, value) = decide(current.clone())?;
    match next {
        Some(record) if Some(&record) != current.as_ref() => write(&folder, key, &record)?,
        None if current.is_some() => {
            folder.remove(&key.file)?;
            failpoint::hit("lock.write");
        }
        _ => {}
    }
    Ok(value)
}

fn text_of(key: &LockKey, record: Option<&LockRecord>) -> Result<Option<String>, LockError> {
    record
        .map(|r| to_json(key, r).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        .transpose()
}

/// Takes `key`'s lock for `claim` when it is free, held by the claim's own release
/// (re-entrant: restart-phase re-deploys, rollbacks), or still exactly `stale` (a record the
/// caller found abandoned). A later run of the same task replaces the earlier runs' hold.
pub fn take(key: &LockKey, claim: &Claim, stale: Option<&LockRecord>) -> Result<Taken, LockError> {
    if !in_store::store_in_use() {
        if key.pointer.is_none() {
            // A named lock: its record lives in the host-wide lock folder.
            check_shared_folder(key.folder(), true)?;
        }
        // The pointer first: a runner killed right after writing the record leaves a listed lock.
        add_pointer(key);
    }
    change(key, |current| Ok(decide_take(key, claim, stale, current)))
}

/// What taking the lock makes of the record as it stands.
fn decide_take(
    key: &LockKey,
    claim: &Claim,
    stale: Option<&LockRecord>,
    current: Option<LockRecord>,
) -> (Option<LockRecord>, Taken) {
    let record = match current {
        Some(record) if claim.is_same_release(&record.holder) => record,
        Some(record) if Some(&record) != stale => {
            tracing::debug!(target: "relflow::lock", target_key = %key.target, holder = %record.holder.release, task = %record.holder.task, "target lock held by another release");
            return (Some(record.clone()), Taken::HeldBy(Box::new(record)));
        }
        _ => {
            if stale.is_some() {
                tracing::info!(target: "relflow::lock", target_key = %key.target, release = %claim.release, "abandoned target lock taken over");
            }
            let now = crate::store::now_ms();
            let record = LockRecord {
                format: RECORD_FORMAT,
                target: key.target.clone(),
                holder: holder_of(claim, now),
                runs: vec![HeldBy {
                    task_run: claim.task_run,
                    task: claim.task.clone(),
                }],
            };
            tracing::debug!(target: "relflow::lock", target_key = %key.target, release = %claim.release, task = %claim.task, "target lock taken");
            return (Some(record), Taken::Holds { was_held: false });
        }
    };
    let was_held = record.runs.iter().any(|r| r.task_run == claim.task_run);
    let mut updated = record.clone();
    updated
        .runs
        .retain(|r| r.task != claim.task || r.task_run == claim.task_run);
    if !was_held {
        updated.runs.push(HeldBy {
            task_run: claim.task_run,
            task: claim.task.clone(),
        });
    }
    updated.holder = Holder {
        since: record.holder.since.clone(),
        since_ms: record.holder.since_ms,
        ..holder_of(claim, record.holder.since_ms)
    };
    (Some(updated), Taken::Holds { was_held })
}

fn holder_of(claim: &Claim, since_ms: i64) -> Holder {
    Holder {
        release: claim.release.clone(),
        state_dir: claim.state_dir.clone(),
        task: claim.task.clone(),
        task_run: claim.task_run,
        pid: claim.pid,
        pid_start: claim.pid_start,
        host: claim.host.clone(),
        since: crate::output::time::rfc3339_ms(since_ms),
        since_ms,
    }
}

/// Ends `task_run`'s hold on `key`'s lock; the lock is freed when no run of the release holds
/// it any more. Returns whether the record changed.
pub fn release(
    key: &LockKey,
    state_dir: &Path,
    release: &str,
    task_run: i64,
) -> Result<bool, LockError> {
    let shared = in_store::store_in_use();
    if !shared && !key.folder().exists() {
        // No folder, no lock.
        return Ok(false);
    }
    change(key, |current| {
        let Some(mut record) = current else {
            return Ok((None, false));
        };
        let is_ours =
            record.holder.release == release && (shared || record.holder.state_dir == state_dir);
        if !is_ours || !record.runs.iter().any(|r| r.task_run == task_run) {
            return Ok((Some(record), false));
        }
        record.runs.retain(|r| r.task_run != task_run);
        if record.runs.is_empty() {
            tracing::debug!(target: "relflow::lock", target_key = %key.target, release, "target lock freed");
            return Ok((None, true));
        }
        Ok((Some(record), true))
    })
}

/// Frees `key`'s lock if its record is still `expected` (`relflow unlock`). Returns whether
/// it did. An unreadable record is freed as it is.
pub fn free(key: &LockKey, expected: Option<&LockRecord>) -> Result<bool, LockError> {
    if let Some(db) = in_store::store() {
        return in_store::change(&db?, key, |text| {
            let unchanged = match (&text, expected) {
                (Some(text), Some(expected)) => {
                    parse(&key.file, text).ok().as_ref() == Some(expected)
                }
                (Some(_), None) => true,
                (None, _) => false,
            };
            Ok(if unchanged {
                (None, true)
            } else {
                (text, false)
            })
        });
    }
    let folder = FolderLock::lock(key.folder())?;
    let current = read_file(&key.file)?;
    let unchanged = match (&current, expected) {
        (Some(text), Some(expected)) => parse(&key.file, text).ok().as_ref() == Some(expected),
        // An unreadable record is freed as it is.
        (Some(_), None) => true,
        (None, _) => false,
    };
    if unchanged {
        folder.remove(&key.file)?;
        failpoint::hit("lock.write");
        tracing::info!(target: "relflow::lock", target_key = %key.target, "target lock freed by hand");
    }
    Ok(unchanged)
}

/// Appends `line` to `unlock.log` in the lock folder (who freed which lock by hand, when);
/// returns the log's path.
pub fn log_unlock(lock_dir: &Path, line: &str) -> Result<PathBuf, LockError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    check_shared_folder(lock_dir, true)?;
    let log = lock_dir.join("unlock.log");
    let io = |source| LockError::Io {
        what: "append to",
        path: log.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&log)
        .map_err(io)?;
    writeln!(file, "{line}").map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(log)
}

/// Records in the lock folder where `relflow locks` finds a target folder's lock. Best
/// effort: the lock itself holds without it.
fn add_pointer(key: &LockKey) {
    let Some(pointer) = &key.pointer else {
        return;
    };
    let added = (|| {
        let dir = key_dir(pointer);
        check_shared_folder(dir, true)?;
        if read_file(pointer)?.is_some() {
            return Ok(());
        }
        let folder = FolderLock::lock(dir)?;
        folder.write(pointer, key.file.to_string_lossy().as_bytes())
    })();
    if let Err(e) = added {
        tracing::warn!("relflow locks will not list {}: {e}", key.target);
    }
}

fn key_dir(file: &Path) -> &Path {
    file.parent().unwrap_or(Path::new("/"))
}

/// A lock found by [`list`]: its record file and what it holds.
#[derive(Debug)]
pub struct Listed {
    pub file: PathBuf,
    pub record: Result<LockRecord, LockError>,
}

impl Listed {
    /// The key to free this lock with.
    pub fn key(&self) -> LockKey {
        let target = match &self.record {
            // In a shared store the "file" is the row's key, which names the lock there.
            _ if in_store::store_in_use() => self.file.to_string_lossy().into_owned(),
            Ok(record) => record.target.clone(),
            Err(_) => self.file.to_string_lossy().into_owned(),
        };
        LockKey {
            target,
            file: self.file.clone(),
            pointer: None,
        }
    }
}

/// Every held lock the lock folder knows: named records, and the records its pointers name.
pub fn list(lock_dir: &Path) -> Result<Vec<Listed>, LockError> {
    if let Some(db) = in_store::reader() {
        return Ok(in_store::list(&db?)?
            .into_iter()
            .map(|(row, text)| {
                let file = PathBuf::from(row);
                Listed {
                    record: parse(&file, &text),
                    file,
                }
            })
            .collect());
    }
    if !check_shared_folder(lock_dir, false)? {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(lock_dir).map_err(|source| LockError::Io {
        what: "list",
        path: lock_dir.to_path_buf(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let file = if name.ends_with(".lock") {
            path
        } else if name.ends_with(".path") {
            match read_file(&path) {
                Ok(Some(target)) => PathBuf::from(target.trim_end()),
                _ => continue,
            }
        } else {
            continue;
        };
        match read_file(&file) {
            Ok(None) => {}
            Ok(Some(text)) => found.push(Listed {
                record: parse(&file, &text),
                file,
            }),
            Err(e) => found.push(Listed {
                file,
                record: Err(e),
            }),
        }
    }
    found.sort_by(|a, b| a.file.cmp(&b.file));
    found.dedup_by(|a, b| a.file == b.file);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(state_dir: &str, release: &str, task: &str, task_run: i64) -> Claim {
        Claim {
            release: release.into(),
            state_dir: PathBuf::from(state_dir),
            task: task.into(),
            task_run,
            pid: 42,
            pid_start: None,
            host: "h".into(),
        }
    }

    fn setup() -> (tempfile::TempDir, LockKey) {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let key = LockKey::for_folder(&dir.path().join("apps/petportal"), &locks).unwrap();
        (dir, key)
    }

    #[test]
    fn a_second_release_finds_the_first_holding_until_it_frees() {
        let (_dir, key) = setup();
        let a = claim("/a/.relflow", "petportal-1", "deploy", 3);
        let b = claim("/b/.relflow", "petportal-1", "deploy", 3);
        assert_eq!(
            take(&key, &a, None).unwrap(),
            Taken::Holds { was_held: false }
        );
        let Taken::HeldBy(record) = take(&key, &b, None).unwrap() else {
            panic!("the same release id in another state dir is another release")
        };
        assert_eq!(record.holder.state_dir, PathBuf::from("/a/.relflow"));
        assert!(!release(&key, Path::new("/b/.relflow"), "petportal-1", 3).unwrap());
        assert!(release(&key, Path::new("/a/.relflow"), "petportal-1", 3).unwrap());
        assert_eq!(read(&key).unwrap(), None);
        assert_eq!(
            take(&key, &b, None).unwrap(),
            Taken::Holds { was_held: false }
        );
    }

    #[test]
    fn re_entry_within_a_release_and_a_later_run_of_the_task_takes_over() {
        let (_dir, key) = setup();
        let first = claim("/a", "r-1", "deploy", 3);
        take(&key, &first, None).unwrap();
        assert_eq!(
            take(&key, &first, None).unwrap(),
            Taken::Holds { was_held: true }
        );
        // A rollback of another task's deployment re-enters, then leaves.
        let undo = claim("/a", "r-1", "deploy-old", 1);
        assert_eq!(
            take(&key, &undo, None).unwrap(),
            Taken::Holds { was_held: false }
        );
        assert!(release(&key, Path::new("/a"), "r-1", 1).unwrap());
        assert!(read(&key).unwrap().is_some());
        // restart-phase: run 9 of the same task replaces run 3.
        let again = claim("/a", "r-1", "deploy", 9);
        assert_eq!(
            take(&key, &again, None).unwrap(),
            Taken::Holds { was_held: false }
        );
        let record = read(&key).unwrap().unwrap();
        assert_eq!(
            record.runs,
            vec![HeldBy {
                task_run: 9,
                task: "deploy".into()
            }]
        );
        assert!(!release(&key, Path::new("/a"), "r-1", 3).unwrap());
        assert!(release(&key, Path::new("/a"), "r-1", 9).unwrap());
        assert_eq!(read(&key).unwrap(), None);
    }

    #[test]
    fn a_stale_record_is_taken_over_only_while_unchanged_and_unlock_frees() {
        let (_dir, key) = setup();
        take(&key, &claim("/a", "r-1", "deploy", 3), None).unwrap();
        let stale = read(&key).unwrap().unwrap();
        let b = claim("/b", "r-7", "deploy", 1);
        assert_eq!(
            take(&key, &b, Some(&stale)).unwrap(),
            Taken::Holds { was_held: false }
        );
        assert!(
            !free(&key, Some(&stale)).unwrap(),
            "the record changed meanwhile"
        );
        let now = read(&key).unwrap().unwrap();
        assert_eq!(now.holder.release, "r-7");
        assert!(free(&key, Some(&now)).unwrap());
        assert_eq!(read(&key).unwrap(), None);
    }

    #[test]
    fn the_lock_folder_lists_named_locks_and_target_folders() {
        let (dir, key) = setup();
        let locks = dir.path().join("locks");
        take(&key, &claim("/a", "r-1", "deploy", 3), None).unwrap();
        let named = LockKey::for_exec(None, "cluster", "web", &locks);
        take(&named, &claim("/a", "r-1", "helm", 4), None).unwrap();
        let listed = list(&locks).unwrap();
        let targets: Vec<String> = listed
            .iter()
            .map(|l| l.record.as_ref().unwrap().target.clone())
            .collect();
        assert_eq!(targets.len(), 2, "{targets:?}");
        assert!(targets.contains(&key.target));
        assert!(targets.contains(&"exec:cluster:web".to_string()));
        release(&key, Path::new("/a"), "r-1", 3).unwrap();
        assert_eq!(list(&locks).unwrap().len(), 1, "a freed lock is not listed");
    }
}
