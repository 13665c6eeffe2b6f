//! Shell start latency: the time `run_shell` takes for a trivial command, from the call to the
//! outcome — building the sandbox, running the command, tearing it down. Target: p50 ≤ 15 ms.
//!
//! Run with `cargo bench -p steward-runtime --bench sandbox`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use steward_runtime::sandbox::{NetworkPolicy, SandboxConfig, SandboxLimits, ShellRequest, check, run_shell};
use steward_runtime::workspace::Workspace;

const ITERATIONS: usize = 200;

fn main() {
    let config = SandboxConfig::default();
    if let Err(e) = check(&config) {
        eprintln!("skipping the sandbox bench: {e}");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let workspace = Workspace::open(&dir.path().join("workspace")).expect("workspace");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");

    println!("shell start latency over {ITERATIONS} runs (bubblewrap at {})", config.bwrap.display());
    for (command, network) in [("true", NetworkPolicy::None), ("echo hi", NetworkPolicy::None), ("true", NetworkPolicy::Open)] {
        let mut samples = runtime.block_on(measure(&config, &workspace, command, &network));
        samples.sort();
        let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        println!(
            "  {:<8} network {:<5} p50 {:>6.2} ms  p99 {:>6.2} ms  mean {:>6.2} ms  max {:>6.2} ms",
            command,
            format!("{network:?}").to_lowercase(),
            ms(pct(50)),
            ms(pct(99)),
            ms(mean),
            ms(samples[samples.len() - 1])
        );
    }
}

async fn measure(config: &SandboxConfig, workspace: &Workspace, command: &str, network: &NetworkPolicy) -> Vec<Duration> {
    let env = BTreeMap::new();
    let limits = SandboxLimits::default();
    let req = ShellRequest { agent_key: "bench-agent", command, env: &env, limits: &limits, network };
    // Warm up caches (the first run also gives the workspace to the sandbox uid).
    run_shell(config, workspace, &req).await.expect("warm-up run");
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let outcome = run_shell(config, workspace, &req).await.expect("run_shell");
        samples.push(started.elapsed());
        assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    }
    samples
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
