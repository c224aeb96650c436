//! `.tar.gz` packages: every header is checked before the target is touched (paths, kinds,
//! hard links, symlinks resolved through the whole archive), and extraction writes only below
//! the staging folder, never through a link, with setuid/setgid bits masked by the caller.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tar::EntryType;

use super::confine::{Node, PackageTree, Why};
use super::fsops;
use super::package::check_component_name;
use super::state::io_error;
use crate::ErrorClass;
use crate::backend::BackendError;

type Archive = tar::Archive<flate2::read::GzDecoder<BufReader<File>>>;

fn open(path: &Path) -> Result<Archive, BackendError> {
    let file = File::open(path).map_err(io_error(format!("open {}", path.display())))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        BufReader::new(file),
    )))
}

/// What one header asks for, once its paths are known to be relative and free of `..`.
enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    /// A hard link to this archive-relative path.
    HardLink(PathBuf),
}

struct CheckedEntry {
    component: String,
    relative: PathBuf,
    kind: Kind,
    size: u64,
}

pub(crate) fn refuse(tarball: &Path, entry: impl std::fmt::Display, why: &str) -> BackendError {
    BackendError::new(
        ErrorClass::Validation,
        format!("extract {}: entry `{entry}` {why}", tarball.display()),
    )
}

/// Reads every header once: refuses unsafe entries before anything is touched, and sums the
/// sizes of each component.
pub(crate) fn scan(path: &Path) -> Result<BTreeMap<String, u64>, BackendError> {
    let mut archive = open(path)?;
    let read_error = || io_error(format!("read {}", path.display()));
    let mut components = BTreeMap::new();
    let mut tree = PackageTree::default();
    for entry in archive.entries().map_err(read_error())? {
        let entry = entry.map_err(read_error())?;
        let Some(checked) = check_entry(&entry, path)? else {
            continue;
        };
        record(&mut tree, &checked)
            .map_err(|why| refuse(path, checked.relative.display(), &why))?;
        let size = components.entry(checked.component).or_insert(0u64);
        *size = size.saturating_add(checked.size);
    }
    tree.check_links()
        .map_err(|(entry, why)| refuse(path, entry.display(), &why))?;
    Ok(components)
}

/// Adds the entry to the tree as extraction would leave it; refuses writes through links and
/// hard links that leave their component.
fn record(tree: &mut PackageTree, checked: &CheckedEntry) -> Result<(), Why> {
    let node = match &checked.kind {
        Kind::Dir => Node::Dir,
        Kind::File => Node::File,
        Kind::Symlink(target) => Node::Symlink(target.clone()),
        Kind::HardLink(source) => {
            tree.check_hard_link(&checked.relative, source)?;
            Node::File
        }
    };
    tree.insert(&checked.relative, node)
}

/// A path of the archive as relative normal components, or why it is refused.
fn relative_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.starts_with(b"/") {
        return Err("absolute");
    }
    let mut relative = PathBuf::new();
    for part in Path::new(OsStr::from_bytes(raw)).components() {
        match part {
            Component::Normal(p) => relative.push(p),
            Component::CurDir => {}
            _ => return Err("parent"),
        }
    }
    Ok(relative)
}

