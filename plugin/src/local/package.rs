//! Finds a package (folder or `.tar.gz`), lists its components, checks tar entries and
//! stages components into a folder.

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::io::{self, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tar::EntryType;

use super::fsops;
use super::state::{PackageKind, STAGING_PREFIX, VERSION_FILE, io_error};
use crate::ErrorClass;
use crate::backend::BackendError;

/// A package found on disk, with its components and their uncompressed sizes.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    pub path: PathBuf,
    pub kind: PackageKind,
    pub components: BTreeMap<String, u64>,
}

/// Finds `packages/<application>/<version>/` or `.../<version>.tar.gz` and lists its components.
pub(crate) fn find(
    packages: &Path,
    application: &str,
    version: &str,
) -> Result<Package, BackendError> {
    for (what, value) in [("application", application), ("version", version)] {
        let path = Path::new(value);
        if value.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(BackendError::new(
                ErrorClass::Validation,
                format!("find a package: {what} `{value}` is not a relative name without `..`"),
            ));
        }
    }
    let folder = packages.join(application).join(version);
    let tarball = packages.join(application).join(format!("{version}.tar.gz"));
    if folder.is_dir() {
        let components = folder_components(&folder)?;
        Ok(Package {
            path: folder,
            kind: PackageKind::Folder,
            components,
        })
    } else if tarball.is_file() {
        let components = scan_tarball(&tarball)?;
        Ok(Package {
            path: tarball,
            kind: PackageKind::Tarball,
            components,
        })
    } else {
        Err(BackendError::new(
            ErrorClass::NotFound,
            format!(
                "find package {application} {version}: neither {} nor {} exists",
                folder.display(),
                tarball.display()
            ),
        ))
    }
}

fn folder_components(folder: &Path) -> Result<BTreeMap<String, u64>, BackendError> {
    let read_error = || io_error(format!("read package {}", folder.display()));
    let mut components = BTreeMap::new();
    for entry in fs::read_dir(folder).map_err(read_error())? {
        let entry = entry.map_err(read_error())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        check_component_name(&name, folder)?;
        let size = fsops::tree_size(&entry.path()).map_err(read_error())?;
        components.insert(name, size);
    }
    Ok(components)
}

fn check_component_name(name: &str, package: &Path) -> Result<(), BackendError> {
    if name == VERSION_FILE || name.starts_with(STAGING_PREFIX) {
        return Err(BackendError::new(
            ErrorClass::Validation,
            format!(
                "read package {}: entry `{name}` has a name relflow keeps for itself",
                package.display()
            ),
        ));
    }
    Ok(())
}

/// Picks the components to deliver: all when `wanted` is empty.
pub(crate) fn select(package: &Package, wanted: &[String]) -> Result<Vec<String>, BackendError> {
    if wanted.is_empty() {
        return Ok(package.components.keys().cloned().collect());
    }
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| !package.components.contains_key(*w))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let available: Vec<&str> = package.components.keys().map(String::as_str).collect();
        return Err(BackendError::new(
            ErrorClass::Validation,
            format!(
                "select components of {}: unknown component(s) {}; the package has: {}",
                package.path.display(),
                unknown.join(", "),
                available.join(", ")
            ),
        ));
    }
    let mut selected = wanted.to_vec();
    selected.sort();
    selected.dedup();
    Ok(selected)
}

fn open_tarball(
    path: &Path,
) -> Result<tar::Archive<flate2::read::GzDecoder<BufReader<File>>>, BackendError> {
    let file = File::open(path).map_err(io_error(format!("open {}", path.display())))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        BufReader::new(file),
    )))
}

/// Reads every header once: refuses unsafe entries before anything is touched, and sums sizes.
fn scan_tarball(path: &Path) -> Result<BTreeMap<String, u64>, BackendError> {
    let mut archive = open_tarball(path)?;
    let read_error = || io_error(format!("read {}", path.display()));
    let mut components = BTreeMap::new();
    for entry in archive.entries().map_err(read_error())? {
        let entry = entry.map_err(read_error())?;
        let Some(checked) = check_entry(&entry, path)? else {
            continue;
        };
        check_component_name(&checked.component, path)?;
        *components.entry(checked.component).or_insert(0) += checked.size;
    }
    Ok(components)
}

struct CheckedEntry {
    component: String,
    relative: PathBuf,
    size: u64,
}

fn refuse(tarball: &Path, entry: &str, why: &str) -> BackendError {
    BackendError::new(
        ErrorClass::Validation,
        format!("extract {}: entry `{entry}` {why}", tarball.display()),
    )
}

