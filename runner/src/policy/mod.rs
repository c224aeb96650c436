//! Failure policy: error classes, retry schedule, and the pure decision function.

pub mod decide;
pub mod fix_forward;
pub mod model;
pub mod schedule;
pub mod simulate;

pub use decide::{Decided, Decision, EffectivePolicy, Failure, History, decide};
pub use model::*;
pub use relflow_plugin::ErrorClass;
