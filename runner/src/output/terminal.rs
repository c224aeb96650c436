//! The terminal view of a running release: a live spinner per running task on an attended
//! terminal, plain lines otherwise (pipes, CI, `TERM=dumb` or unset), nothing with `--json`
//! (the caller prints the final document). Both views show every attempt's failure, each
//! decision with its rule, retry waits with their delay, and the rollback steps.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::engine::event::{Event, FailureInfo, TaskRef};
use crate::output::style;
use crate::output::time::{clock, elapsed};
use crate::store::{ReleaseStatus, Store, TaskStatus, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalMode {
    /// Spinners redrawn in place (stdout is an attended terminal).
    Live,
    /// One line per change, for CI logs, pipes and terminals that cannot redraw.
    Plain,
    /// Nothing (`--json`).
    Quiet,
}

impl TerminalMode {
    /// `Live` only on a terminal that can redraw: with `TERM` unset or `dumb` indicatif hides
    /// its output (and every line printed through it), so such a terminal gets plain lines.
    pub fn detect(json: bool) -> TerminalMode {
        if json {
            TerminalMode::Quiet
        } else if std::io::stdout().is_terminal() && !is_dumb() {
            TerminalMode::Live
        } else {
            TerminalMode::Plain
        }
    }
}

/// A terminal that cannot redraw in place (`TERM=dumb` or unset): it gets plain lines.
pub fn is_dumb() -> bool {
    std::env::var("TERM").map_or(true, |term| term.is_empty() || term == "dumb")
}

/// What the store knows of a task run when its status changes: its own times and attempts,
/// so durations survive retries and resumed drives.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskFacts {
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub attempts: i64,
}

/// What the view remembers of a task between events.
#[derive(Default)]
struct TaskLine {
    bar: Option<ProgressBar>,
    /// The rule of the retry decision whose wait comes next.
    retry_rule: Option<String>,
    /// Attempts the policy allows, once a retry said so.
    of: Option<u32>,
    /// The last failure shown, so the task's end does not repeat it.
    shown_error: Option<FailureInfo>,
}

pub struct Terminal {
    mode: TerminalMode,
    multi: MultiProgress,
    tasks: HashMap<i64, TaskLine>,
}

fn name_of(task: &TaskRef) -> String {
    format!("[{}] {}", task.phase.label, task.task)
}

impl Terminal {
    pub fn new(mode: TerminalMode) -> Terminal {
        let multi = match mode {
            TerminalMode::Live => MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            _ => MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        };
        Terminal {
            mode,
            multi,
            tasks: HashMap::new(),
        }
    }

    fn line(&self, text: String) {
        match self.mode {
            TerminalMode::Live => {
                let _ = self.multi.println(text);
            }
            TerminalMode::Plain => println!("{text}"),
            TerminalMode::Quiet => {}
        }
    }

    fn task_line(&self, task: &TaskRef, text: String) {
        self.line(format!("  {}: {text}", name_of(task)));
    }

    /// Shows `event`, reading the task's own times from `store` where a line needs them.
    pub fn write_with_store(&mut self, release: &str, event: &Event, store: &Store) {
        if self.mode == TerminalMode::Quiet {
            return;
        }
        // Read only where a line needs the task's times: its end, and a spinner's first draw.
        let facts = match event {
            Event::TaskStatus { task, status, .. } if *status != TaskStatus::Running => {
                facts_of(store, release, task.id)
            }
            Event::AttemptStarted { task, .. }
                if self.mode == TerminalMode::Live
                    && self.tasks.get(&task.id).is_none_or(|t| t.bar.is_none()) =>
            {
                facts_of(store, release, task.id)
            }
            _ => None,
        };
        self.write(release, event, facts);
    }

