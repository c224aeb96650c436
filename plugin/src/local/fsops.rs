//! File-tree operations: streaming copies that keep bytes, modes, symlinks and mtimes; sizes;
//! comparisons; removal; durable JSON writes.

use std::ffi::CString;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counts of what a copy wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Copied {
    pub files: u64,
    pub bytes: u64,
}

/// Copies `src` (file, symlink or folder) to `dst`, which must not exist. File contents are
/// streamed; modes, symlink targets and mtimes are kept. Ownership is not (needs root).
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> io::Result<Copied> {
    copy_tree_masked(src, dst, 0o7777)
}

/// [`copy_tree`], with every file's and folder's mode ANDed with `mode_mask` (to strip
/// setuid/setgid bits from a package).
pub(crate) fn copy_tree_masked(src: &Path, dst: &Path, mode_mask: u32) -> io::Result<Copied> {
    let mut copied = Copied::default();
    copy_entry(src, dst, mode_mask, &mut copied)?;
    Ok(copied)
}

fn copy_entry(src: &Path, dst: &Path, mask: u32, copied: &mut Copied) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        symlink(fs::read_link(src)?, dst)?;
        set_symlink_mtime(dst, &meta)?;
        copied.files += 1;
    } else if kind.is_dir() {
        fs::create_dir(dst)?;
        // Owner must be able to write while filling a folder that is read-only in the source.
        fs::set_permissions(dst, Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            copy_entry(&entry.path(), &dst.join(entry.file_name()), mask, copied)?;
        }
        fs::set_permissions(dst, Permissions::from_mode(meta.mode() & 0o7777 & mask))?;
        File::open(dst)?.set_times(file_times(&meta))?;
    } else if kind.is_file() {
        let mut input = File::open(src)?;
        let mut output = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)?;
        copied.bytes += io::copy(&mut input, &mut output)?;
        output.set_permissions(Permissions::from_mode(meta.mode() & 0o7777 & mask))?;
        output.set_times(file_times(&meta))?;
        copied.files += 1;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} is neither a file, a folder nor a symlink",
                src.display()
            ),
        ));
    }
    Ok(())
}

/// A file's access and modification times, to set on a copy.
pub(crate) fn file_times(meta: &fs::Metadata) -> FileTimes {
    let at = |secs: i64, nanos: i64| {
        let nanos = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
        match u64::try_from(secs) {
            Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
            Err(_) => UNIX_EPOCH,
        }
    };
    FileTimes::new()
        .set_accessed(at(meta.atime(), meta.atime_nsec()))
        .set_modified(at(meta.mtime(), meta.mtime_nsec()))
}

fn set_symlink_mtime(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    set_link_times(
        path,
        (meta.atime(), meta.atime_nsec()),
        (meta.mtime(), meta.mtime_nsec()),
    )
}

/// Sets a symlink's own access and modification times to `secs.nanos`.
pub(crate) fn set_link_mtime(path: &Path, secs: i64, nanos: i64) -> io::Result<()> {
    set_link_times(path, (secs, nanos), (secs, nanos))
}

/// std cannot set a symlink's own times; `utimensat(AT_SYMLINK_NOFOLLOW)` can.
fn set_link_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let stamp = |(secs, nanos): (i64, i64)| libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    };
    let stamps = [stamp(atime), stamp(mtime)];
    // SAFETY: c_path is a valid NUL-terminated string and stamps holds the two timespecs
    // utimensat reads; neither outlives the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            stamps.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes in regular files under `path` (symlinks count as nothing, are not followed); 0 when
/// `path` does not exist.
pub(crate) fn tree_size(path: &Path) -> io::Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        total += tree_size(&entry?.path())?;
    }
    Ok(total)
}

