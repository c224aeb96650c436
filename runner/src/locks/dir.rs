//! The folders that hold lock records: a short `flock` on one, durable writes and removals in
//! it, and the checks that make the host-wide lock folder safe to share.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::LockError;

/// How long a change waits for another process's change to the same folder.
const BUSY_LIMIT: Duration = Duration::from_secs(10);
/// Records and pointers are readable by everyone on the host, so anyone can see who holds a
/// target; only their writer may change them.
const RECORD_MODE: u32 = 0o644;
/// The host-wide lock folder: everyone may add entries, only an entry's owner may remove it.
const SHARED_FOLDER_MODE: u32 = 0o1777;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io { what, path, source }
}

/// Holds an exclusive `flock` on a folder until dropped.
pub(super) struct FolderLock {
    folder: File,
    path: PathBuf,
}

impl FolderLock {
    /// Locks `dir` (an existing folder, not a symlink), waiting at most [`BUSY_LIMIT`].
    pub fn lock(dir: &Path) -> Result<FolderLock, LockError> {
        let folder = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir)
            .map_err(io("open the folder", dir))?;
        let deadline = Instant::now() + BUSY_LIMIT;
        loop {
            // SAFETY: flock on a file descriptor this function owns; no memory is involved.
            if unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(FolderLock {
                    folder,
                    path: dir.to_path_buf(),
                });
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io("lock the folder", dir)(error));
            }
            if Instant::now() >= deadline {
                return Err(LockError::Busy {
                    path: dir.to_path_buf(),
                    secs: BUSY_LIMIT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Writes `bytes` to `file` in this folder: temp file, fsync, rename, fsync the folder.
    pub fn write(&self, file: &Path, bytes: &[u8]) -> Result<(), LockError> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let temp = self
            .path
            .join(format!(".{name}.tmp-{}-{nanos:x}", std::process::id()));
        let written = (|| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(RECORD_MODE)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&temp)?;
            // Whatever the umask: others must be able to read who holds the target.
            out.set_permissions(fs::Permissions::from_mode(RECORD_MODE))?;
            out.write_all(bytes)?;
            out.sync_all()?;
            fs::rename(&temp, file)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io("write", file)(e));
        }
        self.sync()
    }

    /// Removes `file` from this folder durably; a file already gone is fine.
    pub fn remove(&self, file: &Path) -> Result<(), LockError> {
        match fs::remove_file(file) {
            Ok(()) => self.sync(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", file)(e)),
        }
    }

    fn sync(&self) -> Result<(), LockError> {
        self.folder
            .sync_all()
            .map_err(io("sync the folder", &self.path))
    }
}

/// Reads a record or pointer file without following a symlink; `None` when it is absent.
pub(super) fn read_file(path: &Path) -> Result<Option<String>, LockError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(io("read", path))?;
    Ok(Some(text))
}

/// Checks the host-wide lock folder, creating it (mode 1777, like `/tmp`) when `create` is set.
/// Returns whether it exists. Refused: a symlink, something that is not a folder, and a folder
/// others may write to without the sticky bit (anyone could remove or replace its records).
pub(super) fn check_shared_folder(path: &Path, create: bool) -> Result<bool, LockError> {
    let refuse = |reason: String| LockError::Folder {
        path: path.to_path_buf(),
        reason,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(SHARED_FOLDER_MODE))
                    .map_err(io("set the mode of", path))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", path)(e)),
            }
            fs::symlink_metadata(path).map_err(io("inspect", path))?
        }
        Err(e) => return Err(io("inspect", path)(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symlink; relflow does not follow one here".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a folder".into()));
    }
    let mode = meta.mode();
    let is_sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !is_sticky {
        return Err(refuse(format!(
            "others may write to it (mode {:o}) without the sticky bit: set it (chmod +t) or use a private RELFLOW_LOCK_DIR",
            mode & 0o7777
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 && !is_sticky {
        return Err(refuse(format!(
            "it belongs to another user (uid {})",
            meta.uid()
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_replaces_the_old_one_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.lock");
        let folder = FolderLock::lock(dir.path()).unwrap();
        folder.write(&file, b"one").unwrap();
        folder.write(&file, b"two").unwrap();
        assert_eq!(read_file(&file).unwrap().as_deref(), Some("two"));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        folder.remove(&file).unwrap();
        folder.remove(&file).unwrap();
        assert_eq!(read_file(&file).unwrap(), None);
    }

    #[test]
    fn a_second_folder_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::lock(dir.path()).unwrap();
        let path = dir.path().to_path_buf();
        let second = std::thread::spawn(move || {
            let started = Instant::now();
            FolderLock::lock(&path).map(|_| started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        let waited = second.join().unwrap().unwrap();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
    }

    #[test]
    fn the_shared_folder_is_created_sticky_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("locks");
        assert!(!check_shared_folder(&shared, false).unwrap());
        assert!(check_shared_folder(&shared, true).unwrap());
        let mode = fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        assert!(check_shared_folder(&link, true).is_err());
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_shared_folder(&open, true).unwrap_err().to_string();
        assert!(err.contains("sticky"), "{err}");
    }
}
