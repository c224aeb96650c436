//! Validation of one `backends:` entry per kind: required fields, and fields of other kinds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::checks::{one_of, suggestion};
use super::{Checker, Pos};
use crate::pipeline::model::{Backend, BackendLock};
use crate::pipeline::raw::{RawBackend, Scalar, Text};
use crate::pipeline::template::Template;

pub(super) const BACKEND_KINDS: [&str; 3] = ["local", "xl-deploy", "exec"];

/// The fields each kind takes besides `kind`.
fn fields_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "local" => &[
            "target",
            "packages",
            "verify",
            "keep_setid",
            "layout",
            "keep_releases",
            "keep_snapshots",
            "trust_mtime",
            "lock_timeout",
            "timeout",
        ],
        "xl-deploy" => &[
            "url",
            "username",
            "password",
            "polling_interval",
            "insecure",
            "lock_timeout",
            "ca_cert",
            "timeout",
        ],
        _ => &[
            "deploy",
            "rollback",
            "current",
            "status",
            "lock",
            "lock_timeout",
            "timeout",
        ],
    }
}

/// The longest `lock_timeout`; `0s` means: fail at once when the target is held.
pub(super) const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

/// The values of a local backend's `layout:`.
const LAYOUTS: [&str; 2] = ["in_place", "releases"];
/// The most release folders or snapshots a local backend may keep.
const MAX_KEEP: u32 = 1000;

const DEFAULT_POLLING: Duration = Duration::from_secs(10);
/// Bounds of a backend's `timeout`, as for a task's.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

impl RawBackend {
    /// Every field present (besides `kind`) and where its value stands.
    fn present_fields(&self) -> Vec<(&'static str, Pos)> {
        let spans: [(&'static str, Option<Pos>); 21] = [
            ("target", self.target.as_ref().map(|v| v.referenced.into())),
            (
                "packages",
                self.packages.as_ref().map(|v| v.referenced.into()),
            ),
            ("verify", self.verify.as_ref().map(|v| v.referenced.into())),
            (
                "keep_setid",
                self.keep_setid.as_ref().map(|v| v.referenced.into()),
            ),
            ("layout", self.layout.as_ref().map(|v| v.referenced.into())),
            (
                "keep_releases",
                self.keep_releases.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "keep_snapshots",
                self.keep_snapshots.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "trust_mtime",
                self.trust_mtime.as_ref().map(|v| v.referenced.into()),
            ),
            ("url", self.url.as_ref().map(|v| v.referenced.into())),
            (
                "username",
                self.username.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "password",
                self.password.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "polling_interval",
                self.polling_interval.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "insecure",
                self.insecure.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "ca_cert",
                self.ca_cert.as_ref().map(|v| v.referenced.into()),
            ),
            ("deploy", self.deploy.as_ref().map(|v| v.referenced.into())),
            (
                "rollback",
                self.rollback.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "current",
                self.current.as_ref().map(|v| v.referenced.into()),
            ),
            ("status", self.status.as_ref().map(|v| v.referenced.into())),
            ("lock", self.lock.as_ref().map(|v| v.referenced.into())),
            (
                "lock_timeout",
                self.lock_timeout.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "timeout",
                self.timeout.as_ref().map(|v| v.referenced.into()),
            ),
        ];
        spans
            .into_iter()
            .filter_map(|(name, pos)| pos.map(|pos| (name, pos)))
            .collect()
    }
}

impl Checker<'_> {
    /// Reports fields that belong to another kind; true if there was any.
    pub(super) fn stray_backend_fields(
        &mut self,
        raw: &RawBackend,
        kind: &str,
        path: &str,
    ) -> bool {
        let allowed = fields_of(kind);
        let mut stray = false;
        for (field, pos) in raw.present_fields() {
            if !allowed.contains(&field) {
                self.error(
                    pos,
                    format!(
                        "{path}.{field}: `{field}` is not a field of a `{kind}` backend \
                         (its fields: kind, {})",
                        allowed.join(", ")
                    ),
                );
                stray = true;
            }
        }
        stray
    }

