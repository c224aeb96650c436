//! The pipeline file as written: private serde types with source spans, checked by `validate`.
//!
//! Format decisions beyond DESIGN.md (for the README):
//! - Names (pipeline, phase, task, backend) must be YAML strings: `name: 123` is refused,
//!   write `name: "123"`.
//!   Every other value (variables, arguments, templates, durations) takes any scalar and
//!   keeps its text as written: `version: 2.10` is "2.10", `run: [sleep, 5]` is `sleep 5`.
//!   A null (`key:` with nothing, or `~`) is refused where a value is needed; an absent key
//!   and a key with nothing after it mean the same thing elsewhere.
//! - Booleans are YAML 1.2: only `true`/`false` (any case); `yes`, `on`, `y` are strings.
//! - Variable values are literal text: `${...}` inside a variable's default is not expanded.
//! - A variable is `name: value` or `name: { value, secret, required, description }` (`value`
//!   optional: without it the default is empty; `required: true` then needs `--var` at `run`
//!   and `plan`).
//! - Variable names match `[A-Za-z_][A-Za-z0-9_-]*`; `env`, `release`, `phase`, `task` are
//!   reserved. `command.env` keys match `[A-Za-z_][A-Za-z0-9_]*`.
//! - `manual:` with nothing after it is an approval with the default prompt.
//! - `deploy`/`undeploy`: `package` is required; `environment` is required for an
//!   `xl-deploy` backend; `components` and `verify` are only for a `local` backend.
//! - `on_failure: { script: path.rhai }`: the path must end in `.rhai` and is resolved
//!   against the pipeline folder at load time.
//! - `fix_forward:` is only allowed with `then: fix_forward` (and required by it); its
//!   `fallback` may be anything but `fix_forward`; `rollback_release` as `then` or
//!   `fallback` needs a top-level `rollback:`.
//! - `retry.when` takes error classes and `transient`; duplicates are merged.
//! - Backend `polling_interval` is 100ms..=1h; `max_delay` defaults to 5m but is raised to
//!   `delay` when only a larger `delay` is written.
//! - `lock_timeout` (0s..=7d) stands on deploy/undeploy tasks and on backends; `lock` (a
//!   template that may use `${application}`) only on exec backends.
//! - Durations: whole numbers with units from largest to smallest (`1h30m`, `1500ms`).
//! - YAML: duplicate keys are errors; aliases are allowed but their expansion is bounded
//!   (an alias bomb is refused); the file may hold one document only, at most 4 MiB.

use std::fmt;
use std::marker::PhantomData;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: Option<Spanned<Text>>,
    pub variables: Option<Entries<Spanned<RawVariable>>>,
    pub backends: Option<Entries<Spanned<RawBackend>>>,
    pub rollback: Option<Spanned<RawFlowRollback>>,
    pub on_failure: Option<Spanned<RawOnFailure>>,
    pub retry_budget: Option<Spanned<i64>>,
    pub phases: Option<Spanned<Vec<Spanned<RawPhase>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    pub name: Option<Spanned<Text>>,
    pub on_failure: Option<Spanned<RawOnFailure>>,
    pub tasks: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

/// One entry of `tasks:`: a task (exactly one kind) or `parallel:` alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<Spanned<Text>>,
    pub command: Option<Spanned<RawCommand>>,
    pub script: Option<Spanned<RawScript>>,
    pub deploy: Option<Spanned<RawDeploy>>,
    pub undeploy: Option<Spanned<RawDeploy>>,
    #[serde(default, deserialize_with = "present")]
    pub manual: Option<Spanned<Option<RawManual>>>,
    pub wait: Option<Spanned<Scalar>>,
    pub timeout: Option<Spanned<Scalar>>,
    /// How long a deploy or undeploy task waits for its target's lock.
    pub lock_timeout: Option<Spanned<Scalar>>,
    pub on_failure: Option<Spanned<RawOnFailure>>,
    pub parallel: Option<Spanned<RawParallel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParallel {
    pub max: Option<Spanned<i64>>,
    pub tasks: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    pub run: Option<Spanned<Argv>>,
    pub shell: Option<Spanned<bool>>,
    pub timeout: Option<Spanned<Scalar>>,
    pub env: Option<Entries<Spanned<Scalar>>>,
    pub cwd: Option<Spanned<Scalar>>,
}

