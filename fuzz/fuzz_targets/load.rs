//! Feeds arbitrary bytes to the pipeline loader: it must return an error, never panic or hang.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data)
        && let Err(err) = relflow::pipeline::load_str(Path::new("fuzz.yaml"), source)
    {
        // Rendering reads source lines at the reported positions: exercise it too.
        let _ = err.to_string();
    }
});
