//! A failed attempt as a policy sees it, and the facts read from a backend's message (HTTP
//! status, `Retry-After`, backend task state) so that scripts can decide by them.

use std::collections::BTreeMap;
use std::time::Duration;

use relflow_plugin::ErrorClass;

/// A failed attempt, as the policy sees it. The engine fills the context fields (task, phase,
/// kind, elapsed, log tail, variables) before asking; `decide` only reads them.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
    /// The attempt that failed (1 = first execution).
    pub attempt: u32,
    /// Server's hint for `rate_limited` (`Retry-After`).
    pub retry_after: Option<Duration>,
    pub task: String,
    pub phase: String,
    /// The task kind keyword: `command`, `script`, `deploy`, `undeploy`, `wait`, `manual`.
    pub kind: String,
    /// The HTTP status of the failed call, when a backend named one.
    pub http_status: Option<u16>,
    /// A process's exit code (command and script tasks).
    pub exit_code: Option<i32>,
    /// The backend task's state, e.g. `FAILED` or `STOPPED` for XL Deploy.
    pub backend_state: Option<String>,
    /// Time since the task run's first attempt started.
    pub elapsed: Duration,
    /// The last lines of the task's `script_output.log`, secrets already masked.
    pub log_tail: Vec<String>,
    /// The release's variables at the failure, secrets masked as `***`.
    pub vars: BTreeMap<String, String>,
}

impl Failure {
    /// A failure with what its message tells (HTTP status, `Retry-After`, backend state) and
    /// an empty context.
    pub fn new(class: ErrorClass, message: impl Into<String>, attempt: u32) -> Failure {
        let message = message.into();
        Failure {
            class,
            attempt,
            retry_after: retry_after_in(&message),
            http_status: http_status_in(&message),
            backend_state: backend_state_in(&message),
            message,
            task: String::new(),
            phase: String::new(),
            kind: String::new(),
            exit_code: None,
            elapsed: Duration::ZERO,
            log_tail: Vec::new(),
            vars: BTreeMap::new(),
        }
    }
}

/// `HTTP 503 Service Unavailable` → 503 (the backends' error messages start that way).
pub fn http_status_in(message: &str) -> Option<u16> {
    message.match_indices("HTTP ").find_map(|(at, _)| {
        let digits = message.get(at + 5..at + 8)?;
        let after = message[at + 8..].chars().next();
        let status = digits.parse::<u16>().ok()?;
        let is_whole = after.is_none_or(|c| !c.is_ascii_digit());
        ((100..=599).contains(&status) && is_whole).then_some(status)
    })
}

/// `(Retry-After: 30s)` or `Retry-After: 30` → 30 seconds; never more than an hour, however
/// long the server (or a message) asks for.
pub fn retry_after_in(message: &str) -> Option<Duration> {
    const LONGEST: Duration = Duration::from_secs(3600);
    let (_, rest) = message.split_once("Retry-After:")?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let secs = (!digits.is_empty()).then(|| digits.parse::<u64>().unwrap_or(u64::MAX))?;
    Some(Duration::from_secs(secs).min(LONGEST))
}

/// `XL Deploy task 42 is FAILED` → `FAILED`; `... was cancelled` → `CANCELLED`.
pub fn backend_state_in(message: &str) -> Option<String> {
    if message.contains(" was cancelled") {
        return Some("CANCELLED".to_string());
    }
    message.match_indices(" is ").find_map(|(at, _)| {
        let word: String = message[at + 4..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        (word.len() >= 3).then_some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_backend_messages() {
        let f = Failure::new(
            ErrorClass::RateLimited,
            "start task: HTTP 429 Too Many Requests: slow down (Retry-After: 30s)",
            2,
        );
        assert_eq!(f.http_status, Some(429));
        assert_eq!(f.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(f.backend_state, None);
        let f = Failure::new(
            ErrorClass::TaskFailed,
            "deploy: XL Deploy task 7f3 is STOPPED (stopped at a pause step)",
            1,
        );
        assert_eq!(f.backend_state.as_deref(), Some("STOPPED"));
        assert_eq!(f.http_status, None);
        assert_eq!(http_status_in("HTTP 5000"), None);
        assert_eq!(http_status_in("exit 1"), None);
        assert_eq!(retry_after_in("Retry-After: soon"), None);
        assert_eq!(
            retry_after_in("HTTP 429 (Retry-After: 18446744073709551616s)"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            backend_state_in("XL Deploy task 1 was cancelled").as_deref(),
            Some("CANCELLED")
        );
    }
}
