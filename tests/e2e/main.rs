//! End-to-end tests: the real relflow CLI in temp dirs.

mod approvals;
mod crash_points;
mod crash_resume;
mod docker_actions;
mod examples;
mod fake_xld;
mod follow_and_state;
mod harness;
mod hostile_packages;
mod hostile_state;
mod live_control;
mod load_errors;
mod local_deploys;
mod plan;
mod policies;
mod policies_commands;
mod run_basics;
mod schema_fixtures;
mod scripted_policies;
mod secrets;
mod target_locks;
mod timeouts;
mod tree;
mod xld_backend;
mod xld_cli;
mod xld_edges;
