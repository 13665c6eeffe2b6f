//! Triggers benchmark: the real `steward serve` (SQLite) under inbound webhook load and with many
//! cron schedules, driven over HTTP like `runtime.rs` (the fake provider and the process helper
//! are `steward-test-support`'s). Each part gets a fresh server and data dir.
//!
//! 1. **Webhooks.** 64 senders POST signed deliveries (a unique `Steward-Delivery` each) to one
//!    trigger for `BENCH_SECS` (default 20) seconds; reports `202`s per second overall and over
//!    the first 2 s, p50/p99 latency and the answers that were not `202`. The queued runs really
//!    execute against the instant fake model, on the same cores as the server and the senders;
//!    after the senders stop, it reports how long the remaining runs took to finish.
//! 2. **Schedules.** 20 every-second schedules fire for `BENCH_FIRE_SECS` (default 10) seconds
//!    and their lateness (`fired_at - scheduled_at`) and missing or doubled due seconds are
//!    reported; then `BENCH_SCHEDULES` (default 100,000) yearly schedules are created 64 at a
//!    time (stopping after 3 minutes, which the output says), with the time taken and the
//!    server's RSS per schedule; then 20 new every-second schedules are measured again.
//!
//! `cargo bench -p steward-cli --bench triggers` (`BENCH_SECS=5 BENCH_SCHEDULES=10000` for a
//! quick look).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use steward_core::signing::steward_signature as sign;
use steward_test_support::fake_model::InstantModel as FakeModel;
use steward_test_support::measure::{percentile, rss_kib};
use steward_test_support::serve::{self, Served as Server};
use tokio::task::JoinSet;

const SENDERS: usize = 64;
const CREATORS: usize = 64;
const EVERY_SECOND: usize = 20;
/// Creating the yearly schedules stops here, so the bench always finishes.
const CREATE_LIMIT: Duration = Duration::from_secs(180);

fn start_server(data: &std::path::Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data).env("STEWARD_LOG", "warn").stderr(Stdio::inherit());
    serve::start(cmd, Duration::from_secs(60)).expect("start steward")
}

/// A data dir removed on drop (after the server that uses it: see `Bench`'s field order).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("steward-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The 1, 5 and 15 minute load averages, to tell a busy machine from a slow server.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The API as one account sees it. Cheap to clone into tasks.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    /// Status (0 when the request failed) and JSON body.
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        match req.bearer_auth(&self.key).send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let text = res.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.url)).json(&body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.url))).await
    }
}

/// A fresh server with an account and an active agent on the fake model. Fields drop in order:
/// the server is killed before its data dir is removed.
struct Bench {
    server: Server,
    _data: TempDir,
    model: FakeModel,
    api: Api,
    agent: String,
}

impl Bench {
    async fn start(tag: &str) -> Self {
        let model = FakeModel::start().await;
        let data = TempDir::new(tag);
        let server = start_server(&data.0);
        let steward = Command::new(env!("CARGO_BIN_EXE_steward"));
        let key = serve::bootstrap_account(steward, "bench@example.com", Some(&data.0), None).api_key;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(SENDERS.max(CREATORS))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let api = Api { http, url: server.url.clone(), key };
        let (st, p) =
            api.post("/v1/providers", json!({"id": "fake", "provider": "anthropic", "base_url": model.url, "models": ["m"]})).await;
        assert_eq!(st, 201, "{p}");
        let (st, a) = api.post("/v1/agents", json!({"name": "bench", "model": {"provider_id": "fake", "name": "m"}})).await;
        assert_eq!(st, 201, "{a}");
        let agent = a["id"].as_str().unwrap().to_owned();
        Self { server, _data: data, model, api, agent }
    }
}

