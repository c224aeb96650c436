//! relflow: a release-pipeline runner. The binary is a thin shell over this library.

pub mod cli;
pub mod engine;
pub mod exit_code;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod store;
