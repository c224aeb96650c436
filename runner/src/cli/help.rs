//! What `--help` shows beyond the argument list: examples, exit codes, colours.

/// The exit codes of a command that runs a release (DESIGN.md → Exit codes), for `--help`.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  the release completed
  1  the release halted on a failure and waits for a person
  2  invalid input: usage, pipeline file, unknown release, or a command the release's state refuses
  3  the release was aborted or cancelled
  4  the release ended by a rollback
  5  the release is paused: waiting for approval or for `relflow resume`
  6  the release is held by another live runner, or the state is unusable"
    };
}

/// The exit codes of a command that runs no release.
macro_rules! other_exit_codes {
    () => {
        "Exit codes: 0 success, 2 invalid input, 6 the state is unusable."
    };
}

/// The examples and exit codes under `relflow --help`.
pub const ROOT: &str = concat!(
    "Examples:
  relflow run pipelines/petportal.yaml --var version=2.3
  relflow status                       # the newest release
  relflow logs petportal-2 --task deploy-petportal
  relflow restart-phase petportal-2 deploy --var version=2.4

",
    exit_codes!(),
    "
Other commands: 0 success, 2 invalid input, 6 the state is unusable.

Environment:
  RELFLOW_STATE_DIR  the state directory (default: .relflow here or in the nearest parent)
  RELFLOW_ACTOR      who acts (default: the OS user)
  RUST_LOG           tracing on stderr, e.g. RUST_LOG=relflow=debug
  NO_COLOR           any value turns colour off"
);

/// Help colours in cargo's palette; clap drops them when NO_COLOR is set, TERM=dumb or the
/// output is not a terminal.
pub const STYLES: clap::builder::Styles = {
    use clap::builder::styling::{AnsiColor, Effects};
    clap::builder::Styles::styled()
        .header(AnsiColor::Green.on_default().effects(Effects::BOLD))
        .usage(AnsiColor::Green.on_default().effects(Effects::BOLD))
        .literal(AnsiColor::Cyan.on_default().effects(Effects::BOLD))
        .placeholder(AnsiColor::Cyan.on_default())
        .error(AnsiColor::Red.on_default().effects(Effects::BOLD))
        .valid(AnsiColor::Cyan.on_default().effects(Effects::BOLD))
        .invalid(AnsiColor::Yellow.on_default().effects(Effects::BOLD))
};

/// Under `relflow validate --help`.
pub const VALIDATE: &str = concat!(
    "Examples:
  relflow validate pipelines/petportal.yaml

",
    other_exit_codes!()
);

/// Under `relflow plan --help`.
pub const PLAN: &str = concat!(
    "Examples:
  relflow plan pipelines/petportal.yaml
  relflow plan pipelines/petportal.yaml --simulate deploy-petportal=task_failedx4
  relflow plan pipelines/petportal.yaml --var version=2.3 --simulate smoke=timeout

",
    other_exit_codes!()
);

/// Under `relflow run --help`.
pub const RUN: &str = concat!(
    "Examples:
  relflow run pipelines/petportal.yaml
  relflow run pipelines/petportal.yaml --var version=2.3
  relflow run pipelines/petportal.yaml --json > release.json

",
    exit_codes!()
);

/// Under `relflow resume --help`.
pub const RESUME: &str = concat!(
    "Examples:
  relflow resume petportal-2

",
    exit_codes!()
);

/// Under `relflow status --help`.
pub const STATUS: &str = concat!(
    "Examples:
  relflow status
  relflow status petportal-2
  relflow status petportal-2 --json | jq .status

",
    other_exit_codes!()
);

/// Under `relflow list --help`.
pub const LIST: &str = concat!(
    "Examples:
  relflow list
  relflow list --json

",
    other_exit_codes!()
);

/// Under `relflow logs --help`.
pub const LOGS: &str = concat!(
    "Examples:
  relflow logs petportal-2
  relflow logs petportal-2 --task deploy-petportal --attempt 4
  relflow logs petportal-2 --follow

",
    other_exit_codes!()
);

/// Under `relflow retry --help`.
pub const RETRY: &str = concat!(
    "Examples:
  relflow retry petportal-2
  relflow retry petportal-2 --task smoke

",
    exit_codes!()
);

