//! The example pipelines in `pipelines/` run as the README promises.

use std::path::PathBuf;

use crate::harness::Sandbox;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pipelines")
        .join(name);
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn hello_runs_two_phases_with_a_parallel_group_and_prints_every_log() {
    let sb = Sandbox::new();
    let out = sb.run(&["run", &example("hello.yaml")]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("release hello-1 completed"),
        "{}",
        out.stdout
    );
    for task in ["build/say-hello", "build/say-version", "deploy/settle"] {
        let log = format!(".relflow/releases/hello-1/{task}/script_output.log");
        assert!(
            out.stdout.contains(&log),
            "summary misses {log}:\n{}",
            out.stdout
        );
        assert!(sb.exists(&log));
    }
    assert!(
        sb.read(".relflow/releases/hello-1/build/say-hello/script_output.log")
            .contains("hello from say-hello")
    );
}
