//! Rollback actions for Docker hosts: revert a compose file, restart the previous container.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;

use crate::ErrorClass;
use crate::backend::{BackendError, LogSink};
use crate::process::{self, ProcessEnd, ProcessSpec};

/// The `docker` CLI to call. `search_path` replaces the child's `PATH` (which is also where the
/// program is looked up); `None` keeps relflow's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Docker {
    pub program: String,
    pub search_path: Option<OsString>,
    /// The deadline and stop flag every `docker` call is bound by.
    pub interrupt: crate::Interrupt,
}

impl Default for Docker {
    fn default() -> Self {
        Docker {
            program: "docker".to_string(),
            search_path: None,
            interrupt: crate::Interrupt::none(),
        }
    }
}

/// [`Docker::revert_compose`] with the `docker` on `PATH`.
pub fn revert_compose(
    compose_file: &Path,
    previous_compose_file: &Path,
    log: LogSink<'_>,
) -> Result<(), BackendError> {
    Docker::default().revert_compose(compose_file, previous_compose_file, log)
}

/// [`Docker::restart_previous_container`] with the `docker` on `PATH` and no run options.
pub fn restart_previous_container(
    container: &str,
    previous_image: &str,
    log: LogSink<'_>,
) -> Result<(), BackendError> {
    Docker::default().restart_previous_container(container, previous_image, &[], log)
}

