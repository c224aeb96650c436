//! The shared store (issue 13): the same scenarios on SQLite and PostgreSQL, PostgreSQL's
//! faults, and releases run in one folder seen, logged, streamed and driven from another.

mod conformance;
mod cross_folder;
mod faults;
