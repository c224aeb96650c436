//! Fuzzing harness (feature `fuzzing`, and unit tests): builds a hostile package — a tarball or a
//! folder — from fuzz bytes, deploys it with the local backend into a target deep inside a
//! scratch folder, rolls it back, and reports anything created or changed outside the target,
//! any delivered link the kernel resolves outside its component, and any stray setid bit.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use super::{FreeSpaceProbe, LocalBackend};
use crate::backend::{Backend, DeployRequest};

/// What a fuzzed entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    HardLink,
    Fifo,
}

/// One entry of a fuzzed package: raw path and link bytes, so hostile names are possible.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    pub path: Vec<u8>,
    /// Symlink target, or hard-link source (archive-relative).
    pub link: Vec<u8>,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// A fuzzed package and how it is delivered.
#[derive(Debug, Clone)]
pub struct Case {
    pub is_tarball: bool,
    pub keep_setid: bool,
    pub entries: Vec<Entry>,
}

/// Path pieces that make escapes likely: `..`, `.`, empty (`//`), repeated names that later
/// entries write through.
const SEGMENTS: [&str; 12] = [
    "web", "api", "a", "b", "l", "..", ".", "up", "x", "outside", "", "etc",
];

/// Folders between the scratch root and the target, so that relative escapes of a few `..`
/// still land inside the scratch folder, where they are seen.
const TARGET_DEPTH: [&str; 6] = ["o1", "o2", "o3", "o4", "o5", "o6"];

/// Decodes fuzz bytes into a case; every input decodes to something.
pub fn decode(data: &[u8]) -> Case {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let flags = next().unwrap_or(0);
    let mut entries = Vec::new();
    while let Some(b) = next() {
        if entries.len() >= 32 {
            break;
        }
        let kind = match b % 5 {
            0 => EntryKind::Dir,
            1 => EntryKind::File,
            2 => EntryKind::Symlink,
            3 => EntryKind::HardLink,
            _ => EntryKind::Fifo,
        };
        let shape = next().unwrap_or(0);
        let path = path_of(&mut next, shape % 4 + 1, false);
        let link = path_of(&mut next, (shape >> 2) % 6, shape >> 5 == 7);
        let mode = u32::from(next().unwrap_or(0)) << 4 | u32::from(next().unwrap_or(0) & 0xf);
        let size = usize::from(next().unwrap_or(0) % 8);
        let data = (0..size).map(|_| next().unwrap_or(b'x')).collect();
        entries.push(Entry {
            kind,
            path,
            link,
            mode: mode & 0o7777,
            data,
        });
    }
    Case {
        is_tarball: flags & 1 == 1,
        keep_setid: flags & 2 == 2,
        entries,
    }
}

/// `count` segments picked by the next bytes, joined with `/`.
fn path_of(next: &mut impl FnMut() -> Option<u8>, count: u8, absolute: bool) -> Vec<u8> {
    let parts: Vec<&str> = (0..count)
        .map(|_| SEGMENTS[usize::from(next().unwrap_or(0)) % SEGMENTS.len()])
        .collect();
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}").into_bytes()
    } else {
        joined.into_bytes()
    }
}

/// Writes the entries as a gzipped tarball with raw header names (no sanitising).
pub fn tarball_bytes(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for entry in entries {
        let mut header = tar::Header::new_old();
        let name = &entry.path[..entry.path.len().min(100)];
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        let link = &entry.link[..entry.link.len().min(100)];
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        header.set_entry_type(match entry.kind {
            EntryKind::Dir => tar::EntryType::Directory,
            EntryKind::File => tar::EntryType::Regular,
            EntryKind::Symlink => tar::EntryType::Symlink,
            EntryKind::HardLink => tar::EntryType::Link,
            EntryKind::Fifo => tar::EntryType::Fifo,
        });
        header.set_mode(entry.mode);
        header.set_mtime(1_600_000_000);
        let body: &[u8] = if entry.kind == EntryKind::File {
            &entry.data
        } else {
            &[]
        };
        header.set_size(body.len() as u64);
        header.set_cksum();
        builder.append(&header, body)?;
    }
    builder.into_inner()?.finish()
}

