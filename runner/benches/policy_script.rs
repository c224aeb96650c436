//! Decision latency of a scripted policy after compilation: `decide` on the example policy
//! `pipelines/policies/rate-limited.rhai` (helper functions, a loop over a 20-line log tail,
//! string searches) and on the smaller `retry-transient.rhai`, each compiled once.
//!
//! Run: `cargo bench -p relflow --bench policy_script`
//! Prints the median, p90 and p99 per decision over many samples; the target is a median
//! under 50 µs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use relflow::policy::decide::{EffectivePolicy, History, decide};
use relflow::policy::{ErrorClass, Failure, OnFailure, ScriptPolicy};

const SAMPLES: usize = 20_000;
const WARM_UP: usize = 1_000;

fn failure() -> Failure {
    let mut f = Failure::new(ErrorClass::TaskFailed, "./notify.sh exited with code 22", 1);
    f.task = "notify-api".into();
    f.phase = "announce".into();
    f.kind = "command".into();
    f.exit_code = Some(22);
    f.elapsed = Duration::from_millis(1200);
    f.log_tail = (0..18)
        .map(|n| format!("> request header {n}: value"))
        .chain([
            "HTTP/1.1 429 Too Many Requests".to_string(),
            "Retry-After: 7".to_string(),
        ])
        .collect();
    f.vars = BTreeMap::from([
        ("version".to_string(), "2.2".to_string()),
        ("token".to_string(), "***".to_string()),
    ]);
    f
}

fn bench(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/policies");
    let path = dir.join(name);
    let source = std::fs::read_to_string(&path).expect("read the example policy");
    let script = ScriptPolicy::compile(&path, format!("policies/{name}"), &source)
        .expect("the example compiles");
    let on_failure = OnFailure::Script(script);
    let policy = EffectivePolicy {
        on_failure: Some(&on_failure),
        source: "task notify-api",
    };
    let failure = failure();
    let history = History {
        task_retries: 0,
        retries_used: 0,
        retry_budget: 20,
    };
    for _ in 0..WARM_UP {
        std::hint::black_box(decide(policy, &failure, history, 0.5));
    }
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(decide(policy, std::hint::black_box(&failure), history, 0.5));
            started.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let decided = decide(policy, &failure, history, 0.5);
    println!(
        "{name}: median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs over {SAMPLES} decisions ({})",
        at(0.5).as_secs_f64() * 1e6,
        at(0.9).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        decided.reason
    );
    assert!(
        at(0.5) < Duration::from_micros(50),
        "{name}: median decision latency {:?} is over the 50 µs target",
        at(0.5)
    );
}

fn main() {
    bench("rate-limited.rhai");
    bench("retry-transient.rhai");
}