    fn required(
        &mut self,
        value: Option<&Spanned<Scalar>>,
        at: Pos,
        path: &str,
        kind: &str,
        field: &str,
    ) -> Option<Template> {
        match value {
            Some(value) => self.template(value),
            None => {
                self.error(at, format!("{path}: a `{kind}` backend needs `{field}`"));
                None
            }
        }
    }

    /// `timeout:` of a backend: the default per-attempt timeout of its tasks.
    fn backend_timeout(&mut self, raw: &RawBackend, path: &str) -> Option<Option<Duration>> {
        match &raw.timeout {
            Some(t) => self
                .duration(t, &format!("{path}.timeout"), MIN_TIMEOUT, MAX_TIMEOUT)
                .map(Some),
            None => Some(None),
        }
    }

    fn optional_argv(
        &mut self,
        value: Option<&Spanned<Vec<Spanned<Scalar>>>>,
        path: &str,
        field: &str,
    ) -> Option<Option<Vec<Template>>> {
        match value {
            Some(list) => {
                self.check_program(&list.value, &format!("{path}.{field}"), None);
                self.argv(list, &format!("{path}.{field}")).map(Some)
            }
            None => Some(None),
        }
    }

    pub(super) fn local_backend(
        &mut self,
        raw: &Spanned<RawBackend>,
        path: &str,
    ) -> Option<Backend> {
        let b = &raw.value;
        let at = Pos::from(raw.referenced);
        let target = self.required(b.target.as_ref(), at, path, "local", "target");
        let packages = match &b.packages {
            Some(packages) => self.template(packages),
            None => Some(Template::literal("packages")),
        };
        let verify = self.optional_argv(b.verify.as_ref(), path, "verify");
        let timeout = self.backend_timeout(b, path);
        let layout = self.local_layout(b, path);
        let keep_releases = self.keep_count(b.keep_releases.as_ref(), path, "keep_releases");
        let keep_snapshots = self.keep_count(b.keep_snapshots.as_ref(), path, "keep_snapshots");
        if let (Some(relflow_plugin::local::LocalLayout::InPlace), Some(keep)) =
            (layout, &b.keep_releases)
        {
            self.error(
                Pos::from(keep.referenced),
                format!(
                    "{path}.keep_releases: applies to `layout: releases` only; this backend \
                     deploys in place (add `layout: releases` or remove `keep_releases`)"
                ),
            );
            return None;
        }
        Some(Backend::Local {
            target: target?,
            packages: packages?,
            verify: verify?,
            keep_setid: b.keep_setid.as_ref().is_some_and(|k| k.value),
            layout: layout?,
            keep_releases: keep_releases?,
            keep_snapshots: keep_snapshots?,
            trust_mtime: b.trust_mtime.as_ref().is_some_and(|t| t.value),
            timeout: timeout?,
        })
    }

    /// `layout:` of a local backend; `in_place` when absent.
    fn local_layout(
        &mut self,
        raw: &RawBackend,
        path: &str,
    ) -> Option<relflow_plugin::local::LocalLayout> {
        use relflow_plugin::local::LocalLayout;
        let Some(layout) = &raw.layout else {
            return Some(LocalLayout::InPlace);
        };
        match layout.value.0.as_str() {
            "in_place" if layout.value.is_string() => Some(LocalLayout::InPlace),
            "releases" if layout.value.is_string() => Some(LocalLayout::Releases),
            other => {
                self.error_with_help(
                    layout.referenced,
                    format!("{path}.layout: unknown layout `{other}`"),
                    suggestion(other, &LAYOUTS),
                );
                None
            }
        }
    }

