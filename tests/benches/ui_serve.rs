//! The web UI's numbers: event → page update latency in a real Chromium (p50/p95), the
//! release page's weight for the seed scenario, the time to serve the list of 1,000 releases,
//! and the server's RSS with them in the store.
//!
//! `cargo bench -p relflow-tests --bench ui_serve` (needs chromium and `npm ci` in
//! tests/browser, as `.ci/run` installs; env `UI_BENCH_RELEASES`, default 1000).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_relflow-e2e");

fn relflow(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RELFLOW_STATE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run relflow")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// `GET path` with a Bearer token: (status line, body bytes, time to the last byte).
fn get(addr: &str, token: &str, path: &str) -> (String, usize, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.len())
        .unwrap_or(0);
    (status, body, took)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn rss_kib(child: &Child) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn main() {
    let releases: usize = std::env::var("UI_BENCH_RELEASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines"),
        &root.join("pipelines"),
    );
    let tasks: String = (1..=25)
        .map(|n| format!("      - {{ name: step-{n}, command: {{ run: [sleep, \"0.2\"] }} }}\n"))
        .collect();
    std::fs::write(
        root.join("pipelines/bench.yaml"),
        format!("name: bench\nphases:\n  - name: run\n    tasks:\n{tasks}"),
    )
    .expect("write bench pipeline");

    // The seed scenario: 2.2 fails and is rolled back, restart-phase with 2.3 completes.
    relflow(
        root,
        &["run", "pipelines/petportal.yaml", "--var", "version=2.2"],
    );
    relflow(
        root,
        &[
            "restart-phase",
            "petportal-1",
            "deploy",
            "--var",
            "version=2.3",
        ],
    );
    // Then the other releases, planned straight into the store.
    let hello = relflow::pipeline::load_file(&root.join("pipelines/hello.yaml")).expect("load");
    let source = std::fs::read_to_string(root.join("pipelines/hello.yaml")).expect("read");
    let mut store = relflow::store::Store::open(&root.join(".relflow")).expect("open store");
    let vars: BTreeMap<String, String> = hello.variables.clone();
    for _ in 1..releases {
        relflow::engine::start_release(&mut store, &hello, &source, &vars).expect("plan");
    }
    drop(store);

    let token = relflow(root, &["token", "create", "bench", "--role", "operator"]);
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--pipelines", "pipelines"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let up = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (status, page_bytes, _) = get(&addr, &token, "/releases/petportal-1");
    assert!(status.contains("200"), "release page: {status}");
    let (_, css, _) = get(&addr, &token, "/ui/style.css");
    let (_, js, _) = get(&addr, &token, "/ui/live.js");
    let mut list_times = Vec::new();
    let mut list_bytes = 0;
    for _ in 0..30 {
        let (status, bytes, took) = get(&addr, &token, "/");
        assert!(status.contains("200"), "list: {status}");
        list_bytes = bytes;
        list_times.push(took);
    }
    list_times.sort();
    let rss = rss_kib(&server);

    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let latency = Command::new("node")
        .arg(browser.join("bench/latency.mjs"))
        .current_dir(&browser)
        .env("RELFLOW_URL", format!("http://{addr}"))
        .env("RELFLOW_TOKEN", &token)
        .output()
        .expect("run node");
    let _ = server.kill();
    let _ = server.wait();

    println!("ui_serve: {releases} releases in the store");
    println!(
        "  release page (seed scenario): {page_bytes} bytes HTML (+ {css} CSS, {js} JS, cached)"
    );
    println!(
        "  list of {releases} releases: {list_bytes} bytes, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        percentile(&list_times, 50).as_secs_f64() * 1e3,
        percentile(&list_times, 95).as_secs_f64() * 1e3,
        list_times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!("  server RSS after serving the list: {} MiB", rss / 1024);
    println!(
        "  event -> page update (browser): {}{}",
        String::from_utf8_lossy(&latency.stdout).trim(),
        String::from_utf8_lossy(&latency.stderr).trim()
    );
}