/// Returns what the entry asks for, `None` for entries that are skipped (metadata headers, the
/// archive root), or an error for entries relflow refuses to extract.
fn check_entry<R: io::Read>(
    entry: &tar::Entry<'_, R>,
    tarball: &Path,
) -> Result<Option<CheckedEntry>, BackendError> {
    let raw_bytes = entry.path_bytes();
    let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
    let header = entry.header();
    let kind = header.entry_type();
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) {
        return Ok(None);
    }
    let relative = match relative_path(&raw_bytes) {
        Ok(relative) => relative,
        Err("absolute") => return Err(refuse(tarball, &raw, "has an absolute path")),
        Err(_) => return Err(refuse(tarball, &raw, "contains `..`")),
    };
    let link = || -> PathBuf {
        entry
            .link_name_bytes()
            .map(|b| PathBuf::from(OsStr::from_bytes(&b)))
            .unwrap_or_default()
    };
    let kind = match kind {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => Kind::Symlink(link()),
        EntryType::Link => Kind::HardLink(check_hard_link_name(&link(), tarball, &raw)?),
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            return Err(refuse(tarball, &raw, "is a device file or fifo"));
        }
        _ => {
            return Err(refuse(
                tarball,
                &raw,
                "has an entry type relflow does not extract",
            ));
        }
    };
    let Some(first) = relative.components().next() else {
        if matches!(kind, Kind::Dir) {
            return Ok(None);
        }
        return Err(refuse(tarball, &raw, "names the package root"));
    };
    let Some(component) = first.as_os_str().to_str().map(str::to_string) else {
        return Err(refuse(
            tarball,
            &raw,
            "has a component name that is not UTF-8",
        ));
    };
    check_component_name(&component, tarball)?;
    let size = if matches!(kind, Kind::File) {
        header.size().unwrap_or(0)
    } else {
        0
    };
    Ok(Some(CheckedEntry {
        component,
        relative,
        kind,
        size,
    }))
}

/// A hard link names another entry from the archive root: it must be relative, without `..`.
fn check_hard_link_name(link: &Path, tarball: &Path, raw: &str) -> Result<PathBuf, BackendError> {
    match relative_path(link.as_os_str().as_bytes()) {
        Ok(source) if source.as_os_str().is_empty() => {
            Err(refuse(tarball, raw, "is a hard link with an empty target"))
        }
        Ok(source) => Ok(source),
        Err(_) => Err(refuse(
            tarball,
            raw,
            &format!("is a hard link to `{}`, outside the target", link.display()),
        )),
    }
}

/// A folder whose own mode and mtime are set once everything below it is written.
pub(crate) struct PendingFolder {
    path: PathBuf,
    mode: u32,
    mtime: Option<u64>,
}

/// Extracts the selected components into `staging` (which must exist). Modes are ANDed with
/// `mode_mask`. Returns the folders whose modes are still to be set by [`finish_folders`].
pub(crate) fn extract(
    tarball: &Path,
    selected: &[String],
    staging: &Path,
    mode_mask: u32,
) -> Result<Vec<PendingFolder>, BackendError> {
    let mut archive = open(tarball)?;
    let extract_error = || {
        io_error(format!(
            "extract {} into {}",
            tarball.display(),
            staging.display()
        ))
    };
    // The archive is checked again while extracting: it may have changed since the scan.
    let mut tree = PackageTree::default();
    let mut folders: BTreeMap<PathBuf, (u32, Option<u64>)> = BTreeMap::new();
    for entry in archive.entries().map_err(extract_error())? {
        let mut entry = entry.map_err(extract_error())?;
        let Some(checked) = check_entry(&entry, tarball)? else {
            continue;
        };
        let shown = checked.relative.display().to_string();
        record(&mut tree, &checked).map_err(|why| refuse(tarball, &shown, &why))?;
        if !selected.contains(&checked.component) {
            continue;
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777 & mode_mask;
        let mtime = entry.header().mtime().unwrap_or(0);
        make_parents(staging, &checked.relative, &mut folders)
            .map_err(|e| written_error(tarball, &shown, e))?;
        let dst = staging.join(&checked.relative);
        match &checked.kind {
            Kind::Dir => {
                make_dir(&dst).map_err(|e| written_error(tarball, &shown, e))?;
                folders.insert(dst, (mode, Some(mtime)));
            }
            Kind::File => {
                clear(&dst).map_err(|e| written_error(tarball, &shown, e))?;
                write_file(&mut entry, &dst, mode, mtime).map_err(extract_error())?;
            }
            Kind::Symlink(target) => {
                clear(&dst).map_err(|e| written_error(tarball, &shown, e))?;
                symlink(target, &dst).map_err(extract_error())?;
                fsops::set_link_mtime(&dst, i64::try_from(mtime).unwrap_or(0), 0)
                    .map_err(extract_error())?;
            }
            Kind::HardLink(source) => {
                let source_path = staging.join(source);
                is_real_file(staging, source).map_err(|e| written_error(tarball, &shown, e))?;
                clear(&dst).map_err(|e| written_error(tarball, &shown, e))?;
                fs::hard_link(&source_path, &dst).map_err(extract_error())?;
            }
        }
    }
    // Deepest first, so a read-only folder is closed after everything below it.
    let mut pending: Vec<PendingFolder> = folders
        .into_iter()
        .map(|(path, (mode, mtime))| PendingFolder { path, mode, mtime })
        .collect();
    pending.sort_by_key(|f| std::cmp::Reverse(f.path.components().count()));
    Ok(pending)
}

/// Sets the folders' own modes and mtimes, deepest first.
pub(crate) fn finish_folders(folders: &[PendingFolder]) -> io::Result<()> {
    for folder in folders {
        fs::set_permissions(&folder.path, Permissions::from_mode(folder.mode))?;
        if let Some(mtime) = folder.mtime {
            let stamp = stamp(mtime);
            let times = fs::FileTimes::new().set_modified(stamp).set_accessed(stamp);
            File::open(&folder.path)?.set_times(times)?;
        }
    }
    Ok(())
}

/// What extraction found on disk that the checks should have excluded (the archive changed).
fn written_error(tarball: &Path, entry: &str, e: io::Error) -> BackendError {
    if e.kind() == io::ErrorKind::InvalidData {
        refuse(tarball, entry, &e.to_string())
    } else {
        io_error(format!("extract {}: entry `{entry}`", tarball.display()))(e)
    }
}

fn not_a_folder(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "would be written through `{}`, which is not a folder",
            path.display()
        ),
    )
}

