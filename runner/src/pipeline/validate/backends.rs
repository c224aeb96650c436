//! Validation of one `backends:` entry per kind: required fields, and fields of other kinds.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Checker, Pos};
use crate::pipeline::model::Backend;
use crate::pipeline::raw::{RawBackend, Scalar};
use crate::pipeline::template::Template;

pub(super) const BACKEND_KINDS: [&str; 3] = ["local", "xl-deploy", "exec"];

/// The fields each kind takes besides `kind`.
fn fields_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "local" => &["target", "packages", "verify", "timeout"],
        "xl-deploy" => &[
            "url",
            "username",
            "password",
            "polling_interval",
            "insecure",
            "timeout",
        ],
        _ => &["deploy", "rollback", "current", "status", "timeout"],
    }
}

const DEFAULT_POLLING: Duration = Duration::from_secs(10);
/// Bounds of a backend's `timeout`, as for a task's.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

impl RawBackend {
    /// Every field present (besides `kind`) and where its value stands.
    fn present_fields(&self) -> Vec<(&'static str, Pos)> {
        let spans: [(&'static str, Option<Pos>); 13] = [
            ("target", self.target.as_ref().map(|v| v.referenced.into())),
            (
                "packages",
                self.packages.as_ref().map(|v| v.referenced.into()),
            ),
            ("verify", self.verify.as_ref().map(|v| v.referenced.into())),
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
            Some(list) => self.argv(list, &format!("{path}.{field}")).map(Some),
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
        Some(Backend::Local {
            target: target?,
            packages: packages?,
            verify: verify?,
            timeout: timeout?,
        })
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
        let timeout = self.backend_timeout(b, path);
        Some(Backend::XlDeploy {
            url: url?,
            username: username?,
            password: password?,
            polling_interval: polling_interval?,
            insecure_skip_tls_verify: b.insecure.as_ref().is_some_and(|i| i.value),
            timeout: timeout?,
        })
    }

    pub(super) fn exec_backend(
        &mut self,
        raw: &Spanned<RawBackend>,
        path: &str,
    ) -> Option<Backend> {
        let b = &raw.value;
        let deploy = match &b.deploy {
            Some(deploy) => self.argv(deploy, &format!("{path}.deploy")),
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
