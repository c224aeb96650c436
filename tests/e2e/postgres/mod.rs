//! A real PostgreSQL for tests (issue 13): Debian's PostgreSQL 15 made by `initdb` in a temp
//! folder and started on a free 127.0.0.1 port, as the `postgres` OS user when the tests run as
//! root; stopped (`pg_ctl stop -m immediate`) and its folder removed on drop, also on panic.
//!
//! One server per test: nextest runs every test in its own process, so a server shared per
//! process would not be shared anyway, and a test that restarts the server or ends backends
//! cannot disturb another. `create_database` still gives a test as many databases as it needs.
//! The module uses only std, `tempfile` and `libc`, so another test crate can include it.

mod harness_tests;
mod server;
mod setup;
mod spawner;

pub use server::PgServer;
