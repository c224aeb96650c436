//! Bad input other than a damaged store: pipeline paths that are not files, names that cannot
//! become folder names, huge lines in messages, the umask, a torn `events.jsonl`, hostile
//! values in `shell: true` commands, and resolver lines naming undeclared variables.

use std::path::Path;

use super::{ONE_TASK, mode, with_umask};
use crate::harness::{Sandbox, wait_until};

const INVALID_INPUT: i32 = 2;

/// Runs `relflow ARGS`, failing (instead of hanging the suite) if it has not ended after a
/// minute: the FIFO case used to block forever.
fn run_unless_hung(sb: &Sandbox, args: &[&str]) -> crate::harness::Outcome {
    let mut child = sb.spawn(args);
    let ended = wait_until(60, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("relflow {args:?} hung");
    }
    let out = child.wait_with_output().expect("output");
    crate::harness::Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_fifo_device_or_folder_as_pipeline_is_refused_at_once() {
    let sb = Sandbox::new();
    let fifo = sb.path().join("p.yaml");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(sb.path().join("folder.yaml")).unwrap();
    for (file, what) in [
        ("p.yaml", "a FIFO"),
        ("/dev/zero", "a device"),
        ("folder.yaml", "a directory"),
    ] {
        for verb in ["validate", "run", "plan"] {
            let out = run_unless_hung(&sb, &[verb, file]);
            out.expect_code(INVALID_INPUT);
            assert!(
                out.stderr.contains(&format!(
                    "cannot read the file: it is {what}, not a regular file"
                )),
                "{verb} {file}: {}",
                out.stderr
            );
        }
    }
    assert!(!sb.exists(".relflow/releases"), "no release was started");
}

/// A 5,000-character task name used to validate, then stop `run` with "File name too long"
/// and leave the release `running`.
#[test]
fn a_name_too_long_for_a_folder_is_a_validation_error() {
    let sb = Sandbox::new();
    let long = "t".repeat(5000);
    sb.write(
        "p.yaml",
        &ONE_TASK.replace("name: hi", &format!("name: {long}")),
    );
    for verb in ["validate", "run"] {
        let out = sb.run(&[verb, "p.yaml"]);
        out.expect_code(INVALID_INPUT);
        assert!(
            out.stderr.contains(
                "error: phases[0].tasks[0]: the task name `tttttttttttttttttttt...` is too long: \
                 5000 bytes, and a name may have at most 100 (it becomes a folder name)"
            ),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("--> p.yaml:6:17"), "{}", out.stderr);
        assert!(out.stderr.len() < 1000, "{} bytes", out.stderr.len());
    }
    assert!(!sb.exists(".relflow"), "nothing was recorded");
}

/// Validation used to echo a 200 KB line whole.
#[test]
fn a_huge_offending_line_is_shown_cut_around_the_caret() {
    let sb = Sandbox::new();
    let filler = "x".repeat(200_000);
    sb.write(
        "p.yaml",
        &format!(
            "name: d\nphases:\n  - name: build\n    tasks:\n      - {{ name: hi, command: {{ run: [echo, \"{filler}\"] }}, wat: 1 }}\n"
        ),
    );
    let out = sb.run(&["validate", "p.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert!(out.stderr.len() < 2000, "{} bytes", out.stderr.len());
    let lines: Vec<&str> = out.stderr.lines().collect();
    let shown = lines
        .iter()
        .position(|l| l.starts_with("5 | "))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(lines[shown].starts_with("5 | ...x"), "{}", lines[shown]);
    let caret = lines[shown + 1].find('^').expect("caret");
    assert_eq!(&lines[shown][caret..caret + 3], "wat", "{}", out.stderr);
}

/// Whatever the umask, folders relflow creates are 0700 and files 0600 (a umask that takes
/// the owner's bits used to leave folders relflow could not write to).
#[test]
fn files_relflow_creates_are_private_whatever_the_umask() {
    for umask in [0o000, 0o277] {
        let sb = Sandbox::new();
        sb.write("p.yaml", ONE_TASK);
        let out = with_umask(&sb, &["run", "p.yaml"], umask);
        out.expect_code(0);
        let mut seen = 0;
        let mut stack = vec![sb.path().join(".relflow")];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "umask {umask:o}: {}", path.display());
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(mode(&path), 0o600, "umask {umask:o}: {}", path.display());
            }
            seen += 1;
        }
        assert!(seen >= 6, "{seen} paths");
    }
}

