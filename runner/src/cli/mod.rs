//! Command line: parse arguments, dispatch to one file per verb, map errors to exit codes.

mod abort;
mod approve;
mod common;
mod error;
mod live;
mod locks;
mod logs;
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
#[command(name = "relflow", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// State directory: the SQLite store and every release's logs.
    #[arg(
        long,
        global = true,
        env = "RELFLOW_STATE_DIR",
        default_value = ".relflow"
    )]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: Verb,
}

/// Who runs a command and why: recorded with what it does and shown by `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct PersonArgs {
    /// Who runs this command, recorded with what it does (default: the OS user).
    #[arg(long, env = "RELFLOW_ACTOR", value_name = "NAME")]
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
    Validate {
        /// The pipeline file (YAML).
        file: PathBuf,
        /// Print the result as a JSON document (errors included) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show phases, tasks and effective failure policies; with --simulate, what the policies
    /// would do for simulated failures. Runs nothing.
    Plan {
        /// The pipeline file (YAML).
        file: PathBuf,
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
    Run {
        /// The pipeline file (YAML).
        file: PathBuf,
        /// Set a pipeline variable, e.g. `--var version=2.3` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Print the release as JSON at the end instead of progress lines.
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Continue a paused or interrupted release.
    Resume {
        release: String,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a release: phases, tasks, attempts, errors, decisions (default: the newest).
    Status {
        release: Option<String>,
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
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show tasks' script_output.log.
    Logs {
        release: String,
        #[arg(long)]
        json: bool,
        /// Only this task (every run of it).
        #[arg(long)]
        task: Option<String>,
        /// Only this attempt.
        #[arg(long)]
        attempt: Option<u32>,
        /// Keep printing new lines while the release runs.
        #[arg(long, short)]
        follow: bool,
    },
    /// One more attempt of a failed task (all failed tasks without --task), then continue.
    Retry {
        release: String,
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Skip a failed task and continue the release.
    Skip {
        release: String,
        #[arg(long)]
        task: String,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Abort a release; with --rollback run the rollback order first.
    Abort {
        release: String,
        /// Roll back first: the failed task's actions and deployment, then every completed
        /// deployment and the flow-level rollback.
        #[arg(long)]
        rollback: bool,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Pause a release: start no new task, let running ones finish (works while another
    /// runner drives it); continue with `resume`.
    Pause {
        release: String,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Fix forward: stop the current phase, append new runs of PHASE up to it with new
    /// variables, and continue.
    RestartPhase {
        release: String,
        phase: String,
        /// Start the new run of PHASE at this task (earlier ones are skipped).
        #[arg(long)]
        from_task: Option<String>,
        /// New variable values, e.g. `--var version=2.3` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Prepare the new runs but leave the release paused (continue with `resume`).
        #[arg(long)]
        no_resume: bool,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Approve a manual task and continue the release.
    Approve {
        release: String,
        #[arg(long)]
        task: String,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Reject a manual task: the task fails and the release halts.
    Reject {
        release: String,
        #[arg(long)]
        task: String,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// Roll back completed deployments from their pre-deployment snapshots, newest first.
    Rollback {
        release: String,
        /// Only this deploy task (default: every completed deploy task of the release).
        #[arg(long)]
        task: Option<String>,
        /// Only this component (repeatable; default: all of the deployment's components).
        #[arg(long = "component", value_name = "C")]
        components: Vec<String>,
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the target locks on this host: who holds each, since when, and whether its
    /// holder is still at work.
    Locks {
        #[arg(long)]
        json: bool,
    },
    /// Free a target lock whose holder has ended or whose runner is gone (exit 2 while the
    /// holder is live). TARGET as `relflow locks` shows it, or a locked target folder.
    Unlock {
        target: String,
        /// Who frees it and why, for the lock folder's unlock.log.
        #[command(flatten)]
        person: PersonArgs,
        #[arg(long)]
        json: bool,
    },
    /// What each target runs now: backend, target, application, version, since when, by
    /// which release and task.
    Targets {
        /// Every change (deployed, rolled back, components rolled back), newest first.
        #[arg(long)]
        history: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the pipeline file format, for editors.
    Schema,
    /// Serve the JSON API and the web UI; the server drives the releases its actions start.
    Serve {
        /// Address to listen on; anything but loopback needs TLS or --insecure-http.
        #[arg(long, default_value = "127.0.0.1:8080")]
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
    #[command(subcommand)]
    Token(TokenVerb),
}

#[derive(Debug, Subcommand)]
pub enum TokenVerb {
    /// Create a token; it is printed alone on stdout, once (the store keeps only its hash).
    Create {
        name: String,
        #[arg(long, value_parser = ["viewer", "operator"])]
        role: String,
    },
    /// List tokens: name, role, when created and last used.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token; its browser sessions end too.
    Revoke { name: String },
}

fn init_tracing() {
    // RUST_LOG=relflow=debug shows the engine's tracing on stderr; silent otherwise.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
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

fn dispatch(cli: Cli) -> Result<i32, CliError> {
    let state = &cli.state_dir;
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
        } => run::run(state, &file, &vars, &person.person(), json),
        Verb::Resume {
            release,
            person,
            json,
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
        } => retry::run(state, &release, task.as_deref(), &person.person(), json),
        Verb::Skip {
            release,
            task,
            person,
            json,
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
