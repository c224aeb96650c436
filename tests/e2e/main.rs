//! End-to-end tests: the real relflow CLI in temp dirs.

mod harness;
mod load_errors;
