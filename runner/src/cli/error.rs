//! Every failure of a CLI verb, mapped to its exit code in one place.

use crate::engine::{AnswerError, AttachError, CommandError, EngineError, RestartError};
use crate::exit_code;
use crate::pipeline::LoadError;
use crate::store::{LeaseError, StoreError};

/// Said when a drive stopped because the shared store went away; a caller that knows the
/// release names it after `relflow resume`.
pub const STORE_LOST_NOTE: &str = "this runner stopped: nothing more is run or recorded until the store is back; \
     then continue with: relflow resume";

/// A verb failed: what to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
    /// The release's state does not allow the command: the caller adds what does apply.
    pub refused: bool,
}

impl CliError {
    /// Bad input (exit 2).
    pub fn input(message: impl Into<String>) -> CliError {
        CliError {
            code: exit_code::INVALID_INPUT,
            message: message.into(),
            refused: false,
        }
    }

    /// The release as it stands does not allow the command (exit 2).
    pub fn refused(message: impl Into<String>) -> CliError {
        CliError {
            refused: true,
            ..CliError::input(message)
        }
    }

    /// The state cannot be used (exit 6).
    pub fn state(message: impl Into<String>) -> CliError {
        CliError {
            code: exit_code::STATE,
            message: message.into(),
            refused: false,
        }
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> Self {
        // LoadError renders complete diagnostics; keep them as they are.
        CliError::input(e.to_string().trim_end().to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownRelease(_) => CliError::input(format!("error: {e}")),
            other => CliError::state(format!("error: {other}")),
        }
    }
}

impl From<LeaseError> for CliError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::Store(e) => e.into(),
            held @ LeaseError::Held { .. } => CliError::state(format!("error: {held}")),
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        if e.is_lease_lost() {
            return CliError::state(format!("error: {e}"));
        }
        if e.is_store_lost() {
            return CliError::state(format!("error: {e}\n{STORE_LOST_NOTE}"));
        }
        CliError::state(format!("error: the release record cannot be kept: {e}"))
    }
}

impl From<AttachError> for CliError {
    fn from(e: AttachError) -> Self {
        match e {
            AttachError::Lease(e) => e.into(),
            AttachError::Store(e) => e.into(),
            AttachError::MissingEnv(_) | AttachError::MissingRequired(_) => {
                CliError::input(format!("error: {e}"))
            }
            AttachError::Pipeline { .. }
            | AttachError::Report(_)
            | AttachError::Secrets(_)
            | AttachError::SecretLost { .. } => CliError::state(format!("error: {e}")),
        }
    }
}

impl From<AnswerError> for CliError {
    fn from(e: AnswerError) -> Self {
        match e {
            AnswerError::Engine(e) => e.into(),
            not_waiting @ AnswerError::NotWaiting { .. } => {
                CliError::refused(format!("error: {not_waiting}"))
            }
        }
    }
}

impl From<CommandError> for CliError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Engine(e) | CommandError::Restart(RestartError::Engine(e)) => e.into(),
            refused => CliError::refused(format!("error: {refused}")),
        }
    }
}
