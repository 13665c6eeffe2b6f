//! Runtime benchmark: the real `steward serve` with a local fake provider that answers at once
//! (a `current_time` tool call, then ~20 tokens of text), driven over HTTP.
//!
//! First it measures the same server's `GET /health` rate at concurrency 32 (the machine's
//! yardstick: every runs/s is also printed as a ratio to it, which removes most of a shared
//! machine's noise). Then, per scenario and concurrency level, for `BENCH_SECS` (default 30)
//! seconds it reports completed runs/s and p50/p99 latency:
//! - `sessions`: `POST /v1/sessions`, then the session's stream until `agent_finish` (also the
//!   time from the POST to the first streamed event);
//! - `messages`: `POST /v1/agents/{id}/messages`, one request = one run, waiting for the reply.
//!
//! Then it opens idle streams and reports the server's RSS growth per stream.
//!
//! `cargo bench -p steward-cli --bench runtime`. Knobs: `BENCH_SECS=5`, `BENCH_LEVELS=1,8,32,64`,
//! `BENCH_SCENARIOS=sessions,messages`, `BENCH_STREAMS=1000,10000` (`0` for none),
//! `BENCH_LOG=sqlx::query=debug` (the server's log filter: count statements per run),
//! `BENCH_BACKEND=sqlite|postgres` (PostgreSQL: a fresh schema in the database named by
//! `STEWARD_TEST_DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`, dropped afterwards).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use steward_test_support::fake_model::InstantModel;
use steward_test_support::measure::{percentile, rss_kib};
use steward_test_support::serve::{self, Served as Server, create_session};

fn start_server(data: &std::path::Path, database: Option<&str>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
    if let Some(url) = database {
        cmd.args(["--database-url", url]);
    }
    // `BENCH_LOG=sqlx::query=debug` logs every statement the server runs (to count them per run).
    let log = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into());
    cmd.env("STEWARD_LOG", log).stderr(Stdio::inherit());
    serve::start(cmd, Duration::from_secs(60)).expect("start steward")
}

/// One run: POST a session, follow its stream to `agent_finish`. Returns (total, first event).
async fn one_run(http: &reqwest::Client, url: &str, key: &str, agent: &str) -> Option<(Duration, Duration)> {
    let t0 = Instant::now();
    let sid = create_session(http, url, key, agent, "time?").await.map_err(|e| eprintln!("{e}")).ok()?;
    let stream = http.get(format!("{url}/v1/sessions/{sid}/stream")).bearer_auth(key).send().await.ok()?;
    let mut body = stream.bytes_stream();
    let mut first = None;
    let mut text = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        if first.is_none() {
            first = Some(t0.elapsed());
        }
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("event: agent_finish") || text.contains("event: agent_error") {
            if text.contains("event: agent_error") {
                eprintln!("run failed: {text}");
                return None;
            }
            return Some((t0.elapsed(), first.unwrap_or_default()));
        }
    }
    None
}

/// One run through the messaging route: the reply comes back in the response. Returns (total, total).
async fn one_message(http: &reqwest::Client, url: &str, key: &str, agent: &str) -> Option<(Duration, Duration)> {
    let t0 = Instant::now();
    let res =
        http.post(format!("{url}/v1/agents/{agent}/messages")).bearer_auth(key).json(&json!({"content": "time?"})).send().await.ok()?;
    let status = res.status();
    let body: Value = res.json().await.ok()?;
    if status != 200 {
        eprintln!("POST /v1/agents/{{id}}/messages → {status}: {body}");
        return None;
    }
    let took = t0.elapsed();
    Some((took, took))
}

