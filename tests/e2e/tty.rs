//! What the terminal shows while a release runs: on a real pseudo-terminal (`TERM=dumb` gets
//! plain lines, `TERM=xterm` the live view), and as plain lines in a pipe (retry waits with
//! their delay and attempt, durations from the task's own times, rollback steps in words).

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::harness::Sandbox;
use crate::tree;

const PIPELINE: &str = "pipelines/petportal.yaml";

/// Copies the repository's `pipelines/` into the sandbox (the seed scenario's target lands
/// inside it) and deploys PetPortal 1.0.
fn seed(sb: &Sandbox) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&example, &sb.path().join("pipelines"));
    sb.run(&["run", PIPELINE]).expect_code(0);
}

/// Runs `relflow ARGS...` with a pseudo-terminal (120×40) as stdin, stdout and stderr and
/// `TERM=term`; returns the exit code and everything the terminal received.
fn run_on_pty(sb: &Sandbox, args: &[&str], term: &str, envs: &[(&str, &str)]) -> (i32, String) {
    let mut master = 0;
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let mut slave_fd = 0;
    // SAFETY: openpty writes two fds into the given integers; the name buffer is not asked for.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave_fd,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened by openpty and are owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave_fd)) };
    let mut cmd = sb.command(args);
    cmd.env("TERM", term)
        .envs(envs.iter().copied())
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("spawn relflow on a pty");
    // The command keeps its copies of the slave until dropped: then the master sees the end.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        // Linux ends a pty whose slave is closed with EIO, not a zero read.
        while let Ok(n) = file.read(&mut chunk) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        bytes
    });
    let status = child.wait().expect("wait relflow");
    let bytes = reader.join().expect("pty reader");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The screen's text without escape sequences, one entry per line or redraw.
fn screen_lines(raw: &str) -> Vec<String> {
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        text.push(c);
    }
    text.split(['\r', '\n'])
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The decision, retry and rollback lines of the seed scenario (2.2: four failed health
/// checks, then the deployment is rolled back).
fn assert_seed_lines(lines: &[String], raw: &str) {
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    for needle in [
        "[deploy] deploy-petportal: attempt 1 failed: task_failed:",
        "[deploy] deploy-petportal: retrying in 1.0s at ",
        ", attempt 2 of 4 (by phase deploy: on_failure.retry)",
        "[deploy] deploy-petportal: attempt 4 failed: task_failed:",
        "[deploy] deploy-petportal: decision rollback by phase deploy: on_failure.then = rollback (3 of 3 retries used)",
        "[deploy] deploy-petportal: rollback step 1: backend rollback of task deploy-petportal: ok",
        "[deploy] deploy-petportal: rolled_back after 4 attempts in ",
        "release petportal-2 failed",
    ] {
        assert!(has(needle), "`{needle}` never reached the screen:\n{raw}");
    }
}

#[test]
fn tty_a_dumb_terminal_gets_every_progress_decision_and_rollback_line_plainly() {
    let sb = Sandbox::new();
    seed(&sb);
    let (code, raw) = run_on_pty(
        &sb,
        &["run", PIPELINE, "--var", "version=2.2"],
        "dumb",
        &[("NO_COLOR", "")],
    );
    assert_eq!(code, 4, "{raw}");
    assert!(
        !raw.contains('\u{1b}'),
        "escape codes on a dumb terminal:\n{raw:?}"
    );
    assert_seed_lines(&screen_lines(&raw), &raw);
}

#[test]
fn tty_an_xterm_gets_the_live_view_in_colour_with_the_same_lines() {
    let sb = Sandbox::new();
    seed(&sb);
    // Colour as a person gets it: NO_COLOR empty counts as unset.
    let (code, raw) = run_on_pty(
        &sb,
        &["run", PIPELINE, "--var", "version=2.2"],
        "xterm",
        &[("NO_COLOR", "")],
    );
    assert_eq!(code, 4, "{raw}");
    assert!(
        raw.contains("\u{1b}[1m\u{1b}[31mrolled_back"),
        "no colour:\n{raw:?}"
    );
    let lines = screen_lines(&raw);
    assert_seed_lines(&lines, &raw);
    // The live view shows the wait for the next attempt, not the last attempt's number.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[deploy] deploy-petportal waiting for attempt 2 of 4 (in ")),
        "{raw}"
    );
}

