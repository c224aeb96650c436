//! Finding the state directory like git finds `.git`: `--state-dir`/`RELFLOW_STATE_DIR`, else
//! `.relflow` in the working directory or the nearest parent that has one.

use std::path::{Path, PathBuf};

/// The name of the state directory relflow looks for.
pub const NAME: &str = ".relflow";

/// Where the state lives, or where relflow looked for it in vain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDir {
    /// Named by `--state-dir` or `RELFLOW_STATE_DIR`: used as given.
    Given(PathBuf),
    /// A `.relflow` in the working directory (kept relative: `.relflow`) or a parent (absolute).
    Found(PathBuf),
    /// No folder from the working directory up to `/` has a `.relflow`; `looked` lists them,
    /// the working directory first.
    Missing { looked: Vec<PathBuf> },
}

impl StateDir {
    /// Resolves the state directory for a command run in `cwd`.
    pub fn discover(given: Option<PathBuf>, cwd: &Path) -> StateDir {
        if let Some(dir) = given {
            return StateDir::Given(dir);
        }
        let mut looked = Vec::new();
        for folder in cwd.ancestors() {
            let candidate = folder.join(NAME);
            // Any entry counts, not only a folder: a `.relflow` that is a file or a dangling
            // link is a damaged state the store reports (exit 6), never something to walk past.
            if std::fs::symlink_metadata(&candidate).is_ok() {
                if looked.is_empty() {
                    return StateDir::Found(PathBuf::from(NAME));
                }
                return StateDir::Found(candidate);
            }
            looked.push(folder.to_path_buf());
        }
        StateDir::Missing { looked }
    }

    /// Resolves from the process's working directory; a working directory that cannot be read
    /// (deleted under us) falls back to a relative `.relflow`, which reports its own error.
    pub fn from_env(given: Option<PathBuf>) -> StateDir {
        match std::env::current_dir() {
            Ok(cwd) => StateDir::discover(given, &cwd),
            Err(_) => StateDir::discover(given, Path::new(".")),
        }
    }

    /// The folder to use: the one found or given, else `./.relflow` (where `run` creates it).
    pub fn path(&self) -> PathBuf {
        match self {
            StateDir::Given(dir) | StateDir::Found(dir) => dir.clone(),
            StateDir::Missing { .. } => PathBuf::from(NAME),
        }
    }

    /// Whether no state directory was found (and none was named).
    pub fn is_missing(&self) -> bool {
        matches!(self, StateDir::Missing { .. })
    }

    /// `no .relflow state directory in /a/b, /a or /` (each folder when there are few, else
    /// `from /a/b/c/d up to /`), with how to point relflow at one; `None` unless missing.
    pub fn miss_text(&self) -> Option<String> {
        let StateDir::Missing { looked } = self else {
            return None;
        };
        let shown: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
        let place = match shown.as_slice() {
            [] => "the working directory".to_string(),
            [one] => one.clone(),
            [first, .., last] if shown.len() > 4 => format!("any folder from {first} up to {last}"),
            [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
        };
        Some(format!(
            "no {NAME} state directory in {place}; run relflow from the folder that holds \
             {NAME} (or below it), or name it with --state-dir DIR or RELFLOW_STATE_DIR"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_parent_with_a_state_dir_wins_and_the_working_directory_stays_relative() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir(root.path().join("a").join(NAME)).unwrap();
        assert_eq!(
            StateDir::discover(None, &deep),
            StateDir::Found(root.path().join("a").join(NAME))
        );
        std::fs::create_dir(deep.join(NAME)).unwrap();
        assert_eq!(
            StateDir::discover(None, &deep),
            StateDir::Found(PathBuf::from(NAME))
        );
        let given = StateDir::discover(Some(PathBuf::from("/x")), &deep);
        assert_eq!(given, StateDir::Given(PathBuf::from("/x")));
    }

    #[test]
    fn a_miss_names_every_folder_it_looked_in_or_the_range() {
        let few = StateDir::Missing {
            looked: vec!["/a/b".into(), "/a".into(), "/".into()],
        };
        let text = few.miss_text().unwrap();
        assert!(
            text.starts_with("no .relflow state directory in /a/b, /a or /;"),
            "{text}"
        );
        let many = StateDir::Missing {
            looked: vec![
                "/a/b/c/d".into(),
                "/a/b/c".into(),
                "/a/b".into(),
                "/a".into(),
                "/".into(),
            ],
        };
        let text = many.miss_text().unwrap();
        assert!(text.contains("any folder from /a/b/c/d up to /"), "{text}");
        assert_eq!(StateDir::Found(".relflow".into()).miss_text(), None);
    }
}
