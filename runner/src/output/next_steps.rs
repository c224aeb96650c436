//! What a person can type next for a release as it stands: exact, copy-pasteable commands,
//! each with why. Shown at the end of every drive, by `status`, and after a refused command.

use serde::Serialize;

use crate::output::view::ReleaseView;
use crate::store::{ReleaseStatus, TaskStatus};

/// One command that applies now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStep {
    pub command: String,
    pub why: String,
}

fn step(command: String, why: &str) -> NextStep {
    NextStep {
        command,
        why: why.to_string(),
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,/:=@+%#".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The commands that apply to `view`'s release now, most likely first.
pub fn for_release(view: &ReleaseView) -> Vec<NextStep> {
    let r = &view.release;
    let id = shell_word(&r.id);
    let mut steps = Vec::new();
    match r.status {
        ReleaseStatus::Failed => {
            for (phase, task) in view.tasks() {
                let name = shell_word(&task.run.task);
                match task.run.status {
                    TaskStatus::Failed => {
                        steps.push(step(
                            format!("relflow logs {id} --task {name}"),
                            "read what the task printed",
                        ));
                        steps.push(step(
                            format!("relflow retry {id} --task {name}"),
                            "run the task once more, then go on",
                        ));
                    }
                    TaskStatus::RolledBack => steps.push(step(
                        format!("relflow logs {id} --task {name}"),
                        "read what the task printed and how it was rolled back",
                    )),
                    _ => continue,
                }
                steps.push(step(
                    format!(
                        "relflow restart-phase {id} {}{}",
                        shell_word(&phase.run.phase),
                        var_placeholders(view)
                    ),
                    "fix forward: run the phase again with new values",
                ));
                steps.push(step(
                    format!("relflow skip {id} --task {name}"),
                    "leave the task as it is and go on",
                ));
            }
            let deployed = view
                .tasks()
                .any(|(_, t)| t.run.kind == "deploy" && t.run.attempts > 0);
            if deployed {
                steps.push(step(
                    format!("relflow abort {id} --rollback"),
                    "give up: roll back what the release deployed",
                ));
                steps.push(step(
                    format!("relflow abort {id}"),
                    "give up, rolling back nothing",
                ));
            } else {
                steps.push(step(format!("relflow abort {id}"), "give up"));
            }
        }
        ReleaseStatus::Paused => {
            let waiting: Vec<&str> = view
                .tasks()
                .filter(|(_, t)| t.run.status == TaskStatus::WaitingApproval)
                .map(|(_, t)| t.run.task.as_str())
                .collect();
            for task in &waiting {
                let name = shell_word(task);
                steps.push(step(
                    format!("relflow approve {id} --task {name} --comment '...'"),
                    "approve and go on",
                ));
                steps.push(step(
                    format!("relflow reject {id} --task {name} --comment '...'"),
                    "reject: the task fails and the release halts",
                ));
            }
            if waiting.is_empty() {
                steps.push(step(format!("relflow resume {id}"), "continue the release"));
            }
            steps.push(step(format!("relflow abort {id}"), "end the release here"));
        }
        ReleaseStatus::Running | ReleaseStatus::Planned if view.runner_pid.is_none() => {
            steps.push(step(
                format!("relflow resume {id}"),
                "continue the release (its runner is gone)",
            ));
            steps.push(step(
                format!("relflow pause {id}"),
                "record the interrupted attempts and leave it paused",
            ));
        }
        ReleaseStatus::Running | ReleaseStatus::Planned => {
            steps.push(step(
                format!("relflow status {id} --watch"),
                "follow it to its end",
            ));
            steps.push(step(
                format!("relflow pause {id}"),
                "start no new task; running ones finish",
            ));
            steps.push(step(format!("relflow abort {id}"), "stop it now"));
        }
        ReleaseStatus::Completed => {
            let deployed = view
                .tasks()
                .any(|(_, t)| t.run.kind == "deploy" && t.run.status == TaskStatus::Completed);
            if deployed {
                steps.push(step(
                    format!("relflow rollback {id}"),
                    "put back what every deployment replaced (--component C for some)",
                ));
            }
        }
        ReleaseStatus::Aborted | ReleaseStatus::RolledBack => {
            steps.push(step(
                format!(
                    "relflow run {}{}",
                    shell_word(&r.pipeline_file),
                    var_placeholders(view)
                ),
                "start a new release",
            ));
        }
    }
    dedup(steps)
}

/// ` --var version=...` for each of the release's variables: the values a person changes.
fn var_placeholders(view: &ReleaseView) -> String {
    view.release
        .variables
        .keys()
        .map(|k| format!(" --var {}=...", shell_word(k)))
        .collect()
}

/// Keeps the first of equal commands (several failed tasks share `abort`).
fn dedup(steps: Vec<NextStep>) -> Vec<NextStep> {
    let mut seen = std::collections::HashSet::new();
    steps
        .into_iter()
        .filter(|s| seen.insert(s.command.clone()))
        .collect()
}

/// The steps as lines: `  relflow retry x --task y    # run the task once more, then go on`.
pub fn render(steps: &[NextStep]) -> String {
    let width = steps.iter().map(|s| s.command.len()).max().unwrap_or(0);
    steps
        .iter()
        .map(|s| format!("  {:<width$}   # {}\n", s.command, s.why))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_a_shell_needs_it() {
        assert_eq!(shell_word("petportal-2"), "petportal-2");
        assert_eq!(shell_word("deploy#2"), "deploy#2");
        assert_eq!(shell_word("my file.yaml"), "'my file.yaml'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
