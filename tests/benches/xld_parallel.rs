//! 100 XL Deploy deployments in parallel against the fake with 20 ms latency per answer and a
//! 2 s task: wall time against the fake's own time (the shortest possible: the requests a
//! deployment cannot avoid, one after another, plus the task's run), requests per deployment
//! and peak memory (VmHWM of this process, fake included).
//!
//! `cargo bench -p relflow-tests --bench xld_parallel` (env: `XLD_BENCH_DEPLOYMENTS`,
//! `XLD_BENCH_TASK_MS`, `XLD_BENCH_LATENCY_MS`).

#[path = "../e2e/fake_xld/mod.rs"]
mod fake_xld;

use std::time::{Duration, Instant};

use fake_xld::{FakeXld, TaskScript};
use relflow_plugin::{Backend, DeployRequest, XlDeployBackend, XlDeployConfig};

const PROD: &str = "Environments/Prod";
/// exists, repository/ci, prepare/update, prepare/deployeds, validate, the active tasks listed
/// before the create (one task per attempt), create, start before the task runs; one poll
/// that sees it EXECUTED and the archive after.
const UNAVOIDABLE_REQUESTS: u32 = 10;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let deployments = env_number("XLD_BENCH_DEPLOYMENTS", 100) as usize;
    let task = Duration::from_millis(env_number("XLD_BENCH_TASK_MS", 2000));
    let latency = Duration::from_millis(env_number("XLD_BENCH_LATENCY_MS", 20));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let fake = FakeXld::start().await;
        fake.with_latency(latency)
            .script_deploy(TaskScript::lasting(task));
        for i in 0..deployments {
            fake.with_deployed(PROD, &format!("Applications/App{i:03}/1.0"))
                .with_package(&format!("Applications/App{i:03}/2.0"));
        }
        let backend = XlDeployBackend::new(XlDeployConfig {
            url: fake.url(),
            username: "admin".into(),
            password: "s3cret".into(),
            environment: Some(PROD.into()),
            request_timeout: Duration::from_secs(30),
            ..XlDeployConfig::default()
        })
        .expect("config");
        let work = tempfile::tempdir().expect("temp dir");
        let started = Instant::now();
        let runs: Vec<_> = (0..deployments)
            .map(|i| {
                let backend = backend.clone();
                let request = DeployRequest {
                    application: format!("Applications/App{i:03}"),
                    version: "2.0".into(),
                    components: vec![],
                    work_dir: work.path().join(format!("run{i}")),
                    verify: None,
                    environment: None,
                };
                tokio::task::spawn_blocking(move || {
                    let begun = Instant::now();
                    let result = backend.deploy(&request, &mut |_| Ok(()), &mut |_| {});
                    (result, begun.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for run in runs {
            let (result, took) = run.await.expect("no panic");
            result.expect("deployment succeeds");
            slowest = slowest.max(took);
        }
        let wall = started.elapsed();
        let own = latency * UNAVOIDABLE_REQUESTS + task;
        let requests = fake.requests().len();
        let polls = fake
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/deployit/task/"))
            .count();
        println!("xld_parallel: {deployments} deployments, {latency:?} per answer, {task:?} task");
        println!("  wall time            {:>8.3} s", wall.as_secs_f64());
        println!(
            "  fake's own time      {:>8.3} s ({UNAVOIDABLE_REQUESTS} requests x latency + task)",
            own.as_secs_f64()
        );
        println!(
            "  ratio                {:>8.3} (target <= 1.10)",
            wall.as_secs_f64() / own.as_secs_f64()
        );
        println!("  slowest deployment   {:>8.3} s", slowest.as_secs_f64());
        println!(
            "  requests/deployment  {:>8.1} ({:.1} polls)",
            requests as f64 / deployments as f64,
            polls as f64 / deployments as f64
        );
        match peak_rss_kib() {
            Some(kib) => println!(
                "  peak RSS (VmHWM)     {:>8.1} MiB (runner side and fake together)",
                kib as f64 / 1024.0
            ),
            None => println!("  peak RSS (VmHWM)     unavailable"),
        }
        let all_deployed = (0..deployments).all(|i| {
            fake.deployed(PROD, &format!("App{i:03}")).as_deref()
                == Some(&*format!("Applications/App{i:03}/2.0"))
        });
        assert!(all_deployed, "every environment entry moved to 2.0");
    });
}
