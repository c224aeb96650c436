//! A shared PostgreSQL store (issue 13) end to end: releases run in one folder are seen,
//! logged, streamed and driven from another, and a kill never splits a state change from
//! its event.

mod cross_folder;