/// One signed delivery; the status (0 when the request failed) and the answer.
async fn deliver(http: &reqwest::Client, url: &str, secret: &str, delivery: &str, n: u64) -> (u16, String) {
    // The delivery id is in the body: a legacy signature covers only "<ts>.<body>", and two
    // identical bodies signed in the same second are one signature, which is accepted once.
    let body = format!(r#"{{"event":"bench","delivery":"{delivery}","n":{n}}}"#);
    let ts = now_ms() / 1000;
    let req = http
        .post(url)
        .header("content-type", "application/json")
        .header("steward-timestamp", ts.to_string())
        .header("steward-signature", sign(secret, ts, body.as_bytes()))
        .header("steward-delivery", delivery)
        .body(body);
    match req.send().await {
        Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// One answered delivery: when it was answered (since the start), how long it took, its status.
struct Sample {
    done: Duration,
    latency: Duration,
    status: u16,
    body: Option<String>,
}

async fn webhooks(b: &Bench, secs: u64) {
    let (st, t) = b.api.post(&format!("/v1/agents/{}/triggers", b.agent), json!({"name": "bench"})).await;
    assert_eq!(st, 201, "{t}");
    let url = format!("{}{}", b.api.url, t["url"].as_str().unwrap());
    let secret = t["secret"].as_str().unwrap().to_owned();
    let (st, answer) = deliver(&b.api.http, &url, &secret, "warm-up", 0).await;
    assert_eq!(st, 202, "the warm-up delivery was refused: {answer}");
    let calls_before = b.model.calls.load(Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for sender in 0..SENDERS {
        let (http, url, secret, stop) = (b.api.http.clone(), url.clone(), secret.clone(), stop.clone());
        senders.spawn(async move {
            let mut out = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let t0 = Instant::now();
                let (status, body) = deliver(&http, &url, &secret, &format!("d{sender}-{n}"), n).await;
                let body = (status != 202).then_some(body);
                out.push(Sample { done: started.elapsed(), latency: t0.elapsed(), status, body });
            }
            out
        });
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let all: Vec<Sample> = senders.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed().as_secs_f64();
    let runs = (b.model.calls.load(Ordering::Relaxed) - calls_before) / 2;
    report_webhooks(&all, elapsed, runs);
    let started_runs = all.iter().filter(|s| s.status == 202).count() as u64 + 1;
    drain(&b.model.calls, started_runs).await;
}

/// Waits for every accepted run to finish (two model calls each), or reports where it stalled.
async fn drain(calls: &AtomicU64, runs: u64) {
    let started = Instant::now();
    let (mut last, mut moved) = (calls.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = calls.load(Ordering::Relaxed);
        if now >= 2 * runs {
            println!("  all {runs} runs finished {:.1} s after the senders stopped", started.elapsed().as_secs_f64());
            return;
        }
        if now != last {
            (last, moved) = (now, Instant::now());
        }
        if moved.elapsed() > Duration::from_secs(10) || started.elapsed() > Duration::from_secs(120) {
            println!(
                "  STALLED: {} of {runs} runs finished ({now} model calls) {:.1} s after the senders stopped; none progressed in the last {:.1} s",
                now / 2,
                started.elapsed().as_secs_f64(),
                moved.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn report_webhooks(all: &[Sample], elapsed: f64, runs: u64) {
    let accepted: Vec<&Sample> = all.iter().filter(|s| s.status == 202).collect();
    let mut latency: Vec<f64> = accepted.iter().map(|s| s.latency.as_secs_f64() * 1000.0).collect();
    latency.sort_by(f64::total_cmp);
    let first_2s = accepted.iter().filter(|s| s.done <= Duration::from_secs(2)).count();
    let mut refused: BTreeMap<u16, usize> = BTreeMap::new();
    for s in all.iter().filter(|s| s.status != 202) {
        *refused.entry(s.status).or_default() += 1;
    }
    let refused_text = if refused.is_empty() {
        "0".to_owned()
    } else {
        refused
            .iter()
            .map(|(st, n)| format!("{n}× {}", if *st == 0 { "no answer".to_owned() } else { st.to_string() }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "webhooks, {SENDERS} senders, {elapsed:.1} s: {:>8.1} deliveries/s answered 202 (target ≥ 10,000/s); first 2 s: {:.1}/s; latency p50 {:.2} ms, p99 {:.2} ms; {} accepted; not 202: {refused_text}",
        accepted.len() as f64 / elapsed,
        first_2s as f64 / 2.0,
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        accepted.len(),
    );
    let seconds = elapsed.ceil() as usize;
    let mut per_second = vec![0usize; seconds];
    for s in &accepted {
        per_second[(s.done.as_secs() as usize).min(seconds - 1)] += 1;
    }
    println!("  202s per second: {}", per_second.iter().map(usize::to_string).collect::<Vec<_>>().join(" "));
    println!(
        "  runs finished meanwhile ≈ {runs} (fake model calls / 2), competing with the deliveries for the same cores; ≈ {} accepted runs still queued",
        (accepted.len() as u64).saturating_sub(runs)
    );
    if let Some(s) = all.iter().find(|s| s.status != 202) {
        println!("  first refusal: {} {}", s.status, s.body.as_deref().unwrap_or_default());
    }
}

/// Creates up to `wanted` yearly schedules, `CREATORS` at a time; returns how many exist.
async fn create_yearly(b: &Bench, wanted: usize) -> usize {
    let pid = b.server.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut creators = JoinSet::new();
    for _ in 0..CREATORS {
        let (api, next, path) = (b.api.clone(), next.clone(), format!("/v1/agents/{}/schedules", b.agent));
        creators.spawn(async move {
            let (mut created, mut failed, mut first_error) = (0usize, 0usize, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= wanted || started.elapsed() > CREATE_LIMIT {
                    return (created, failed, first_error);
                }
                let (st, s) = api.post(&path, json!({"name": format!("yearly-{i}"), "cron": "0 0 1 1 *", "timezone": "UTC"})).await;
                if st == 201 {
                    created += 1;
                } else {
                    failed += 1;
                    first_error.get_or_insert(format!("{st} {s}"));
                }
            }
        });
    }
    let results = creators.join_all().await;
    let took = started.elapsed().as_secs_f64();
    let created: usize = results.iter().map(|r| r.0).sum();
    let failed: usize = results.iter().map(|r| r.1).sum();
    println!(
        "schedules: created {created} yearly schedules (`0 0 1 1 *`) in {took:.1} s, {:.0}/s with {CREATORS} in flight, {failed} failed",
        created as f64 / took
    );
    if created + failed < wanted {
        println!(
            "  NOTE: stopped at the {} s limit: only {created} of the {wanted} requested schedules were used below",
            CREATE_LIMIT.as_secs()
        );
    }
    if let Some(e) = results.iter().find_map(|r| r.2.as_ref()) {
        println!("  first failure: {e}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    println!(
        "  server RSS {before} KiB → {after} KiB, {:.3} KiB per schedule",
        after.saturating_sub(before) as f64 / created.max(1) as f64
    );
    created
}

/// Adds `EVERY_SECOND` schedules firing every second, lets them fire for `secs` whole seconds,
/// reports lateness and missing/doubled due seconds from their executions, then pauses them.
async fn every_second(b: &Bench, others: usize, prefix: &str, secs: i64) {
    let path = format!("/v1/agents/{}/schedules", b.agent);
    let mut ids = Vec::new();
    for k in 0..EVERY_SECOND {
        let (st, s) = b.api.post(&path, json!({"name": format!("{prefix}-{k}"), "cron": "* * * * * *", "timezone": "UTC"})).await;
        assert_eq!(st, 201, "{s}");
        ids.push(s["id"].as_str().unwrap().to_owned());
    }
    // Every schedule exists before `first`, so each must fire every second of the window.
    let first = now_ms() / 1000 + 1;
    let last = first + secs - 1;
    let wake = (last + 1) * 1000 + 1500;
    tokio::time::sleep(Duration::from_millis((wake - now_ms()).max(0) as u64)).await;
    let ms = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp_millis();
    let (mut late, mut missing, mut doubled, mut not_started, mut first_error) = (Vec::new(), 0, 0, 0, None);
    for id in &ids {
        let (st, page) = b.api.get(&format!("{path}/{id}/executions")).await;
        assert_eq!(st, 200, "{page}");
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for e in page["data"].as_array().unwrap() {
            let at = ms(&e["scheduled_at"]);
            if at < first * 1000 || at > last * 1000 {
                continue;
            }
            *seen.entry(at).or_default() += 1;
            late.push((ms(&e["fired_at"]) - at) as f64);
            if e["outcome"] != "started" {
                not_started += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        missing += (first..=last).filter(|s| !seen.contains_key(&(s * 1000))).count();
        doubled += seen.values().map(|n| n - 1).sum::<usize>();
        let (st, s) = b.api.post(&format!("{path}/{id}/pause"), json!({})).await;
        assert_eq!(st, 200, "{s}");
    }
    late.sort_by(f64::total_cmp);
    println!(
        "every-second schedules ({EVERY_SECOND}, {others} other schedules), {secs} s: {} fires, lateness min {:.0} ms, p50 {:.0} ms, p99 {:.0} ms (target ≤ 50 ms), max {:.0} ms; missing {missing}, doubled {doubled}, not started {not_started}",
        late.len(),
        late.first().copied().unwrap_or(f64::NAN),
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(f64::NAN),
    );
    if let Some(e) = first_error {
        println!("  first execution not started: {e}");
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env_or("BENCH_SECS", 20);
    let wanted = env_or("BENCH_SCHEDULES", 100_000) as usize;
    // The executions endpoint returns the newest 100, so the window stays below that.
    let fire_secs = env_or("BENCH_FIRE_SECS", 10).clamp(1, 90) as i64;
    println!(
        "steward triggers benchmark: SQLite store, {} cores shared by the server, its runs, the fake model and the load generator; load average {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        load_average()
    );
    {
        let b = Bench::start("webhooks").await;
        webhooks(&b, secs).await;
    }
    let b = Bench::start("schedules").await;
    every_second(&b, 0, "base", fire_secs).await;
    let created = create_yearly(&b, wanted).await;
    every_second(&b, created, "loaded", fire_secs).await;
    println!("load average at the end {} (other processes on the machine skew every number above)", load_average());
}