impl Docker {
    /// Copies `previous_compose_file` over `compose_file` (temp file + rename, so the compose
    /// file is never half-written), then runs `docker compose -f <compose_file> up -d`.
    pub fn revert_compose(
        &self,
        compose_file: &Path,
        previous_compose_file: &Path,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        let what = format!(
            "revert {} to {}",
            compose_file.display(),
            previous_compose_file.display()
        );
        let io = |e: std::io::Error| {
            let class = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorClass::NotFound
            } else {
                ErrorClass::TaskFailed
            };
            BackendError::new(class, format!("{what}: {e}"))
        };
        let mut previous = File::open(previous_compose_file).map_err(io)?;
        let tmp = compose_file.with_extension("relflow-tmp");
        let mut out = File::create(&tmp).map_err(io)?;
        std::io::copy(&mut previous, &mut out).map_err(io)?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&tmp, compose_file).map_err(io)?;
        log(&format!(
            "Restored {} from {}",
            compose_file.display(),
            previous_compose_file.display()
        ));
        let file = compose_file.display().to_string();
        self.docker(&["compose", "-f", &file, "up", "-d"], log)
            .and_then(|finished| self.must_succeed(finished, "docker compose up"))
            .map_err(|e| BackendError::new(e.class, format!("{what}: {}", e.message)))
    }

    /// Replaces `container` by one running `previous_image`:
    /// `docker stop <container>`, `docker rm <container>` (either may fail when the container
    /// is already stopped or gone; that is logged, not fatal), then
    /// `docker run -d --name <container> <run_args...> <previous_image>`.
    /// `run_args` carries the container's options (ports, volumes, env), which `docker rm`
    /// discards.
    pub fn restart_previous_container(
        &self,
        container: &str,
        previous_image: &str,
        run_args: &[String],
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        let what = format!("restart container {container} on {previous_image}");
        let wrap = |e: BackendError| BackendError::new(e.class, format!("{what}: {}", e.message));
        for verb in ["stop", "rm"] {
            let end = self.docker(&[verb, container], log).map_err(wrap)?;
            if let Some(why) = end.failure(&format!("docker {verb} {container}")) {
                log(&format!("{why}; going on"));
            }
        }
        let mut args = vec!["run", "-d", "--name", container];
        args.extend(run_args.iter().map(String::as_str));
        args.push(previous_image);
        let finished = self.docker(&args, log).map_err(wrap)?;
        self.must_succeed(finished, "docker run").map_err(wrap)?;
        log(&format!(
            "Container {container} runs {previous_image} again"
        ));
        Ok(())
    }

    /// Runs `docker ARGS...`; `Err` when it could not run to its end (not found, deadline,
    /// stop), `Ok` with how it exited otherwise.
    fn docker(&self, args: &[&str], log: LogSink<'_>) -> Result<ProcessEnd, BackendError> {
        let argv: Vec<String> = std::iter::once(self.program.as_str())
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        log(&process::show(&argv));
        let mut spec = ProcessSpec::new(argv);
        spec.search_path = self.search_path.clone();
        spec.interrupt = self.interrupt.clone();
        let end = process::run(&spec, &mut |_| {}, &mut |line| log(&line));
        match (&end, end.class()) {
            (
                ProcessEnd::SpawnFailed(_) | ProcessEnd::TimedOut(_) | ProcessEnd::Interrupted(_),
                Some(class),
            ) => Err(BackendError::new(
                class,
                end.failure(&self.program).unwrap_or_default(),
            )),
            _ => Ok(end),
        }
    }

    fn must_succeed(&self, end: ProcessEnd, what: &str) -> Result<(), BackendError> {
        match end.failure(what) {
            None => Ok(()),
            Some(message) => Err(BackendError::new(ErrorClass::TaskFailed, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fake `docker` first on the child's PATH that appends its argv to `calls` and fails
    /// for the verbs listed in `$FAIL_VERBS` of the script.
    fn fake_docker(dir: &Path, failing_verb: &str) -> (Docker, std::path::PathBuf) {
        let calls = dir.join("calls");
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = '{failing_verb}' ] && exit 1\nexit 0\n",
            calls.display()
        );
        std::fs::write(bin.join("docker"), script).unwrap();
        std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let mut path = OsString::from(&bin);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        (
            Docker {
                program: "docker".into(),
                search_path: Some(path),
                ..Docker::default()
            },
            calls,
        )
    }

    #[test]
    fn revert_compose_restores_the_file_then_runs_compose_up() {
        let tmp = tempfile::tempdir().unwrap();
        let (docker, calls) = fake_docker(tmp.path(), "none");
        let (current, previous) = (
            tmp.path().join("compose.yaml"),
            tmp.path().join("compose.previous.yaml"),
        );
        std::fs::write(&current, "image: web:2.3\n").unwrap();
        std::fs::write(&previous, "image: web:2.2\n").unwrap();
        let mut lines = Vec::new();
        docker
            .revert_compose(&current, &previous, &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&current).unwrap(),
            "image: web:2.2\n"
        );
        let expected = format!("compose -f {} up -d\n", current.display());
        assert_eq!(std::fs::read_to_string(calls).unwrap(), expected);
        assert!(
            lines.iter().any(|l| l.starts_with("$ docker compose -f")),
            "{lines:?}"
        );
    }

    #[test]
    fn revert_compose_fails_when_compose_up_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let (docker, _) = fake_docker(tmp.path(), "compose");
        let (current, previous) = (tmp.path().join("c.yaml"), tmp.path().join("p.yaml"));
        std::fs::write(&previous, "x").unwrap();
        let err = docker
            .revert_compose(&current, &previous, &mut |_| {})
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::TaskFailed);
        assert!(
            err.message
                .ends_with("docker compose up exited with code 1"),
            "{err}"
        );
        let missing = docker
            .revert_compose(&current, &tmp.path().join("nope"), &mut |_| {})
            .unwrap_err();
        assert_eq!(missing.class, ErrorClass::NotFound);
    }

    #[test]
    fn restart_previous_container_stops_removes_and_runs_the_previous_image() {
        let tmp = tempfile::tempdir().unwrap();
        let (docker, calls) = fake_docker(tmp.path(), "stop");
        let run_args = vec!["-p".to_string(), "8080:80".to_string()];
        docker
            .restart_previous_container("web", "web:2.2", &run_args, &mut |_| {})
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(calls).unwrap(),
            "stop web\nrm web\nrun -d --name web -p 8080:80 web:2.2\n"
        );
    }
}
