//! MCP pool benchmark against the reference server `@modelcontextprotocol/server-everything`
//! over stdio:
//!
//! 1. tool resolution: with three sources pooled, the time to `list_tools` all three (served
//!    from the pool's cache) — target ≤ 1 ms in all;
//! 2. one `echo` round trip through `McpPool::call_tool` against the same call made by a plain
//!    rmcp client on its own server process — target ≤ 1.2× the plain client.
//!
//! `cargo bench -p steward-runtime --bench mcp` after `scripts/test` has installed the npm peers
//! (it reads `STEWARD_TEST_NPM_BIN`). `BENCH_ITERS` sets the iteration count (default 2000).

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use steward_runtime::mcp::{McpPool, McpPoolConfig, McpTarget};

fn main() {
    let Ok(dir) = std::env::var("STEWARD_TEST_NPM_BIN") else {
        println!("mcp bench: STEWARD_TEST_NPM_BIN is not set; run scripts/test once to install the npm MCP servers, then");
        println!("  STEWARD_TEST_NPM_BIN=$PWD/target/test-peers/npm/node_modules/.bin cargo bench -p steward-runtime --bench mcp");
        return;
    };
    let server = format!("{dir}/mcp-server-everything");
    if !std::path::Path::new(&server).exists() {
        println!("mcp bench: {server} is missing; rerun scripts/test to install the npm MCP servers");
        return;
    }
    let iters = std::env::var("BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(run(&server, iters));
}

async fn run(server: &str, iters: usize) {
    let pool = McpPool::new(McpPoolConfig {
        connect_timeout: Duration::from_secs(60),
        list_timeout: Duration::from_secs(60),
        max_output_bytes: 100_000,
        idle_ttl: Duration::from_secs(600),
    });
    let target = McpTarget::Stdio { command: server.to_owned(), args: vec!["stdio".into()], env: Default::default(), cwd: None };
    let keys = ["source-a", "source-b", "source-c"];
    for key in keys {
        let listing = pool.list_tools(key, &target).await.expect("list the reference server's tools");
        assert!(listing.tools.iter().any(|t| t.name == "echo"));
    }

    let mut resolve = Vec::with_capacity(iters);
    for _ in 0..iters {
        let started = Instant::now();
        for key in keys {
            std::hint::black_box(pool.list_tools(key, &target).await.expect("cached listing"));
        }
        resolve.push(started.elapsed());
    }
    report("tool resolution, list_tools on 3 pooled sources", &mut resolve, None);

    let direct = TokioChildProcess::builder(tokio::process::Command::new(server))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the reference server")
        .0;
    let direct = ().serve(direct).await.expect("plain rmcp client handshake");
    let arguments: Map<String, Value> = json!({"message": "bench"}).as_object().cloned().unwrap_or_default();
    let (mut pooled, mut plain) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    // Warm both up, then alternate which goes first so that both see the same machine noise.
    for i in 0..iters + 100 {
        let (took, took_plain) = if i % 2 == 0 {
            let took = pooled_echo(&pool, keys[0], &target, &arguments).await;
            (took, plain_echo(&direct, &arguments).await)
        } else {
            let took_plain = plain_echo(&direct, &arguments).await;
            (pooled_echo(&pool, keys[0], &target, &arguments).await, took_plain)
        };
        if i >= 100 {
            pooled.push(took);
            plain.push(took_plain);
        }
    }
    let plain_p = report("echo round trip, plain rmcp client", &mut plain, None);
    report("echo round trip, McpPool::call_tool", &mut pooled, Some(plain_p));
    let _ = direct.cancel().await;
    pool.shutdown().await;
}

async fn pooled_echo(pool: &McpPool, key: &str, target: &McpTarget, arguments: &Map<String, Value>) -> Duration {
    let started = Instant::now();
    let out = pool.call_tool(key, target, "echo", arguments.clone(), Duration::from_secs(30)).await;
    let took = started.elapsed();
    assert_eq!(out.as_deref(), Ok("Echo: bench"));
    took
}

async fn plain_echo(client: &RunningService<RoleClient, ()>, arguments: &Map<String, Value>) -> Duration {
    let started = Instant::now();
    let params = CallToolRequestParams::new("echo").with_arguments(arguments.clone());
    let result = client.peer().call_tool(params).await.expect("plain rmcp echo");
    let took = started.elapsed();
    assert!(!result.content.is_empty());
    took
}

/// Prints p50/p90/p99 (and their ratios to `baseline`), returning them.
fn report(what: &str, samples: &mut [Duration], baseline: Option<[Duration; 3]>) -> [Duration; 3] {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let ps = [at(0.50), at(0.90), at(0.99)];
    let ratio = baseline
        .map(|b| {
            let r = |i: usize| ps[i].as_secs_f64() / b[i].as_secs_f64();
            format!("  ({:.2}x / {:.2}x / {:.2}x the plain client)", r(0), r(1), r(2))
        })
        .unwrap_or_default();
    println!(
        "{what}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs over {} runs{ratio}",
        micros(ps[0]),
        micros(ps[1]),
        micros(ps[2]),
        samples.len()
    );
    ps
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
