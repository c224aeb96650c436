//! Pinned output: what a person reads, compared with a file under `tests/fixtures/snapshots/`
//! after the parts that vary (times, durations, temp paths, pids) are replaced by markers.
//!
//! `RELFLOW_BLESS=1 cargo nextest run -p relflow-tests` rewrites the files from what the CLI
//! prints now (review the diff before committing).

use std::path::{Path, PathBuf};

use regex::Regex;

fn snapshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snapshots")
}

/// `text` with the sandbox path, times, durations and pids replaced by `[TMP]`, `[TIME]`,
/// `[CLOCK]`, `[DUR]` and `[PID]`.
pub fn redact(text: &str, sandbox: &Path) -> String {
    let mut out = text.replace(&sandbox.to_string_lossy().into_owned(), "[TMP]");
    let rules = [
        (
            r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC)",
            "[TIME]",
        ),
        (r"\b\d\d:\d\d:\d\d\b", "[CLOCK]"),
        (r"\b\d+(\.\d+)?s\b|\b\d+m\d\ds\b|\b\d+h\d\dm\b", "[DUR]"),
        (r"\bpid \d+", "pid [PID]"),
    ];
    for (pattern, marker) in rules {
        let re = Regex::new(pattern).expect("valid pattern");
        out = re.replace_all(&out, marker).into_owned();
    }
    out
}

/// Compares `actual` with the pinned `name.txt` (or writes it when blessing).
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshots_dir().join(format!("{name}.txt"));
    if std::env::var_os("RELFLOW_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(snapshots_dir()).expect("mkdir snapshots");
        std::fs::write(&path, actual).expect("bless snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {} yet: run with RELFLOW_BLESS=1 to write it from:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs (RELFLOW_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}
