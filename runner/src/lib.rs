//! relflow: a release-pipeline runner. The binary is a thin shell over this library.

pub mod actions;
pub mod cli;
pub mod engine;
pub mod exit_code;
pub mod locks;
pub mod output;
pub mod pipeline;
/// Named crash points for deterministic crash tests (inert unless the test build arms them).
pub use relflow_plugin::failpoint;
pub mod policy;
pub mod serve;
pub mod store;
pub mod worker;
