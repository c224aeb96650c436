//! Deploy backends for relflow behind one `Backend` trait. Knows nothing of pipelines.

pub mod error_class;

pub use error_class::ErrorClass;