    /// `keep_releases` / `keep_snapshots`: 1 to [`MAX_KEEP`]; default [`DEFAULT_KEEP`].
    fn keep_count(&mut self, value: Option<&Spanned<u32>>, path: &str, field: &str) -> Option<u32> {
        let Some(value) = value else {
            return Some(relflow_plugin::local::DEFAULT_KEEP);
        };
        if (1..=MAX_KEEP).contains(&value.value) {
            return Some(value.value);
        }
        // At least one: the newest deployment must stay revertible, and the live release kept.
        self.error(
            Pos::from(value.referenced),
            format!(
                "{path}.{field}: {} is out of range (1 to {MAX_KEEP}; default {})",
                value.value,
                relflow_plugin::local::DEFAULT_KEEP
            ),
        );
        None
    }

    pub(super) fn xl_deploy_backend(
        &mut self,
        raw: &Spanned<RawBackend>,
        path: &str,
    ) -> Option<Backend> {
        let b = &raw.value;
        let at = Pos::from(raw.referenced);
        let url = self.required(b.url.as_ref(), at, path, "xl-deploy", "url");
        let username = self.required(b.username.as_ref(), at, path, "xl-deploy", "username");
        let password = self.required(b.password.as_ref(), at, path, "xl-deploy", "password");
        let polling_interval = match &b.polling_interval {
            Some(interval) => self.duration(
                interval,
                &format!("{path}.polling_interval"),
                Duration::from_millis(100),
                Duration::from_secs(3600),
            ),
            None => Some(DEFAULT_POLLING),
        };
        let ca_cert = match &b.ca_cert {
            Some(cert) => {
                self.check_readable_file(cert, &format!("{path}.ca_cert"));
                self.template(cert).map(Some)
            }
            None => Some(None),
        };
        let timeout = self.backend_timeout(b, path);
        Some(Backend::XlDeploy {
            url: url?,
            username: username?,
            password: password?,
            polling_interval: polling_interval?,
            insecure_skip_tls_verify: b.insecure.as_ref().is_some_and(|i| i.value),
            ca_cert: ca_cert?,
            timeout: timeout?,
        })
    }

