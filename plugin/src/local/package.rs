//! Finds a package (folder or `.tar.gz`), lists and checks its components, and stages them
//! into a folder.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::confine::{self, Refusal};
use super::fsops;
use super::link::{self, Staged};
use super::state::{PackageKind, STAGING_PREFIX, VERSION_FILE, io_error};
use super::tarball;
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
        let components = tarball::scan(&tarball)?;
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
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            return Err(refused(
                "read package",
                folder,
                Refusal::Entry(file_name.into(), "has a name that is not UTF-8".into()),
            ));
        };
        check_component_name(name, folder)?;
        let size = confine::check_folder_component(folder, Path::new(name))
            .map_err(|refusal| refused("read package", folder, refusal))?;
        components.insert(name.to_string(), size);
    }
    Ok(components)
}

/// Names relflow writes in the target (`.relflow-version`, its temporary file, staging
/// folders) cannot be components.
pub(crate) fn check_component_name(name: &str, package: &Path) -> Result<(), BackendError> {
    if name.starts_with(VERSION_FILE) || name.starts_with(STAGING_PREFIX) {
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

/// Puts the selected components of `package` into `staging` (which must exist), streaming,
/// then checks what was staged as it will be delivered: the package may have changed since it
/// was scanned. Setuid/setgid bits are stripped unless `keep_setid`. A folder package's
/// unchanged files are hard-linked from `link_from[component]` (the live tree); a tarball is
/// extracted in full.
pub(crate) fn stage(
    package: &Package,
    selected: &[String],
    staging: &Path,
    keep_setid: bool,
    link_from: &BTreeMap<String, PathBuf>,
    trust_mtime: bool,
) -> Result<Staged, BackendError> {
    let mode_mask = if keep_setid { 0o7777 } else { 0o1777 };
    let mut folders = Vec::new();
    let mut staged = Staged::default();
    match package.kind {
        PackageKind::Folder => {
            for component in selected {
                let (src, dst) = (package.path.join(component), staging.join(component));
                let live = link_from.get(component).filter(|p| fsops::exists(p));
                let one = link::stage_linked(
                    &src,
                    live.map(PathBuf::as_path),
                    &dst,
                    mode_mask,
                    trust_mtime,
                )
                .map_err(io_error(format!(
                    "stage {} into {}",
                    src.display(),
                    dst.display()
                )))?;
                staged.add(one);
            }
        }
        PackageKind::Tarball => {
            folders = tarball::extract(&package.path, selected, staging, mode_mask)?;
            staged.bytes_written = selected
                .iter()
                .filter_map(|c| package.components.get(c))
                .sum();
        }
    }
    for component in selected {
        confine::check_folder_component(staging, Path::new(component))
            .map_err(|refusal| refused("stage", &package.path, refusal))?;
    }
    tarball::finish_folders(&folders).map_err(io_error(format!(
        "extract {} into {}",
        package.path.display(),
        staging.display()
    )))?;
    Ok(staged)
}

/// A refusal of `package` as a validation error naming the entry, or an I/O error.
fn refused(verb: &str, package: &Path, refusal: Refusal) -> BackendError {
    match refusal {
        Refusal::Io(e) => io_error(format!("{verb} {}", package.display()))(e),
        Refusal::Entry(entry, why) => BackendError::new(
            ErrorClass::Validation,
            format!(
                "{verb} {}: entry `{}` {why}",
                package.display(),
                entry.display()
            ),
        ),
    }
}
