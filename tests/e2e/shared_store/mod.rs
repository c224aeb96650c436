//! The shared store (issue 13): the same scenarios on SQLite and PostgreSQL, and PostgreSQL's
//! faults.

mod conformance;
mod faults;
