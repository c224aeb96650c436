//! What each target runs, for people: the one-line form the end-of-run summary prints
//! (`prod: PetPortal 1.0 (restored by rollback)`), and the tables of `relflow targets`.

use std::fmt::Write;

use crate::output::time;
use crate::store::{ChangeKind, TargetChangeRecord, TargetNow};

/// The name a target goes by in one line: the backend, and for XL Deploy its environment
/// (one server holds many).
fn label(change: &TargetChangeRecord) -> String {
    if change.backend_kind == "xl-deploy" {
        format!("{} {}", change.backend, change.target)
    } else {
        change.backend.clone()
    }
}

/// `petportal-2 deploy#2/deploy-petportal`
fn task_of(change: &TargetChangeRecord) -> String {
    format!("{} {}/{}", change.release, change.phase, change.task)
}

/// `web, api back at 1.0` (or `removed`, when the deployment added them).
fn reverted(components: &[String], runs: Option<&str>) -> String {
    match runs {
        Some(version) => format!("{} back at {version}", components.join(", ")),
        None => format!("{} removed", components.join(", ")),
    }
}

/// One line: what `now`'s target runs and why, e.g. `prod: PetPortal 1.0 (restored by
/// rollback)` or `prod: PetPortal 2.3 (deployed by petportal-2 deploy#2/deploy-petportal)`.
pub fn now_line(now: &TargetNow) -> String {
    let last = &now.last_change;
    let app = &last.application;
    let what = match (last.change, now.version()) {
        (ChangeKind::Deployed, Some(version)) => {
            format!("{app} {version} (deployed by {})", task_of(last))
        }
        (ChangeKind::RolledBack, Some(version)) => {
            format!("{app} {version} (restored by rollback)")
        }
        (ChangeKind::RolledBack, None) => {
            format!("nothing (first deployment of {app} undone by rollback)")
        }
        (ChangeKind::ComponentsRolledBack, Some(version)) => format!(
            "{app} {version} with {} (components rolled back)",
            reverted(&now.components_rolled_back, last.components_runs.as_deref())
        ),
        (ChangeKind::Failed, Some(version)) => format!(
            "{app} {version}, state unknown (the deployment by {} failed and was not rolled back)",
            task_of(last)
        ),
        (ChangeKind::Undeployed, _) | (_, None) => {
            format!("nothing ({app} undeployed by {})", task_of(last))
        }
    };
    format!("{}: {what}", label(last))
}

/// The `by` column of `relflow targets`: the deployment that delivered what runs, and the
/// rollback that brought it back.
fn now_by(now: &TargetNow) -> String {
    let last = &now.last_change;
    let ordered = last
        .actor
        .as_deref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    match last.change {
        ChangeKind::Deployed => task_of(last),
        ChangeKind::Failed => format!("{}: failed, not rolled back", task_of(last)),
        ChangeKind::Undeployed => format!("undeployed by {}", task_of(last)),
        ChangeKind::RolledBack => {
            let restored = format!("restored by rollback of {}{ordered}", last.release);
            match (&last.runs, &last.runs_from) {
                (None, _) => format!(
                    "first deployment undone by rollback of {}{ordered}",
                    last.release
                ),
                (Some(_), Some(from)) => {
                    format!("{} {}/{}, {restored}", from.release, from.phase, from.task)
                }
                (Some(_), None) => format!("deployed outside relflow, {restored}"),
            }
        }
        ChangeKind::ComponentsRolledBack => format!(
            "{}; {} by rollback of {}{ordered}",
            task_of(last),
            reverted(&now.components_rolled_back, last.components_runs.as_deref()),
            last.release
        ),
    }
}

/// `targets now:` and a `now_line` per target: what the end of a drive and `status` show.
pub fn now_block(targets: &[TargetNow]) -> String {
    let mut out = String::from("targets now:\n");
    for target in targets {
        out.push_str(&format!("  {}\n", now_line(target)));
    }
    out
}

/// `relflow targets`: one line per target and application.
pub fn render_now(targets: &[TargetNow]) -> String {
    if targets.is_empty() {
        return "no deployment recorded yet: `relflow run` records what each deploy task delivers\n"
            .to_string();
    }
    let mut rows = vec![header(&[
        "backend",
        "target",
        "application",
        "version",
        "since",
        "by",
    ])];
    for now in targets {
        let last = &now.last_change;
        rows.push(vec![
            last.backend.clone(),
            last.target.clone(),
            last.application.clone(),
            match (now.version(), now.is_state_unknown) {
                (Some(version), true) => format!("{version}?"),
                (Some(version), false) => version.to_string(),
                (None, _) => "nothing".to_string(),
            },
            time::rfc3339_ms(last.at),
            now_by(now),
        ]);
    }
    table(&rows)
}