/// Under `relflow skip --help`.
pub const SKIP: &str = concat!(
    "Examples:
  relflow skip petportal-2 --task smoke

",
    exit_codes!()
);

/// Under `relflow abort --help`.
pub const ABORT: &str = concat!(
    "Examples:
  relflow abort petportal-2
  relflow abort petportal-2 --rollback --comment \"2.2 is broken, back to 1.0\"

",
    exit_codes!()
);

/// Under `relflow pause --help`.
pub const PAUSE: &str = concat!(
    "Examples:
  relflow pause petportal-2 --comment \"change freeze\"
  relflow resume petportal-2

",
    exit_codes!()
);

/// Under `relflow restartphase --help`.
pub const RESTART_PHASE: &str = concat!(
    "Examples:
  relflow restart-phase petportal-2 deploy --var version=2.3
  relflow restart-phase petportal-2 deploy --from-task smoke
  relflow restart-phase petportal-2 deploy --var version=2.3 --no-resume

",
    exit_codes!()
);

/// Under `relflow approve --help`.
pub const APPROVE: &str = concat!(
    "Examples:
  relflow approve petportal-2 --task promote

",
    exit_codes!()
);

/// Under `relflow reject --help`.
pub const REJECT: &str = concat!(
    "Examples:
  relflow reject petportal-2 --task promote

",
    exit_codes!()
);

/// Under `relflow rollback --help`.
pub const ROLLBACK: &str = concat!(
    "Examples:
  relflow rollback petportal-3
  relflow rollback petportal-3 --task deploy-petportal --component web

",
    other_exit_codes!(),
    " A rollback job that ends in `exception` exits 1."
);

/// Under `relflow locks --help`.
pub const LOCKS: &str = concat!(
    "Examples:
  relflow locks
  relflow locks --json

",
    other_exit_codes!()
);

/// Under `relflow unlock --help`.
pub const UNLOCK: &str = concat!(
    "Examples:
  relflow unlock .relflow-demo/petportal
  relflow unlock exec:cluster:petportal --actor alice

",
    other_exit_codes!()
);

/// Under `relflow schema --help`.
pub const SCHEMA: &str = "Examples:
  relflow schema > relflow.schema.json";

/// Under `relflow completions --help`.
pub const COMPLETIONS: &str = "Examples:
  relflow completions bash > ~/.local/share/bash-completion/completions/relflow
  relflow completions zsh > ~/.zfunc/_relflow      # with fpath+=(~/.zfunc) before compinit
  relflow completions fish > ~/.config/fish/completions/relflow.fish";

/// Under `relflow man --help`.
pub const MAN: &str = "Examples:
  relflow man | man -l -
  relflow man run | man -l -
  relflow man --dir ~/.local/share/man/man1       # then: man relflow, man relflow-run";

/// Under `relflow targets --help`.
pub const TARGETS: &str = concat!(
    "Examples:
  relflow targets
  relflow targets --history
  relflow targets --json

",
    other_exit_codes!()
);

/// Under `relflow serve --help`.
pub const SERVE: &str = concat!(
    "Examples:
  relflow serve                                   # http://127.0.0.1:8080, prints a first token once
  relflow serve --pipelines pipelines             # the UI and POST /api/v1/releases start these
  relflow serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem

",
    other_exit_codes!()
);

/// Under `relflow worker --help`.
pub const WORKER: &str = concat!(
    "Examples:
  relflow worker --store postgres://relflow@db/relflow        # drive what needs a runner
  relflow worker --concurrency 8                               # up to 8 releases at once
  relflow retry petportal-2 --detach --store $URL               # leave the drive to a worker

A worker drives releases ordered with --detach (or from the server) and releases whose
runner is gone (its lease expired), through the re-attach path of `resume`. The first
SIGINT/SIGTERM stops taking work and waits for the drives to end; the second pauses them.

",
    other_exit_codes!()
);

/// Under `relflow token --help`.
pub const TOKEN: &str = concat!(
    "Examples:
  relflow token create ann --role operator        # prints the token once
  relflow token create dashboard --role viewer
  relflow token list
  relflow token revoke ann

",
    other_exit_codes!()
);
