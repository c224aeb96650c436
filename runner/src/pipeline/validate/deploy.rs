//! Validation of `deploy:` and `undeploy:` tasks against the kind of the backend they name.

use serde_saphyr::Spanned;

use super::checks::{did_you_mean, one_of};
use super::{Checker, Pos};
use crate::pipeline::model::{DeploySpec, XlOptions};
use crate::pipeline::raw::{RawDeploy, Scalar};

impl Checker<'_> {
    pub(super) fn deploy(&mut self, raw: &Spanned<RawDeploy>, path: &str) -> Option<DeploySpec> {
        let deploy = &raw.value;
        let Some(backend) = &deploy.backend else {
            self.error(raw.referenced, format!("{path}: `backend` is required"));
            return None;
        };
        let name = &backend.value.0;
        let kind = match self.backend_kinds.get(name).copied() {
            Some(Some(kind)) => kind,
            Some(None) => {
                // The backend's own error says what is wrong with its kind; checking this task
                // against a kind nobody knows would only add false errors.
                if let Some(package) = &deploy.package {
                    self.template(package);
                }
                return None;
            }
            None => {
                let declared: Vec<&str> = self.backend_kinds.keys().map(String::as_str).collect();
                let help = did_you_mean(name, declared.iter().copied()).unwrap_or_else(|| {
                    if declared.is_empty() {
                        "no backends are declared under `backends:`".to_string()
                    } else {
                        format!("declared backends are {}", one_of(&declared))
                    }
                });
                self.error_with_help(
                    backend.referenced,
                    format!("{path}.backend: unknown backend `{name}`"),
                    help,
                );
                return None;
            }
        };
        let package = match &deploy.package {
            Some(package) => self.template(package),
            None => {
                self.error(raw.referenced, format!("{path}: `package` is required"));
                None
            }
        };
        let environment = match &deploy.environment {
            Some(env) => self.template(env).map(Some),
            None if kind == "xl-deploy" => {
                self.error(
                    raw.referenced,
                    format!("{path}: `environment` is required with an xl-deploy backend"),
                );
                None
            }
            None => Some(None),
        };
        let components = self.local_only(deploy.components.as_deref(), kind, path, "components");
        let verify = match &deploy.verify {
            Some(verify) if kind != "local" => {
                self.not_for_kind(verify.referenced.into(), path, "verify", kind);
                None
            }
            Some(verify) => {
                self.check_program(&verify.value, &format!("{path}.verify"), None);
                self.with_deploy_variables(|c| c.argv(verify, &format!("{path}.verify")).map(Some))
            }
            None => Some(None),
        };
        let xl = self.xl_options(deploy, kind, path);
        Some(DeploySpec {
            backend: name.clone(),
            package: package?,
            environment: environment?,
            components: components?,
            verify: verify?,
            xl: xl?,
        })
    }

    /// The XL Deploy task options; refused on other backends.
    fn xl_options(&mut self, deploy: &RawDeploy, kind: &str, path: &str) -> Option<XlOptions> {
        let set: [(&str, Option<Pos>); 5] = [
            (
                "orchestrators",
                deploy.orchestrators.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "deployed_application_properties",
                deploy
                    .deployed_application_properties
                    .as_ref()
                    .map(|v| v.referenced.into()),
            ),
            (
                "fail_on_pause",
                deploy.fail_on_pause.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "polling_budget",
                deploy.polling_budget.as_ref().map(|v| v.referenced.into()),
            ),
            (
                "fail_if_missing",
                deploy.fail_if_missing.as_ref().map(|v| v.referenced.into()),
            ),
        ];
        if kind != "xl-deploy" {
            let mut ok = true;
            for (key, at) in set {
                if let Some(at) = at {
                    self.error(
                        at,
                        format!("{path}.{key}: `{key}` is only for an xl-deploy backend, and this one is `{kind}`"),
                    );
                    ok = false;
                }
            }
            return ok.then(XlOptions::default);
        }
        let defaults = XlOptions::default();
        Some(XlOptions {
            orchestrators: deploy
                .orchestrators
                .as_ref()
                .map(|list| list.value.iter().map(|s| s.value.0.clone()).collect())
                .unwrap_or_default(),
            deployed_application_properties: deploy
                .deployed_application_properties
                .as_ref()
                .map(|map| {
                    map.value
                        .iter()
                        .map(|(k, v)| (k.clone(), v.value.0.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            fail_on_pause: deploy
                .fail_on_pause
                .as_ref()
                .map_or(defaults.fail_on_pause, |b| b.value),
            polling_budget: deploy.polling_budget.as_ref().map_or(0, |n| n.value),
            fail_if_missing: deploy
                .fail_if_missing
                .as_ref()
                .map_or(defaults.fail_if_missing, |b| b.value),
        })
    }

    fn local_only(
        &mut self,
        components: Option<&[Spanned<Scalar>]>,
        kind: &str,
        path: &str,
        key: &str,
    ) -> Option<Vec<String>> {
        let items = components.unwrap_or_default();
        if kind != "local"
            && let Some(first) = items.first()
        {
            self.not_for_kind(first.referenced.into(), path, key, kind);
            return None;
        }
        Some(items.iter().map(|c| c.value.0.clone()).collect())
    }

    fn not_for_kind(&mut self, at: Pos, path: &str, key: &str, kind: &str) {
        self.error(
            at,
            format!("{path}.{key}: `{key}` is only for a local backend, and `{kind}` is not one"),
        );
    }
}
