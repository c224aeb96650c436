//! Pipeline files: raw serde types with spans → validated model, and the errors in between.

pub mod diagnostic;
pub mod duration;
mod excerpt;
pub(crate) mod load;
pub mod model;
pub mod paths;
mod raw;
pub mod schema;
pub mod template;
mod validate;

pub use diagnostic::Diagnostic;
pub use load::{LoadError, MAX_PIPELINE_BYTES, load_file, load_str};
pub use model::*;

/// The nearest of `candidates` to `word` (at most 2 edits away), for "did you mean" hints.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    validate::closest(word, candidates)
}
