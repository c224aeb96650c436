//! Staging by hard link: a package file that is unchanged from the live one (same size, mtime
//! and mode — rsync's quick check — and then the same bytes) is hard-linked from the live
//! tree; any other file is written as a new file, never into an existing inode, so every older
//! tree that shares a link keeps its bytes.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::fsops;

/// What a linked staging did: files linked from the live tree, files written and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Staged {
    pub linked: u64,
    pub written: u64,
    pub bytes_written: u64,
}

impl Staged {
    pub fn add(&mut self, other: Staged) {
        self.linked += other.linked;
        self.written += other.written;
        self.bytes_written += other.bytes_written;
    }
}

/// Copies the package tree `src` to `dst` (which must not exist), linking each regular file
/// from the same path under `live` when it passes the quick check. Modes are ANDed with
/// `mode_mask`; folders and symlinks are created anew (they are cheap and carry no bytes).
pub(crate) fn stage_linked(
    src: &Path,
    live: Option<&Path>,
    dst: &Path,
    mode_mask: u32,
    trust_mtime: bool,
) -> io::Result<Staged> {
    let mut staged = Staged::default();
    stage_entry(src, live, dst, (mode_mask, trust_mtime), &mut staged)?;
    Ok(staged)
}

/// `how`: the mode mask, and whether the quick check alone decides (no byte comparison).
fn stage_entry(
    src: &Path,
    live: Option<&Path>,
    dst: &Path,
    how: (u32, bool),
    staged: &mut Staged,
) -> io::Result<()> {
    let (mask, trust_mtime) = how;
    let meta = fs::symlink_metadata(src)?;
    if meta.is_dir() {
        fs::create_dir(dst)?;
        fs::set_permissions(dst, Permissions::from_mode(0o700))?;
        // Never look through a live symlink: linking what it points to could pull a file from
        // outside the target into the delivery.
        let live = live.filter(|l| fs::symlink_metadata(l).is_ok_and(|m| m.is_dir()));
        for entry in fs::read_dir(src)? {
            let name = entry?.file_name();
            let live = live.map(|l| l.join(&name));
            stage_entry(
                &src.join(&name),
                live.as_deref(),
                &dst.join(&name),
                how,
                staged,
            )?;
        }
        fs::set_permissions(dst, Permissions::from_mode(meta.mode() & 0o7777 & mask))?;
        File::open(dst)?.set_times(fsops::file_times(&meta))?;
        return Ok(());
    }
    if meta.is_file()
        && let Some(live) = live
        && is_unchanged(&meta, live, mask)
        && (trust_mtime || fsops::same_bytes(src, live)?)
        && fs::hard_link(live, dst).is_ok()
    {
        staged.linked += 1;
        return Ok(());
    }
    if meta.is_file() {
        staged.bytes_written += write_new(src, dst, &meta, mask)?;
        staged.written += 1;
        return Ok(());
    }
    // A symlink (or a refused kind, reported by the plain copy).
    let copied = fsops::copy_tree_masked(src, dst, mask)?;
    staged.written += copied.files;
    Ok(())
}

/// rsync's quick check: a regular file of the same size, mtime (to the nanosecond) and mode.
/// Not enough on its own: files written within one clock tick, or built with a fixed mtime
/// (`SOURCE_DATE_EPOCH`), share one, so the bytes are compared too unless the backend says
/// `trust_mtime`.
fn is_unchanged(package: &fs::Metadata, live: &Path, mask: u32) -> bool {
    let Ok(live) = fs::symlink_metadata(live) else {
        return false;
    };
    live.is_file()
        && live.len() == package.len()
        && live.mtime() == package.mtime()
        && live.mtime_nsec() == package.mtime_nsec()
        && live.mode() & 0o7777 == package.mode() & 0o7777 & mask
}

