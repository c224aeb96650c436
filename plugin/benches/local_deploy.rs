//! Benchmark of the local backend against what a user could run instead, in one run.
//!
//! Deploy: a 10,000-file / 200 MB package over its previous version with 10% of the files
//! changed (unchanged files keep their bytes and mtimes, as a build that preserves them does),
//! as medians of alternating rounds of: relflow in place, relflow `layout: releases`,
//! `rsync -a --link-dest` into a new release folder + symlink switch (the Capistrano way), and
//! `cp -a`. Bytes written are the bytes of files with one link in the new tree (new inodes)
//! next to the changed bytes, and files whose bytes differ from the package. Rollback: both
//! layouts at 20 MB and 200 MB. The disk is synced before every timed step. Peak RSS at the end.
//!
//! `cargo bench -p relflow-plugin --bench local_deploy` (`RELFLOW_BENCH_DIR` chooses the disk,
//! default the system temp folder; `RELFLOW_BENCH_ROUNDS` the rounds, default 5). Without
//! `rsync` on PATH its column is skipped with a message.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use relflow_plugin::local::LocalLayout;
use relflow_plugin::{Backend, DeployRequest, FreeSpaceProbe, Handle, LocalBackend};

const COMPONENTS: usize = 4;
const FILE_BYTES: usize = 20 * 1024;

