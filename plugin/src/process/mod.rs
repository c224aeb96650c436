//! The one way relflow starts a process. Tasks, actions, health checks, backend commands and
//! the docker helpers all come here, so each of them gets every guarantee:
//!
//! - the argv is exec'd without a shell (a relative program with a slash is relative to the
//!   working folder);
//! - the child leads its own process group and has `PR_SET_PDEATHSIG(SIGKILL)`, and a small
//!   watchdog process ([`guard`]) SIGKILLs the whole group when the runner dies, so neither the
//!   child nor anything it started outlives a killed runner;
//! - stdout and stderr share one pipe, so lines keep the order the child wrote them; a line
//!   longer than [`MAX_LINE`] is split (never inside a secret the runner registered with
//!   [`set_cut_guard`]);
//! - the [`Interrupt`]'s deadline and stop flag are checked while it runs: the group gets
//!   SIGTERM, then SIGKILL after [`KILL_GRACE`];
//! - once the child has exited its whole group is SIGKILLed: no grandchild stays behind.
//!
//! [`run`] blocks the calling thread until the child is reaped. That thread forks the child
//! and the watchdog, and Linux ties the parent-death signal to the *thread* that forked, not
//! to the process: since the same thread waits, it cannot end while they run (a pool thread
//! of tokio's `spawn_blocking` included).

mod group;
mod guard;
mod lines;
mod spawn;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use group::{end_leftover_group, host_name, is_group_alive, is_running, start_time};
pub use lines::{CutGuard, set_cut_guard};

use crate::{BackendError, ErrorClass, Interrupt, StopCause};

/// Longest line kept whole; longer ones are split, so a child printing binary junk cannot make
/// the runner buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;
/// After SIGTERM at the deadline or on a stop, how long the group has before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// How often the stop flag is looked at while nothing else happens.
const TICK: Duration = Duration::from_millis(100);
/// How long output still read after the child exited (a process outside its group may hold
/// the pipe open; it cannot keep the caller waiting).
const DRAIN: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// The program and its arguments, exec'd without a shell.
    pub argv: Vec<String>,
    /// Working folder; the runner's when `None`.
    pub cwd: Option<PathBuf>,
    /// Added to the runner's environment.
    pub env: Vec<(String, String)>,
    /// `PATH` for the child, which is also where the program is looked up.
    pub search_path: Option<OsString>,
    /// The deadline and stop flag of the attempt the process belongs to.
    pub interrupt: Interrupt,
}

impl ProcessSpec {
    pub fn new(argv: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            argv,
            ..ProcessSpec::default()
        }
    }

    /// The program, for messages.
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or_default()
    }
}

/// Which process was started: the leader of its process group (pgid = pid), and its start
/// time in clock ticks after boot (from `/proc`), so a recorded pid is not mistaken for a
/// later process that got the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    pub started: Option<u64>,
}

impl ProcessId {
    /// Process `pid` as it is now (its start time read from `/proc`).
    pub fn of(pid: u32) -> ProcessId {
        ProcessId {
            pid,
            started: group::start_time(pid),
        }
    }
}

/// How the process ended.
#[derive(Debug)]
pub enum ProcessEnd {
    Exited(i32),
    Signalled(i32),
    /// Ended at the interrupt's deadline (which came from this timeout).
    TimedOut(Duration),
    /// Ended because the release was aborted or the runner was interrupted.
    Interrupted(StopCause),
    /// Could not start (or be waited for).
    SpawnFailed(std::io::Error),
}

impl ProcessEnd {
    pub fn is_success(&self) -> bool {
        matches!(self, ProcessEnd::Exited(0))
    }

    /// Why the process did not succeed, e.g. `./bin/smoke exited with code 3` or
    /// `sleep timed out after 3s`; `None` for exit code 0.
    pub fn failure(&self, program: &str) -> Option<String> {
        match self {
            ProcessEnd::Exited(0) => None,
            ProcessEnd::Exited(code) => Some(format!("{program} exited with code {code}")),
            ProcessEnd::Signalled(signal) => {
                Some(format!("{program} was killed by signal {signal}"))
            }
            ProcessEnd::TimedOut(after) => Some(format!(
                "{program} timed out after {}",
                crate::interrupt::format_secs(*after)
            )),
            ProcessEnd::Interrupted(StopCause::Abort) => Some(format!(
                "{program} was stopped because the release was aborted"
            )),
            ProcessEnd::Interrupted(_) => Some(format!(
                "{program} was stopped because the runner was interrupted"
            )),
            ProcessEnd::SpawnFailed(e) => Some(format!("cannot start {program}: {e}")),
        }
    }

