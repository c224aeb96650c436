//! Directory-tree helpers for end-to-end tests: copy a folder (modes and links kept) and take
//! a comparable picture of a tree (relative path, kind, mode, bytes or link target).

use std::fmt;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// What kind of filesystem entry a [`Entry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// One entry of a tree: its path relative to the root, kind, permission bits (`0o7777`; 0 for
/// links) and content (file bytes, link target, nothing for folders).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub content: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {:o} {:?}",
            self.path,
            self.kind,
            self.mode,
            String::from_utf8_lossy(&self.content)
        )
    }
}

/// Every entry under `root` (not `root` itself), sorted by path.
pub fn snapshot(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Entry>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("read dir entry");
        let path = entry.path();
        let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        let mode = meta.permissions().mode() & 0o7777;
        if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            out.push(Entry {
                path: rel,
                kind: Kind::Symlink,
                mode: 0,
                content: target.to_string_lossy().into_owned().into_bytes(),
            });
        } else if ft.is_dir() {
            out.push(Entry {
                path: rel.clone(),
                kind: Kind::Dir,
                mode,
                content: Vec::new(),
            });
            walk(&path, &format!("{rel}/"), out);
        } else if ft.is_file() {
            out.push(Entry {
                path: rel,
                kind: Kind::File,
                mode,
                content: fs::read(&path).expect("read file"),
            });
        } else {
            out.push(Entry {
                path: rel,
                kind: Kind::Other,
                mode,
                content: Vec::new(),
            });
        }
    }
}

/// The entries under `prefix/` (paths kept as they are), e.g. one component of a target.
pub fn under(tree: &[Entry], prefix: &str) -> Vec<Entry> {
    let dir = format!("{prefix}/");
    tree.iter()
        .filter(|e| e.path == prefix || e.path.starts_with(&dir))
        .cloned()
        .collect()
}

/// Sum of the sizes of the regular files in `tree`.
pub fn file_bytes(tree: &[Entry]) -> u64 {
    tree.iter()
        .filter(|e| e.kind == Kind::File)
        .map(|e| e.content.len() as u64)
        .sum()
}

/// Panics with a readable list of the differences when the trees differ.
#[track_caller]
pub fn assert_same(expected: &[Entry], actual: &[Entry], what: &str) {
    if expected == actual {
        return;
    }
    let mut diff = String::new();
    for e in expected {
        match actual.iter().find(|a| a.path == e.path) {
            None => diff.push_str(&format!("  missing:  {e:?}\n")),
            Some(a) if a != e => diff.push_str(&format!("  expected: {e:?}\n  actual:   {a:?}\n")),
            Some(_) => {}
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.path == a.path) {
            diff.push_str(&format!("  extra:    {a:?}\n"));
        }
    }
    panic!("{what}: the trees differ\n{diff}");
}

/// Copies `src` into `dst` (created), keeping permission bits and symlinks.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("create {}: {e}", dst.display()));
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())) {
        let entry = entry.expect("read dir entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ft = fs::symlink_metadata(&from).expect("lstat").file_type();
        if ft.is_symlink() {
            symlink(fs::read_link(&from).expect("readlink"), &to).expect("symlink");
        } else if ft.is_dir() {
            copy_dir(&from, &to);
            let mode = fs::metadata(&from).expect("stat").permissions().mode();
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).expect("chmod");
        } else {
            fs::copy(&from, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        }
    }
}

/// Sets the permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Paths (relative to `root`) of every entry named `name` anywhere under `root`.
pub fn find_named(root: &Path, name: &str) -> Vec<String> {
    snapshot(root)
        .into_iter()
        .filter(|e| e.path.rsplit('/').next() == Some(name))
        .map(|e| e.path)
        .collect()
}
