//! relflow: a release-pipeline runner. The binary is a thin shell over this library.

pub mod pipeline;
pub mod policy;
pub mod cli;
pub mod exit_code;
pub mod engine;
pub mod output;
pub mod store;