/// Requests per second of `GET /health` at concurrency 32 for `secs`.
async fn health_rate(http: &reqwest::Client, url: &str, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, url, stop) = (http.clone(), url.to_owned(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = http.get(format!("{url}/health")).send().await
                    && r.bytes().await.is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Sessions,
    Messages,
}

#[allow(clippy::too_many_arguments)]
async fn level(http: &reqwest::Client, url: &str, key: &str, agent: &str, scenario: Scenario, concurrency: usize, secs: u64, health: f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, key, agent, stop) = (http.clone(), url.to_owned(), key.to_owned(), agent.to_owned(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut failed = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let r = match scenario {
                    Scenario::Sessions => one_run(&http, &url, &key, &agent).await,
                    Scenario::Messages => one_message(&http, &url, &key, &agent).await,
                };
                match r {
                    Some(r) => out.push(r),
                    None => failed += 1,
                }
            }
            (out, failed)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (r, f) = t.await.unwrap();
        all.extend(r);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut total: Vec<f64> = all.iter().map(|r| r.0.as_secs_f64() * 1000.0).collect();
    let mut first: Vec<f64> = all.iter().map(|r| r.1.as_secs_f64() * 1000.0).collect();
    total.sort_by(f64::total_cmp);
    first.sort_by(f64::total_cmp);
    let rate = all.len() as f64 / elapsed;
    let name = if scenario == Scenario::Sessions { "sessions" } else { "messages" };
    let first = if scenario == Scenario::Sessions {
        format!("  first event p50 {:>6.2} ms  p99 {:>6.2} ms", percentile(&first, 0.5), percentile(&first, 0.99))
    } else {
        String::new()
    };
    println!(
        "{name} c={concurrency:>2}: {rate:>7.1} runs/s = {:.4} × /health  ({} runs, {failed} failed)  latency p50 {:>7.2} ms  p99 {:>7.2} ms{first}",
        rate / health,
        all.len(),
        percentile(&total, 0.5),
        percentile(&total, 0.99),
    );
}

async fn idle_streams(url: &str, key: &str, agent: &str, pid: u32, n: usize) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let session: Value = http
        .post(format!("{url}/v1/messages").replace("/v1/messages", &format!("/v1/agents/{agent}/messages")))
        .bearer_auth(key)
        .json(&json!({"content": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["conversation_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let res = match http
            .get(format!("{url}/v1/sessions/{sid}/stream?after=evt_{}_{:012}", &sid[4..], 1_000_000))
            .bearer_auth(key)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                println!("idle streams: stopped at {i}: {e}");
                break;
            }
        };
        held.push(res);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let opened = held.len().max(1);
    println!(
        "{opened:>6} idle streams: server RSS {before} KiB → {after} KiB, {:.1} KiB per stream",
        (after.saturating_sub(before)) as f64 / opened as f64
    );
    drop(held);
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let levels: Vec<usize> =
        std::env::var("BENCH_LEVELS").unwrap_or_else(|_| "1,8,32".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let streams: Vec<usize> =
        std::env::var("BENCH_STREAMS").unwrap_or_else(|_| "1000,10000".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let scenarios: Vec<Scenario> = std::env::var("BENCH_SCENARIOS")
        .unwrap_or_else(|_| "sessions,messages".into())
        .split(',')
        .filter_map(|s| match s.trim() {
            "sessions" => Some(Scenario::Sessions),
            "messages" => Some(Scenario::Messages),
            _ => None,
        })
        .collect();
    let postgres = std::env::var("BENCH_BACKEND").is_ok_and(|b| b == "postgres");
    let data = std::env::temp_dir().join(format!("steward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let schema = if postgres {
        assert!(
            std::env::var("STEWARD_TEST_DATABASE_URL").is_ok(),
            "BENCH_BACKEND=postgres needs STEWARD_TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
        );
        Some(steward_test_support::postgres::PgSchema::create("bench").await.expect("a PostgreSQL schema"))
    } else {
        None
    };
    let database = schema.as_ref().map(|s| s.url().to_owned());
    let model = InstantModel::start().await;
    let server = start_server(&data, database.as_deref());
    let steward = Command::new(env!("CARGO_BIN_EXE_steward"));
    let key = serve::bootstrap_account(steward, "bench@example.com", Some(&data), database.as_deref()).api_key;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let res = http
        .post(format!("{}/v1/providers", server.url))
        .bearer_auth(&key)
        .json(&json!({"id": "fake", "provider": "anthropic", "base_url": model.url, "models": ["m"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let agent: Value = http
        .post(format!("{}/v1/agents", server.url))
        .bearer_auth(&key)
        .json(&json!({"name": "bench", "model": {"provider_id": "fake", "name": "m"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = agent["id"].as_str().unwrap().to_owned();
    println!(
        "steward runtime benchmark: {} store, {secs} s per level, {} cores",
        if postgres { "PostgreSQL" } else { "SQLite" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let health = health_rate(&http, &server.url, secs.min(5)).await;
    println!("GET /health c=32: {health:.0} requests/s");
    for &scenario in &scenarios {
        for &c in &levels {
            level(&http, &server.url, &key, &agent, scenario, c, secs, health).await;
        }
    }
    for n in streams.into_iter().filter(|&n| n > 0) {
        idle_streams(&server.url, &key, &agent, server.child.id(), n).await;
    }
    drop(server);
    drop(schema);
    let _ = std::fs::remove_dir_all(&data);
}