/// A task that fails `n` times (counted in `count`), then succeeds, with fixed 1 s retries.
fn flaky(sb: &Sandbox, fails: u32) {
    sb.write_script(
        "flaky.sh",
        &format!(
            "#!/bin/sh\nn=$(cat count 2>/dev/null || echo 0)\necho $((n+1)) > count\n[ \"$n\" -ge {fails} ]\n"
        ),
    );
    sb.write(
        "p.yaml",
        r#"
name: fl
phases:
  - name: build
    on_failure: { retry: { retries: 3, when: [task_failed], delay: 1s, backoff: fixed, jitter: false }, then: pause }
    tasks:
      - { name: flaky, command: { run: [./flaky.sh] } }
"#,
    );
}

/// Seconds in `... in 2.1s` at the end of the task's last line.
fn took_secs(stdout: &str, prefix: &str) -> f64 {
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line:\n{stdout}"));
    line.rsplit(" in ")
        .next()
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no duration in `{line}`"))
}

#[test]
fn tty_plain_lines_show_retry_waits_and_the_task_duration_spans_its_attempts() {
    let sb = Sandbox::new();
    flaky(&sb, 2);
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    let waits: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  [build] flaky: retrying in 1.0s at "))
        .collect();
    assert_eq!(waits.len(), 2, "{}", out.stdout);
    assert!(
        waits[1].ends_with(", attempt 3 of 4 (by phase build: on_failure.retry)"),
        "{}",
        waits[1]
    );
    assert!(
        out.stdout
            .contains("  [build] flaky: running (attempt 3 of 4)"),
        "{}",
        out.stdout
    );
    // Two 1 s waits: the task took at least 2 s, not the last attempt's few milliseconds.
    let took = took_secs(
        &out.stdout,
        "  [build] flaky: completed after 3 attempts in ",
    );
    assert!(took >= 2.0, "{}", out.stdout);
}

#[test]
fn tty_a_resumed_task_counts_its_time_from_its_first_attempt() {
    let sb = Sandbox::new();
    flaky(&sb, 1);
    let crashed = sb.run_crashing_at(&["run", "p.yaml"], "store.retry_scheduled", 1);
    assert_eq!(crashed.code, -1, "{}", crashed.stdout);
    let out = sb.run(&["resume", "fl-1"]);
    out.expect_code(0);
    // The resumed drive waits out the 1 s schedule that started before the kill.
    let took = took_secs(
        &out.stdout,
        "  [build] flaky: completed after 2 attempts in ",
    );
    assert!(took >= 1.0, "{}", out.stdout);
}

#[test]
fn tty_rollback_steps_are_told_in_words_and_a_command_task_has_no_backend_step() {
    let sb = Sandbox::new();
    seed(&sb);
    sb.run(&["run", PIPELINE, "--var", "version=2.2"])
        .expect_code(4);
    let out = sb.run(&["status", "petportal-2", "--json"]);
    let doc: Value = serde_json::from_str(&out.stdout).expect("status --json");
    let rules: Vec<String> = doc["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["tasks"].as_array().cloned().unwrap_or_default())
        .flat_map(|t| t["decisions"].as_array().cloned().unwrap_or_default())
        .map(|d| d["rule"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        rules.contains(&"rollback order: backend rollback of task deploy-petportal".to_string()),
        "{rules:#?}"
    );
    // No internal key (`7:backend:deploy-petportal`, `15:undo:14`) anywhere.
    for rule in &rules {
        let head = rule.split(':').next().unwrap_or_default();
        assert!(
            head.parse::<u64>().is_err(),
            "internal key as a rule: {rule}"
        );
    }

    let cmd = Sandbox::new();
    cmd.write(
        "p.yaml",
        "name: cm\nphases:\n  - name: b\n    tasks:\n      - { name: smoke, command: { run: [sh, -c, \"exit 1\"] }, on_failure: { then: rollback } }\n",
    );
    let out = cmd.run(&["run", "p.yaml"]);
    out.expect_code(4);
    assert!(
        !out.stdout.contains("backend rollback of task smoke"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  [b] smoke: rolled_back"),
        "{}",
        out.stdout
    );
}
