//! `relflow serve [--listen ADDR] [--pipelines DIR] [--tls-cert F --tls-key F | --insecure-http]`

pub use crate::serve::{ServeOptions, run};
