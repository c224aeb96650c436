//! Command line: parse arguments, dispatch to one file per verb, map errors to exit codes.

mod abort;
mod approve;
mod common;
mod completions;
pub mod detach;
mod error;
mod help;
mod live;
mod locks;
mod logs;
mod man;
mod pause;
mod plan;
mod restart_phase;
mod resume;
mod retry;
mod rollback;
mod run;
mod schema;
mod serve;
mod skip;
pub mod state_dir;
mod status;
mod targets;
mod token;
mod unlock;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::Answer;
use crate::engine::person::Person;
use crate::exit_code;

pub use error::CliError;

/// relflow runs release pipelines: it retries what is transient, rolls back what failed,
/// and keeps every release's state so a person can pick it up later.
#[derive(Debug, Parser)]
#[command(
    name = "relflow",
    // The same name in usage lines whatever the binary file is called (tests run a copy).
    bin_name = "relflow",
    version,
    about,
    long_about = None,
    propagate_version = true,
    styles = help::STYLES,
    max_term_width = 100,
    after_help = help::ROOT
)]
pub struct Cli {
    /// State directory: the SQLite store and every release's logs [default: .relflow in the
    /// working directory or the nearest parent folder that has one; `run` creates ./.relflow]
    #[arg(
        long,
        global = true,
        env = "RELFLOW_STATE_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// Where release state lives: `sqlite` (the default: the store in the state directory)
    /// or a shared PostgreSQL store, `postgres://user:password@host:5432/db`, that every
    /// machine with the URL sees and controls. The state directory still holds this
    /// machine's own files (logs, events, the secret key).
    #[arg(
        long,
        global = true,
        env = "RELFLOW_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub store: Option<String>,
    #[command(subcommand)]
    pub command: Verb,
}

/// Who runs a command and why: recorded with what it does and shown by `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct PersonArgs {
    /// Who runs this command, recorded with what it does (default: the OS user).
    #[arg(
        long,
        env = "RELFLOW_ACTOR",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub actor: Option<String>,
    /// Why: recorded with the action and shown by `status`.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

