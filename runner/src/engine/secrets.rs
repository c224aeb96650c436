//! What the engine knows of secrets: which values of a pipeline are secret (the redactor),
//! what the store keeps masked, and the real values it keeps encrypted and gives back on
//! resume (see `store::secrets`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::engine::AttachError;
use crate::output::Redactor;
use crate::output::redact::MASK;
use crate::pipeline::template::{RenderContext, Template};
use crate::pipeline::{self, Pipeline};
use crate::store::secrets::{PIPELINE_TEXT, SecretKey, SecretValues, variable_entry};
use crate::store::{ReleaseRecord, Store};

/// The name of `$RELFLOW_OUTPUT`'s file in a task's folder.
pub const OUTPUT_FILE: &str = "relflow_output.env";

/// The secret values of a pipeline: every `${env.*}` it uses and every backend password (with
/// the base64 of `user:password` its server may echo). Fails when a `${env.*}` is not set.
pub fn secrets_of(
    pipeline: &Pipeline,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Redactor, AttachError> {
    let redactor = Redactor::new();
    let mut missing = Vec::new();
    for name in &pipeline.env_references {
        match env(name) {
            Some(value) => redactor.add(&value),
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(AttachError::MissingEnv(missing));
    }
    for backend in pipeline.backends.values() {
        if let pipeline::Backend::XlDeploy {
            username, password, ..
        } = backend
        {
            let render = |t: &Template| render_plain(t, &pipeline.variables, env);
            match (render(username), render(password)) {
                (Some(user), Some(password)) => redactor.add_basic_auth(&user, &password),
                // Rendered per task from release variables: at least the literal is secret.
                _ if password.references().next().is_none() => redactor.add(password.source()),
                _ => {}
            }
        }
    }
    Ok(redactor)
}

/// A backend field rendered outside any task (`None` when it names a task's values).
fn render_plain(
    template: &Template,
    variables: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let ctx = RenderContext {
        variables,
        release_id: "",
        phase_name: "",
        task_name: "",
        env,
    };
    let uses_names = template.references().any(|r| {
        !matches!(
            r,
            pipeline::template::VarRef::Env(_) | pipeline::template::VarRef::Var(_)
        )
    });
    if uses_names {
        return None;
    }
    template.render(&ctx).ok().map(|r| r.value)
}

/// Adds the values of the variables declared `secret: true` to `redactor`.
pub fn add_secret_variables(
    redactor: &Redactor,
    declared: &BTreeSet<String>,
    variables: &BTreeMap<String, String>,
) {
    for name in declared {
        if let Some(value) = variables.get(name) {
            redactor.add(value);
        }
    }
}

/// The variables whose real value must be kept encrypted: declared secret, or holding a
/// secret (a `$RELFLOW_OUTPUT` line that copied a token).
pub fn secret_values_of(
    declared: &BTreeSet<String>,
    redactor: &Redactor,
    variables: &BTreeMap<String, String>,
) -> SecretValues {
    variables
        .iter()
        .filter(|(name, value)| {
            !value.is_empty() && (declared.contains(*name) || redactor.is_secret_in(value))
        })
        .map(|(name, value)| (variable_entry(name), value.clone()))
        .collect()
}

/// What a new release stores: the pipeline text and variables masked, and the real values
/// they hid, to keep encrypted.
pub struct MaskedRelease {
    pub source: String,
    pub variables: BTreeMap<String, String>,
    pub kept: SecretValues,
}

/// Masks the secrets of a new release for the store.
pub fn mask_release(
    pipeline: &Pipeline,
    redactor: &Redactor,
    source: &str,
    variables: &BTreeMap<String, String>,
) -> MaskedRelease {
    let mut kept = secret_values_of(&pipeline.secret_variables, redactor, variables);
    let masked_source = redactor.redact(source).into_owned();
    if masked_source != source {
        // A literal password or secret default: resume needs the text as written.
        kept.insert(PIPELINE_TEXT.to_string(), source.to_string());
    }
    let masked_variables = variables
        .iter()
        .map(|(k, v)| (k.clone(), redactor.redact(v).into_owned()))
        .collect();
    MaskedRelease {
        source: masked_source,
        variables: masked_variables,
        kept,
    }
}

/// A stored release as its runner needs it: the pipeline text and the variables with their
/// real values.
pub struct Restored {
    pub source: String,
    pub variables: BTreeMap<String, String>,
    /// Every value kept encrypted (all of them secret).
    pub kept: SecretValues,
}

/// Decrypts what `release` kept and puts the real values back.
pub fn restore(store: &Store, record: &ReleaseRecord) -> Result<Restored, AttachError> {
    let kept = if store.has_secrets(&record.id)? {
        let key = SecretKey::load(store.dir())?.ok_or_else(|| {
            AttachError::Secrets(crate::store::secrets::SecretError::Key {
                path: store.dir().join(crate::store::secrets::KEY_FILE),
                source: std::io::ErrorKind::NotFound.into(),
            })
        })?;
        store.secrets(&record.id, &key)?
    } else {
        SecretValues::new()
    };
    let source = kept
        .get(PIPELINE_TEXT)
        .cloned()
        .unwrap_or_else(|| record.pipeline_source.clone());
    let mut variables = record.variables.clone();
    for (name, value) in &mut variables {
        if let Some(real) = kept.get(&variable_entry(name)) {
            value.clone_from(real);
        }
    }
    Ok(Restored {
        source,
        variables,
        kept,
    })
}

/// The secrets whose stored value is masked and whose real value was not kept (a runner
/// killed between creating a release and keeping its secrets): secret variables that read
/// `***`, and backend passwords that read `***` in the stored text.
pub fn lost_secrets(pipeline: &Pipeline, restored: &Restored) -> Vec<String> {
    let mut lost: Vec<String> = pipeline
        .secret_variables
        .iter()
        .filter(|name| restored.variables.get(*name).is_some_and(|v| v == MASK))
        .filter(|name| !restored.kept.contains_key(&variable_entry(name)))
        .cloned()
        .collect();
    if !restored.kept.contains_key(PIPELINE_TEXT) {
        lost.extend(
            pipeline
                .backends
                .iter()
                .filter(|(_, backend)| has_masked_password(backend))
                .map(|(name, _)| format!("the password of backend {name}")),
        );
    }
    lost
}

fn has_masked_password(backend: &pipeline::Backend) -> bool {
    match backend {
        pipeline::Backend::XlDeploy { password, .. } => password.source() == MASK,
        _ => false,
    }
}

/// Deletes every `$RELFLOW_OUTPUT` file a killed runner left under `release_dir`: it may
/// hold secrets a task wrote.
pub fn remove_output_files(release_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(release_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => remove_output_files(&path),
            Ok(t) if t.is_file() && entry.file_name() == OUTPUT_FILE => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_or_holding_a_secret_is_kept() {
        let redactor = Redactor::new();
        redactor.add("Sup3r-S3cret-Val_42");
        let declared = BTreeSet::from(["token".to_string()]);
        let variables = BTreeMap::from([
            ("token".to_string(), "made-by-a-task".to_string()),
            ("copy".to_string(), "Bearer Sup3r-S3cret-Val_42".to_string()),
            ("plain".to_string(), "1.0".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        let kept = secret_values_of(&declared, &redactor, &variables);
        let names: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(names, ["var:copy", "var:token"]);
    }

    #[test]
    fn output_files_are_removed_at_any_depth_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("deploy#2/smoke");
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join(OUTPUT_FILE), "token=x\n").unwrap();
        std::fs::write(task.join("script_output.log"), "log\n").unwrap();
        remove_output_files(dir.path());
        assert!(!task.join(OUTPUT_FILE).exists());
        assert!(task.join("script_output.log").exists());
    }
}
