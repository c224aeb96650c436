//! Builds a hostile package (tarball or folder) from the fuzz input, deploys and rolls it back
//! with the local backend in a scratch folder: nothing outside the target may be created or
//! changed, no delivered link may resolve outside its component, no setid bit may slip through.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relflow_plugin::local::fuzzing;

fuzz_target!(|data: &[u8]| {
    let case = fuzzing::decode(data);
    let Ok(scratch) = tempfile::tempdir() else {
        return;
    };
    if let Err(problem) = fuzzing::check_case(scratch.path(), &case) {
        panic!("{problem}\n{case:?}");
    }
});