/// Writes `dst` as a new file (`create_new`: never an existing inode) with `src`'s bytes.
fn write_new(src: &Path, dst: &Path, meta: &fs::Metadata, mask: u32) -> io::Result<u64> {
    let mut input = File::open(src)?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)?;
    let bytes = io::copy(&mut input, &mut output)?;
    output.set_permissions(Permissions::from_mode(meta.mode() & 0o7777 & mask))?;
    output.set_times(fsops::file_times(meta))?;
    Ok(bytes)
}

/// Recreates the tree `src` at `dst` with every regular file hard-linked (folders and symlinks
/// created anew, with their modes and mtimes). Falls back to copying a file whose link fails
/// (another filesystem).
pub(crate) fn link_tree(src: &Path, dst: &Path) -> io::Result<Staged> {
    stage_linked(src, Some(src), dst, 0o7777, true)
}

/// Whether `a` and `b` (or their nearest existing parents) are on the same filesystem, so a
/// rename between them is possible.
pub(crate) fn same_filesystem(a: &Path, b: &Path) -> bool {
    let device = |p: &Path| {
        p.ancestors()
            .find_map(|p| fs::symlink_metadata(p).ok())
            .map(|m| m.dev())
    };
    matches!((device(a), device(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn unchanged_files_are_linked_and_changed_ones_written_anew() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg, live, dst) = (
            tmp.path().join("pkg"),
            tmp.path().join("live"),
            tmp.path().join("dst"),
        );
        fs::create_dir_all(pkg.join("d")).unwrap();
        fs::write(pkg.join("d/same"), "same").unwrap();
        fs::write(pkg.join("d/changed"), "new!").unwrap();
        symlink("same", pkg.join("d/link")).unwrap();
        fsops::copy_tree(&pkg, &live).unwrap();
        fs::write(live.join("d/changed"), "old!").unwrap();
        let staged = stage_linked(&pkg, Some(&live), &dst, 0o7777, false).unwrap();
        assert_eq!((staged.linked, staged.bytes_written), (1, 4));
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&dst.join("d/same")), ino(&live.join("d/same")));
        assert_ne!(ino(&dst.join("d/changed")), ino(&live.join("d/changed")));
        assert_eq!(fs::read(live.join("d/changed")).unwrap(), b"old!");
        assert!(fsops::trees_equal(&pkg, &dst).unwrap());
    }

    #[test]
    fn same_size_and_mtime_with_other_bytes_is_written_anew() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg, live, dst) = (
            tmp.path().join("pkg"),
            tmp.path().join("live"),
            tmp.path().join("dst"),
        );
        fs::create_dir_all(&pkg).unwrap();
        fs::write(pkg.join("v.txt"), "2.0\n").unwrap();
        fsops::copy_tree(&pkg, &live).unwrap();
        fs::write(live.join("v.txt"), "1.0\n").unwrap();
        let mtime = fs::metadata(pkg.join("v.txt")).unwrap().modified().unwrap();
        File::options()
            .write(true)
            .open(live.join("v.txt"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let staged = stage_linked(&pkg, Some(&live), &dst, 0o7777, false).unwrap();
        assert_eq!(staged.linked, 0);
        assert_eq!(fs::read(dst.join("v.txt")).unwrap(), b"2.0\n");
    }

    #[test]
    fn a_mode_change_is_a_change() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg, live, dst) = (
            tmp.path().join("pkg"),
            tmp.path().join("live"),
            tmp.path().join("dst"),
        );
        fs::create_dir_all(&pkg).unwrap();
        fs::write(pkg.join("run"), "x").unwrap();
        fsops::copy_tree(&pkg, &live).unwrap();
        fs::set_permissions(pkg.join("run"), Permissions::from_mode(0o755)).unwrap();
        let staged = stage_linked(&pkg, Some(&live), &dst, 0o7777, false).unwrap();
        assert_eq!(staged.linked, 0);
        assert_ne!(
            fs::metadata(live.join("run")).unwrap().mode() & 0o777,
            0o755
        );
    }
}