/// A relative path of normal components only, or `None`.
fn plain(raw: &[u8]) -> Option<PathBuf> {
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Creates the entries under `dir` as a folder package, never writing through a link it made
/// (entries that would are left out, as are entries the filesystem refuses: an empty link
/// target, a name too long).
pub fn build_folder(dir: &Path, entries: &[Entry]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut folders = Vec::new();
    for entry in entries {
        if let Some(relative) = plain(&entry.path)
            && real_folders_above(dir, &relative).unwrap_or(false)
        {
            let path = dir.join(&relative);
            if fs::symlink_metadata(&path).is_err() {
                // Refusals of the filesystem only leave the entry out of the package.
                let _ = create(dir, &path, entry, &mut folders);
            }
        }
    }
    for (path, mode) in folders.into_iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn create(
    dir: &Path,
    path: &Path,
    entry: &Entry,
    folders: &mut Vec<(PathBuf, u32)>,
) -> std::io::Result<()> {
    match entry.kind {
        EntryKind::Dir => {
            fs::create_dir(path)?;
            folders.push((path.to_path_buf(), entry.mode | 0o700));
        }
        EntryKind::File => {
            fs::write(path, &entry.data)?;
            fs::set_permissions(path, fs::Permissions::from_mode(entry.mode))?;
        }
        EntryKind::Symlink => symlink(OsStr::from_bytes(&entry.link), path)?,
        EntryKind::HardLink => {
            if let Some(source) = plain(&entry.link)
                && real_folders_above(dir, &source)?
                && fs::symlink_metadata(dir.join(&source)).is_ok_and(|m| m.is_file())
            {
                fs::hard_link(dir.join(&source), path)?;
            }
        }
        EntryKind::Fifo => {
            let c_path = CString::new(path.as_os_str().as_bytes())?;
            // SAFETY: c_path is a valid NUL-terminated path that outlives the call.
            if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Creates the folders above `relative` under `dir`; false when one of them is not a folder.
fn real_folders_above(dir: &Path, relative: &Path) -> std::io::Result<bool> {
    let mut path = dir.to_path_buf();
    let Some(parent) = relative.parent() else {
        return Ok(true);
    };
    for part in parent.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(_) => fs::create_dir(&path)?,
        }
    }
    Ok(true)
}

/// Deploys `case` into a target inside `scratch` (an empty folder), then rolls it back, and
/// returns what went wrong: a change outside the target, a delivered link that resolves outside
/// its component, or a setid bit delivered without `keep_setid`.
pub fn check_case(scratch: &Path, case: &Case) -> Result<(), String> {
    let io = |what: &'static str| move |e: std::io::Error| format!("harness: {what}: {e}");
    let target = TARGET_DEPTH
        .iter()
        .fold(scratch.to_path_buf(), |p, d| p.join(d))
        .join("target");
    // Made beforehand: creating it would change its parent's mtime, outside the target.
    fs::create_dir_all(&target).map_err(io("create the target"))?;
    let outside = scratch.join("outside");
    fs::create_dir_all(outside.join("dir")).map_err(io("create outside"))?;
    fs::write(outside.join("secret.txt"), "keep me\n").map_err(io("write outside"))?;
    let packages = scratch.join("packages");
    let app = packages.join("App");
    fs::create_dir_all(&app).map_err(io("create packages"))?;
    if case.is_tarball {
        let bytes = tarball_bytes(&case.entries).map_err(io("build the tarball"))?;
        fs::write(app.join("1.0.tar.gz"), bytes).map_err(io("write the tarball"))?;
    } else {
        build_folder(&app.join("1.0"), &case.entries).map_err(io("build the folder"))?;
    }
    let work = scratch.join("work");
    // Made beforehand too: the deploy creates it otherwise, changing the scratch folder.
    fs::create_dir_all(&work).map_err(io("create the work folder"))?;
    // The registry beside the target is relflow's own record (like the target's lock).
    let skip = [
        target.clone(),
        work.clone(),
        super::registry::registry_path(&target),
        super::registry::registry_path(&target).with_extension("json.tmp"),
    ];
    let mut before = snapshot(scratch, &skip).map_err(io("walk before"))?;

    let backend = LocalBackend {
        free_space: FreeSpaceProbe::Fixed(u64::MAX),
        keep_setid: case.keep_setid,
        ..LocalBackend::new(&target, &packages)
    };
    let request = DeployRequest {
        application: "App".into(),
        version: "1.0".into(),
        components: Vec::new(),
        work_dir: work,
        verify: None,
        environment: None,
    };
    let deployed = backend.deploy(&request, &mut |_| Ok(()), &mut |_| {});
    let mut problems = Vec::new();
    if let Ok(outcome) = &deployed {
        problems.extend(check_delivered(&target, case.keep_setid));
        let _ = backend.roll_back(&outcome.handle, &mut |_| {});
    }
    let mut after = snapshot(scratch, &skip).map_err(io("walk after"))?;
    // Writing the registry there changes the mtime of the target's parent, nothing else.
    if let Some(parent) = target.parent().and_then(|p| p.strip_prefix(scratch).ok()) {
        before.remove(parent);
        after.remove(parent);
    }
    problems.extend(compare(&before, &after));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// What a walk records of one entry: kind, mode, bytes or link target.
type Listing = BTreeMap<PathBuf, String>;

/// Every entry under `root` except the `skip` subtrees, without following links.
fn snapshot(root: &Path, skip: &[PathBuf]) -> std::io::Result<Listing> {
    let mut out = Listing::new();
    walk(root, root, skip, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, path: &Path, skip: &[PathBuf], out: &mut Listing) -> std::io::Result<()> {
    if skip.iter().any(|s| s == path) {
        return Ok(());
    }
    let meta = fs::symlink_metadata(path)?;
    let relative = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let what = if meta.is_symlink() {
        format!("link -> {}", fs::read_link(path)?.display())
    } else if meta.is_file() {
        format!("file {:o} {:?}", meta.mode(), fs::read(path)?)
    } else {
        format!("{:o} mtime {}", meta.mode(), meta.mtime())
    };
    out.insert(relative, what);
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(root, &entry?.path(), skip, out)?;
        }
    }
    Ok(())
}

fn compare(before: &Listing, after: &Listing) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, what) in after {
        match before.get(path) {
            None => problems.push(format!("created outside the target: {}", path.display())),
            Some(old) if old != what => problems.push(format!(
                "changed outside the target: {} ({old} -> {what})",
                path.display()
            )),
            Some(_) => {}
        }
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        problems.push(format!("removed outside the target: {}", path.display()));
    }
    problems
}

/// The kernel's view of what was delivered: links that resolve must stay in their component;
/// setid bits only with `keep_setid`.
fn check_delivered(target: &Path, keep_setid: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(entries) = fs::read_dir(target) else {
        return vec![format!("cannot read the target {}", target.display())];
    };
    for entry in entries.flatten() {
        let component = entry.path();
        let Ok(home) = fs::canonicalize(&component) else {
            continue;
        };
        let mut stack = vec![component];
        while let Some(path) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_symlink() {
                if let Ok(resolved) = fs::canonicalize(&path)
                    && !resolved.starts_with(&home)
                {
                    problems.push(format!(
                        "delivered link {} resolves outside its component, to {}",
                        path.display(),
                        resolved.display()
                    ));
                }
            } else if meta.is_dir() {
                stack.extend(
                    fs::read_dir(&path)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                );
            }
            if !keep_setid && !meta.is_symlink() && meta.mode() & 0o6000 != 0 {
                problems.push(format!("delivered {} with setid bits", path.display()));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, path: &str, link: &str) -> Entry {
        Entry {
            kind,
            path: path.into(),
            link: link.into(),
            mode: 0o6755,
            data: b"data".to_vec(),
        }
    }

    #[test]
    fn hostile_cases_stay_inside_the_target_as_tarballs_and_folders() {
        use EntryKind::{Dir, File, HardLink, Symlink};
        let cases = [
            vec![
                entry(Symlink, "a/l", ".."),
                entry(Symlink, "a/l/a/up", "../../.."),
            ],
            vec![
                entry(Dir, "web", ""),
                entry(Symlink, "web/out", "../../outside"),
            ],
            vec![entry(Symlink, "web", "../outside")],
            vec![entry(Symlink, "web/l", "."), entry(File, "web/l/x", "")],
            vec![
                entry(Symlink, "web/a/b", ".."),
                entry(Symlink, "web/up", "a/b/.."),
            ],
            vec![entry(File, "web/f", ""), entry(HardLink, "api/h", "web/f")],
            vec![entry(File, "web/run", ""), entry(Dir, "web/bin", "")],
            vec![entry(Symlink, "web/abs", "/etc/shadow")],
        ];
        for entries in cases {
            for (is_tarball, keep_setid) in [(true, false), (false, false), (true, true)] {
                let scratch = tempfile::tempdir().unwrap();
                let case = Case {
                    is_tarball,
                    keep_setid,
                    entries: entries.clone(),
                };
                check_case(scratch.path(), &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            }
        }
    }

    #[test]
    fn any_bytes_decode_to_a_case() {
        let case = decode(&[1, 2, 9, 5, 0, 0, 3, 4, 4, 7]);
        assert!(case.is_tarball);
        assert!(!case.entries.is_empty() && case.entries.len() <= 32);
        assert!(decode(&[]).entries.is_empty());
    }
}
