//! Consumers of engine events: script_output.log files, events.jsonl, the terminal; and
//! the redaction every one of them relies on.

pub mod events_file;
pub mod json;
pub mod list;
pub mod log_shipper;
pub mod next_steps;
pub mod paths;
pub mod redact;
pub mod script_log;
pub mod status_text;
pub mod style;
pub mod summary;
pub mod targets;
pub mod terminal;
pub mod time;
pub mod view;

pub use redact::Redactor;
