//! `relflow serve`: the JSON API and the web UI over the store and the engine.

pub mod ui;
