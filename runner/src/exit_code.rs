//! Process exit codes, in one place (DESIGN.md → Exit codes).

/// The release completed; or a command that runs no release succeeded.
pub const OK: i32 = 0;
/// The release halted on a failure and waits for a person.
pub const HALTED: i32 = 1;
/// Invalid input: usage, pipeline file, or a command the release's state does not allow.
pub const INVALID_INPUT: i32 = 2;
/// The release was aborted or cancelled.
pub const ABORTED: i32 = 3;
/// The release ended by a rollback (task rolled back and halted, or release rolled back).
pub const ROLLED_BACK: i32 = 4;
/// The release is paused: waiting for approval or for `resume`.
pub const PAUSED: i32 = 5;
/// The release is held by another live runner, or the state is unusable.
pub const STATE: i32 = 6;
