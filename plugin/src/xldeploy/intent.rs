//! The create intent: the durable note, in the task run's work folder, that relflow is about
//! to create an XL Deploy task — for which deployment, and which matching tasks XL Deploy had
//! before — and then the id it was given. A try that finds the note without a handle knows
//! an earlier try may have created a task whose answer was lost (a dropped connection, a
//! killed runner), and looks for it among XL Deploy's active tasks before creating another.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::xml::ActiveTask;
use crate::ErrorClass;
use crate::backend::BackendError;

const FORMAT: u32 = 1;

/// What a task is created for, as XL Deploy's task metadata names it (`taskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(super) enum TaskType {
    /// A first deployment of the application to the environment.
    Initial,
    /// An update of a deployed application.
    Upgrade,
    /// An undeployment.
    Undeploy,
}

impl TaskType {
    /// The `taskType` values XL Deploy uses for it (`UPDATE`/`UNDEPLOYMENT` are the names of
    /// the deployment types, accepted in case a server reports those).
    fn names(self) -> &'static [&'static str] {
        match self {
            TaskType::Initial => &["INITIAL"],
            TaskType::Upgrade => &["UPGRADE", "UPDATE"],
            TaskType::Undeploy => &["UNDEPLOY", "UNDEPLOYMENT"],
        }
    }
}

/// One pending creation of an XL Deploy task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Intent {
    pub format: u32,
    /// `Applications/PetPortal`
    pub application: String,
    /// `Environments/Prod`
    pub environment: String,
    /// The version deployed by the task (for an undeployment: the one it removes).
    pub version: String,
    pub task_type: TaskType,
    /// The package deployed before (`Applications/PetPortal/1.0`), for the handle.
    pub previous_version: Option<String>,
    /// Active tasks that matched before the create: never taken for ours. `None` when XL
    /// Deploy could not list them; then only a task never started (PENDING) is adopted.
    pub known_tasks: Option<Vec<String>>,
    /// The id XL Deploy answered, once it did.
    pub task_id: Option<String>,
}

impl Intent {
    pub fn new(
        application: &str,
        environment: &str,
        version: &str,
        task_type: TaskType,
        previous_version: Option<String>,
    ) -> Intent {
        Intent {
            format: FORMAT,
            application: application.to_string(),
            environment: environment.to_string(),
            version: version.to_string(),
            task_type,
            previous_version,
            known_tasks: None,
            task_id: None,
        }
    }

    /// Whether this intent is about the deployment a try is asked to make now: `version` of
    /// a deployment, or `None` for an undeployment.
    pub fn is_about(&self, application: &str, environment: &str, version: Option<&str>) -> bool {
        let same_kind = (self.task_type == TaskType::Undeploy) == version.is_none();
        self.application == application
            && self.environment == environment
            && version.is_none_or(|v| v == self.version)
            && same_kind
    }

    /// Whether an active task's metadata says it was made for this intent: application,
    /// `environment_id` (or the environment's name), version and `taskType`.
    pub fn matches(&self, task: &ActiveTask) -> bool {
        let name = |id: &str| id.rsplit('/').next().unwrap_or(id).to_string();
        let meta = |key: &str| task.metadata(key);
        let application = meta("application")
            .is_some_and(|a| a == self.application || a == name(&self.application));
        let environment = match meta("environment_id") {
            Some(id) => id == self.environment,
            None => meta("environment") == Some(name(&self.environment).as_str()),
        };
        let version = meta("version").is_none_or(|v| v == self.version);
        let task_type = meta("taskType").is_some_and(|t| self.task_type.names().contains(&t));
        application && environment && version && task_type
    }

    /// The active tasks that may be the one this intent created.
    pub fn candidates<'a>(&self, active: &'a [ActiveTask]) -> Vec<&'a ActiveTask> {
        active
            .iter()
            .filter(|t| self.matches(t))
            .filter(|t| match &self.known_tasks {
                Some(known) => !known.contains(&t.id),
                None => t.state == "PENDING",
            })
            .collect()
    }
}

fn path(work_dir: &Path) -> PathBuf {
    work_dir.join("xldeploy-create.json")
}