/// Returns the entry's safe relative path, `None` for entries that are skipped (metadata
/// headers, the archive root), or an error for entries that would escape the target.
fn check_entry<R: io::Read>(
    entry: &tar::Entry<'_, R>,
    tarball: &Path,
) -> Result<Option<CheckedEntry>, BackendError> {
    let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let kind = entry.header().entry_type();
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) {
        return Ok(None);
    }
    if raw.starts_with('/') {
        return Err(refuse(tarball, &raw, "has an absolute path"));
    }
    let mut relative = PathBuf::new();
    for part in Path::new(&raw).components() {
        match part {
            Component::Normal(p) => relative.push(p),
            Component::CurDir => {}
            _ => return Err(refuse(tarball, &raw, "contains `..`")),
        }
    }
    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
        EntryType::Symlink => check_link(entry, tarball, &raw, &relative, true)?,
        EntryType::Link => check_link(entry, tarball, &raw, &relative, false)?,
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
    }
    let Some(Component::Normal(first)) = relative.components().next() else {
        return Ok(None);
    };
    let component = first.to_string_lossy().into_owned();
    let size = if matches!(kind, EntryType::Regular | EntryType::Continuous) {
        entry.header().size().unwrap_or(0)
    } else {
        0
    };
    Ok(Some(CheckedEntry {
        component,
        relative,
        size,
    }))
}

/// A symlink's target is resolved from its folder; a hardlink's from the archive root. Either
/// must stay inside the target.
fn check_link<R: io::Read>(
    entry: &tar::Entry<'_, R>,
    tarball: &Path,
    raw: &str,
    relative: &Path,
    is_symlink: bool,
) -> Result<(), BackendError> {
    let link = entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if link.is_empty() || link.starts_with('/') {
        return Err(refuse(
            tarball,
            raw,
            &format!("links to `{link}`, outside the target"),
        ));
    }
    let mut depth: i64 = if is_symlink {
        relative.components().count() as i64 - 1
    } else {
        0
    };
    for part in Path::new(&link).components() {
        match part {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(refuse(
                tarball,
                raw,
                &format!("links to `{link}`, outside the target"),
            ));
        }
    }
    Ok(())
}

/// Puts the selected components of `package` into `staging` (which must exist), streaming.
pub(crate) fn stage(
    package: &Package,
    selected: &[String],
    staging: &Path,
) -> Result<(), BackendError> {
    match package.kind {
        PackageKind::Folder => {
            for component in selected {
                let (src, dst) = (package.path.join(component), staging.join(component));
                fsops::copy_tree(&src, &dst).map_err(io_error(format!(
                    "stage {} into {}",
                    src.display(),
                    dst.display()
                )))?;
            }
            Ok(())
        }
        PackageKind::Tarball => extract(&package.path, selected, staging),
    }
}

fn extract(tarball: &Path, selected: &[String], staging: &Path) -> Result<(), BackendError> {
    let mut archive = open_tarball(tarball)?;
    let extract_error = || {
        io_error(format!(
            "extract {} into {}",
            tarball.display(),
            staging.display()
        ))
    };
    // Folders are made writable while filling them; their own mode and mtime come last.
    let mut folders = Vec::new();
    for entry in archive.entries().map_err(extract_error())? {
        let mut entry = entry.map_err(extract_error())?;
        let Some(checked) = check_entry(&entry, tarball)? else {
            continue;
        };
        if !selected.contains(&checked.component) {
            continue;
        }
        let dst = staging.join(&checked.relative);
        if entry.header().entry_type() == EntryType::Directory {
            fs::create_dir_all(&dst).map_err(extract_error())?;
            fs::set_permissions(&dst, Permissions::from_mode(0o700)).map_err(extract_error())?;
            let mode = entry.header().mode().unwrap_or(0o755) & 0o7777;
            folders.push((dst, mode, entry.header().mtime().unwrap_or(0)));
            continue;
        }
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(extract_error())?;
        }
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.unpack_in(staging).map_err(extract_error())? {
            return Err(refuse(tarball, &raw, "would be written outside the target"));
        }
    }
    for (folder, mode, mtime) in folders.into_iter().rev() {
        fs::set_permissions(&folder, Permissions::from_mode(mode)).map_err(extract_error())?;
        let stamp = UNIX_EPOCH + Duration::from_secs(mtime);
        let times = fs::FileTimes::new().set_modified(stamp).set_accessed(stamp);
        File::open(&folder)
            .and_then(|f| f.set_times(times))
            .map_err(extract_error())?;
    }
    Ok(())
}
