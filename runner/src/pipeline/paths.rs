//! Resolving the relative paths of a pipeline against its folder.

use std::path::{Component, Path, PathBuf};

/// `base` joined with `path` (unless `path` is absolute), with `.` and `..` folded lexically,
/// so logs show `/srv/app/.relflow-demo` rather than `/srv/app/pipelines/../.relflow-demo`.
pub fn resolve(base: &Path, path: impl AsRef<Path>) -> PathBuf {
    let joined = base.join(path);
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_dots_and_keeps_absolute_paths() {
        let base = Path::new("/srv/app/pipelines");
        assert_eq!(
            resolve(base, "../.relflow-demo/x"),
            Path::new("/srv/app/.relflow-demo/x")
        );
        assert_eq!(
            resolve(base, "./scripts/h.sh"),
            Path::new("/srv/app/pipelines/scripts/h.sh")
        );
        assert_eq!(resolve(base, "/etc/x"), Path::new("/etc/x"));
        assert_eq!(
            resolve(base, "a/./b/../c"),
            Path::new("/srv/app/pipelines/a/c")
        );
    }
}
