//! Unit tests of the exec backend: outcomes, the record, leftovers and deadlines.

use super::*;

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn request(work_dir: &Path) -> DeployRequest {
    DeployRequest {
        application: "web".into(),
        version: "2.3".into(),
        components: vec![],
        work_dir: work_dir.to_path_buf(),
        verify: None,
        environment: None,
    }
}

#[test]
fn deploy_reports_handle_first_streams_output_and_resume_reads_the_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = ExecBackend {
        deploy: sh("echo deploying $RELFLOW_APPLICATION $RELFLOW_VERSION"),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let mut handles = Vec::new();
    let outcome = backend
        .deploy(
            &request(tmp.path()),
            &mut |h| {
                handles.push(h.to_json());
                Ok(())
            },
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap();
    assert_eq!(handles.len(), 1);
    assert!(
        lines.contains(&"deploying web 2.3".to_string()),
        "{lines:?}"
    );
    let resumed = backend.resume(&outcome.handle, &mut |_| {}).unwrap();
    assert_eq!(resumed.handle, outcome.handle);
}

#[test]
fn failing_deploy_is_task_failed_and_rollback_runs_the_rollback_command() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("rolled-back");
    let backend = ExecBackend {
        deploy: sh("exit 4"),
        rollback: Some(vec!["touch".into(), marker.display().to_string()]),
        ..Default::default()
    };
    let mut handle = None;
    let err = backend
        .deploy(
            &request(&tmp.path().join("w")),
            &mut |h| {
                handle = Some(h.clone());
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::TaskFailed);
    assert_eq!(err.message, "deploy web 2.3: `sh` exited with code 4");
    let handle = handle.unwrap();
    assert_eq!(
        backend.resume(&handle, &mut |_| {}).unwrap_err().class,
        ErrorClass::TaskFailed
    );
    let report = backend.roll_back(&handle, &mut |_| {}).unwrap();
    assert_eq!(report.failure(), None);
    assert!(marker.exists());
    let err = backend
        .roll_back_components(&handle, &["api".into()], &mut |_| {})
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Validation);
}

#[test]
fn resume_after_a_crash_asks_status_or_is_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    save(
        tmp.path(),
        State::Running {
            pid: None,
            started: None,
        },
    )
    .unwrap();
    let handle = Handle::Exec(ExecHandle {
        format: HANDLE_FORMAT,
        work_dir: tmp.path().to_path_buf(),
        application: "web".into(),
        version: "1".into(),
        components: vec![],
    });
    let without = ExecBackend {
        deploy: sh("true"),
        ..Default::default()
    };
    assert_eq!(
        without.resume(&handle, &mut |_| {}).unwrap_err().class,
        ErrorClass::Interrupted
    );
    let with = ExecBackend {
        deploy: sh("true"),
        status: Some(sh("exit 0")),
        ..Default::default()
    };
    assert!(with.resume(&handle, &mut |_| {}).is_ok());
}

fn handle_in(work_dir: &Path) -> Handle {
    Handle::Exec(ExecHandle {
        format: HANDLE_FORMAT,
        work_dir: work_dir.to_path_buf(),
        application: "web".into(),
        version: "2.3".into(),
        components: vec![],
    })
}

#[test]
fn resume_first_ends_a_deploy_command_an_earlier_runner_left_running() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("pid");
    // A deploy command's group left running, as a killed runner without a watchdog would.
    let mut left = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("echo $$ > '{}'; exec sleep 300", pidfile.display()),
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let id = ProcessId::of(pid);
    let state = State::Running {
        pid: Some(id.pid),
        started: id.started,
    };
    save(tmp.path(), state).unwrap();
    let backend = ExecBackend {
        deploy: sh("true"),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let err = backend
        .resume(&handle_in(tmp.path()), &mut |l| lines.push(l.to_string()))
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Interrupted);
    assert!(
        lines[0].starts_with("The deploy command of an earlier runner was still running"),
        "{lines:?}"
    );
    assert_eq!(left.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn a_deploy_command_past_the_deadline_is_ended_with_class_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = ExecBackend {
        deploy: sh("echo started; sleep 30"),
        interrupt: crate::Interrupt::none()
            .with_timeout(Some(std::time::Duration::from_millis(200))),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let err = backend
        .deploy(&request(tmp.path()), &mut |_| Ok(()), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Timeout);
    assert_eq!(err.message, "deploy web 2.3: `sh` timed out after 200ms");
    assert!(lines.contains(&"started".to_string()), "{lines:?}");
    // Its outcome is unknown: a resume without `status` cannot tell.
    let resumed = ExecBackend {
        deploy: sh("true"),
        ..Default::default()
    };
    assert_eq!(
        resumed
            .resume(&handle_in(tmp.path()), &mut |_| {})
            .unwrap_err()
            .class,
        ErrorClass::Interrupted
    );
}

#[test]
fn current_prints_the_version() {
    let backend = ExecBackend {
        deploy: sh("true"),
        current: Some(sh("echo; echo 2.3; echo")),
        ..Default::default()
    };
    let current = backend.current_version(&mut |_| {}).unwrap().unwrap();
    assert_eq!(current.version, "2.3");
}

#[test]
fn resume_starts_a_deploy_command_the_runner_never_started() {
    let tmp = tempfile::tempdir().unwrap();
    save(tmp.path(), State::Starting).unwrap();
    let marker = tmp.path().join("ran");
    let handle = Handle::Exec(ExecHandle {
        format: HANDLE_FORMAT,
        work_dir: tmp.path().to_path_buf(),
        application: "web".into(),
        version: "1".into(),
        components: vec![],
    });
    let backend = ExecBackend {
        deploy: vec!["touch".into(), marker.display().to_string()],
        ..Default::default()
    };
    backend.resume(&handle, &mut |_| {}).unwrap();
    assert!(marker.exists(), "the deploy command ran");
    assert_eq!(load(tmp.path()).unwrap(), State::Succeeded);
}
