//! The class every failure carries; the failure policy decides by it.

use std::fmt;
use std::str::FromStr;

/// Why an attempt failed, as the retry policy sees it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Connection,
    Timeout,
    Http5xx,
    RateLimited,
    /// The runner died while the attempt ran.
    Interrupted,
    Auth,
    NotFound,
    BadRequest,
    Validation,
    Precondition,
    /// The target stayed held by another release past `lock_timeout`. Not transient: waiting
    /// longer is the policy's `then` to decide, not a retry's.
    Locked,
    TaskFailed,
    Protocol,
}

impl ErrorClass {
    /// The classes `transient` stands for.
    pub const TRANSIENT: [ErrorClass; 5] = [
        ErrorClass::Connection,
        ErrorClass::Timeout,
        ErrorClass::Http5xx,
        ErrorClass::RateLimited,
        ErrorClass::Interrupted,
    ];

    pub const ALL: [ErrorClass; 13] = [
        ErrorClass::Connection,
        ErrorClass::Timeout,
        ErrorClass::Http5xx,
        ErrorClass::RateLimited,
        ErrorClass::Interrupted,
        ErrorClass::Auth,
        ErrorClass::NotFound,
        ErrorClass::BadRequest,
        ErrorClass::Validation,
        ErrorClass::Precondition,
        ErrorClass::Locked,
        ErrorClass::TaskFailed,
        ErrorClass::Protocol,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connection => "connection",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Interrupted => "interrupted",
            ErrorClass::Auth => "auth",
            ErrorClass::NotFound => "not_found",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Validation => "validation",
            ErrorClass::Precondition => "precondition",
            ErrorClass::Locked => "locked",
            ErrorClass::TaskFailed => "task_failed",
            ErrorClass::Protocol => "protocol",
        }
    }

    pub fn is_transient(self) -> bool {
        ErrorClass::TRANSIENT.contains(&self)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an error class.
#[derive(Debug, thiserror::Error)]
#[error("unknown error class `{0}`")]
pub struct UnknownErrorClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|class| class.as_str() == s)
            .ok_or_else(|| UnknownErrorClass(s.to_string()))
    }
}
