//! The `exec` backend: user commands (helm, kubectl, docker compose, ansible) as a backend,
//! and the Docker rollback actions built on it.

mod backend;
mod docker;

pub use backend::ExecBackend;
pub use docker::{Docker, restart_previous_container, revert_compose};
