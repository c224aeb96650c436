//! Scripted failure policies (`on_failure: { script: policies/NAME.rhai }`): compiled once at
//! load time, evaluated in a sandbox for each failure. A script that errors, loops, runs out
//! of time or returns no decision pauses the release with the reason; it never crashes the
//! runner.

mod input;
mod sandbox;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, EvalAltResult, ParseError, Position};

pub use sandbox::{ScriptDecision, ScriptLimits};

use super::decide::{Decided, Decision, History};
use super::failure::Failure;
use super::model::{RetryPolicy, Then};
use super::schedule::retry_delay;
use crate::pipeline::duration::format_duration;

/// A script may retry one task run at most this often, whatever it returns (the release's
/// `retry_budget` bounds all retries together as well).
pub const MAX_SCRIPT_RETRIES_PER_TASK: u32 = 100;

/// The largest policy script relflow reads: 256 KiB.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;

/// A compiled policy script. Clones share the compiled AST and the engine.
#[derive(Clone)]
pub struct ScriptPolicy {
    /// Absolute path (resolved against the pipeline folder).
    path: PathBuf,
    /// As written in the pipeline, for messages: `policies/retry-transient.rhai`.
    name: String,
    ast: Arc<AST>,
    engine: Arc<Engine>,
    limits: ScriptLimits,
}

impl fmt::Debug for ScriptPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptPolicy")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Two policies are the same script when they name the same file.
impl PartialEq for ScriptPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

/// A script that does not compile: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error: {message}")]
pub struct CompileError {
    /// 1-based; 0 when Rhai gave no position.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl ScriptPolicy {
    /// Compiles `source` with the default limits.
    pub fn compile(
        path: impl Into<PathBuf>,
        name: impl Into<String>,
        source: &str,
    ) -> Result<ScriptPolicy, CompileError> {
        ScriptPolicy::compile_with_limits(path, name, source, ScriptLimits::default())
    }

    pub fn compile_with_limits(
        path: impl Into<PathBuf>,
        name: impl Into<String>,
        source: &str,
        limits: ScriptLimits,
    ) -> Result<ScriptPolicy, CompileError> {
        let engine = sandbox::build_engine(&limits);
        let ast = engine
            .compile_with_scope(&input::compile_scope(), source)
            .map_err(|e| compile_error(&e))?;
        Ok(ScriptPolicy {
            path: path.into(),
            name: name.into(),
            ast: Arc::new(ast),
            engine: Arc::new(engine),
            limits,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as written in the pipeline.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> ScriptLimits {
        self.limits
    }

    /// Runs the script for `failure`; `Err` is the reason to pause. Also returns what the
    /// script printed.
    pub fn evaluate(
        &self,
        failure: &Failure,
        retries_left: u32,
    ) -> (Result<ScriptDecision, String>, Vec<String>) {
        let mut scope = input::scope_for(failure, retries_left);
        let run = || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.engine
                    .eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast)
            }))
        };
        let (result, is_timed_out, printed) = sandbox::with_run(self.limits.time_limit, run);
        let outcome = match result {
            Err(_) => Err("the script engine panicked".to_string()),
            Ok(Err(_)) if is_timed_out => Err(format!(
                "stopped after the time limit of {}",
                format_duration(self.limits.time_limit)
            )),
            Ok(Err(err)) => Err(self.runtime_error(*err)),
            Ok(Ok(value)) => as_decision(value),
        };
        (
            outcome.map_err(|why| format!("script {}: {why}", self.name)),
            printed,
        )
    }

    fn runtime_error(&self, err: EvalAltResult) -> String {
        // An error inside a script function: report where it happened, and the call chain.
        let mut err = err;
        let mut calls = Vec::new();
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) = err {
            calls.push(match pos.line() {
                Some(line) => format!("in {name}() called at line {line}"),
                None => format!("in {name}()"),
            });
            err = *inner;
        }
        let pos = err.take_position();
        let what = match err {
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "stopped after {} operations (an endless loop?)",
                self.limits.max_operations
            ),
            EvalAltResult::ErrorStackOverflow(_) => format!(
                "stopped at {} nested calls (endless recursion?)",
                self.limits.max_call_levels
            ),
            other => other.to_string(),
        };
        let at = match (pos.line(), pos.position()) {
            (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
            (Some(line), None) => format!(" at line {line}"),
            _ => String::new(),
        };
        let chain = if calls.is_empty() {
            String::new()
        } else {
            format!(" ({})", calls.join(", "))
        };
        format!("runtime error{at}{chain}: {what}")
    }
}