#[cfg(test)]
/// Whether two trees hold the same entries, kinds, modes, mtimes, bytes and symlink targets.
/// Contents are compared only when sizes match, in chunks.
pub(crate) fn trees_equal(a: &Path, b: &Path) -> io::Result<bool> {
    let (meta_a, meta_b) = (fs::symlink_metadata(a)?, fs::symlink_metadata(b)?);
    let (kind_a, kind_b) = (meta_a.file_type(), meta_b.file_type());
    let same_mtime = (meta_a.mtime(), meta_a.mtime_nsec()) == (meta_b.mtime(), meta_b.mtime_nsec());
    if !same_mtime || ((meta_a.mode() & 0o7777) != (meta_b.mode() & 0o7777) && !kind_a.is_symlink())
    {
        return Ok(false);
    }
    if kind_a.is_symlink() && kind_b.is_symlink() {
        return Ok(fs::read_link(a)? == fs::read_link(b)?);
    }
    if kind_a.is_file() && kind_b.is_file() {
        return Ok(meta_a.len() == meta_b.len() && same_bytes(a, b)?);
    }
    if !(kind_a.is_dir() && kind_b.is_dir()) {
        return Ok(false);
    }
    let names = |dir: &Path| -> io::Result<Vec<_>> {
        let mut names = fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    };
    let (names_a, names_b) = (names(a)?, names(b)?);
    if names_a != names_b {
        return Ok(false);
    }
    for name in names_a {
        if !trees_equal(&a.join(&name), &b.join(&name))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether two files hold the same bytes, read in chunks into buffers kept per thread (a
/// deploy compares thousands of files; fresh zeroed buffers would cost more than the reads).
pub(crate) fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    const CHUNK: usize = 128 * 1024;
    thread_local! {
        static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
            std::cell::RefCell::new((vec![0u8; CHUNK], vec![0u8; CHUNK]));
    }
    let (mut ra, mut rb) = (File::open(a)?, File::open(b)?);
    BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        let (ba, bb) = &mut *buffers;
        loop {
            let n = read_full(&mut ra, ba)?;
            let m = read_full(&mut rb, bb)?;
            if n != m || ba[..n] != bb[..m] {
                return Ok(false);
            }
            if n < CHUNK {
                return Ok(true);
            }
        }
    })
}

fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Removes a file, symlink or folder, including read-only folders; missing is fine.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(path, Permissions::from_mode((meta.mode() & 0o7777) | 0o700))?;
    }
    for entry in fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    fs::remove_dir(path)
}

/// Whether anything (even a dangling symlink) is at `path`.
pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Writes `value` as JSON so that a crash leaves either the old or the new file: write a
/// temporary file, fsync it, rename it over, fsync the folder.
pub(crate) fn write_json_durably<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = private_file(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates (or truncates) a work file readable by its owner only, whatever the umask: work
/// files say what is deployed where.
pub(crate) fn private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads JSON written by [`write_json_durably`]; `None` when the file does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Now as RFC 3339 UTC with seconds, e.g. `2025-03-01T12:00:05Z`.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_modes_links_and_mtimes_and_compares_equal() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("sub/run.sh"), Permissions::from_mode(0o751)).unwrap();
        symlink("sub/run.sh", src.join("link")).unwrap();
        fs::set_permissions(src.join("sub"), Permissions::from_mode(0o555)).unwrap();
        let dst = tmp.path().join("dst");
        let copied = copy_tree(&src, &dst).unwrap();
        assert_eq!(
            copied,
            Copied {
                files: 2,
                bytes: 10
            }
        );
        assert!(trees_equal(&src, &dst).unwrap());
        let mtime = |p: &Path| {
            fs::symlink_metadata(p).unwrap().mtime_nsec() + fs::symlink_metadata(p).unwrap().mtime()
        };
        assert_eq!(mtime(&src.join("link")), mtime(&dst.join("link")));
        assert_eq!(mtime(&src.join("sub")), mtime(&dst.join("sub")));
        fs::write(dst.join("extra"), "").unwrap();
        assert!(!trees_equal(&src, &dst).unwrap());
        remove_tree(&dst).unwrap();
        remove_tree(&src).unwrap();
        assert!(!exists(&src) && !exists(&dst));
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
