//! What a lock is taken on, and where its record lives.

use std::path::{Path, PathBuf};

use super::LockError;

/// The lock folder when `RELFLOW_LOCK_DIR` is not set.
pub const DEFAULT_LOCK_DIR: &str = "/tmp/relflow-locks";

/// The host-wide lock folder: `$RELFLOW_LOCK_DIR`, else [`DEFAULT_LOCK_DIR`].
pub fn lock_dir() -> PathBuf {
    std::env::var_os("RELFLOW_LOCK_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR))
}

/// One lockable target and the files behind its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockKey {
    /// What `relflow locks` shows and `relflow unlock` takes: the canonical path of a local
    /// target folder, `exec:<key>`, or `xl-deploy:<environment>:<application>@<server>`.
    pub target: String,
    /// The lock record (present while the lock is held).
    pub file: PathBuf,
    /// For a target folder: the entry in the lock folder that lets `relflow locks` find it.
    pub pointer: Option<PathBuf>,
}

/// FNV-1a: a stable hash for file names (the same in every relflow build and process).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A readable, bounded file name for `text`, made unique by its hash.
fn file_name_for(text: &str, extension: &str) -> String {
    file_name_shown(text, text, extension)
}

/// A file name readable as `shown` (a key with its secrets masked) and unique to `text`.
fn file_name_shown(text: &str, shown: &str, extension: &str) -> String {
    let readable: String = shown
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let readable = readable.trim_start_matches('.');
    format!("{readable}-{:016x}.{extension}", fnv1a(text))
}

/// The canonical path of a target folder that may not exist yet: its parent is created when
/// missing so it can be resolved, the folder itself is not.
fn canonical_folder(target: &Path) -> Result<PathBuf, LockError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { what, path, source }
    };
    let absolute = std::path::absolute(target).map_err(io("resolve", target))?;
    if let Ok(canonical) = std::fs::canonicalize(&absolute) {
        return Ok(canonical);
    }
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            let parent = std::fs::canonicalize(parent).map_err(io("resolve", parent))?;
            Ok(parent.join(name))
        }
        // `a/..` and the like: only the folder itself can be resolved.
        _ => {
            std::fs::create_dir_all(&absolute).map_err(io("create", &absolute))?;
            std::fs::canonicalize(&absolute).map_err(io("resolve", &absolute))
        }
    }
}

impl LockKey {
    /// The lock of a `local` target folder: by canonical path, its record beside the folder
    /// (`<parent>/.<name>.relflow-lock`), so it holds across state directories and users.
    pub fn for_folder(target: &Path, lock_dir: &Path) -> Result<LockKey, LockError> {
        let canonical = canonical_folder(target)?;
        let (Some(parent), Some(name)) = (canonical.parent(), canonical.file_name()) else {
            return Err(LockError::Folder {
                path: canonical.clone(),
                reason: "the root folder cannot be a deploy target".into(),
            });
        };
        let shown = canonical.to_string_lossy().into_owned();
        Ok(LockKey {
            file: parent.join(format!(".{}.relflow-lock", name.to_string_lossy())),
            pointer: Some(lock_dir.join(file_name_for(&shown, "path"))),
            target: shown,
        })
    }

    /// A lock by name (`exec:<key>`, `xl-deploy:<environment>:<application>@<server>`), its record in
    /// the host-wide lock folder.
    pub fn named(target: String, lock_dir: &Path) -> LockKey {
        LockKey {
            file: lock_dir.join(file_name_for(&target, "lock")),
            pointer: None,
            target,
        }
    }

    /// The lock of a deployment through an exec backend: its `lock:` key, else the backend's
    /// name and the application.
    pub fn for_exec(lock: Option<&str>, backend: &str, application: &str, dir: &Path) -> LockKey {
        let key = match lock {
            Some(key) => key.to_string(),
            None => format!("{backend}:{application}"),
        };
        LockKey::named(format!("exec:{key}"), dir)
    }

    /// The lock of an XL Deploy deployment: environment and application on that server (two
    /// servers may name their environments alike).
    pub fn for_xl_deploy(url: &str, environment: &str, application: &str, dir: &Path) -> LockKey {
        let server = url.trim_end_matches('/');
        LockKey::named(
            format!("xl-deploy:{environment}:{application}@{server}"),
            dir,
        )
    }

    /// The same lock, shown as `shown`: the key with the secrets it was rendered from masked,
    /// so that neither lock records nor file names hold them.
    pub fn shown_as(self, shown: String) -> LockKey {
        if shown == self.target {
            return self;
        }
        let rename = |path: &Path, extension| {
            path.with_file_name(file_name_shown(&self.target, &shown, extension))
        };
        match &self.pointer {
            // A target folder's record is named after the folder, beside it.
            Some(pointer) => LockKey {
                pointer: Some(rename(pointer, "path")),
                file: self.file.clone(),
                target: shown,
            },
            None => LockKey {
                file: rename(&self.file, "lock"),
                pointer: None,
                target: shown,
            },
        }
    }

    /// The folder holding the record.
    pub fn folder(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_lock_is_by_canonical_path_and_lives_beside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let a = LockKey::for_folder(&dir.path().join("apps/x/../petportal"), &locks).unwrap();
        let b = LockKey::for_folder(&real.join("apps/petportal"), &locks).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.target, real.join("apps/petportal").to_string_lossy());
        assert_eq!(a.file, real.join("apps/.petportal.relflow-lock"));
        assert!(real.join("apps").is_dir(), "the parent is created");
        assert!(!real.join("apps/petportal").exists(), "the target is not");
        let pointer = a.pointer.unwrap();
        assert!(pointer.starts_with(&locks));
        assert!(pointer.to_string_lossy().ends_with(".path"));
    }

    #[test]
    fn named_locks_get_stable_safe_file_names() {
        let dir = Path::new("/locks");
        let a = LockKey::for_xl_deploy(
            "http://xld:4516/",
            "Environments/Prod",
            "Applications/Web",
            dir,
        );
        assert_eq!(
            a.target,
            "xl-deploy:Environments/Prod:Applications/Web@http://xld:4516"
        );
        let name = a.file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("xl-deploy_Environments_Prod_Applications_Web_http___xld_4516-"),
            "{name}"
        );
        assert_eq!(a.folder(), dir);
        let b = LockKey::for_exec(None, "cluster", "petportal", dir);
        assert_eq!(b.target, "exec:cluster:petportal");
        let c = LockKey::for_exec(Some("../../etc/passwd"), "cluster", "p", dir);
        assert_eq!(c.folder(), dir);
        assert!(
            !c.file
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with('.')
        );
        assert_ne!(
            LockKey::named("exec:a/b".into(), dir).file,
            LockKey::named("exec:a_b".into(), dir).file
        );
        let secret = LockKey::named("exec:s3cret".into(), dir);
        let shown = secret.clone().shown_as("exec:***".into());
        assert_eq!(shown.target, "exec:***");
        assert!(!shown.file.to_string_lossy().contains("s3cret"));
        assert_ne!(
            shown.file,
            LockKey::named("exec:other".into(), dir)
                .shown_as("exec:***".into())
                .file
        );
    }
}
