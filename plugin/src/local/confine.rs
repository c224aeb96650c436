//! A package's entries as they will land in the target, and the rules that keep them inside
//! their component: no entry is written through a link, and every symlink — followed through
//! any chain of links in the package — resolves inside the component that holds it.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Links followed while resolving one symlink before it is taken for a loop (Linux's limit).
const MAX_HOPS: usize = 40;

/// What stands at one path of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File,
    Symlink(PathBuf),
}

/// Every entry of a package by its path relative to the package root (component first).
#[derive(Debug, Default)]
pub(crate) struct PackageTree {
    nodes: BTreeMap<PathBuf, Node>,
}

/// Why an entry is refused; the text reads after "entry `path`".
pub(crate) type Why = String;

impl PackageTree {
    /// Records `node` at `path` (only normal components), as an extraction would: missing
    /// folders above it are implied, a later file or link replaces an earlier one. Refuses an
    /// entry below a link or a file, and one that would turn a folder into something else.
    pub(crate) fn insert(&mut self, path: &Path, node: Node) -> Result<(), Why> {
        let mut prefix = PathBuf::new();
        let parts: Vec<_> = path.components().collect();
        let Some((_, parents)) = parts.split_last() else {
            return Ok(());
        };
        for part in parents {
            prefix.push(part);
            match self.nodes.get(&prefix) {
                Some(Node::Dir) => {}
                Some(Node::Symlink(_)) => {
                    return Err(format!(
                        "would be written through the link `{}`",
                        prefix.display()
                    ));
                }
                Some(Node::File) => {
                    return Err(format!("is below `{}`, which is a file", prefix.display()));
                }
                None => {
                    self.nodes.insert(prefix.clone(), Node::Dir);
                }
            }
        }
        match (self.nodes.get(path), &node) {
            (Some(Node::Dir), Node::Dir) => return Ok(()),
            (Some(Node::Dir), _) => return Err("would replace a folder".to_string()),
            (Some(_), Node::Dir) => return Err("would turn a file or link into a folder".into()),
            _ => {}
        }
        if let (1, Node::Symlink(target)) = (parts.len(), &node) {
            return Err(format!(
                "is a symlink to `{}` as a whole component; a component must be a folder or a file",
                target.display()
            ));
        }
        self.nodes.insert(path.to_path_buf(), node);
        Ok(())
    }

    /// Checks that a hard link named `path` may point at `source`: an earlier regular file of
    /// the same component, reached without passing through a link.
    pub(crate) fn check_hard_link(&self, path: &Path, source: &Path) -> Result<(), Why> {
        let shown = source.display();
        if component_of(path) != component_of(source) {
            return Err(format!(
                "is a hard link to `{shown}`, outside its component `{}`",
                component_of(path).display()
            ));
        }
        if path == source {
            return Err(format!("is a hard link to itself (`{shown}`)"));
        }
        let mut prefix = PathBuf::new();
        for part in source.components() {
            prefix.push(part);
            if let Some(Node::Symlink(_)) = self.nodes.get(&prefix) {
                return Err(format!(
                    "is a hard link to `{shown}`, which passes through the link `{}`",
                    prefix.display()
                ));
            }
        }
        match self.nodes.get(source) {
            Some(Node::File) => Ok(()),
            _ => Err(format!(
                "is a hard link to `{shown}`, which is not an earlier regular file of the package"
            )),
        }
    }

    /// Resolves every symlink against the whole tree; the first that leaves its component is
    /// returned with the reason.
    pub(crate) fn check_links(&self) -> Result<(), (PathBuf, Why)> {
        for (path, node) in &self.nodes {
            if let Node::Symlink(target) = node {
                self.resolve(path, target)
                    .map_err(|why| (path.clone(), why))?;
            }
        }
        Ok(())
    }

    /// Follows `target` from the folder of the link at `path` the way the kernel would, through
    /// links of the package; leaving the component at any step is refused.
    fn resolve(&self, path: &Path, target: &Path) -> Result<(), Why> {
        let component = component_of(path);
        let outside = |via: &Option<PathBuf>| {
            let through = via
                .as_ref()
                .map(|v| format!(" (through the link `{}`)", v.display()))
                .unwrap_or_default();
            format!(
                "links to `{}`, which resolves outside its component `{}`{through}",
                target.display(),
                component.display()
            )
        };
        if target.as_os_str().is_empty() {
            return Err("is a symlink with an empty target".to_string());
        }
        let mut at: Vec<OsString> = path
            .parent()
            .map(|p| p.iter().map(OsString::from).collect())
            .unwrap_or_default();
        let mut pending: VecDeque<Step> = steps(target).collect();
        let mut via: Option<PathBuf> = None;
        let mut hops = 0;
        while let Some(step) = pending.pop_front() {
            match step {
                Step::Root => return Err(outside(&via)),
                Step::Up => {
                    if at.len() <= 1 {
                        return Err(outside(&via));
                    }
                    at.pop();
                }
                Step::Name(name) => {
                    at.push(name);
                    let here: PathBuf = at.iter().collect();
                    if let Some(Node::Symlink(next)) = self.nodes.get(&here) {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return Err(format!(
                                "links to `{}`, a chain of more than {MAX_HOPS} links",
                                target.display()
                            ));
                        }
                        // The link's own target is read from the link's folder.
                        at.pop();
                        for step in steps(next).rev() {
                            pending.push_front(step);
                        }
                        via = Some(here);
                    }
                }
            }
        }
        Ok(())
    }
}

/// One step of a path walk, owned so that link targets can be spliced into the walk.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::CurDir => None,
        Component::ParentDir => Some(Step::Up),
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::Normal(name) => Some(Step::Name(name.to_os_string())),
    })
}

/// The first component of a package-relative path.
pub(crate) fn component_of(path: &Path) -> PathBuf {
    path.components()
        .next()
        .map(|c| PathBuf::from(c.as_os_str()))
        .unwrap_or_default()
}

/// Why a package on disk could not be checked or was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    Io(std::io::Error),
    /// The entry (package-relative) and why it is refused.
    Entry(PathBuf, Why),
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Io(e)
    }
}

/// Walks component `name` of the folder `root` without following links, refuses what cannot be
/// delivered safely (a component that is a link, devices, fifos, sockets, links leaving the
/// component) and returns the bytes of its regular files.
pub(crate) fn check_folder_component(root: &Path, name: &Path) -> Result<u64, Refusal> {
    let mut tree = PackageTree::default();
    let mut size = 0;
    walk(root, name, &mut tree, &mut size)?;
    tree.check_links()
        .map_err(|(path, why)| Refusal::Entry(path, why))?;
    Ok(size)
}

fn walk(
    root: &Path,
    relative: &Path,
    tree: &mut PackageTree,
    size: &mut u64,
) -> Result<(), Refusal> {
    let path = root.join(relative);
    let meta = std::fs::symlink_metadata(&path)?;
    let kind = meta.file_type();
    let node = if kind.is_symlink() {
        Node::Symlink(std::fs::read_link(&path)?)
    } else if kind.is_dir() {
        Node::Dir
    } else if kind.is_file() {
        *size = size.saturating_add(meta.len());
        Node::File
    } else {
        return Err(Refusal::Entry(
            relative.to_path_buf(),
            "is a device file, fifo or socket".to_string(),
        ));
    };
    let is_dir = node == Node::Dir;
    tree.insert(relative, node)
        .map_err(|why| Refusal::Entry(relative.to_path_buf(), why))?;
    if is_dir {
        for entry in std::fs::read_dir(&path)? {
            walk(root, &relative.join(entry?.file_name()), tree, size)?;
        }
    }
    Ok(())
}
