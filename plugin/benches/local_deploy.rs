//! Benchmark of the local backend: deploy (with its pre-deployment snapshot) and rollback of a
//! 10,000-file / 200 MB package over a previous version, with peak RSS. A 1,000-file / 20 MB
//! round runs first: peak RSS must not grow from it to the large one (contents are streamed).
//!
//! `cargo bench -p relflow-plugin --bench local_deploy` (set `RELFLOW_BENCH_DIR` to choose the
//! disk; default: the system temp folder).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use relflow_plugin::{Backend, DeployRequest, FreeSpaceProbe, LocalBackend};

const COMPONENTS: usize = 4;

fn main() {
    let base = std::env::var_os("RELFLOW_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    println!("relflow local backend benchmark in {}", base.display());
    println!("peak RSS at start: {} kB", peak_rss_kb());
    for files in [1_000, 10_000] {
        let tmp = tempfile::tempdir_in(&base).expect("temp folder for the benchmark");
        round(tmp.path(), files);
    }
}

fn round(root: &Path, files: usize) {
    let bytes_per_file = 20 * 1024;
    let packages = root.join("packages");
    let started = Instant::now();
    generate(&packages.join("Bench/1.0"), files, bytes_per_file, 1);
    generate(&packages.join("Bench/2.0"), files, bytes_per_file, 2);
    let total_mb = (files * bytes_per_file) as f64 / 1e6;
    println!(
        "\n{files} files, {total_mb:.0} MB per version (generated in {:.1?})",
        started.elapsed()
    );
    let backend = LocalBackend {
        free_space: FreeSpaceProbe::Fixed(u64::MAX),
        ..LocalBackend::new(root.join("target"), &packages)
    };
    let request = |version: &str, run: &str| DeployRequest {
        application: "Bench".into(),
        version: version.into(),
        components: vec![],
        work_dir: root.join("work").join(run),
        verify: None,
        environment: None,
    };

    let (first, _) = timed(|| backend.deploy(&request("1.0", "a"), &mut |_| Ok(()), &mut |_| {}));
    first.expect("deploy 1.0");
    let mut snapshot_done = None;
    let mut handle = None;
    let start = Instant::now();
    let (second, deploy_time) = timed(|| {
        backend.deploy(
            &request("2.0", "b"),
            &mut |h| {
                handle = Some(h.clone());
                Ok(())
            },
            &mut |line| {
                if line.starts_with("Took the pre-deployment snapshot") {
                    snapshot_done = Some(start.elapsed());
                }
            },
        )
    });
    second.expect("deploy 2.0");
    let handle = handle.expect("handle reported");
    let (report, rollback_time) = timed(|| backend.roll_back(&handle, &mut |_| {}));
    assert!(report.expect("rollback").failure().is_none());
    let snapshot_time = snapshot_done.unwrap_or_default();
    println!(
        "deploy 2.0 over 1.0: {deploy_time:.2?} (snapshot {snapshot_time:.2?}, stage + swap {:.2?})",
        deploy_time - snapshot_time
    );
    println!("rollback to 1.0:     {rollback_time:.2?}");
    println!("peak RSS so far:     {} kB", peak_rss_kb());
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// `files` files of `size` bytes spread over components and folders of 50 files each.
fn generate(dir: &Path, files: usize, size: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; size];
    for i in 0..files {
        let folder = dir
            .join(format!("c{}", i % COMPONENTS))
            .join(format!("d{:03}", i / (COMPONENTS * 50)));
        if i % (COMPONENTS * 50) < COMPONENTS {
            fs::create_dir_all(&folder).expect("create package folder");
        }
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let mut file =
            fs::File::create(folder.join(format!("f{i:05}.bin"))).expect("create package file");
        file.write_all(&buf).expect("write package file");
    }
}

/// `VmHWM` from /proc/self/status, in kB.
fn peak_rss_kb() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