/// `script: path` or `script: { path, args, timeout, env, cwd }`.
#[derive(Debug)]
pub enum RawScript {
    Path(String),
    Spec(Box<RawScriptSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScriptSpec {
    pub path: Option<Spanned<Scalar>>,
    pub args: Option<Vec<Spanned<Scalar>>>,
    pub timeout: Option<Spanned<Scalar>>,
    pub env: Option<Entries<Spanned<Scalar>>>,
    pub cwd: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    pub backend: Option<Spanned<Text>>,
    pub package: Option<Spanned<Scalar>>,
    pub environment: Option<Spanned<Scalar>>,
    pub components: Option<Vec<Spanned<Scalar>>>,
    pub verify: Option<Spanned<Vec<Spanned<Scalar>>>>,
    // xl-deploy only
    pub orchestrators: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub deployed_application_properties: Option<Spanned<BTreeMap<String, Spanned<Scalar>>>>,
    pub fail_on_pause: Option<Spanned<bool>>,
    pub polling_budget: Option<Spanned<u32>>,
    pub fail_if_missing: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManual {
    pub prompt: Option<Spanned<Scalar>>,
}

/// Every kind's fields; `validate` refuses those that do not belong to `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub kind: Option<Spanned<Text>>,
    // local
    pub target: Option<Spanned<Scalar>>,
    pub packages: Option<Spanned<Scalar>>,
    pub verify: Option<Spanned<Vec<Spanned<Scalar>>>>,
    /// local: deliver setuid/setgid bits as the package has them (default: stripped).
    pub keep_setid: Option<Spanned<bool>>,
    /// local: `in_place` (default) or `releases`.
    pub layout: Option<Spanned<Text>>,
    /// local, `layout: releases`: release folders kept besides those still needed (default 5).
    pub keep_releases: Option<Spanned<u32>>,
    /// local: the newest deployments per target that can still be rolled back (default 5).
    pub keep_snapshots: Option<Spanned<u32>>,
    /// local: link files by size + mtime + mode alone (rsync's quick check); default false.
    pub trust_mtime: Option<Spanned<bool>>,
    // xl-deploy
    pub url: Option<Spanned<Scalar>>,
    pub username: Option<Spanned<Scalar>>,
    pub password: Option<Spanned<Scalar>>,
    pub polling_interval: Option<Spanned<Scalar>>,
    pub insecure: Option<Spanned<bool>>,
    pub ca_cert: Option<Spanned<Scalar>>,
    // exec
    pub deploy: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub rollback: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub current: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub status: Option<Spanned<Vec<Spanned<Scalar>>>>,
    /// exec: the key of the target lock (default: backend name + application).
    pub lock: Option<Spanned<Scalar>>,
    // every kind
    pub lock_timeout: Option<Spanned<Scalar>>,
    pub timeout: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowRollback {
    pub undo_completed: Option<Spanned<bool>>,
    pub run: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub script: Option<Spanned<Scalar>>,
}

/// `on_failure:` — declarative fields, or `script:` alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnFailure {
    pub retry: Option<Spanned<RawRetry>>,
    pub then: Option<Spanned<Text>>,
    pub fix_forward: Option<Spanned<RawFixForward>>,
    pub actions: Option<Vec<Spanned<RawAction>>>,
    pub script: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub retries: Option<Spanned<i64>>,
    pub when: Option<Vec<Spanned<Text>>>,
    pub delay: Option<Spanned<Scalar>>,
    pub backoff: Option<Spanned<Text>>,
    pub max_delay: Option<Spanned<Scalar>>,
    pub jitter: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFixForward {
    pub resolve: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub max: Option<Spanned<i64>>,
    pub fallback: Option<Spanned<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub run: Option<Spanned<Vec<Spanned<Scalar>>>>,
    pub script: Option<Spanned<Scalar>>,
    pub revert_compose: Option<Spanned<RawRevertCompose>>,
    pub restart_previous_container: Option<Spanned<RawRestartContainer>>,
    pub trigger: Option<Spanned<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevertCompose {
    pub file: Option<Spanned<Scalar>>,
    pub previous: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestartContainer {
    pub container: Option<Spanned<Scalar>>,
    pub image: Option<Spanned<Scalar>>,
    pub run_args: Option<Spanned<Vec<Spanned<Scalar>>>>,
}

/// Deserializes a key that is present, even with a null value, as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Spanned<Option<T>>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Spanned::<Option<T>>::deserialize(deserializer).map(Some)
}

/// A name or keyword. A number or boolean is kept as its text with `is_string` false, so
/// validation can ask for quotes while pointing at the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String, pub bool);

impl Text {
    /// False when the YAML value was a number or a boolean.
    pub fn is_string(&self) -> bool {
        self.1
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string(), true))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string(), false))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string(), false))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string(), false))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string(), false))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// Any scalar, kept as the text written (`2.10` stays "2.10").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Scalar)
    }
}