    /// Shows `event`; `facts` are the task's stored times when it is a task's status.
    pub fn write(&mut self, release: &str, event: &Event, facts: Option<TaskFacts>) {
        if self.mode == TerminalMode::Quiet {
            return;
        }
        match event {
            // Where a release ends is told by the summary printed after the drive.
            Event::ReleaseStatus { status, .. } if *status == ReleaseStatus::Running => {
                self.line(format!(
                    "release {} {}",
                    style::bold(release),
                    style::status(status.as_str())
                ));
            }
            Event::PhaseStatus { phase, status, .. } => self.line(format!(
                "phase {} {}",
                phase.label,
                style::status(status.as_str())
            )),
            Event::TaskStatus {
                task,
                status,
                error,
            } => self.task_status(task, *status, error.as_ref(), facts.unwrap_or_default()),
            Event::AttemptStarted { task, attempt } => {
                self.attempt_started(task, *attempt, facts.unwrap_or_default())
            }
            Event::AttemptFinished {
                task,
                attempt,
                error: Some(error),
                ..
            } => {
                self.task_line(
                    task,
                    format!(
                        "attempt {attempt} {}: {}",
                        style::status("failed"),
                        style::error(&format!("{}: {}", error.class, error.message))
                    ),
                );
                self.tasks.entry(task.id).or_default().shown_error = Some(error.clone());
            }
            Event::Decision {
                task,
                decision,
                rule,
                detail,
            } => self.decision(task, decision, rule, detail.as_deref()),
            Event::RetryScheduled {
                task,
                next_attempt,
                of,
                delay_ms,
                at_ms,
            } => self.retry_scheduled(task, *next_attempt, *of, *delay_ms, *at_ms),
            Event::RollbackOutput { task, line } if line.starts_with("step ") => {
                self.task_line(task, format!("rollback {}", paint_outcome(line)));
            }
            Event::ReleaseDecision {
                decision,
                rule,
                detail,
            } => {
                let detail = detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                self.line(format!("release {release}: {decision} by {rule}{detail}"));
            }
            Event::PhaseRestarted {
                runs, by, values, ..
            } => self.line(format!(
                "restarting phases: {} {values} ({by})",
                runs.join(", ")
            )),
            _ => {}
        }
    }

    fn decision(&mut self, task: &TaskRef, decision: &str, rule: &str, detail: Option<&str>) {
        match decision {
            // Shown with its delay and attempt once scheduled (`RetryScheduled`).
            "retry" => self.tasks.entry(task.id).or_default().retry_rule = Some(rule.to_string()),
            // Shown as the step's line of rollback.log (`RollbackOutput`).
            "rollback_step" => {}
            _ => {
                let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
                self.task_line(
                    task,
                    format!("decision {} by {rule}{detail}", style::bold(decision)),
                );
            }
        }
    }

    fn retry_scheduled(
        &mut self,
        task: &TaskRef,
        next: u32,
        of: Option<u32>,
        delay_ms: u64,
        at_ms: i64,
    ) {
        let line = self.tasks.entry(task.id).or_default();
        line.of = of.or(line.of);
        let of_text = line.of.map(|n| format!(" of {n}")).unwrap_or_default();
        let rule = line
            .retry_rule
            .take()
            .map(|r| format!(" (by {r})"))
            .unwrap_or_default();
        let wait = Duration::from_millis(delay_ms);
        if let Some(bar) = &line.bar {
            let deadline = Instant::now() + wait;
            bar.set_style(waiting_style(deadline));
            bar.set_message(format!(
                "{} waiting for attempt {next}{of_text}",
                name_of(task)
            ));
        }
        self.task_line(
            task,
            format!(
                "{} in {} at {}, attempt {next}{of_text}{rule}",
                style::status("retrying"),
                elapsed(wait),
                clock(at_ms)
            ),
        );
    }

    fn attempt_started(&mut self, task: &TaskRef, attempt: u32, facts: TaskFacts) {
        let name = name_of(task);
        let of = self.tasks.get(&task.id).and_then(|t| t.of);
        let which = match (attempt, of) {
            (1, _) => String::new(),
            (n, Some(of)) => format!(" (attempt {n} of {of})"),
            (n, None) => format!(" (attempt {n})"),
        };
        if self.mode == TerminalMode::Live {
            let bar = self.spinner(task.id, facts);
            bar.set_style(running_style());
            bar.set_message(format!("{name}{which}"));
        } else {
            let running = style::status("running");
            self.line(format!("  {name}: {running}{which}"));
        }
    }

