//! Per-task engine overhead: a generated 1,000-task pipeline of `wait: 0s` tasks, run through
//! the real engine (SQLite store writes, events.jsonl, one script_output.log per task).
//!
//! Run: `cargo bench -p relflow --bench engine_overhead`
//! Prints the per-task overhead of each run (wall time / tasks) and the median over runs.

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use relflow::engine;
use relflow::output::terminal::{Terminal, TerminalMode};
use relflow::pipeline;
use relflow::store::Store;

const PHASES: usize = 10;
const TASKS_PER_PHASE: usize = 100;
const RUNS: usize = 7;

/// 10 phases × 100 tasks; every tenth step is a parallel group of 4.
fn generate_pipeline() -> String {
    let mut yaml = String::from("name: bench\nphases:\n");
    for p in 0..PHASES {
        let _ = writeln!(yaml, "  - name: phase-{p}\n    tasks:");
        let mut t = 0;
        while t < TASKS_PER_PHASE {
            if t % 10 == 0 && t + 4 <= TASKS_PER_PHASE {
                let _ = writeln!(yaml, "      - parallel:\n          tasks:");
                for i in 0..4 {
                    let _ = writeln!(yaml, "            - {{ name: t-{p}-{}, wait: 0s }}", t + i);
                }
                t += 4;
            } else {
                let _ = writeln!(yaml, "      - {{ name: t-{p}-{t}, wait: 0s }}");
                t += 1;
            }
        }
    }
    yaml
}

fn run_once(dir: &Path, source: &str) -> std::time::Duration {
    let file = dir.join("bench.yaml");
    std::fs::write(&file, source).expect("write pipeline");
    let pipeline = pipeline::load_str(&file, source).expect("generated pipeline loads");
    let state = dir.join(".relflow");
    let started = Instant::now();
    let mut store = Store::open(&state).expect("open store");
    let release = engine::start_release(&mut store, &pipeline, source, &pipeline.variables)
        .expect("plan release");
    let (engine, _lease) =
        engine::attach(store, &release, Terminal::new(TerminalMode::Quiet)).expect("attach");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(engine.drive()).expect("drive");
    assert_eq!(outcome, engine::Outcome::Completed);
    started.elapsed()
}

fn main() {
    let source = generate_pipeline();
    let tasks = PHASES * TASKS_PER_PHASE;
    let mut per_task_us: Vec<f64> = Vec::new();
    for run in 1..=RUNS {
        let dir = tempfile::tempdir().expect("temp dir");
        let took = run_once(dir.path(), &source);
        let us = took.as_secs_f64() * 1e6 / tasks as f64;
        println!(
            "run {run}: {tasks} tasks in {:.1} ms = {us:.0} µs per task",
            took.as_secs_f64() * 1e3
        );
        per_task_us.push(us);
    }
    per_task_us.sort_by(f64::total_cmp);
    let median = per_task_us[per_task_us.len() / 2];
    println!(
        "median per-task engine overhead over {RUNS} runs: {median:.0} µs ({:.3} ms; target < 2 ms)",
        median / 1e3
    );
}