fn unusable(path: &Path, e: impl std::fmt::Display) -> BackendError {
    BackendError::new(
        ErrorClass::Precondition,
        format!("use the create intent {}: {e}", path.display()),
    )
}

/// The intent an earlier try left, if any.
pub(super) fn load(work_dir: &Path) -> Result<Option<Intent>, BackendError> {
    let path = path(work_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| unusable(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unusable(&path, e)),
    }
}

/// Records `intent` durably (temp file, fsync, rename, fsync of the folder).
pub(super) fn save(work_dir: &Path, intent: &Intent) -> Result<(), BackendError> {
    let path = path(work_dir);
    let json = serde_json::to_vec_pretty(intent).map_err(|e| unusable(&path, e))?;
    write_durably(&path, &json).map_err(|e| unusable(&path, e))
}

/// Drops the intent once the task's handle is in the runner's hands.
pub(super) fn remove(work_dir: &Path) {
    let _ = std::fs::remove_file(path(work_dir));
}

/// Writes `bytes` to `path` so that after a crash the file holds either its old content or
/// all of `bytes`: a private temp file (0600) beside it, fsync, rename, fsync of the folder.
pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: &str, meta: &[(&str, &str)]) -> ActiveTask {
        ActiveTask {
            id: id.into(),
            state: state.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn upgrade() -> Intent {
        Intent::new(
            "Applications/PetPortal",
            "Environments/Prod",
            "2.2",
            TaskType::Upgrade,
            Some("Applications/PetPortal/1.0".into()),
        )
    }

    const OURS: [(&str, &str); 5] = [
        ("application", "PetPortal"),
        ("environment", "Prod"),
        ("taskType", "UPGRADE"),
        ("environment_id", "Environments/Prod"),
        ("version", "2.2"),
    ];

    #[test]
    fn a_task_matches_on_application_environment_version_and_type() {
        let intent = upgrade();
        assert!(intent.matches(&task("a", "PENDING", &OURS)));
        let mut other_version = OURS;
        other_version[4] = ("version", "2.3");
        assert!(!intent.matches(&task("b", "PENDING", &other_version)));
        let mut initial = OURS;
        initial[2] = ("taskType", "INITIAL");
        assert!(!intent.matches(&task("c", "PENDING", &initial)));
        let mut other_env = OURS;
        other_env[3] = ("environment_id", "Environments/Test");
        assert!(!intent.matches(&task("d", "PENDING", &other_env)));
        // Without environment_id the environment's name decides.
        assert!(intent.matches(&task("e", "PENDING", &OURS[..3])));
        assert!(!intent.matches(&task("f", "PENDING", &[])));
    }

    #[test]
    fn tasks_known_before_the_create_are_never_adopted() {
        let active = [
            task("old", "PENDING", &OURS),
            task("new", "PENDING", &OURS),
            task("running", "EXECUTING", &OURS),
        ];
        let mut intent = upgrade();
        intent.known_tasks = Some(vec!["old".into(), "running".into()]);
        let ids: Vec<&str> = intent
            .candidates(&active)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["new"]);
        // Without the list, only tasks never started qualify.
        intent.known_tasks = None;
        let ids: Vec<&str> = intent
            .candidates(&active)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["old", "new"]);
    }

    #[test]
    fn the_intent_survives_a_round_trip_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("deploy");
        assert_eq!(load(&work).unwrap(), None);
        let mut intent = upgrade();
        intent.known_tasks = Some(vec!["x".into()]);
        save(&work, &intent).unwrap();
        assert_eq!(load(&work).unwrap(), Some(intent.clone()));
        let mode = std::fs::metadata(path(&work)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        intent.task_id = Some("t-1".into());
        save(&work, &intent).unwrap();
        assert_eq!(
            load(&work).unwrap().and_then(|i| i.task_id),
            Some("t-1".into())
        );
        remove(&work);
        assert_eq!(load(&work).unwrap(), None);
        std::fs::write(path(&work), "{").unwrap();
        assert_eq!(load(&work).unwrap_err().class, ErrorClass::Precondition);
    }
}