#[test]
fn an_existing_state_folder_with_wider_modes_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write("p.yaml", ONE_TASK);
    let state = sb.path().join(".relflow");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(mode(&state), 0o700);
}

#[test]
fn a_torn_last_line_of_events_is_ended_before_the_next_event() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: g\nphases:\n  - name: ship\n    tasks:\n      - { name: gate, manual: { prompt: go? } }\n",
    );
    sb.run(&["run", "p.yaml"]).expect_code(5);
    let events = sb.path().join(".relflow/releases/g-1/events.jsonl");
    // A runner killed in the middle of a line.
    append(&events, "{\"event\":\"torn");
    sb.run(&["approve", "g-1", "--task", "gate"]).expect_code(0);
    let text = sb.read(".relflow/releases/g-1/events.jsonl");
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert_eq!(bad, ["{\"event\":\"torn"], "{text}");
    assert!(text.ends_with('\n'));
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// `run: "echo hi ${v}"` with `v="x; touch pwned; echo"` used to run `touch pwned`.
#[test]
fn shell_values_are_data_never_shell_text() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: sh
variables: { v: "x; touch pwned; echo", w: "unset" }
phases:
  - name: build
    tasks:
      - { name: bare, command: { run: "echo hi ${v}", shell: true } }
      - { name: quoted, command: { run: "echo \"in ${v} dq\" 'in ${v} sq' | tr -s ' '", shell: true } }
      - { name: words, command: { run: "printf '[%s]' ${w}", shell: true } }
"#,
    );
    let out = sb.run(&[
        "run",
        "p.yaml",
        "--var",
        "w=a b $(touch pwned2) `touch pwned3`",
    ]);
    out.expect_code(0);
    for file in ["pwned", "pwned2", "pwned3"] {
        assert!(!sb.exists(file), "a value ran as shell text: {file}");
    }
    let log = |task: &str| {
        sb.read(&format!(
            ".relflow/releases/sh-1/build/{task}/script_output.log"
        ))
    };
    let bare = log("bare");
    assert!(bare.contains("\nhi x; touch pwned; echo\n"), "{bare}");
    assert!(
        bare.contains("$ echo hi \"${RELFLOW_V_1}\"  # RELFLOW_V_1='x; touch pwned; echo'"),
        "{bare}"
    );
    let quoted = log("quoted");
    assert!(
        quoted.contains("\nin x; touch pwned; echo dq in x; touch pwned; echo sq\n"),
        "{quoted}"
    );
    let words = log("words");
    assert!(
        words.contains("\n[a b $(touch pwned2) `touch pwned3`]"),
        "one word, unexpanded: {words}"
    );
}

/// The README says a resolver's other lines are ignored; an undeclared `name=value` line used
/// to abort the fix-forward.
#[test]
fn a_resolver_line_of_an_undeclared_name_is_ignored_with_a_log_line() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: ff
variables: { version: "2.2" }
phases:
  - name: build
    tasks:
      - name: check
        command: { run: [sh, -c, "test ${version} = 2.3"] }
        on_failure:
          then: fix_forward
          fix_forward: { resolve: [sh, -c, "echo looking up; echo build=77; echo version=2.3; echo colour=red"] }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let log = sb.read(".relflow/releases/ff-1/build/check/script_output.log");
    assert!(
        log.contains("Resolver lines ignored: `build`, `colour` are not variables of the pipeline"),
        "{log}"
    );
    assert!(
        log.contains("Fixing forward: restarting phase build with version=2.3"),
        "{log}"
    );
    let second = sb.read(".relflow/releases/ff-1/build#2/check/script_output.log");
    assert!(second.contains("=== attempt 1 ==="), "{second}");
}
