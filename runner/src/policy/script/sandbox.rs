//! The Rhai engine a policy script runs in: no modules (so no file access), no `eval`, no
//! output to the terminal, bounded operations, call depth, data sizes and wall-clock time;
//! and the decision functions a script returns.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};

use crate::pipeline::duration::{format_duration, parse_duration};
use crate::policy::model::Then;

/// The bounds of one evaluation. The defaults leave a typical policy (a few hundred
/// operations) three orders of magnitude of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Rhai operations per decision (an endless loop stops here).
    pub max_operations: u64,
    /// Nested function calls (runaway recursion stops here).
    pub max_call_levels: usize,
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Items in one array.
    pub max_array_size: usize,
    /// Entries in one object map.
    pub max_map_size: usize,
    /// Wall-clock time per decision.
    pub time_limit: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 200_000,
            max_call_levels: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 1_000,
            time_limit: Duration::from_secs(1),
        }
    }
}

/// The longest delay `retry_after` accepts (the longest `retry.delay` too).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);
/// Lines `print`/`debug` may add to a decision's reason, and their length.
const MAX_PRINTED_LINES: usize = 10;
const MAX_PRINTED_CHARS: usize = 200;
/// How many operations pass between two looks at the clock.
const CLOCK_EVERY_OPS: u64 = 256;

/// What a script returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptDecision {
    /// `retry()` (the default schedule) or `retry_after("30s")`.
    Retry { after: Option<Duration> },
    /// `rollback()`, `rollback_release()`, `skip()`, `ignore()`, `cancel()`, `pause()`.
    Then(Then),
    /// `restart_phase(#{ version: "2.3" })`.
    RestartPhase(BTreeMap<String, String>),
}

impl ScriptDecision {
    /// How a script would have written it, e.g. `retry_after("30s")`.
    pub fn call(&self) -> String {
        match self {
            ScriptDecision::Retry { after: None } => "retry()".to_string(),
            ScriptDecision::Retry { after: Some(d) } => {
                format!("retry_after(\"{}\")", format_duration(*d))
            }
            ScriptDecision::Then(then) => format!("{}()", then.keyword()),
            ScriptDecision::RestartPhase(values) => {
                let shown: Vec<String> = values
                    .iter()
                    .map(|(k, v)| format!("{k}: \"{v}\""))
                    .collect();
                format!("restart_phase(#{{ {} }})", shown.join(", "))
            }
        }
    }
}

/// Per-evaluation state the engine's callbacks reach; one evaluation at a time per thread.
struct Run {
    deadline: Instant,
    is_timed_out: bool,
    printed: Vec<String>,
}

thread_local! {
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
}

/// Runs `f` as one evaluation with `time_limit`; returns its result, whether the clock
/// stopped it, and what it printed.
pub(super) fn with_run<T>(time_limit: Duration, f: impl FnOnce() -> T) -> (T, bool, Vec<String>) {
    RUN.with(|run| {
        *run.borrow_mut() = Some(Run {
            deadline: Instant::now() + time_limit,
            is_timed_out: false,
            printed: Vec::new(),
        });
    });
    let result = f();
    let run = RUN.with(|run| run.borrow_mut().take());
    let (is_timed_out, printed) = run.map_or((false, Vec::new()), |r| (r.is_timed_out, r.printed));
    (result, is_timed_out, printed)
}

fn record_print(text: &str) {
    RUN.with(|run| {
        if let Some(run) = run.borrow_mut().as_mut()
            && run.printed.len() < MAX_PRINTED_LINES
        {
            run.printed
                .push(text.chars().take(MAX_PRINTED_CHARS).collect());
        }
    });
}

fn is_past_deadline() -> bool {
    RUN.with(|run| {
        let mut run = run.borrow_mut();
        let Some(run) = run.as_mut() else {
            return false;
        };
        if Instant::now() >= run.deadline {
            run.is_timed_out = true;
        }
        run.is_timed_out
    })
}

/// The sandboxed engine with the decision functions registered.
pub(super) fn build_engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_expr_depths(64, 32)
        .set_max_variables(256)
        .set_max_functions(64)
        .set_strict_variables(true);
    // `eval` would compile new code at decision time, past the load-time checks.
    engine.disable_symbol("eval");
    engine.on_print(record_print);
    engine.on_debug(|text, _, _| record_print(text));
    engine.on_progress(|ops| {
        (ops % CLOCK_EVERY_OPS == 0 && is_past_deadline()).then(|| Dynamic::from("time limit"))
    });
    register_decisions(&mut engine);
    engine
}

fn register_decisions(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptDecision>("Decision");
    engine.register_fn("to_string", |d: &mut ScriptDecision| d.call());
    engine.register_fn("retry", || ScriptDecision::Retry { after: None });
    engine.register_fn("retry_after", retry_after_text);
    engine.register_fn("retry_after", retry_after_seconds);
    for then in [
        Then::Rollback,
        Then::RollbackRelease,
        Then::Skip,
        Then::Ignore,
        Then::Cancel,
        Then::Pause,
    ] {
        engine.register_fn(then.keyword(), move || ScriptDecision::Then(then));
    }
    engine.register_fn("restart_phase", restart_phase);
}

fn script_error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), Position::NONE))
}

fn retry_after_text(text: &str) -> Result<ScriptDecision, Box<EvalAltResult>> {
    let delay = parse_duration(text).map_err(|e| script_error(format!("retry_after: {e}")))?;
    checked_delay(delay)
}

fn retry_after_seconds(seconds: i64) -> Result<ScriptDecision, Box<EvalAltResult>> {
    let seconds = u64::try_from(seconds)
        .map_err(|_| script_error(format!("retry_after: {seconds} seconds is negative")))?;
    checked_delay(Duration::from_secs(seconds))
}

fn checked_delay(delay: Duration) -> Result<ScriptDecision, Box<EvalAltResult>> {
    if delay > MAX_RETRY_DELAY {
        return Err(script_error(format!(
            "retry_after: {} is longer than the limit of 24h",
            format_duration(delay)
        )));
    }
    Ok(ScriptDecision::Retry { after: Some(delay) })
}

/// `restart_phase(#{ version: "2.3" })`: string values, or numbers written as text.
fn restart_phase(values: Map) -> Result<ScriptDecision, Box<EvalAltResult>> {
    let mut out = BTreeMap::new();
    for (name, value) in values {
        let text = if value.is_string() || value.is_int() || value.is_float() {
            value.to_string()
        } else {
            return Err(script_error(format!(
                "restart_phase: `{name}` is a {}, expected a string",
                value.type_name()
            )));
        };
        out.insert(name.to_string(), text);
    }
    if out.is_empty() {
        return Err(script_error(
            "restart_phase: give the new values, e.g. restart_phase(#{ version: \"2.3\" })"
                .to_string(),
        ));
    }
    Ok(ScriptDecision::RestartPhase(out))
}