impl PersonArgs {
    fn person(&self) -> Person {
        Person::new(self.actor.as_deref(), self.comment.as_deref())
    }
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Load and validate a pipeline file; errors name file, line and column.
    #[command(after_help = help::VALIDATE)]
    Validate {
        /// The pipeline file (YAML).
        file: PathBuf,
        /// Print the result as a JSON document (errors included) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show phases, tasks and effective failure policies; with --simulate, what the policies
    /// would do for simulated failures. Runs nothing.
    #[command(after_help = help::PLAN)]
    Plan {
        /// The pipeline file (YAML).
        file: PathBuf,
        /// Set a pipeline variable, e.g. `--var version=2.3` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// `TASK=CLASS[xN]`: the task's first N attempts fail with CLASS (repeatable),
        /// e.g. `--simulate deploy-petportal=task_failedx4`.
        #[arg(long, value_name = "TASK=CLASS[xN]")]
        simulate: Vec<String>,
        /// Print the plan as a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Start a release of a pipeline and run it until it completes or halts.
    #[command(after_help = help::RUN)]
    Run {
        /// The pipeline file (YAML).
        file: PathBuf,
        /// Set a pipeline variable, e.g. `--var version=2.3` (repeatable; only declared
        /// variables).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end (no progress lines).
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Continue a paused or interrupted release.
    #[command(after_help = help::RESUME)]
    Resume {
        /// The release, e.g. `petportal-2` (see `relflow list`).
        release: String,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end (no progress lines).
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Show a release: phases, tasks, attempts, errors, decisions (default: the newest).
    #[command(after_help = help::STATUS)]
    Status {
        /// The release, e.g. `petportal-2` (default: the newest).
        release: Option<String>,
        /// Print the release as a JSON document.
        #[arg(long)]
        json: bool,
        /// Follow the release until it completes, halts or waits for a person.
        #[arg(long)]
        watch: bool,
        /// Exit with the release's exit code (0 completed, 1 halted, ...), as `run` would.
        #[arg(long)]
        exit_status: bool,
    },
    /// List releases.
    #[command(after_help = help::LIST)]
    List {
        /// Print the releases as a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Show tasks' script_output.log.
    #[command(after_help = help::LOGS)]
    Logs {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// Print the log lines as a JSON document.
        #[arg(long)]
        json: bool,
        /// Only this task (every run of it).
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Only this attempt (1 is the first).
        #[arg(long, value_name = "N")]
        attempt: Option<u32>,
        /// Keep printing new lines while the release runs.
        #[arg(long, short)]
        follow: bool,
    },
    /// One more attempt of a failed task (all failed tasks without --task), then continue.
    #[command(after_help = help::RETRY)]
    Retry {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// The failed task to retry (default: every failed task).
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end (no progress lines).
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Skip a failed task and continue the release.
    #[command(after_help = help::SKIP)]
    Skip {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// The failed (or rolled-back) task to skip.
        #[arg(long, value_name = "TASK")]
        task: String,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end (no progress lines).
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Abort a release; with --rollback run the rollback order first.
    #[command(after_help = help::ABORT)]
    Abort {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// Roll back first: the failed task's actions and deployment, then every completed
        /// deployment and the flow-level rollback.
        #[arg(long)]
        rollback: bool,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end.
        #[arg(long)]
        json: bool,
    },
    /// Pause a release: start no new task, let running ones finish (works while another
    /// runner drives it); continue with `resume`.
    #[command(after_help = help::PAUSE)]
    Pause {
        /// The release, e.g. `petportal-2`.
        release: String,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end.
        #[arg(long)]
        json: bool,
    },
    /// Fix forward: stop the current phase, append new runs of PHASE up to it with new
    /// variables, and continue.
    #[command(after_help = help::RESTART_PHASE)]
    RestartPhase {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// The phase to run again (the current one or an earlier one), e.g. `deploy`.
        phase: String,
        /// Start the new run of PHASE at this task (earlier ones are skipped).
        #[arg(long, value_name = "TASK")]
        from_task: Option<String>,
        /// New variable values, e.g. `--var version=2.3` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Prepare the new runs but leave the release paused (continue with `resume`).
        #[arg(long)]
        no_resume: bool,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end (no progress lines).
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Approve a manual task and continue the release.
    #[command(after_help = help::APPROVE)]
    Approve {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// The manual task waiting for an answer.
        #[arg(long, value_name = "TASK")]
        task: String,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end (no progress lines).
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Reject a manual task: the task fails and the release halts.
    #[command(after_help = help::REJECT)]
    Reject {
        /// The release, e.g. `petportal-2`.
        release: String,
        /// The manual task waiting for an answer.
        #[arg(long, value_name = "TASK")]
        task: String,
        #[command(flatten)]
        person: PersonArgs,
        /// Print only the release document as JSON at the end.
        #[arg(long)]
        json: bool,
        /// Order it and return at once: a `relflow worker` drives the release (exit 0 once
        /// the order is recorded; refusals exit as without it).
        #[arg(long)]
        detach: bool,
    },
    /// Roll back completed deployments from their pre-deployment snapshots, newest first.
    #[command(after_help = help::ROLLBACK)]
    Rollback {
        /// The release, e.g. `petportal-3`.
        release: String,
        /// Only this deploy task (default: every completed deploy task of the release).
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Only this component (repeatable; default: all of the deployment's components).
        #[arg(long = "component", value_name = "C")]
        components: Vec<String>,
        #[command(flatten)]
        person: PersonArgs,
        /// Print the rollback jobs as a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List the target locks on this host: who holds each, since when, and whether its
    /// holder is still at work.
    #[command(after_help = help::LOCKS)]
    Locks {
        /// Print the locks as a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Free a target lock whose holder has ended or whose runner is gone (exit 2 while the
    /// holder is live). TARGET as `relflow locks` shows it, or a locked target folder.
    #[command(after_help = help::UNLOCK)]
    Unlock {
        /// The locked target: as `relflow locks` shows it, or the target folder's path.
        target: String,
        /// Who frees it and why, for the lock folder's unlock.log.
        #[command(flatten)]
        person: PersonArgs,
        /// Print the result as a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// What each target runs now: backend, target, application, version, since when, by
    /// which release and task.
    #[command(after_help = help::TARGETS)]
    Targets {
        /// Every change (deployed, rolled back, components rolled back), newest first.
        #[arg(long)]
        history: bool,
        /// Print the targets as a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the pipeline file format, for editors.
    #[command(after_help = help::SCHEMA)]
    Schema,
    /// Print a shell completion script on stdout.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, or write every page into a folder.
    #[command(after_help = help::MAN)]
    Man {
        /// A verb's own page, e.g. `run` (default: the page of relflow itself).
        verb: Option<String>,
        /// Write relflow.1 and a relflow-VERB.1 per verb into DIR instead.
        #[arg(long, value_name = "DIR", conflicts_with = "verb")]
        dir: Option<PathBuf>,
    },
    /// Drive releases that need a runner: orders left with --detach, releases whose runner
    /// is gone. Many workers, on many machines, share one store.
    #[command(after_help = help::WORKER)]
    Worker {
        /// How many releases this worker drives at once.
        #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: u16,
        /// How often to look for work without being told (a shared store tells at once).
        #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = crate::pipeline::duration::parse_duration)]
        poll: std::time::Duration,
        /// Exit once no release needs a runner and every drive has ended.
        #[arg(long)]
        until_idle: bool,
    },
    /// Serve the JSON API and the web UI; the server drives the releases its actions start.
    #[command(after_help = help::SERVE)]
    Serve {
        /// Address to listen on; anything but loopback needs TLS or --insecure-http.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Folder of pipeline files that `POST /api/v1/releases` may start.
        #[arg(long, value_name = "DIR")]
        pipelines: Option<PathBuf>,
        /// TLS certificate chain (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on a non-loopback address (tokens travel in clear text).
        #[arg(long, conflicts_with = "tls_cert")]
        insecure_http: bool,
    },
    /// Tokens for `relflow serve`: create, list, revoke.
    #[command(subcommand, after_help = help::TOKEN)]
    Token(TokenVerb),
}

#[derive(Debug, Subcommand)]
pub enum TokenVerb {
    /// Create a token; it is printed alone on stdout, once (the store keeps only its hash).
    #[command(after_help = help::TOKEN)]
    Create {
        /// The token's name: recorded as the actor of everything done with it.
        name: String,
        /// viewer: read only; operator: read and act.
        #[arg(long, value_parser = ["viewer", "operator"])]
        role: String,
    },
    /// List tokens: name, role, when created and last used.
    #[command(after_help = help::TOKEN)]
    List {
        /// Print a JSON document (format 1) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token; its browser sessions end too.
    #[command(after_help = help::TOKEN)]
    Revoke {
        /// The token's name, as `relflow token list` shows it.
        name: String,
    },
}

fn init_tracing() {
    // RUST_LOG=relflow=debug shows the engine's tracing on stderr; silent otherwise.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(crate::output::style::is_enabled_on_stderr())
            // Through the release's redactor: a traced value may hold a secret.
            .with_writer(crate::output::redact::RedactedStderr)
            .try_init();
    }
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`relflow status | head`) instead of panicking on a broken pipe.
    // SAFETY: resets one signal disposition before any thread starts; no memory involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit_code::INVALID_INPUT
            } else {
                exit_code::OK
            };
            let _ = err.print();
            return code;
        }
    };
    init_tracing();
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", crate::output::Redactor::redact_global(&err.message));
            err.code
        }
    }
}

impl Verb {
    /// Whether `--detach` was given to a verb that drives a release.
    fn is_detached(&self) -> bool {
        match self {
            Verb::Run { detach, .. }
            | Verb::Resume { detach, .. }
            | Verb::Retry { detach, .. }
            | Verb::Skip { detach, .. }
            | Verb::RestartPhase { detach, .. }
            | Verb::Approve { detach, .. }
            | Verb::Reject { detach, .. } => *detach,
            _ => false,
        }
    }
}

/// The release a verb acts on, when it needs a store that already holds it.
fn release_of(verb: &Verb) -> Option<&str> {
    match verb {
        Verb::Resume { release, .. }
        | Verb::Logs { release, .. }
        | Verb::Retry { release, .. }
        | Verb::Skip { release, .. }
        | Verb::Abort { release, .. }
        | Verb::Pause { release, .. }
        | Verb::RestartPhase { release, .. }
        | Verb::Approve { release, .. }
        | Verb::Reject { release, .. }
        | Verb::Rollback { release, .. } => Some(release),
        Verb::Status { release, .. } => release.as_deref(),
        _ => None,
    }
}

/// Where the state lives for this command. Only `run` creates a state directory when none
/// is found; a command about a release refuses (exit 2, as for an unknown release) naming
/// where it looked, instead of creating an empty store; `status`/`list` say so on stderr.
fn state_dir_for(given: Option<PathBuf>, verb: &Verb) -> Result<PathBuf, CliError> {
    let found = state_dir::StateDir::from_env(given);
    // A shared store holds every release, whatever this machine's folders hold.
    let is_shared = crate::store::shared::selected().is_some();
    if let Some(miss) = found.miss_text().filter(|_| !is_shared) {
        match verb {
            Verb::Run { .. } => {}
            Verb::Status { release: None, .. } | Verb::List { .. } | Verb::Targets { .. } => {
                eprintln!("note: {miss}")
            }
            other => {
                if let Some(release) = release_of(other) {
                    return Err(CliError::input(format!(
                        "error: no release `{release}`: {miss}"
                    )));
                }
            }
        }
    }
    Ok(found.path())
}

fn dispatch(cli: Cli) -> Result<i32, CliError> {
    crate::store::shared::select(cli.store.as_deref())
        .map_err(|e| CliError::input(format!("error: {e}")))?;
    detach::set(cli.command.is_detached());
    let state = &state_dir_for(cli.state_dir, &cli.command)?;
    match cli.command {
        Verb::Validate { file, json } => validate::run(&file, json),
        Verb::Plan {
            file,
            vars,
            simulate,
            json,
        } => plan::run(&file, &vars, &simulate, json),
        Verb::Run {
            file,
            vars,
            person,
            json,
            ..
        } => run::run(state, &file, &vars, &person.person(), json),
        Verb::Resume {
            release,
            person,
            json,
            ..
        } => resume::run(state, &release, &person.person(), json),
        Verb::Status {
            release,
            json,
            watch,
            exit_status,
        } => {
            let args = status::StatusArgs {
                release: release.as_deref(),
                json,
                watch,
                exit_status,
            };
            status::status(state, args)
        }
        Verb::List { json } => status::list(state, json),
        Verb::Logs {
            release,
            json,
            task,
            attempt,
            follow,
        } => logs::run(state, &release, task.as_deref(), attempt, follow, json),
        Verb::Retry {
            release,
            task,
            person,
            json,
            ..
        } => retry::run(state, &release, task.as_deref(), &person.person(), json),
        Verb::Skip {
            release,
            task,
            person,
            json,
            ..
        } => skip::run(state, &release, &task, &person.person(), json),
        Verb::Abort {
            release,
            rollback,
            person,
            json,
        } => abort::run(state, &release, rollback, &person.person(), json),
        Verb::Pause {
            release,
            person,
            json,
        } => pause::run(state, &release, &person.person(), json),
        Verb::RestartPhase {
            release,
            phase,
            from_task,
            vars,
            no_resume,
            person,
            json,
            ..
        } => {
            let args = restart_phase::RestartArgs {
                release: &release,
                phase: &phase,
                from_task: from_task.as_deref(),
                vars: &vars,
                no_resume,
                json,
            };
            restart_phase::run(state, args, &person.person())
        }
        Verb::Approve {
            release,
            task,
            person,
            json,
            ..
        } => approve::run(
            state,
            &release,
            &task,
            Answer::Approve,
            &person.person(),
            json,
        ),
        Verb::Reject {
            release,
            task,
            person,
            json,
            ..
        } => approve::run(
            state,
            &release,
            &task,
            Answer::Reject,
            &person.person(),
            json,
        ),
        Verb::Rollback {
            release,
            task,
            components,
            person,
            json,
        } => rollback::run(
            state,
            &release,
            task.as_deref(),
            &components,
            &person.person(),
            json,
        ),
        Verb::Locks { json } => locks::run(json),
        Verb::Unlock {
            target,
            person,
            json,
        } => unlock::run(&target, &person.person(), json),
        Verb::Targets { history, json } => targets::run(state, history, json),
        Verb::Schema => Ok(schema::run()),
        Verb::Completions { shell } => completions::run(shell),
        Verb::Man { verb, dir } => man::run(verb.as_deref(), dir.as_deref()),
        Verb::Worker {
            concurrency,
            poll,
            until_idle,
        } => crate::worker::run(
            state,
            &crate::worker::WorkerOptions {
                concurrency: usize::from(concurrency),
                poll,
                until_idle,
            },
        ),
        Verb::Serve {
            listen,
            pipelines,
            tls_cert,
            tls_key,
            insecure_http,
        } => serve::run(serve::ServeOptions {
            state_dir: state.clone(),
            listen,
            pipelines,
            tls: tls_cert.zip(tls_key),
            insecure_http,
        }),
        Verb::Token(TokenVerb::Create { name, role }) => {
            let role = crate::store::tokens::Role::parse(&role)
                .ok_or_else(|| CliError::input(format!("error: unknown role `{role}`")))?;
            token::create(state, &name, role)
        }
        Verb::Token(TokenVerb::List { json }) => token::list(state, json),
        Verb::Token(TokenVerb::Revoke { name }) => token::revoke(state, &name),
    }
}
