//! Tool-resolution overhead per run (issue 4): an agent with 3 MCP sources (the reference
//! "everything" server over stdio, already pooled) is resolved repeatedly through
//! `Runtime::resolve_tools`, exactly as a run starts: store reads, allowlist, naming, trace.
//!
//! `cargo bench -p steward-runtime --bench resolve` (needs `STEWARD_TEST_NPM_BIN`, which
//! `scripts/test` sets up; without it the bench says so and exits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use steward_core::agent::AgentConfig;
use steward_core::clock::SystemClock;
use steward_core::source::SourceConfig;
use steward_core::tenancy::Email;
use steward_llm::{RetryPolicy, Timeouts};
use steward_runtime::vault::VaultCipher;
use steward_runtime::{Providers, Runtime, RuntimeConfig};
use steward_store::Store;
use steward_test_support::agent_config;

#[tokio::main]
async fn main() {
    let Ok(bin) = std::env::var("STEWARD_TEST_NPM_BIN") else {
        println!("resolve bench: set STEWARD_TEST_NPM_BIN (scripts/test installs the npm MCP servers) to run it");
        return;
    };
    // As `steward`'s main does: one TLS provider for every client of the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let store = Store::open_sqlite(&dir.path().join("steward.db"), clock.clone()).await.unwrap();
    let account = store.ensure_account(&Email::parse("bench@example.com", "email").unwrap()).await.unwrap();
    let sandbox = store.create_sandbox(&account.id, "bench").await.unwrap().id;
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let c = SourceConfig::from_json(
            json!({"name": name, "kind": "mcp_stdio", "command": format!("{bin}/mcp-server-everything"), "args": ["stdio"]}),
        )
        .unwrap();
        ids.push(store.create_source(&sandbox, c).await.unwrap().id.to_string());
    }
    let config = AgentConfig { tool_sources: ids, ..agent_config("bench", "p", "m") };
    let agent = store.create_agent(&sandbox, config.clone()).await.unwrap();
    let vault = VaultCipher::new([7; 32]);
    let providers = Providers::new(store.clone(), vault, Timeouts::default(), RetryPolicy::default());
    let mut rc = RuntimeConfig::default();
    rc.tools.workspaces = dir.path().join("workspaces");
    let rt = Runtime::new(store, providers, clock, rc);

    // Warm up: connects the three servers once (the pool keeps them).
    let first = Instant::now();
    let r = rt.resolve_tools(&sandbox, &agent.id, &config).await.unwrap();
    println!(
        "first resolution (connects 3 stdio servers): {:.1} ms, {} tools",
        first.elapsed().as_secs_f64() * 1e3,
        r.catalog.specs().len()
    );
    let n = 2000;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = rt.resolve_tools(&sandbox, &agent.id, &config).await.unwrap();
        samples.push(t.elapsed());
        assert!(r.catalog.specs().len() > 10);
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    println!("tool resolution, 3 pooled MCP sources, {n} runs: p50 {:.3} ms  p99 {:.3} ms  (target ≤ 1 ms)", p(0.5), p(0.99));
    rt.shutdown(Duration::from_secs(1)).await;
}