/// The `change` column of `relflow targets --history`.
fn change_text(change: &TargetChangeRecord) -> String {
    let runs = change.runs.as_deref().unwrap_or("nothing");
    match change.change {
        ChangeKind::Deployed => format!("deployed {}", change.version),
        ChangeKind::Undeployed => format!("undeployed {}", change.version),
        ChangeKind::Failed => format!("failed deploying {}: state unknown", change.version),
        ChangeKind::RolledBack => format!("rolled back {}, runs {runs}", change.version),
        ChangeKind::ComponentsRolledBack => format!(
            "rolled back {} of {}: {}",
            change.components.join(", "),
            change.version,
            change
                .components_runs
                .as_deref()
                .map_or("removed".to_string(), |v| format!("back at {v}"))
        ),
    }
}

/// `relflow targets --history`: every change, newest first.
pub fn render_history(history: &[TargetChangeRecord]) -> String {
    if history.is_empty() {
        return "no deployment recorded yet: `relflow run` records what each deploy task delivers\n"
            .to_string();
    }
    let mut rows = vec![header(&[
        "at",
        "backend",
        "target",
        "application",
        "change",
        "by",
    ])];
    for change in history {
        let mut by = task_of(change);
        if let Some(job) = change.rollback_job {
            let _ = write!(by, " (rollback job {job})");
        }
        if let Some(actor) = &change.actor {
            let _ = write!(by, " by {actor}");
        }
        rows.push(vec![
            time::rfc3339_ms(change.at),
            change.backend.clone(),
            change.target.clone(),
            change.application.clone(),
            change_text(change),
            by,
        ]);
    }
    table(&rows)
}

fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Columns padded to their widest cell, two spaces apart; the last is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;

    fn change(kind: ChangeKind, version: &str, runs: Option<&str>) -> TargetChangeRecord {
        TargetChangeRecord {
            id: 1,
            backend: "prod".into(),
            backend_kind: "local".into(),
            target: "/srv/petportal".into(),
            application: "PetPortal".into(),
            version: version.into(),
            change: kind,
            components: Vec::new(),
            runs: runs.map(String::from),
            components_runs: None,
            runs_from: None,
            release: "petportal-2".into(),
            phase: "deploy#2".into(),
            task: "deploy-petportal".into(),
            rollback_job: None,
            actor: None,
            at: 0,
            target_key: "/srv/petportal".into(),
            task_run: 7,
        }
    }

    fn now(last: TargetChangeRecord) -> TargetNow {
        TargetNow {
            backend: last.backend.clone(),
            backend_kind: last.backend_kind.clone(),
            target: last.target.clone(),
            application: last.application.clone(),
            version: last.runs.clone(),
            is_state_unknown: last.change == ChangeKind::Failed,
            since: last.at,
            deployed_by: last.runs_from.clone(),
            components_rolled_back: last.components.clone(),
            components_version: last.components_runs.clone(),
            last_change: last,
        }
    }

    #[test]
    fn one_line_says_what_runs_and_why() {
        let deployed = now(change(ChangeKind::Deployed, "2.3", Some("2.3")));
        assert_eq!(
            now_line(&deployed),
            "prod: PetPortal 2.3 (deployed by petportal-2 deploy#2/deploy-petportal)"
        );
        let restored = now(change(ChangeKind::RolledBack, "2.2", Some("1.0")));
        assert_eq!(
            now_line(&restored),
            "prod: PetPortal 1.0 (restored by rollback)"
        );
        let undone = now(change(ChangeKind::RolledBack, "1.0", None));
        assert_eq!(
            now_line(&undone),
            "prod: nothing (first deployment of PetPortal undone by rollback)"
        );
        let mut partial = change(ChangeKind::ComponentsRolledBack, "2.3", Some("2.3"));
        partial.components = vec!["web".into()];
        partial.components_runs = Some("1.0".into());
        assert_eq!(
            now_line(&now(partial)),
            "prod: PetPortal 2.3 with web back at 1.0 (components rolled back)"
        );
        let mut xld = change(ChangeKind::Deployed, "2.2", Some("2.2"));
        xld.backend = "xld".into();
        xld.backend_kind = "xl-deploy".into();
        xld.target = "Environments/Prod".into();
        assert!(now_line(&now(xld)).starts_with("xld Environments/Prod: PetPortal 2.2 "));
    }

    #[test]
    fn the_table_names_the_deployment_a_rollback_brought_back() {
        let mut restored = change(ChangeKind::RolledBack, "2.3", Some("1.0"));
        restored.runs_from = Some(Origin {
            release: "petportal-1".into(),
            phase: "deploy".into(),
            task: "deploy-petportal".into(),
            at: 0,
        });
        restored.actor = Some("alice".into());
        let text = render_now(&[now(restored)]);
        assert!(
            text.contains(
                "petportal-1 deploy/deploy-petportal, restored by rollback of petportal-2 by alice"
            ),
            "{text}"
        );
        assert!(text.starts_with("backend  target"), "{text}");
    }
}
