//! The `revert_compose` and `restart_previous_container` actions, against a fake `docker`
//! first on PATH that records its arguments.

use crate::harness::Sandbox;

/// A sandbox whose `docker` is a script appending its argv to `docker.calls`.
fn with_fake_docker() -> Sandbox {
    let mut sb = Sandbox::new();
    let calls = sb.path().join("docker.calls");
    sb.write_script(
        "fakebin/docker",
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
    );
    let path = format!(
        "{}:{}",
        sb.path().join("fakebin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    sb.env("PATH", &path);
    sb
}

#[test]
fn revert_compose_restores_the_saved_file_and_brings_the_stack_up() {
    let sb = with_fake_docker();
    sb.write(
        "docker-compose.yml",
        "services: { web: { image: petportal:2.2 } }\n",
    );
    sb.write(
        "docker-compose.prev.yml",
        "services: { web: { image: petportal:1.0 } }\n",
    );
    sb.write(
        "p.yaml",
        r#"
name: compose
phases:
  - name: deploy
    tasks:
      - name: up
        command: { run: [sh, -c, "exit 1"] }
        on_failure:
          then: pause
          actions:
            - revert_compose: { file: docker-compose.yml, previous: docker-compose.prev.yml }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(1);
    assert_eq!(
        sb.read("docker-compose.yml"),
        "services: { web: { image: petportal:1.0 } }\n"
    );
    let compose = sb.path().join("docker-compose.yml");
    assert_eq!(
        sb.read("docker.calls"),
        format!("compose -f {} up -d\n", compose.display())
    );
    let log = sb.read(".relflow/releases/compose-1/deploy/up/script_output.log");
    assert!(log.contains("Restored"), "{log}");
}

#[test]
fn restart_previous_container_runs_when_a_later_task_is_rolled_back() {
    let sb = with_fake_docker();
    sb.write(
        "p.yaml",
        r#"
name: containers
phases:
  - name: deploy
    tasks:
      - name: start-web
        command: { run: [echo, started] }
        on_failure:
          actions:
            - restart_previous_container: { container: web, image: "petportal:1.0", run_args: [-p, "8080:80"] }
              trigger: any_task
      - name: smoke
        command: { run: [sh, -c, "exit 1"] }
        on_failure: { then: rollback }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(4);
    assert_eq!(
        sb.read("docker.calls"),
        "stop web\nrm web\nrun -d --name web -p 8080:80 petportal:1.0\n"
    );
    let rollback = sb.read(".relflow/releases/containers-1/deploy/smoke/rollback.log");
    assert!(
        rollback.contains("step 1: any_task action `restart_previous_container web petportal:1.0` of task start-web: ok"),
        "{rollback}"
    );
}

#[test]
fn an_action_with_two_kinds_is_refused_at_load() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: bad
phases:
  - name: deploy
    tasks:
      - name: up
        command: { run: [echo] }
        on_failure:
          actions:
            - { run: [echo], revert_compose: { file: a, previous: b } }
"#,
    );
    let out = sb.run(&["validate", "p.yaml"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("`run` and `revert_compose` exclude each other"),
        "{}",
        out.stderr
    );
}
