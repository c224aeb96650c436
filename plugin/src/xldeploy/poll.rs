//! Waits for a task to settle: polls fast at first and backs off to `polling_interval`, so a
//! short deployment is seen finishing promptly and a long one costs few requests. One log line
//! per state change. The wait ends early when the attempt must stop (its deadline, an abort,
//! a signal): the flag is checked at every poll and at least every 200 ms in between.

use std::time::{Duration, Instant};

use super::client::{Call, Client};
use super::task::{Phase, TaskState};
use super::xml;
use crate::backend::{BackendError, LogSink};
use crate::{ErrorClass, Interrupt, StopCause};

/// The shortest wait between two polls (unless `polling_interval` is shorter).
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(150);

/// The longest a wait sleeps without looking at the attempt's stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// How long to wait and how often to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PollSettings {
    /// The longest wait between two polls.
    pub interval: Duration,
    /// Polls at most this many times; 0 = no limit (until the attempt's deadline, if any).
    pub budget: u32,
    /// STOPPED (a pause step, or a person pressed stop) settles the wait as a failure; when
    /// false relflow keeps waiting for someone to continue the task in XL Deploy.
    pub fail_on_pause: bool,
}

/// How a wait for a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Waited {
    /// No longer in flight: EXECUTED/DONE, FAILED/ABORTED/STOPPED or CANCELLED.
    Settled(TaskState),
    /// The attempt must stop; `last` is the state last seen (the task may still run).
    Stopped {
        cause: StopCause,
        last: Option<TaskState>,
    },
}

/// Sleeps `duration`, in slices of at most 200 ms, unless the attempt must stop first (and
/// never past its deadline). Returns why it stopped, if it did.
pub(crate) fn pause(interrupt: &Interrupt, duration: Duration) -> Option<StopCause> {
    let until = Instant::now() + duration;
    loop {
        if let Some(cause) = interrupt.cause() {
            return Some(cause);
        }
        let now = Instant::now();
        if now >= until {
            return None;
        }
        let mut slice = (until - now).min(STOP_CHECK);
        if let Some(left) = interrupt.remaining() {
            // Wake at the deadline itself, not up to a slice after it.
            slice = slice.min(left.max(Duration::from_millis(1)));
        }
        std::thread::sleep(slice);
    }
}

/// The wait before the next poll, `elapsed` after the task was started: a twentieth of the
/// time elapsed, between [`FIRST_DELAY`] and `interval`. A task is then seen settled at most
/// ~5% (plus one answer's latency) after it did: within the 10% users expect even for a 2 s
/// deployment, whose answers take their own time.
pub(crate) fn next_delay(elapsed: Duration, interval: Duration) -> Duration {
    let floor = FIRST_DELAY.min(interval);
    (elapsed / 20).clamp(floor, interval.max(floor))
}

/// Reads the task's state once.
pub(crate) fn task_state(
    client: &Client,
    interrupt: &Interrupt,
    task_id: &str,
    log: LogSink<'_>,
) -> Result<TaskState, BackendError> {
    let call = Call::get(format!("/deployit/task/{task_id}"));
    let body = client.idempotent(&call, interrupt, log)?;
    let state = xml::parse_task_state(&body).map_err(|e| {
        BackendError::new(ErrorClass::Protocol, format!("{}: {e}", call.describe()))
    })?;
    Ok(TaskState::parse(&state))
}

/// Polls until the task is no longer in flight (see [`Waited`]). `known` is the state the
/// caller last saw, so the first line is written only when the state changed.
pub(crate) fn wait_until_settled(
    client: &Client,
    interrupt: &Interrupt,
    task_id: &str,
    settings: &PollSettings,
    known: Option<TaskState>,
    log: LogSink<'_>,
) -> Result<Waited, BackendError> {
    let started = Instant::now();
    let mut last = known;
    let mut polls = 0u32;
    // Polls are due at fixed instants (each delay counted from the previous poll's due time,
    // not from its answer), so the answer's latency does not stretch the schedule.
    let mut due = started;
    loop {
        due += next_delay(due - started, settings.interval);
        let now = Instant::now();
        let stopped = match due.checked_duration_since(now) {
            Some(wait) => pause(interrupt, wait),
            // A slow answer (or in-place retries) overran the slot: poll now, no burst after.
            None => {
                due = now;
                interrupt.cause()
            }
        };
        if let Some(cause) = stopped {
            return Ok(Waited::Stopped { cause, last });
        }
        let state = match task_state(client, interrupt, task_id, log) {
            Ok(state) => state,
            Err(e) => match interrupt.cause() {
                Some(cause) => return Ok(Waited::Stopped { cause, last }),
                None => return Err(e),
            },
        };
        polls += 1;
        tracing::debug!(
            target: "relflow::xld",
            task = task_id,
            state = %state,
            poll = polls,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "XL Deploy task polled"
        );
        if last.as_ref() != Some(&state) {
            log(&format!("Task {task_id} now in state {state}"));
        }
        match state.phase() {
            Phase::Succeeded | Phase::Cancelled => return Ok(Waited::Settled(state)),
            Phase::NeedsDecision if state != TaskState::Stopped || settings.fail_on_pause => {
                return Ok(Waited::Settled(state));
            }
            Phase::Unknown => {
                return Err(BackendError::new(
                    ErrorClass::Protocol,
                    format!(
                        "follow task {task_id}: XL Deploy reports state `{state}`, which relflow does not know"
                    ),
                ));
            }
            Phase::InFlight | Phase::NeedsDecision => {}
        }
        if settings.budget > 0 && polls >= settings.budget {
            return Err(BackendError::new(
                ErrorClass::Timeout,
                format!(
                    "wait for task {task_id}: still {state} after {polls} polls in {:.1}s",
                    started.elapsed().as_secs_f64()
                ),
            ));
        }
        last = Some(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_starts_fast_and_backs_off_to_the_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(next_delay(Duration::ZERO, interval), FIRST_DELAY);
        assert_eq!(
            next_delay(Duration::from_secs(2), interval),
            Duration::from_millis(150)
        );
        assert_eq!(
            next_delay(Duration::from_secs(30), interval),
            Duration::from_millis(1500)
        );
        assert_eq!(next_delay(Duration::from_secs(3600), interval), interval);
        // An interval below the floor wins: tests poll every few milliseconds.
        let fast = Duration::from_millis(5);
        assert_eq!(next_delay(Duration::from_secs(60), fast), fast);
    }

    #[test]
    fn a_two_second_task_is_seen_within_ten_percent() {
        // Simulate the poll times of a task started at 0 and finished at `done`.
        for done_ms in [300u64, 1_000, 2_000, 2_050, 7_777, 60_000] {
            let done = Duration::from_millis(done_ms);
            let mut t = Duration::ZERO;
            while t < done {
                t += next_delay(t, Duration::from_secs(10));
            }
            let late = t - done;
            assert!(
                late <= FIRST_DELAY.max(done / 10),
                "finished at {done:?}, seen at {t:?}"
            );
        }
    }
}
