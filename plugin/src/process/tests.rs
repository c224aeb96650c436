use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec::new(vec!["sh".into(), "-c".into(), script.into()])
}

fn run_collect(spec: &ProcessSpec) -> (ProcessEnd, Vec<String>) {
    let mut lines = Vec::new();
    let end = run(spec, &mut |_| {}, &mut |l| lines.push(l));
    (end, lines)
}

/// Whether `pid` is gone (or only a zombie waiting for init), waiting up to 5 s for a
/// SIGKILL to land.
fn is_gone(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let gone = match group::state(pid) {
            None => true,
            Some(state) => state == "Z" || state == "X",
        };
        if gone || Instant::now() > until {
            return gone;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_in(file: &Path) -> u32 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < until, "no pid in {}", file.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn merges_both_streams_in_order_and_reports_the_exit_code() {
    let mut spec = sh("echo one; echo two >&2; echo \"$GREETING\"; printf tail; exit 3");
    spec.env = vec![("GREETING".into(), "hi there".into())];
    let (end, lines) = run_collect(&spec);
    assert!(matches!(end, ProcessEnd::Exited(3)), "{end:?}");
    assert_eq!(lines, vec!["one", "two", "hi there", "tail"]);
    assert_eq!(end.failure("sh").as_deref(), Some("sh exited with code 3"));
}

#[test]
fn argv_is_not_split_and_a_relative_program_is_found_in_the_working_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("echo-args");
    std::fs::write(&script, "#!/bin/sh\nprintf '%s\\n' \"$@\"; pwd\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = ProcessSpec::new(vec!["./bin/echo-args".into(), "a b; echo pwned".into()]);
    spec.cwd = Some(tmp.path().to_path_buf());
    let (end, lines) = run_collect(&spec);
    assert!(end.is_success(), "{end:?}");
    assert_eq!(lines[0], "a b; echo pwned");
    assert_eq!(Path::new(&lines[1]), tmp.path().canonicalize().unwrap());
}

#[test]
fn a_missing_program_is_a_spawn_failure_of_class_not_found() {
    let spec = ProcessSpec::new(vec!["/nonexistent/relflow-program".into()]);
    let (end, _) = run_collect(&spec);
    assert!(matches!(end, ProcessEnd::SpawnFailed(_)), "{end:?}");
    let err = end.error("deploy web 1", spec.program()).unwrap();
    assert_eq!(err.class, ErrorClass::NotFound);
    assert!(
        err.message.starts_with("deploy web 1: cannot start"),
        "{err}"
    );
}

#[test]
fn the_deadline_ends_the_process_and_its_grandchildren() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("grandchild");
    let mut spec = sh(&format!(
        "echo start; sleep 300 & echo $! > '{}'; wait",
        pidfile.display()
    ));
    spec.interrupt = Interrupt::none().with_timeout(Some(Duration::from_millis(300)));
    let started = Instant::now();
    let (end, lines) = run_collect(&spec);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(end, ProcessEnd::TimedOut(_)), "{end:?}");
    assert_eq!(
        end.failure("sh").as_deref(),
        Some("sh timed out after 300ms")
    );
    assert_eq!(end.error("x", "sh").unwrap().class, ErrorClass::Timeout);
    assert_eq!(lines, vec!["start"]);
    assert!(is_gone(pid_in(&pidfile)), "the grandchild survived");
}

#[test]
fn a_grandchild_is_ended_when_the_child_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("grandchild");
    let spec = sh(&format!(
        "sleep 300 & echo $! > '{}'; exit 0",
        pidfile.display()
    ));
    let (end, _) = run_collect(&spec);
    assert!(end.is_success(), "{end:?}");
    assert!(is_gone(pid_in(&pidfile)), "the grandchild survived");
}