fn main() {
    let base = std::env::var_os("RELFLOW_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let rounds: usize = std::env::var("RELFLOW_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let has_rsync = Command::new("rsync").arg("--version").output().is_ok();
    println!(
        "relflow local backend benchmark in {} ({rounds} rounds)",
        base.display()
    );
    if !has_rsync {
        println!("rsync not found on PATH: its column is skipped (apt-get install rsync)");
    }
    for files in [1_000, 10_000] {
        let tmp = tempfile::tempdir_in(&base).expect("temp folder for the benchmark");
        let world = World::new(tmp.path(), files);
        if files == 10_000 {
            deploys(&world, rounds, has_rsync);
        }
        rollbacks(&world, rounds);
    }
    println!("\npeak RSS: {} kB", peak_rss_kb());
}

struct World {
    root: PathBuf,
    files: usize,
    changed_bytes: u64,
    runs: std::cell::Cell<usize>,
}

impl World {
    fn new(root: &Path, files: usize) -> World {
        let started = Instant::now();
        let packages = root.join("packages/Bench");
        generate(&packages.join("1.0"), files, 1);
        copy_a(&packages.join("1.0"), &packages.join("2.0"));
        let changed_bytes = change_every_tenth(&packages.join("2.0"), files);
        println!(
            "\n{files} files, {:.0} MB per version, {} changed ({:.1} MB) (generated in {:.1?})",
            (files * FILE_BYTES) as f64 / 1e6,
            files / 10,
            changed_bytes as f64 / 1e6,
            started.elapsed()
        );
        World {
            root: root.to_path_buf(),
            files,
            changed_bytes,
            runs: std::cell::Cell::new(0),
        }
    }

    fn package(&self, version: &str) -> PathBuf {
        self.root.join("packages/Bench").join(version)
    }

    /// A fresh folder name under the root.
    fn fresh(&self, what: &str) -> PathBuf {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        self.root.join(format!("{what}-{n}"))
    }

    fn backend(&self, target: &Path, layout: LocalLayout, trust_mtime: bool) -> LocalBackend {
        LocalBackend {
            free_space: FreeSpaceProbe::Fixed(u64::MAX),
            layout,
            trust_mtime,
            ..LocalBackend::new(target, self.root.join("packages"))
        }
    }
}

fn request(work: &Path, version: &str, run: &str) -> DeployRequest {
    DeployRequest {
        application: "Bench".into(),
        version: version.into(),
        components: vec![],
        // Shaped like the runner's, so release folders get `<release>-<task>` names.
        work_dir: work.join(run).join("deploy/task/deploy"),
        verify: None,
        environment: None,
    }
}

/// Deploys 1.0 then, timed, 2.0 into a fresh target; returns the time, the 2.0 handle, the
/// bytes of new inodes in the live tree and the target.
fn relflow_round(
    world: &World,
    layout: LocalLayout,
    trust_mtime: bool,
) -> (Duration, Handle, Outcome, PathBuf) {
    let dir = world.fresh("relflow");
    let (target, work) = (dir.join("target"), dir.join("work"));
    let backend = world.backend(&target, layout, trust_mtime);
    backend
        .deploy(&request(&work, "1.0", "r1"), &mut |_| Ok(()), &mut |_| {})
        .expect("deploy 1.0");
    let mut handle = None;
    settle();
    let start = Instant::now();
    let verbose = std::env::var_os("RELFLOW_BENCH_VERBOSE").is_some();
    backend
        .deploy(
            &request(&work, "2.0", "r2"),
            &mut |h| {
                handle = Some(h.clone());
                Ok(())
            },
            &mut |line| {
                if verbose {
                    println!("    {:>8.1?} {line}", start.elapsed());
                }
            },
        )
        .expect("deploy 2.0");
    let took = start.elapsed();
    let live = match layout {
        LocalLayout::InPlace => target.clone(),
        LocalLayout::Releases => fs::canonicalize(target.join("current")).expect("current"),
    };
    let outcome = Outcome::of(&live, world);
    (took, handle.expect("handle"), outcome, dir)
}

/// What a deploy left: bytes of new inodes, and files whose bytes differ from the package.
#[derive(Clone, Copy, Default)]
struct Outcome {
    written: u64,
    wrong: usize,
}

impl Outcome {
    fn of(tree: &Path, world: &World) -> Outcome {
        Outcome {
            written: new_inode_bytes(tree),
            wrong: wrong_files(&world.package("2.0"), tree),
        }
    }
}

/// Files of `package` whose bytes differ in `tree` (or are missing there).
fn wrong_files(package: &Path, tree: &Path) -> usize {
    let mut wrong = 0;
    for entry in fs::read_dir(package).expect("read package") {
        let name = entry.expect("entry").file_name();
        let (p, t) = (package.join(&name), tree.join(&name));
        if p.is_dir() {
            wrong += wrong_files(&p, &t);
        } else if fs::read(&p).ok() != fs::read(&t).ok() {
            wrong += 1;
        }
    }
    wrong
}

/// `releases/r1` as a copy of 1.0 with `current` on it; timed: `rsync -a --link-dest` of 2.0
/// into `releases/r2`, then the symlink switch.
fn rsync_round(world: &World) -> (Duration, Outcome, PathBuf) {
    let dir = world.fresh("rsync");
    let releases = dir.join("releases");
    fs::create_dir_all(&releases).expect("releases/");
    copy_a(&world.package("1.0"), &releases.join("r1"));
    std::os::unix::fs::symlink("releases/r1", dir.join("current")).expect("current");
    settle();
    let start = Instant::now();
    let status = Command::new("rsync")
        .arg("-a")
        .arg(format!("--link-dest={}", releases.join("r1").display()))
        .arg(format!("{}/", world.package("2.0").display()))
        .arg(releases.join("r2"))
        .status()
        .expect("run rsync");
    assert!(status.success(), "rsync failed");
    std::os::unix::fs::symlink("releases/r2", dir.join("current.tmp")).expect("symlink");
    fs::rename(dir.join("current.tmp"), dir.join("current")).expect("switch");
    let took = start.elapsed();
    (took, Outcome::of(&releases.join("r2"), world), dir)
}

fn cp_round(world: &World) -> (Duration, Outcome, PathBuf) {
    let dir = world.fresh("cp");
    fs::create_dir_all(&dir).expect("cp folder");
    settle();
    let start = Instant::now();
    copy_a(&world.package("2.0"), &dir.join("target"));
    let took = start.elapsed();
    (took, Outcome::of(&dir.join("target"), world), dir)
}

fn deploys(world: &World, rounds: usize, has_rsync: bool) {
    let names = [
        "relflow in place",
        "relflow releases",
        "relflow in place, trust_mtime",
        "relflow releases, trust_mtime",
        "rsync --link-dest + switch",
        "cp -a",
    ];
    const RSYNC: usize = 4;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let mut outcomes = [Outcome::default(); 6];
    for round in 0..rounds {
        // Alternate the order so no method always runs on a cache the previous one warmed.
        let mut order: Vec<usize> = (0..names.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for method in order {
            let relflow = |layout, trust| {
                let (t, _, o, d) = relflow_round(world, layout, trust);
                (t, o, d)
            };
            let (took, outcome, dir) = match method {
                0 => relflow(LocalLayout::InPlace, false),
                1 => relflow(LocalLayout::Releases, false),
                2 => relflow(LocalLayout::InPlace, true),
                3 => relflow(LocalLayout::Releases, true),
                RSYNC if has_rsync => rsync_round(world),
                RSYNC => continue,
                _ => cp_round(world),
            };
            times[method].push(took);
            outcomes[method] = outcome;
            remove(&dir);
        }
    }
    println!("deploy 2.0 over 1.0, median of {rounds} alternating rounds:");
    let rsync = median(&times[RSYNC]);
    for (i, name) in names.iter().enumerate() {
        let Some(m) = median(&times[i]) else {
            continue;
        };
        let ratio = rsync.map_or(String::new(), |r| {
            format!(" {:>5.2}x rsync", m.as_secs_f64() / r.as_secs_f64())
        });
        let o = outcomes[i];
        println!(
            "  {name:<30} {m:>9.1?}{ratio}; wrote {:>5.1} MB = {:.2}x the changed bytes; {} file(s) with wrong bytes",
            o.written as f64 / 1e6,
            o.written as f64 / world.changed_bytes as f64,
            o.wrong
        );
    }
}

fn rollbacks(world: &World, rounds: usize) {
    let mb = (world.files * FILE_BYTES) as f64 / 1e6;
    for (name, layout) in [
        ("in place", LocalLayout::InPlace),
        ("releases", LocalLayout::Releases),
    ] {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let (_, handle, _, dir) = relflow_round(world, layout, false);
            let target = dir.join("target");
            let backend = world.backend(&target, layout, false);
            settle();
            let start = Instant::now();
            let report = backend.roll_back(&handle, &mut |_| {}).expect("rollback");
            times.push(start.elapsed());
            assert!(report.failure().is_none());
            remove(&dir);
        }
        println!(
            "rollback {name:<9} at {mb:>4.0} MB: median {:>8.2?} (of {rounds})",
            median(&times).unwrap_or_default()
        );
    }
}

/// Writes back what the untimed setup left dirty, so a timed step does not pay for it (on
/// ext4 an fsync waits for the data of every file written before it).
fn settle() {
    let _ = Command::new("sync").status();
}

fn median(times: &[Duration]) -> Option<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied()
}