    /// The error class of the failure: `timeout` at the deadline, `interrupted` on a stop,
    /// `not_found` for a missing program, `task_failed` otherwise; `None` for exit code 0.
    pub fn class(&self) -> Option<ErrorClass> {
        Some(match self {
            ProcessEnd::Exited(0) => return None,
            ProcessEnd::TimedOut(_) => ErrorClass::Timeout,
            ProcessEnd::Interrupted(_) => ErrorClass::Interrupted,
            ProcessEnd::SpawnFailed(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::NotFound
            }
            _ => ErrorClass::TaskFailed,
        })
    }

    /// The failure as a backend error, `what` naming the step (`deploy web 2.3: health
    /// check`), e.g. `deploy web 2.3: health check: `sh` timed out after 3s`. `None` for exit
    /// code 0.
    pub fn error(&self, what: &str, program: &str) -> Option<BackendError> {
        let message = self.failure(&format!("`{program}`"))?;
        let class = self.class()?;
        Some(BackendError::new(class, format!("{what}: {message}")))
    }
}

/// Runs the process to its end, handing each output line to `on_line` as it comes and the
/// started process to `on_start` (to record it) before any line. Blocks the calling thread.
pub fn run(
    spec: &ProcessSpec,
    on_start: &mut dyn FnMut(&ProcessId),
    on_line: &mut dyn FnMut(String),
) -> ProcessEnd {
    if let Some(cause) = spec.interrupt.cause() {
        return ended_by(cause, &spec.interrupt);
    }
    let started = Instant::now();
    let running = match spawn::start(spec) {
        Ok(running) => running,
        Err(e) => {
            tracing::debug!(target: "relflow::process", program = spec.program(), error = %e, "process could not start");
            return ProcessEnd::SpawnFailed(e);
        }
    };
    // The program only, never its arguments: they may hold a variable's value.
    tracing::debug!(target: "relflow::process", program = spec.program(), pid = running.id.pid, "process started");
    on_start(&running.id);
    let pid = running.id.pid;
    let end = run_started(spec, running, on_line);
    tracing::debug!(
        target: "relflow::process",
        program = spec.program(),
        pid,
        end = ?end,
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "process ended"
    );
    end
}

fn run_started(
    spec: &ProcessSpec,
    mut running: spawn::Running,
    on_line: &mut dyn FnMut(String),
) -> ProcessEnd {
    let mut lines = lines::LineBuffer::default();
    let mut on_bytes = |bytes: &[u8]| lines.push(bytes, on_line);
    let stopped = wait_for_exit(&mut running, &spec.interrupt, &mut on_bytes);
    let status = running.reap();
    running.drain(Instant::now() + DRAIN, &mut on_bytes);
    lines.finish(on_line);
    drop(running);
    if let Some(cause) = stopped {
        return ended_by(cause, &spec.interrupt);
    }
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => ProcessEnd::Exited(code),
                (None, Some(signal)) => ProcessEnd::Signalled(signal),
                (None, None) => ProcessEnd::Exited(-1),
            }
        }
        Err(e) => ProcessEnd::SpawnFailed(e),
    }
}

fn ended_by(cause: StopCause, interrupt: &Interrupt) -> ProcessEnd {
    match cause {
        StopCause::Deadline => ProcessEnd::TimedOut(interrupt.timeout().unwrap_or_default()),
        other => ProcessEnd::Interrupted(other),
    }
}

/// Relays output until the child has exited (not yet reaped); on the deadline or a stop sends
/// SIGTERM to the group, then SIGKILL after the grace. Returns the cause when it stopped it.
fn wait_for_exit(
    running: &mut spawn::Running,
    interrupt: &Interrupt,
    on_bytes: &mut dyn FnMut(&[u8]),
) -> Option<StopCause> {
    let mut stopping: Option<(StopCause, Instant)> = None;
    let mut killed = false;
    loop {
        if running.has_exited() {
            return stopping.map(|(cause, _)| cause);
        }
        let now = Instant::now();
        let mut wake = now + TICK;
        match stopping {
            None => match interrupt.cause() {
                Some(cause) => {
                    running.signal_group(libc::SIGTERM);
                    stopping = Some((cause, now));
                    wake = now + KILL_GRACE.min(TICK);
                }
                None => {
                    if let Some(deadline) = interrupt.deadline() {
                        wake = wake.min(deadline);
                    }
                }
            },
            Some((_, since)) if !killed => {
                if now >= since + KILL_GRACE {
                    running.signal_group(libc::SIGKILL);
                    killed = true;
                } else {
                    wake = wake.min(since + KILL_GRACE);
                }
            }
            Some(_) => {}
        }
        running.wait_for_output(wake, on_bytes);
    }
}

/// Renders an argv for the log: `$ helm upgrade --install web chart`.
pub fn show(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|word| {
            if !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!("$ {}", words.join(" "))
}
