//! The UI's two static files, compiled into the binary (no CDN, no network at run time).

/// Where the stylesheet is served.
pub const STYLE_PATH: &str = "/ui/style.css";
/// Where the script is served.
pub const SCRIPT_PATH: &str = "/ui/live.js";

/// The stylesheet.
pub const STYLE: &str = include_str!("assets/style.css");
/// The live-update script (plain JS, no framework).
pub const SCRIPT: &str = include_str!("assets/live.js");