fn compile_error(err: &ParseError) -> CompileError {
    let pos: Position = err.position();
    CompileError {
        line: pos.line().unwrap_or(0),
        column: pos.position().unwrap_or(1),
        message: err.err_type().to_string(),
    }
}

fn as_decision(value: Dynamic) -> Result<ScriptDecision, String> {
    if value.is_unit() {
        return Err(
            "returned nothing: end the script with a decision such as retry(), rollback() or \
             pause()"
                .to_string(),
        );
    }
    let type_name = value.type_name();
    value.try_cast::<ScriptDecision>().ok_or_else(|| {
        format!(
            "returned a {type_name} instead of a decision such as retry(), rollback() or pause()"
        )
    })
}

/// The decision of a scripted policy, as `decide` returns it: the script's choice, bounded by
/// the retry budget and [`MAX_SCRIPT_RETRIES_PER_TASK`].
pub fn decide_by_script(
    script: &ScriptPolicy,
    source: &str,
    failure: &Failure,
    history: History,
    jitter_sample: f64,
) -> Decided {
    let budget_left = history.retry_budget.saturating_sub(history.retries_used);
    let task_left = MAX_SCRIPT_RETRIES_PER_TASK.saturating_sub(history.task_retries);
    let retries_left = budget_left.min(task_left);
    let (result, printed) = script.evaluate(failure, retries_left);
    let rule = format!("{source}: on_failure.script {}", script.name());
    let pause = |reason: String| Decided {
        decision: Decision::Then(Then::Pause),
        rule: rule.clone(),
        reason: with_printed(reason, &printed),
    };
    // What a script printed explains its choice: `... returned rollback(): not transient`.
    let explained = |returned: String| {
        if printed.is_empty() {
            returned
        } else {
            format!("{returned}: {}", printed.join("; "))
        }
    };
    let chosen = match result {
        Ok(chosen) => chosen,
        Err(why) => return pause(why),
    };
    let returned = format!("script {} returned {}", script.name(), chosen.call());
    let decision = match chosen {
        ScriptDecision::Retry { .. } if budget_left == 0 => {
            return Decided {
                reason: format!(
                    "{returned}, but the release's retry budget of {} is used up",
                    history.retry_budget
                ),
                ..pause(String::new())
            };
        }
        ScriptDecision::Retry { .. } if task_left == 0 => {
            return Decided {
                reason: format!(
                    "{returned}, but the task already retried {MAX_SCRIPT_RETRIES_PER_TASK} times"
                ),
                ..pause(String::new())
            };
        }
        ScriptDecision::Retry { after } => Decision::Retry {
            delay: after.unwrap_or_else(|| default_delay(failure, history, jitter_sample)),
            next_attempt: failure.attempt + 1,
        },
        ScriptDecision::Then(then) => Decision::Then(then),
        ScriptDecision::RestartPhase(values) => Decision::RestartPhase(values),
    };
    Decided {
        decision,
        rule: rule.clone(),
        reason: explained(returned),
    }
}

/// `retry()` follows the default schedule (exponential from 1s, max 5m, jitter), and a
/// server's `Retry-After` when it is longer.
fn default_delay(failure: &Failure, history: History, jitter_sample: f64) -> std::time::Duration {
    let delay = retry_delay(
        &RetryPolicy::default(),
        history.task_retries + 1,
        jitter_sample,
    );
    failure.retry_after.map_or(delay, |hint| delay.max(hint))
}

fn with_printed(reason: String, printed: &[String]) -> String {
    if printed.is_empty() {
        reason
    } else {
        format!("{reason} (printed: {})", printed.join("; "))
    }
}
