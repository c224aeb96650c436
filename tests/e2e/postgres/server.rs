//! `PgServer`: one PostgreSQL cluster in a temp folder, its start, immediate stop and restart,
//! the databases tests create in it, and `psql` to look inside.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::setup::{Binaries, PgError, RunAs, initdb, io_err, run_tool};
use super::spawner;

/// Crash recovery after an immediate stop replays WAL; generous so a loaded CI machine copes.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Another process may grab the free port between the probe and the postmaster's bind.
const PORT_ATTEMPTS: usize = 5;

/// Database names are unique within the test process (one server per test, but a test may
/// create several).
static NEXT_DB: AtomicUsize = AtomicUsize::new(1);

/// A running PostgreSQL for one test; stopped and deleted on drop.
pub struct PgServer {
    bin: Binaries,
    run_as: RunAs,
    port: u16,
    /// The postmaster; a lock so a helper thread may restart the server while a test runs.
    postmaster: Mutex<Option<Child>>,
    /// Root of the temp folder: `data/`, the unix socket and `postgres.log`.
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a fresh server, failing the test with the reason (and how to install PostgreSQL
    /// when it is missing; never a silent pass).
    #[track_caller]
    pub fn start() -> PgServer {
        PgServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a fresh server with binaries from `RELFLOW_PG_BINDIR` or the usual places.
    pub fn try_start() -> Result<PgServer, PgError> {
        let explicit = std::env::var_os("RELFLOW_PG_BINDIR").map(PathBuf::from);
        let bin = Binaries::locate(explicit.as_deref())?;
        let run_as = RunAs::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("relflow-pg-")
            .tempdir()
            .map_err(io_err("create the PostgreSQL temp folder"))?;
        run_as.give(dir.path())?;
        initdb(&bin, run_as, dir.path(), &dir.path().join("data"))?;
        let mut server = PgServer {
            bin,
            run_as,
            port: 0,
            postmaster: Mutex::new(None),
            dir,
        };
        server.launch_on_a_free_port()?;
        Ok(server)
    }

    /// The temp folder holding the cluster; gone once the server is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The postmaster's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` (trust auth: no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database `test_<n>` and returns its name.
    #[track_caller]
    pub fn create_database(&self) -> String {
        let name = format!("test_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs `sql` in `db` through the `psql` binary; returns its unaligned, tuples-only output
    /// (`|` between columns, a line per row) without the last newline. Fails the test on error.
    #[track_caller]
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql_command(db, sql)
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "psql failed ({}) on {db}: {sql}\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.strip_suffix('\n').unwrap_or(&stdout).to_string()
    }

    /// The `psql` command `psql()` runs, to spawn a session in the background.
    pub fn psql_command(&self, db: &str, sql: &str) -> Command {
        let mut command = Command::new(self.bin.tool("psql"));
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
            ])
            .args(["-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Ends every client connection to `db` but psql's own (`pg_terminate_backend`), waiting
    /// up to 5 s for each to be gone; returns how many were ended.
    #[track_caller]
    pub fn terminate_backends(&self, db: &str) -> usize {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) \
             FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
            db.replace('\'', "''")
        );
        let count = self.psql("postgres", &sql);
        count
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("count of ended backends: {count:?}"))
    }

    /// Immediate stop (no checkpoint, like a crash) and start again on the same port and data:
    /// committed transactions survive through WAL replay.
    #[track_caller]
    pub fn restart(&self) {
        let restarted = self.stop_immediately().and_then(|()| self.launch());
        if let Err(e) = restarted {
            panic!("restart PostgreSQL: {e}");
        }
    }

    /// Immediate stop; the server stays down (its port refuses connections) until
    /// [`PgServer::start_again`].
    #[track_caller]
    pub fn stop(&self) {
        if let Err(e) = self.stop_immediately() {
            panic!("stop PostgreSQL: {e}");
        }
    }

    /// Starts a stopped server again on the same port and data.
    #[track_caller]
    pub fn start_again(&self) {
        if let Err(e) = self.launch() {
            panic!("start PostgreSQL again: {e}");
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        // A test that panicked while holding the lock leaves a usable child behind.
        self.postmaster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn launch_on_a_free_port(&mut self) -> Result<(), PgError> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            match self.launch() {
                Err(PgError::NotReady { what, log }) if is_port_taken(&log) => {
                    last = Some(PgError::NotReady { what, log });
                }
                done => return done,
            }
        }
        Err(last
            .unwrap_or_else(|| io_err("find a free port")(std::io::ErrorKind::AddrInUse.into())))
    }

    /// Starts the postmaster as a child and waits until its pid file says `ready`.
    fn launch(&self) -> Result<(), PgError> {
        let log_path = self.dir().join("postgres.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("open postgres.log"))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log.try_clone().map_err(io_err("share postgres.log"))?;
        let command = self.postmaster_command(log, stderr);
        let child = spawner::spawn(command).map_err(io_err("spawn postgres"))?;
        let pid = child.id();
        *self.child() = Some(child);
        let what = format!("start PostgreSQL on 127.0.0.1:{}", self.port);
        match self.wait_ready(pid) {
            Ok(()) => Ok(()),
            Err(why) => {
                self.reap_failed_start();
                let log = read_from(&log_path, log_start);
                Err(PgError::NotReady {
                    what: format!("{what} ({why})"),
                    log,
                })
            }
        }
    }

    fn postmaster_command(&self, stdout: File, stderr: File) -> Command {
        let dir = self.dir();
        let mut command = Command::new(self.bin.tool("postgres"));
        command
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            // 4 workers x a few connections, a server, the test's psql, 16-worker benchmarks.
            .args(["-c", "max_connections=200"])
            // Faster tests; commits still reach the kernel, so a process crash or an immediate
            // restart loses nothing committed (only an OS crash would).
            .args(["-c", "fsync=off"])
            .current_dir(dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        self.run_as.apply(&mut command);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
        // It runs after std's setuid, which would otherwise clear the parent-death signal.
        unsafe {
            command.pre_exec(|| {
                // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster ends its backends.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Polls the pid file, as `pg_ctl start -w` does, until it names `pid` and says `ready`.
    fn wait_ready(&self, pid: u32) -> Result<(), String> {
        let pid_file = self.dir().join("data").join("postmaster.pid");
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(child) = self.child().as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("postgres exited: {status}"));
            }
            let lines = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = lines.lines().collect();
            if lines.first() == Some(&pid.to_string().as_str())
                && lines.get(7).is_some_and(|status| status.trim() == "ready")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("not ready within {READY_WITHIN:?}"))
    }

    fn reap_failed_start(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `pg_ctl stop -m immediate`, then reaps the postmaster so no zombie is left.
    fn stop_immediately(&self) -> Result<(), PgError> {
        let Some(mut child) = self.child().take() else {
            return Ok(());
        };
        let mut command = Command::new(self.bin.tool("pg_ctl"));
        command.arg("-D").arg(self.dir().join("data")).args([
            "stop",
            "-m",
            "immediate",
            "-w",
            "-t",
            "60",
        ]);
        let stopped = run_tool(command, self.run_as, self.dir(), "stop PostgreSQL (pg_ctl)");
        if stopped.is_err() {
            // Never leave a server behind: the backends follow a killed postmaster.
            let _ = child.kill();
        }
        child.wait().map_err(io_err("reap the postmaster"))?;
        stopped.map(drop)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Dropping must not panic again while a failed test unwinds; the folder goes next.
        if let Err(e) = self.stop_immediately() {
            eprintln!("PgServer drop: {e}");
        }
    }
}

fn free_port() -> Result<u16, PgError> {
    let probe = TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("probe a free port"))?;
    let addr = probe.local_addr().map_err(io_err("read the probed port"))?;
    Ok(addr.port())
}

fn is_port_taken(log: &str) -> bool {
    log.contains("could not bind") || log.contains("Address already in use")
}

/// The log written since `offset` (this start's lines), for failure messages.
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_string(&mut text);
    }
    text
}
