//! Three replicas on one PostgreSQL database, one of them killed with SIGKILL under load: every
//! idempotent request sent to it is answered by a survivor on retry (never a permanent 409), no
//! run is left `running`, every run has exactly one terminal event, every completed or failed
//! run reaches the webhook receiver (the outbox), every schedule due time fires exactly once,
//! and the replicas do not deadlock each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{http, ops_account, pg_schema_url, provision, replica, slow_model, start, steward, temp_dir};
use steward_test_support::retry::retry_while_conflict;

/// A webhook receiver that accepts everything and keeps the bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let store = store.clone();
        async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                store.lock().unwrap().push(v);
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    (
        url,
        got,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

/// PostgreSQL's count of deadlocks detected in the test database so far.
async fn deadlocks(url: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let row: (i64,) = sqlx::query_as("SELECT CAST(deadlocks AS BIGINT) FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.0
}

async fn get(http: &reqwest::Client, url: &str, key: &str) -> Value {
    http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn three_replicas_survive_a_kill_9_under_load() {
    let Some((_schema, url)) = pg_schema_url().await else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let deadlocks_before = deadlocks(&url).await;
    let (model_url, _model) = slow_model(40, Duration::from_millis(30)).await;
    let (hook_url, hooks, _hook) = receiver().await;
    let home = temp_dir();
    // Short heartbeats and staleness, so the dead replica's leases and runs expire quickly.
    let start_replica = |dir: &str| replica(&home, &url, dir, &["--heartbeat-secs", "1", "--stale-after-secs", "3"]);
    let mut a = start_replica("a");
    let (b, c) = (start_replica("b"), start_replica("c"));
    let key = ops_account(&home, None, Some(&url)).api_key;
    let http = http();
    let agent = provision(&http, &a.url, &key, &model_url).await;
    let res = http
        .post(format!("{}/v1/subscriptions", b.url))
        .bearer_auth(&key)
        .json(&json!({"url": hook_url, "events": ["run.completed", "run.failed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let mut schedules = Vec::new();
    for i in 0..3 {
        let s = http
            .post(format!("{}/v1/agents/{agent}/schedules", c.url))
            .bearer_auth(&key)
            .json(&json!({"name": format!("every-second-{i}"), "cron": "* * * * * *"}))
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 201);
        schedules.push(s.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }

    // Load on replica A: messages that wait for their reply (each run streams for ~1.3 s), each
    // with its own Idempotency-Key, then A dies mid-request.
    let message = |n: usize| json!({"content": format!("message {n}"), "counterparty": format!("user-{n}")});
    let mut load = tokio::task::JoinSet::new();
    for n in 0..12 {
        let (http, url, key, agent) = (http.clone(), a.url.clone(), key.clone(), agent.clone());
        load.spawn(async move {
            let _ = http
                .post(format!("{url}/v1/agents/{agent}/messages"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("msg-{n}"))
                .json(&message(n))
                .send()
                .await;
        });
    }
    // Kill A once its runs are under way (not after a fixed time: on a loaded machine the
    // requests may not have reached a run yet), so the kill interrupts runs and requests.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = get(&http, &format!("{}/v1/runs?status=running", b.url), &key).await;
        if running["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no run of the load started within 30 s: {running}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.kill();
    while load.join_next().await.is_some() {}

    // Every key is answered by a survivor, after at most the dead replica's lease.
    let started = Instant::now();
    let mut retries = tokio::task::JoinSet::new();
    for n in 0..12 {
        let (http, url, key, agent, body) = (http.clone(), b.url.clone(), key.clone(), agent.clone(), message(n));
        retries.spawn(async move {
            let send = || {
                let pending = http
                    .post(format!("{url}/v1/agents/{agent}/messages"))
                    .bearer_auth(&key)
                    .header("Idempotency-Key", format!("msg-{n}"))
                    .json(&body)
                    .send();
                async move { pending.await.unwrap() }
            };
            let (res, waited) = retry_while_conflict(started + Duration::from_secs(20), Duration::from_millis(300), send, |res| {
                let wait: u64 = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(1);
                assert!(wait <= 3, "Retry-After beyond the lease: {wait}");
            })
            .await;
            (n, res.status(), waited)
        });
    }
    let mut waited_409 = 0;
    while let Some(r) = retries.join_next().await {
        let (n, status, waited) = r.unwrap();
        assert!(status.is_success(), "msg-{n}: {status} after {:?}", started.elapsed());
        waited_409 += waited;
    }
    eprintln!("idempotent retries: {waited_409} answers of 409 while leases ran out; all 12 answered in {:?}", started.elapsed());
    assert!(waited_409 > 0, "no request was in flight on the killed replica; the test proved nothing about leases");

    // Let the schedules fire a little longer on the survivors, then stop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &schedules {
        let res = http.post(format!("{}/v1/agents/{agent}/schedules/{s}/pause", b.url)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }

    // No run is left running: the dead replica's runs are recovered as `interrupted`.
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let mut runs = Vec::new();
        let mut params = vec![("agent_id", agent.clone()), ("limit", "100".to_owned())];
        loop {
            let page_url = reqwest::Url::parse_with_params(&format!("{}/v1/runs", c.url), &params).unwrap();
            let page = get(&http, page_url.as_str(), &key).await;
            runs.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => params = vec![("agent_id", agent.clone()), ("limit", "100".to_owned()), ("cursor", next.to_owned())],
                None => break,
            }
        }
        let active = runs.iter().filter(|r| ["queued", "running"].contains(&r["status"].as_str().unwrap())).count();
        if active == 0 || Instant::now() > deadline {
            assert_eq!(active, 0, "runs still active: {runs:?}");
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let interrupted = runs.iter().filter(|r| r["stop_reason"] == "interrupted").count();
    assert!(interrupted >= 1, "the kill should have interrupted a run: {runs:?}");

    // Exactly one terminal event per run.
    let mut terminal: BTreeMap<String, usize> = BTreeMap::new();
    let sessions: BTreeSet<String> = runs.iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect();
    for s in &sessions {
        for e in get(&http, &format!("{}/v1/sessions/{s}/events", b.url), &key).await.as_array().unwrap() {
            if ["agent_finish", "agent_error", "run_cancelled"].contains(&e["type"].as_str().unwrap()) {
                *terminal.entry(e["run_id"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
    }
    for r in &runs {
        let id = r["id"].as_str().unwrap();
        assert_eq!(terminal.get(id).copied(), Some(1), "run {id} ({}) terminal events", r["status"]);
    }

    // Every completed or failed run reached the receiver (at least once, deduplicated by id).
    let wanted: BTreeSet<String> = runs
        .iter()
        .filter(|r| ["completed", "failed"].contains(&r["status"].as_str().unwrap()))
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeSet<String> = hooks.lock().unwrap().iter().filter_map(|h| h["data"]["run_id"].as_str().map(str::to_owned)).collect();
        let missing: Vec<&String> = wanted.difference(&got).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "runs never notified: {missing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each due time fired once; how late, for the record.
    let mut lateness = Vec::new();
    for s in &schedules {
        let ex = get(&http, &format!("{}/v1/agents/{agent}/schedules/{s}/executions", b.url), &key).await;
        let ex = ex["data"].as_array().unwrap();
        let times: BTreeSet<&str> = ex.iter().map(|e| e["scheduled_at"].as_str().unwrap()).collect();
        assert_eq!(times.len(), ex.len(), "a due time fired twice: {ex:?}");
        for e in ex {
            let due = chrono::DateTime::parse_from_rfc3339(e["scheduled_at"].as_str().unwrap()).unwrap();
            let fired = chrono::DateTime::parse_from_rfc3339(e["fired_at"].as_str().unwrap()).unwrap();
            lateness.push((fired - due).num_milliseconds());
        }
    }
    lateness.sort_unstable();
    let pct = |p: usize| lateness[(lateness.len() * p / 100).min(lateness.len() - 1)];
    eprintln!("schedule fires: {}, lateness p50 {} ms, p99 {} ms, max {} ms", lateness.len(), pct(50), pct(99), lateness.last().unwrap());
    let deadlocks_after = deadlocks(&url).await;
    assert_eq!(deadlocks_after - deadlocks_before, 0, "PostgreSQL detected deadlocks during the test");
    drop((b, c));
    let _ = std::fs::remove_dir_all(&home);
}

/// The same promise on SQLite, where the only replica is the one that dies: restarted on the
/// same data dir (a new incarnation of the same node), it waits out its dead life's lease on the
/// key, then runs the request; `POST /v1/sessions` answers with the session the dead request had
/// already created instead of a second one.
#[tokio::test]
async fn a_restarted_sqlite_server_answers_the_keys_its_dead_life_held() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (model_url, _model) = slow_model(40, Duration::from_millis(30)).await;
    let home = temp_dir();
    let data = home.join("data");
    let serve = || {
        let mut c = steward(&home);
        c.args(["serve", "--heartbeat-secs", "1", "--stale-after-secs", "3", "--data-dir"]).arg(&data);
        start(c).unwrap()
    };
    let mut first = serve();
    let key = ops_account(&home, Some(&data), None).api_key;
    let http = http();
    let agent = provision(&http, &first.url, &key, &model_url).await;
    // The same request in both lives: one key, one body.
    let create_session = |url: &str| {
        http.post(format!("{url}/v1/sessions"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "session-1")
            .json(&json!({"agent_id": agent, "input": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let created: Value = create_session(&first.url).await.unwrap().json().await.unwrap();
    let (pending_url, pending_key, pending_agent) = (first.url.clone(), key.clone(), agent.clone());
    let pending = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(format!("{pending_url}/v1/agents/{pending_agent}/messages"))
            .bearer_auth(&pending_key)
            .header("Idempotency-Key", "message-1")
            .json(&json!({"content": "a long answer, please"}))
            .send()
            .await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill();
    let _ = pending.await;

    let second = serve();
    let post_message = || {
        http.post(format!("{}/v1/agents/{agent}/messages", second.url))
            .bearer_auth(&key)
            .header("Idempotency-Key", "message-1")
            .json(&json!({"content": "a long answer, please"}))
            .send()
    };
    let res = post_message().await.unwrap();
    assert_eq!(res.status(), 409, "the dead life's lease still holds right after the restart");
    assert!(res.headers().get("retry-after").is_some());
    let deadline = Instant::now() + Duration::from_secs(15);
    let send = || {
        let pending = post_message();
        async move { pending.await.unwrap() }
    };
    let status = retry_while_conflict(deadline, Duration::from_millis(250), send, |_| {}).await.0.status();
    assert!(status.is_success(), "the key is still refused after the lease: {status}");
    // A finished request's key is a replay, across the restart, not a second session.
    let again: Value = create_session(&second.url).await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], created["id"], "{again}");
    drop(second);
    let _ = std::fs::remove_dir_all(&home);
}