    /// The lock settings of every backend (`lock`, `lock_timeout`), by name. Fields a kind
    /// does not take are reported by [`Checker::stray_backend_fields`].
    pub(super) fn backend_locks(
        &mut self,
        entries: Option<&[(Spanned<Text>, Spanned<RawBackend>)]>,
    ) -> Option<BTreeMap<String, BackendLock>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, raw) in entries.unwrap_or_default() {
            let path = format!("backends.{}", key.value.0);
            let b = &raw.value;
            let timeout = match &b.lock_timeout {
                Some(t) => self
                    .duration(
                        t,
                        &format!("{path}.lock_timeout"),
                        Duration::ZERO,
                        MAX_LOCK_TIMEOUT,
                    )
                    .map(Some),
                None => Some(None),
            };
            let lock_key = match &b.lock {
                Some(k) => self.with_deploy_variables(|c| c.template(k)).map(Some),
                None => Some(None),
            };
            match (timeout, lock_key) {
                (Some(timeout), Some(key_template)) => {
                    let lock = BackendLock {
                        key: key_template,
                        timeout,
                    };
                    out.insert(key.value.0.clone(), lock);
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn exec_backend(
        &mut self,
        raw: &Spanned<RawBackend>,
        path: &str,
    ) -> Option<Backend> {
        let b = &raw.value;
        let deploy = match &b.deploy {
            Some(deploy) => {
                self.check_program(&deploy.value, &format!("{path}.deploy"), None);
                self.argv(deploy, &format!("{path}.deploy"))
            }
            None => {
                self.error(
                    raw.referenced,
                    format!("{path}: an `exec` backend needs `deploy`"),
                );
                None
            }
        };
        let rollback = self.optional_argv(b.rollback.as_ref(), path, "rollback");
        let current = self.optional_argv(b.current.as_ref(), path, "current");
        let status = self.optional_argv(b.status.as_ref(), path, "status");
        let timeout = self.backend_timeout(b, path);
        Some(Backend::Exec {
            deploy: deploy?,
            rollback: rollback?,
            current: current?,
            status: status?,
            timeout: timeout?,
        })
    }
}

impl Checker<'_> {
    /// One entry of `backends:`.
    pub(in crate::pipeline) fn backend(
        &mut self,
        raw: &Spanned<RawBackend>,
        path: &str,
    ) -> Option<Backend> {
        let backend = &raw.value;
        let Some(kind) = &backend.kind else {
            self.error(
                raw.referenced,
                format!(
                    "{path}: a backend needs a `kind`: {}",
                    one_of(&BACKEND_KINDS)
                ),
            );
            return None;
        };
        let kind_name = kind.value.0.as_str();
        if !BACKEND_KINDS.contains(&kind_name) {
            self.error_with_help(
                kind.referenced,
                format!("{path}.kind: unknown backend kind `{kind_name}`"),
                suggestion(kind_name, &BACKEND_KINDS),
            );
            return None;
        }
        let stray = self.stray_backend_fields(backend, kind_name, path);
        let built = match kind_name {
            "local" => self.with_deploy_variables(|c| c.local_backend(raw, path)),
            "xl-deploy" => self.xl_deploy_backend(raw, path),
            _ => self.with_deploy_variables(|c| c.exec_backend(raw, path)),
        };
        if stray { None } else { built }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::pipeline::load_str;

    fn load(backends: &str, task_extra: &str) -> Result<crate::pipeline::Pipeline, Vec<String>> {
        let source = format!(
            "name: p\nbackends:\n{backends}phases:\n  - name: a\n    tasks:\n      - name: t\n        \
             deploy: {{ backend: b, package: App/1 }}\n{task_extra}"
        );
        load_str(Path::new("/tmp/relflow-test/p.yaml"), &source)
            .map_err(|e| e.diagnostics().iter().map(|d| d.title()).collect())
    }

    #[test]
    fn lock_settings_stand_on_backends_and_deploy_tasks() {
        let p = load(
            "  b: { kind: exec, deploy: [x], lock: \"k8s/${application}\", lock_timeout: 5m }\n",
            "        lock_timeout: 0s\n",
        )
        .unwrap();
        let lock = &p.backend_locks["b"];
        assert_eq!(
            lock.key.as_ref().map(|k| k.source()),
            Some("k8s/${application}")
        );
        assert_eq!(lock.timeout, Some(Duration::from_secs(300)));
        let (_, task) = p.tasks().next().unwrap();
        assert_eq!(task.lock_timeout, Some(Duration::ZERO));
        let p = load("  b: { kind: local, target: t }\n", "").unwrap();
        assert!(p.backend_locks["b"].key.is_none() && p.backend_locks["b"].timeout.is_none());
    }

    #[test]
    fn lock_settings_are_refused_where_they_mean_nothing() {
        let errors = load("  b: { kind: local, target: t, lock: x }\n", "").unwrap_err();
        assert!(
            errors[0].contains("`lock` is not a field of a `local` backend"),
            "{errors:?}"
        );
        let errors = load("  b: { kind: local, target: t, lock_timeout: 8d }\n", "").unwrap_err();
        assert!(
            errors[0].starts_with("backends.b.lock_timeout"),
            "{errors:?}"
        );
        let source = "name: p\nphases:\n  - name: a\n    tasks:\n      - name: t\n        wait: 1s\n        \
                      lock_timeout: 1s\n";
        let errors: Vec<String> = load_str(Path::new("/tmp/relflow-test/p.yaml"), source)
            .map(|_| Vec::new())
            .unwrap_or_else(|e| e.diagnostics().iter().map(|d| d.title()).collect());
        assert_eq!(
            errors,
            [
                "phases[0].tasks[0].lock_timeout: `lock_timeout` is for deploy and undeploy tasks, \
              which lock their target"
            ]
        );
    }
}
