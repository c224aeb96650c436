//! What a person sees (DESIGN.md "What a person sees"): the end-of-drive summary, the status
//! timeline, who acted and why, `--json` documents, `status --watch`.

mod actors;
mod json_everywhere;
mod summaries;
mod watch;

use std::path::Path;

use crate::harness::Sandbox;

/// A sandbox holding a copy of `pipelines/` (the PetPortal seed scenario deploys next to it).
pub fn with_examples() -> Sandbox {
    let sb = person_sandbox();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    copy_dir(&from, &sb.path().join("pipelines"));
    sb
}

fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read pipelines") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
            let mode = entry.metadata().expect("meta").permissions().mode();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .expect("chmod");
        }
    }
}

/// A sandbox whose commands act as `ci` (pinned output must not name who ran the tests).
pub fn person_sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("RELFLOW_ACTOR", "ci");
    sb
}

/// `relflow status RELEASE --json`, parsed.
pub fn status_doc(sb: &Sandbox, release: &str) -> serde_json::Value {
    let out = sb.run(&["status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).expect("status --json parses")
}