fn copy_a(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp -a");
    assert!(status.success(), "cp -a failed");
}

fn remove(dir: &Path) {
    let _ = Command::new("chmod").arg("-R").arg("u+w").arg(dir).status();
    fs::remove_dir_all(dir).expect("remove a round's folder");
}

/// Bytes of regular files under `dir` that have a single link: written for this tree.
fn new_inode_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).expect("read tree") {
        let path = entry.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        if meta.is_dir() {
            total += new_inode_bytes(&path);
        } else if meta.is_file() && meta.nlink() == 1 {
            total += meta.len();
        }
    }
    total
}

/// `files` files of [`FILE_BYTES`] spread over components and folders of 50 files each.
fn generate(dir: &Path, files: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..files {
        let folder = dir
            .join(format!("c{}", i % COMPONENTS))
            .join(format!("d{:03}", i / (COMPONENTS * 50)));
        if i % (COMPONENTS * 50) < COMPONENTS {
            fs::create_dir_all(&folder).expect("create package folder");
        }
        write_random(&folder.join(format!("f{i:05}.bin")), &mut state);
    }
}

/// Rewrites every tenth file with other bytes of the same size; returns the bytes changed.
fn change_every_tenth(dir: &Path, files: usize) -> u64 {
    let mut state = 0xDEAD_BEEF_u64;
    let mut changed = 0;
    for i in (0..files).step_by(10) {
        let path = dir
            .join(format!("c{}", i % COMPONENTS))
            .join(format!("d{:03}", i / (COMPONENTS * 50)))
            .join(format!("f{i:05}.bin"));
        fs::remove_file(&path).expect("remove a file to change");
        write_random(&path, &mut state);
        changed += FILE_BYTES as u64;
    }
    changed
}

fn write_random(path: &Path, state: &mut u64) {
    let mut buf = vec![0u8; FILE_BYTES];
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let mut file = fs::File::create(path).expect("create package file");
    file.write_all(&buf).expect("write package file");
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
