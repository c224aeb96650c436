//! The web UI of `relflow serve`: server-rendered pages (maud: compile-time HTML, escaped by
//! default) over the same read model as `relflow status`, one stylesheet and one small plain
//! script compiled into the binary, forms that call the same action layer as the API.

pub mod assets;
pub mod forms;
pub mod layout;
pub mod list;
pub mod release;
pub mod start;