/// Creates the missing folders above `relative`, never passing through anything but a folder
/// extraction made.
fn make_parents(
    staging: &Path,
    relative: &Path,
    folders: &mut BTreeMap<PathBuf, (u32, Option<u64>)>,
) -> io::Result<()> {
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    let mut path = staging.to_path_buf();
    for part in parent.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_a_folder(&path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dir(&path)?;
                // A folder the archive only implies gets an ordinary mode.
                folders.entry(path.clone()).or_insert((0o755, None));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `path` as a folder writable by its owner while it is filled; an existing folder is
/// reused, anything else refused.
fn make_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(not_a_folder(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path)?,
        Err(e) => return Err(e),
    }
    fs::set_permissions(path, Permissions::from_mode(0o700))
}

/// Removes a file or link an earlier entry left at `path` (a later entry wins, as with tar).
fn clear(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "would replace a folder",
        )),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `relative` below `staging` is a regular file reached through folders only.
fn is_real_file(staging: &Path, relative: &Path) -> io::Result<()> {
    let mut path = staging.to_path_buf();
    let count = relative.components().count();
    for (n, part) in relative.components().enumerate() {
        path.push(part);
        let meta = fs::symlink_metadata(&path)?;
        let ok = if n + 1 == count {
            meta.is_file()
        } else {
            meta.is_dir()
        };
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "is a hard link to `{}`, which is not a regular file reached through folders",
                    relative.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Streams the entry into a new file; `O_NOFOLLOW` and `create_new` keep it from following
/// anything that appeared at `dst`.
fn write_file(entry: &mut impl io::Read, dst: &Path, mode: u32, mtime: u64) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)?;
    io::copy(entry, &mut out)?;
    out.set_permissions(Permissions::from_mode(mode))?;
    let stamp = stamp(mtime);
    out.set_times(fs::FileTimes::new().set_modified(stamp).set_accessed(stamp))
}

/// A header's mtime as a time; one past what the clock can hold is taken as the epoch.
fn stamp(mtime: u64) -> std::time::SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(mtime))
        .unwrap_or(UNIX_EPOCH)
}
