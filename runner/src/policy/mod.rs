//! Failure policy: error classes, retry schedule, the pure decision function, and scripted
//! policies.

pub mod decide;
pub mod failure;
pub mod fix_forward;
pub mod model;
pub mod schedule;
pub mod script;
pub mod simulate;

pub use decide::{Decided, Decision, EffectivePolicy, Failure, History, decide, nearest_policy};
pub use model::*;
pub use relflow_plugin::ErrorClass;
pub use script::ScriptPolicy;
