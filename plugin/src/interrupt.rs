//! When a backend operation must stop early: the attempt's deadline (`timeout:`), or a flag
//! the runner raises when a person aborts the release or the runner gets SIGINT/SIGTERM.
//!
//! Backends check it between steps and hand it to every process they start, so a hung
//! health check or a slow XL Deploy task cannot outlive its attempt.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::{BackendError, ErrorClass};

impl PartialEq for Interrupt {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && Arc::ptr_eq(&self.flag, &other.flag)
    }
}

impl Eq for Interrupt {}

/// Why an operation was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The attempt's `timeout:` passed.
    Deadline,
    /// A person aborted the release: end what runs, leave the rest to the rollback order.
    Abort,
    /// The runner got SIGINT or SIGTERM: end what runs here; an XL Deploy task keeps running
    /// on the server and is re-attached on resume.
    Signal,
}

const RUNNING: u8 = 0;
const ABORT: u8 = 1;
const SIGNAL: u8 = 2;

/// Shared between the runner (which raises it) and the backend call (which checks it).
/// Cloning shares the flag; the deadline is per clone.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    deadline: Option<Instant>,
    /// The timeout the deadline came from, for messages (`timed out after 3s`).
    timeout: Option<Duration>,
    flag: Arc<AtomicU8>,
    /// Asked before each step whether the runner may still act (it holds its lease); a
    /// `false` stops the operation as a signal does. Shared by every clone.
    fence: Arc<OnceLock<Fence>>,
}

/// Whether the runner may still act: see [`Interrupt::set_fence`].
pub struct Fence(Box<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fence")
    }
}

impl Interrupt {
    /// Fences every operation of this flag's holders with `may_act`: once it answers
    /// `false` (the runner lost its lease to another), operations stop at their next check
    /// as on a signal, before any further call. Set once; later calls are ignored.
    pub fn set_fence(&self, may_act: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.fence.set(Fence(Box::new(may_act)));
    }

    /// Never stops.
    pub fn none() -> Interrupt {
        Interrupt::default()
    }

    /// The same flag, with a deadline `timeout` from now (none when `timeout` is `None`).
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Interrupt {
        Interrupt {
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
            flag: self.flag.clone(),
            fence: self.fence.clone(),
        }
    }

    /// Tells every holder to stop. The first cause raised wins.
    pub fn raise(&self, cause: StopCause) {
        let value = match cause {
            StopCause::Abort => ABORT,
            StopCause::Signal => SIGNAL,
            StopCause::Deadline => return,
        };
        let _ = self
            .flag
            .compare_exchange(RUNNING, value, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Clears an abort once the attempts it ended are recorded, so the rollback order that
    /// follows can call backends; a signal stays raised.
    pub fn rearm(&self) {
        let _ = self
            .flag
            .compare_exchange(ABORT, RUNNING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why the operation must stop now, if it must.
    pub fn cause(&self) -> Option<StopCause> {
        match self.flag.load(Ordering::SeqCst) {
            ABORT => return Some(StopCause::Abort),
            SIGNAL => return Some(StopCause::Signal),
            _ => {}
        }
        if let Some(fence) = self.fence.get()
            && !(fence.0)()
        {
            self.raise(StopCause::Signal);
            return Some(StopCause::Signal);
        }
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(StopCause::Deadline),
            _ => None,
        }
    }

    /// The deadline, if the attempt has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The timeout the deadline was set from (`timed out after ...`), if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Time left before the deadline (`None` = no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// `Err` with the matching class when the operation must stop: `timeout` at the deadline,
    /// `interrupted` on abort or signal. `what` reads after "failed to".
    pub fn check(&self, what: &str) -> Result<(), BackendError> {
        match self.cause() {
            None => Ok(()),
            Some(cause) => Err(self.error(cause, what)),
        }
    }

    /// The error for `cause`, e.g. `deploy PetPortal 2.2: timed out after 3s`.
    pub fn error(&self, cause: StopCause, what: &str) -> BackendError {
        match cause {
            StopCause::Deadline => BackendError::new(
                ErrorClass::Timeout,
                format!(
                    "{what}: timed out after {}",
                    self.timeout.map(format_secs).unwrap_or_default()
                ),
            ),
            StopCause::Abort => BackendError::new(
                ErrorClass::Interrupted,
                format!("{what}: stopped because the release was aborted"),
            ),
            StopCause::Signal => BackendError::new(
                ErrorClass::Interrupted,
                format!("{what}: stopped because the runner was interrupted"),
            ),
        }
    }
}

/// `3s`, `1.5s`, `2m`: short and exact enough for a log line.
pub(crate) fn format_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}ms", ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_the_past_stops_with_timeout() {
        let i = Interrupt::none().with_timeout(Some(Duration::ZERO));
        let err = i.check("run the health check").unwrap_err();
        assert_eq!(err.class, ErrorClass::Timeout);
        assert_eq!(err.message, "run the health check: timed out after 0s");
    }

    #[test]
    fn raising_reaches_every_clone_and_the_first_cause_wins() {
        let a = Interrupt::none();
        let b = a.with_timeout(Some(Duration::from_secs(60)));
        assert_eq!(b.cause(), None);
        a.raise(StopCause::Abort);
        a.raise(StopCause::Signal);
        assert_eq!(b.cause(), Some(StopCause::Abort));
        assert_eq!(b.check("x").unwrap_err().class, ErrorClass::Interrupted);
    }
}