#[test]
fn raising_the_stop_flag_ends_the_process_with_class_interrupted() {
    let interrupt = Interrupt::none();
    let mut spec = sh("echo ready; exec sleep 300");
    spec.interrupt = interrupt.with_timeout(Some(Duration::from_secs(600)));
    let raiser = interrupt.clone();
    let mut raised = false;
    let started = Instant::now();
    let end = run(&spec, &mut |_| {}, &mut |line| {
        if line == "ready" && !raised {
            raised = true;
            raiser.raise(StopCause::Abort);
        }
    });
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        matches!(end, ProcessEnd::Interrupted(StopCause::Abort)),
        "{end:?}"
    );
    assert_eq!(end.error("x", "sh").unwrap().class, ErrorClass::Interrupted);
    // Already stopped: nothing starts.
    let (again, lines) = run_collect(&sh("echo never"));
    assert!(again.is_success());
    assert_eq!(lines, vec!["never"]);
    let mut stopped = sh("echo never");
    stopped.interrupt = interrupt;
    let (end, lines) = run_collect(&stopped);
    assert!(matches!(end, ProcessEnd::Interrupted(_)), "{end:?}");
    assert!(lines.is_empty());
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
    let mut spec = sh("trap '' TERM; echo ready; while :; do sleep 1; done");
    spec.interrupt = Interrupt::none().with_timeout(Some(Duration::from_millis(200)));
    let started = Instant::now();
    let (end, lines) = run_collect(&spec);
    let took = started.elapsed();
    assert!(matches!(end, ProcessEnd::TimedOut(_)), "{end:?}");
    assert_eq!(lines, vec!["ready"]);
    assert!(took >= KILL_GRACE, "killed before the grace: {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_child_that_closes_its_output_is_still_bounded_by_the_deadline() {
    let mut spec = sh("exec >/dev/null 2>&1; sleep 300");
    spec.interrupt = Interrupt::none().with_timeout(Some(Duration::from_millis(200)));
    let (end, _) = run_collect(&spec);
    assert!(matches!(end, ProcessEnd::TimedOut(_)), "{end:?}");
}

#[test]
fn the_started_process_is_reported_and_its_group_is_gone_afterwards() {
    let mut ids = Vec::new();
    let end = run(&sh("echo $$"), &mut |id| ids.push(*id), &mut |_| {});
    assert!(end.is_success());
    assert_eq!(ids.len(), 1);
    assert!(ids[0].started.is_some());
    assert!(!is_group_alive(&ids[0]));
    assert!(!end_leftover_group(&ids[0]));
}

#[test]
fn a_leftover_group_is_found_and_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("pid");
    // A group this test leaves running on purpose, as a killed runner would.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("echo $$ > '{}'; exec sleep 300", pidfile.display()),
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = pid_in(&pidfile);
    let id = ProcessId::of(pid);
    assert!(is_group_alive(&id));
    let reused = ProcessId {
        pid,
        started: id.started.map(|s| s + 1),
    };
    assert!(!is_group_alive(&reused), "a reused pid is not our group");
    assert!(end_leftover_group(&id));
    let _ = child.wait();
    assert!(!is_group_alive(&id));
}

#[test]
fn failures_read_as_messages() {
    assert_eq!(ProcessEnd::Exited(0).failure("x"), None);
    assert_eq!(
        ProcessEnd::Signalled(9).failure("x").as_deref(),
        Some("x was killed by signal 9")
    );
    assert_eq!(
        ProcessEnd::Interrupted(StopCause::Signal)
            .failure("x")
            .as_deref(),
        Some("x was stopped because the runner was interrupted")
    );
    assert_eq!(
        show(&["helm".into(), "a b".into(), "it's".into()]),
        r"$ helm 'a b' 'it'\''s'"
    );
}

#[test]
fn this_process_runs_and_a_reused_pid_does_not_count() {
    let me = std::process::id();
    let start = super::start_time(me);
    assert!(start.is_some());
    assert!(super::is_running(me, start));
    assert!(!super::is_running(me, start.map(|s| s + 1)));
    assert!(!super::is_running(0, None));
}
