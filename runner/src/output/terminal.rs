//! The terminal view of a running release: a live spinner per running task on a TTY,
//! plain lines otherwise, nothing with `--json` (the caller prints the final document).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::event::Event;
use crate::output::time::elapsed;
use crate::store::{ReleaseStatus, TaskStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalMode {
    /// Spinners redrawn in place (stdout is a TTY).
    Live,
    /// One line per change, for CI logs and pipes.
    Plain,
    /// Nothing (`--json`).
    Quiet,
}

impl TerminalMode {
    pub fn detect(json: bool) -> TerminalMode {
        if json {
            TerminalMode::Quiet
        } else if std::io::stdout().is_terminal() {
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

pub struct Terminal {
    mode: TerminalMode,
    multi: MultiProgress,
    bars: HashMap<i64, ProgressBar>,
    started: HashMap<i64, Instant>,
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
            bars: HashMap::new(),
            started: HashMap::new(),
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

    pub fn write(&mut self, release: &str, event: &Event) {
        if self.mode == TerminalMode::Quiet {
            return;
        }
        match event {
            // Where a release ends is told by the summary printed after the drive.
            Event::ReleaseStatus { status, .. } if *status == ReleaseStatus::Running => {
                self.line(format!("release {release} running"));
            }
            Event::PhaseStatus { phase, status, .. } => {
                self.line(format!("phase {} {status}", phase.label))
            }
            Event::TaskStatus {
                task,
                status,
                error,
            } => {
                let name = format!("[{}] {}", task.phase.label, task.task);
                if *status == TaskStatus::Running {
                    self.started.insert(task.id, Instant::now());
                    self.start_spinner(task.id, &name);
                    if self.mode == TerminalMode::Plain {
                        self.line(format!("  {name}: running"));
                    }
                    return;
                }
                if let Some(bar) = self.bars.remove(&task.id) {
                    bar.finish_and_clear();
                }
                let took = self
                    .started
                    .remove(&task.id)
                    .map(|t| format!(" in {}", elapsed(t.elapsed())))
                    .unwrap_or_default();
                let why = error
                    .as_ref()
                    .map(|e| format!(": {}: {}", e.class, e.message))
                    .unwrap_or_default();
                self.line(format!("  {name}: {status}{took}{why}"));
            }
            Event::Decision {
                task,
                decision,
                rule,
                detail,
            } => {
                let detail = detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                self.line(format!(
                    "  [{}] {}: decision {decision}{detail} by {rule}",
                    task.phase.label, task.task
                ));
            }
            Event::PhaseRestarted {
                runs, by, values, ..
            } => self.line(format!(
                "restarting phases: {} {values} ({by})",
                runs.join(", ")
            )),
            Event::AttemptStarted { task, attempt } if *attempt > 1 => {
                if let Some(bar) = self.bars.get(&task.id) {
                    bar.set_message(format!(
                        "[{}] {} (attempt {attempt})",
                        task.phase.label, task.task
                    ));
                }
            }
            _ => {}
        }
    }

    fn start_spinner(&mut self, id: i64, name: &str) {
        if self.mode != TerminalMode::Live {
            return;
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.insert(id, bar);
    }

    /// Clears any spinner left (e.g. when the release halts mid-group).
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
    }
}