/// A variable: `name: value`, or `name: { value: ..., secret: true, required: true,
/// description: ... }`.
#[derive(Debug)]
pub enum RawVariable {
    Value(Scalar),
    /// A number, as parsed (`2.1`); validation takes its text from the source (`2.10`).
    Number(Scalar),
    Spec(Box<RawVariableSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariableSpec {
    pub value: Option<Spanned<Scalar>>,
    pub secret: Option<Spanned<bool>>,
    pub required: Option<Spanned<bool>>,
    /// What the value means, shown by `validate` and `plan` (and in editors).
    pub description: Option<Spanned<Scalar>>,
}

impl RawVariable {
    /// The default value, as written (`None` for a mapping without `value`).
    pub fn value(&self) -> Option<&str> {
        match self {
            RawVariable::Value(v) | RawVariable::Number(v) => Some(&v.0),
            RawVariable::Spec(spec) => spec.value.as_ref().map(|v| v.value.0.as_str()),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, RawVariable::Spec(spec) if spec.secret.as_ref().is_some_and(|s| s.value))
    }

    pub fn is_required(&self) -> bool {
        matches!(self, RawVariable::Spec(spec) if spec.required.as_ref().is_some_and(|s| s.value))
    }

    pub fn description(&self) -> Option<&str> {
        match self {
            RawVariable::Spec(spec) => spec.description.as_ref().map(|d| d.value.0.as_str()),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for RawVariable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VariableVisitor;
        impl<'de> Visitor<'de> for VariableVisitor {
            type Value = RawVariable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a value, or a mapping with `value`, `secret`, `required`, `description`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawVariable, E> {
                Ok(RawVariable::Value(Scalar(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawVariable, E> {
                Ok(RawVariable::Value(Scalar(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawVariable, E> {
                Ok(RawVariable::Number(Scalar(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawVariable, E> {
                Ok(RawVariable::Number(Scalar(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawVariable, E> {
                Ok(RawVariable::Number(Scalar(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawVariable, E> {
                Err(E::custom(NULL_VALUE))
            }
            fn visit_none<E: de::Error>(self) -> Result<RawVariable, E> {
                Err(E::custom(NULL_VALUE))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawVariable, A::Error> {
                RawVariableSpec::deserialize(MapAccessDeserializer::new(map))
                    .map(|spec| RawVariable::Spec(Box::new(spec)))
            }
        }
        deserializer.deserialize_any(VariableVisitor)
    }
}

/// What a null variable value is told (as for any other null where a value is needed).
pub const NULL_VALUE: &str = "a value is required here (write \"\" for an empty string)";

/// `run:` as an argv list, or as one string (a shell command line).
#[derive(Debug)]
pub enum Argv {
    One(String),
    List(Vec<Spanned<Scalar>>),
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgvVisitor;
        impl<'de> Visitor<'de> for ArgvVisitor {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of arguments, or one string with `shell: true`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Argv, E> {
                Ok(Argv::One(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Argv, E> {
                Ok(Argv::One(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Argv, E> {
                Ok(Argv::One(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Argv, E> {
                Ok(Argv::One(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Argv, E> {
                Ok(Argv::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Argv::List(items))
            }
        }
        deserializer.deserialize_any(ArgvVisitor)
    }
}

impl<'de> Deserialize<'de> for RawScript {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScriptVisitor;
        impl<'de> Visitor<'de> for ScriptVisitor {
            type Value = RawScript;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a script path, or a mapping with `path`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScript, E> {
                Ok(RawScript::Path(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawScript, A::Error> {
                RawScriptSpec::deserialize(MapAccessDeserializer::new(map))
                    .map(|spec| RawScript::Spec(Box::new(spec)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<RawScript, A::Error> {
                Err(de::Error::invalid_type(Unexpected::Seq, &self))
            }
        }
        deserializer.deserialize_any(ScriptVisitor)
    }
}

/// A mapping kept in file order, with the span of every key.
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<Text>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