    fn task_status(
        &mut self,
        task: &TaskRef,
        status: TaskStatus,
        error: Option<&FailureInfo>,
        facts: TaskFacts,
    ) {
        if status == TaskStatus::Running {
            // Each attempt's start is shown by `AttemptStarted`, with its number.
            return;
        }
        let line = self.tasks.remove(&task.id).unwrap_or_default();
        if let Some(bar) = &line.bar {
            bar.finish_and_clear();
        }
        let took = match (facts.started_at, facts.ended_at) {
            (Some(start), Some(end)) if end >= start => {
                let took = elapsed(Duration::from_millis(
                    u64::try_from(end - start).unwrap_or(0),
                ));
                match facts.attempts {
                    n if n > 1 => format!(" after {n} attempts in {took}"),
                    _ => format!(" in {took}"),
                }
            }
            _ => String::new(),
        };
        // The error was shown with the attempt that failed; say it again only if it is new.
        let why = error
            .filter(|e| line.shown_error.as_ref() != Some(*e))
            .map(|e| format!(": {}", style::error(&format!("{}: {}", e.class, e.message))))
            .unwrap_or_default();
        let text = format!(
            "{}{}{why}",
            style::status(status.as_str()),
            style::dim(&took)
        );
        if matches!(
            status,
            TaskStatus::WaitingLock | TaskStatus::WaitingApproval | TaskStatus::WaitingRetry
        ) && self.mode == TerminalMode::Live
        {
            // Still waiting: keep a line on screen that says so.
            let bar = self.spinner(task.id, facts);
            bar.set_style(running_style());
            bar.set_message(format!("{} {}", name_of(task), status.as_str()));
        }
        self.task_line(task, text);
    }

    /// The spinner of a task, made when its first attempt of this drive starts; its clock
    /// counts from the task's own start (a resumed task keeps the time it already ran).
    fn spinner(&mut self, id: i64, facts: TaskFacts) -> ProgressBar {
        let entry = self.tasks.entry(id).or_default();
        if let Some(bar) = &entry.bar {
            return bar.clone();
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        if let Some(start) = facts.started_at {
            let ran = Duration::from_millis(u64::try_from(now_ms() - start).unwrap_or(0));
            // `set_elapsed` cannot reach before the machine's boot (indicatif panics then).
            if Instant::now().checked_sub(ran).is_some() {
                bar.set_elapsed(ran);
            }
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        entry.bar = Some(bar.clone());
        bar
    }

    /// Clears any spinner left (e.g. when the release halts mid-group).
    pub fn finish(&mut self) {
        for (_, line) in self.tasks.drain() {
            if let Some(bar) = line.bar {
                bar.finish_and_clear();
            }
        }
    }
}

fn facts_of(store: &Store, release: &str, task_run: i64) -> Option<TaskFacts> {
    let runs = store.task_runs(release).ok()?;
    let run = runs.into_iter().find(|t| t.id == task_run)?;
    Some(TaskFacts {
        started_at: run.started_at,
        ended_at: run.ended_at,
        attempts: run.attempts,
    })
}

fn running_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `[deploy] flaky waiting for attempt 3 of 4 (in 6s)`: the time left, counted down.
fn waiting_style(deadline: Instant) -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {msg} (in {left})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "left",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = write!(w, "{}s", left.as_millis().div_ceil(1000));
            },
        )
}

/// `step 1: backend rollback of task web: ok` with its outcome coloured.
fn paint_outcome(line: &str) -> String {
    if let Some((head, _)) = line.split_once(": failed: ") {
        let rest = &line[head.len() + 2..];
        return format!("{head}: {}", style::error(rest));
    }
    match line.strip_suffix(": ok") {
        Some(head) => format!("{head}: {}", style::status("ok")),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_step_outcomes_keep_their_words() {
        assert_eq!(
            paint_outcome("step 1: backend rollback of task web: ok"),
            "step 1: backend rollback of task web: ok"
        );
        assert_eq!(
            paint_outcome("step 2: action `x` of task b: failed: x exited with code 7"),
            "step 2: action `x` of task b: failed: x exited with code 7"
        );
    }
}
