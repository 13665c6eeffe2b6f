//! `steward serve` as a process: configuration precedence (flags > env > file), the master key
//! created on first start, and two replicas on one PostgreSQL database with the admin bootstrap.
//! `serve/cluster.rs`: three replicas, one killed under load.

#[path = "serve/cluster.rs"]
mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use steward_test_support::fake_model::{FakeModel, Reply};
use steward_test_support::postgres::PgSchema;
use steward_test_support::serve::{self, Account, Served as Server, bootstrap_account, create_session};
use steward_test_support::sse::{self, SseDecoder, SseFrame};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("steward-serve-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A `steward` command with a clean environment (nothing inherited from the developer's shell).
fn steward(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", home).env("XDG_CONFIG_HOME", home.join("config"));
    c.env("XDG_DATA_HOME", home.join("data")).env("STEWARD_LOG", "warn");
    c
}

/// Starts `serve` and waits (bounded) for its "listening on" line; everything it prints is kept.
fn start(mut cmd: Command) -> Result<Server, String> {
    cmd.arg("--listen").arg("127.0.0.1:0").stderr(Stdio::piped());
    serve::start(cmd, Duration::from_secs(60))
}

/// The master key every replica of a PostgreSQL test shares.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A replica on the PostgreSQL database `url` with its own data dir `home/dir`, the shared
/// master key, and the `extra` flags of its `serve`.
fn replica(home: &Path, url: &str, dir: &str, extra: &[&str]) -> Server {
    let mut c = steward(home);
    c.args(["serve", "--database-url", url]).args(extra).arg("--data-dir").arg(home.join(dir)).env("STEWARD_MASTER_KEY", MASTER_KEY);
    start(c).unwrap()
}

/// The operator's account, bootstrapped on the data dir `data` and/or the database `url`.
fn ops_account(home: &Path, data: Option<&Path>, url: Option<&str>) -> Account {
    bootstrap_account(steward(home), "ops@example.com", data, url)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

#[test]
fn flags_beat_environment_beat_config_file() {
    let home = temp_dir();
    let (from_file, from_env, from_flag) = (home.join("file-dir"), home.join("env-dir"), home.join("flag-dir"));
    let config = home.join("steward.toml");
    std::fs::write(&config, format!("data_dir = {:?}\nsession_ttl_secs = 600\n", from_file.display().to_string())).unwrap();

    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config);
    let s = start(c).unwrap();
    assert!(s.first_line.contains(&from_file.display().to_string()), "{}", s.first_line);
    drop(s);
    // The master key was created on first start, readable only by its owner.
    let key = from_file.join("master.key");
    assert!(key.exists());
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777, 0o600);

    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config).env("STEWARD_DATA_DIR", &from_env);
    let s = start(c).unwrap();
    assert!(s.first_line.contains(&from_env.display().to_string()), "{}", s.first_line);
    drop(s);

    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config).env("STEWARD_DATA_DIR", &from_env).arg("--data-dir").arg(&from_flag);
    let s = start(c).unwrap();
    assert!(s.first_line.contains(&from_flag.display().to_string()), "{}", s.first_line);
    drop(s);

    // A typo in the config file is an error that names the key, not a silent default.
    std::fs::write(&config, "data_dri = \"/tmp/x\"\n").unwrap();
    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config);
    let err = start(c).err().expect("a bad config must not start");
    assert!(err.contains("data_dri"), "{err}");
    let _ = std::fs::remove_dir_all(&home);
}

/// A fresh PostgreSQL schema (dropped with the guard, after the replicas using it) and the URL
/// that selects it; `None` when PostgreSQL is not configured (and not required).
async fn pg_schema_url() -> Option<(PgSchema, String)> {
    // `cluster::deadlocks` reads the database through `sqlx::Any`.
    sqlx::any::install_default_drivers();
    let schema = PgSchema::create("steward_cli").await?;
    let url = schema.url().to_owned();
    Some((schema, url))
}

#[tokio::test]
async fn two_replicas_share_one_postgres_database() {
    let Some((_schema, url)) = pg_schema_url().await else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let home = temp_dir();
    let a = replica(&home, &url, "a", &[]);
    let b = replica(&home, &url, "b", &[]);
    assert!(a.first_line.contains("PostgreSQL"), "{}", a.first_line);

    let created = ops_account(&home, None, Some(&url));
    let key = created.api_key.as_str();
    assert!(key.starts_with("stw_"));

    let http = http();
    let body = serde_json::json!({"name": "support", "model": {"provider_id": "anthropic", "name": "claude-sonnet-4-6"}});
    let res = http.post(format!("{}/v1/agents", a.url)).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let agent: serde_json::Value = res.json().await.unwrap();
    assert_eq!(agent["sandbox_id"], created.sandbox_id.as_str());
    // Replica B sees what A wrote.
    let res = http.get(format!("{}/v1/agents/{}", b.url, agent["id"].as_str().unwrap())).bearer_auth(key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Revoking on B is immediate on A.
    let res = http.post(format!("{}/v1/api_keys", b.url)).bearer_auth(key).json(&serde_json::json!({"name": "temp"})).send().await.unwrap();
    let temp: serde_json::Value = res.json().await.unwrap();
    let secret = temp["secret"].as_str().unwrap();
    assert_eq!(http.get(format!("{}/v1/agents", a.url)).bearer_auth(secret).send().await.unwrap().status(), 200);
    let res = http.post(format!("{}/v1/api_keys/{}/revoke", b.url, temp["id"].as_str().unwrap())).bearer_auth(key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(http.get(format!("{}/v1/agents", a.url)).bearer_auth(secret).send().await.unwrap().status(), 401);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&home);
}

/// A fake Anthropic endpoint that streams `n` deltas, one every `every`.
async fn slow_model(n: usize, every: Duration) -> (String, FakeModel) {
    let model = FakeModel::start(move |_, _| Reply::Slow { n, delay: every }).await;
    (model.url.clone(), model)
}

use futures::StreamExt;

const PLANTED: &str = "sk-PLANTED-crash-test-3b9d";

/// Creates a vault, a provider pointing at `model_url` and an agent; returns the agent id.
async fn provision(http: &reqwest::Client, url: &str, key: &str, model_url: &str) -> String {
    let post = |path: &str, body: serde_json::Value| http.post(format!("{url}{path}")).bearer_auth(key).json(&body).send();
    let vault: serde_json::Value =
        post("/v1/vaults", serde_json::json!({"name": "k", "secret": PLANTED})).await.unwrap().json().await.unwrap();
    let res = post("/v1/providers", serde_json::json!({"id": "anthropic", "provider": "anthropic", "base_url": model_url, "api_key_vault_id": vault["id"], "models": ["m"]})).await.unwrap();
    assert_eq!(res.status(), 201);
    let agent: serde_json::Value =
        post("/v1/agents", serde_json::json!({"name": "slow", "model": {"provider_id": "anthropic", "name": "m"}}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    agent["id"].as_str().unwrap().to_owned()
}

async fn events(http: &reqwest::Client, url: &str, key: &str, session: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        http.get(format!("{url}/v1/sessions/{session}/events")).bearer_auth(key).send().await.unwrap().json().await.unwrap();
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn kill_9_during_a_run_then_restart_ends_the_run_as_interrupted() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (model_url, _model) = slow_model(10_000, Duration::from_millis(20)).await;
    let home = temp_dir();
    let data = home.join("data");
    let serve = || {
        let mut c = steward(&home);
        c.args(["serve", "--data-dir"]).arg(&data).env("STEWARD_LOG", "info");
        start(c).unwrap()
    };
    let first = serve();
    let key = ops_account(&home, Some(&data), None).api_key;
    let http = http();
    let agent = provision(&http, &first.url, &key, &model_url).await;
    let sid = create_session(&http, &first.url, &key, &agent, "go").await.unwrap();
    let mut before = Vec::new();
    for _ in 0..400 {
        before = events(&http, &first.url, &key, &sid).await;
        if before.iter().filter(|e| e["type"] == "agent_text_delta").count() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(before.iter().any(|e| e["type"] == "agent_text_delta"), "the run never streamed");
    // SIGKILL: no shutdown hook runs.
    let mut first = first;
    first.kill();
    let first_out = first.drain();

    let second = serve();
    let after = events(&http, &second.url, &key, &sid).await;
    let last = after.last().unwrap();
    assert_eq!(last["type"], "agent_error", "{last}");
    assert_eq!(last["data"]["type"], "interrupted");
    assert!(after.len() >= before.len() && after[..before.len()] == before[..], "the log before the crash is intact");
    let run_id = last["data"]["run_id"].as_str().unwrap();
    let run: serde_json::Value =
        http.get(format!("{}/v1/runs/{run_id}", second.url)).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!((run["status"].as_str(), run["stop_reason"].as_str()), (Some("failed"), Some("interrupted")));
    // A client resuming from the last event it saw before the crash gets the terminal event.
    let resume = before.last().unwrap()["id"].as_str().unwrap();
    let res = http.get(format!("{}/v1/sessions/{sid}/stream?after={resume}", second.url)).bearer_auth(&key).send().await.unwrap();
    let text = sse::read_until(res, Duration::from_secs(10), |t| t.contains("event: agent_error")).await;
    assert!(text.contains("event: agent_error"), "{text}");
    let second_out = second.drain();
    assert!(second_out.contains("recovered an interrupted run"), "the restart should log the recovery: {second_out}");
    for out in [&first_out, &second_out] {
        assert!(!out.contains(PLANTED), "the server printed the vault secret");
    }
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test]
async fn a_client_on_replica_b_follows_a_run_executing_on_replica_a() {
    let Some((_schema, url)) = pg_schema_url().await else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (model_url, _model) = slow_model(60, Duration::from_millis(10)).await;
    let home = temp_dir();
    let a = replica(&home, &url, "a", &[]);
    let b = replica(&home, &url, "b", &[]);
    let key = ops_account(&home, None, Some(&url)).api_key;
    let http = http();
    let agent = provision(&http, &a.url, &key, &model_url).await;
    let sid = create_session(&http, &a.url, &key, &agent, "go").await.unwrap();
    let res = http.get(format!("{}/v1/sessions/{sid}/stream", b.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = sse::read_until(res, Duration::from_secs(30), |t| t.contains("event: agent_finish")).await;
    assert!(text.contains("event: agent_finish"), "replica B never saw the end: {text}");
    let frames = sse::parse_frames(&text);
    let ids: Vec<&str> = frames.iter().filter_map(|f| f.id.as_deref()).collect();
    let log = events(&http, &a.url, &key, &sid).await;
    let log_ids: Vec<&str> = log.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, log_ids, "the stream on B equals the log written on A");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&home);
}

/// Three `steward serve` replicas on one PostgreSQL database run one every-second schedule for
/// a few seconds: every due time fires exactly once (one execution, one session), none twice.
#[tokio::test]
async fn three_replicas_fire_each_due_time_exactly_once() {
    let Some((_schema, url)) = pg_schema_url().await else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (model_url, _model) = slow_model(1, Duration::from_millis(1)).await;
    let home = temp_dir();
    let replicas = ["a", "b", "c"].map(|dir| replica(&home, &url, dir, &[]));
    let key = ops_account(&home, None, Some(&url)).api_key;
    let http = http();
    let a = &replicas[0].url;
    let agent = provision(&http, a, &key, &model_url).await;
    let schedule: serde_json::Value = http
        .post(format!("{a}/v1/agents/{agent}/schedules"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "every-second", "cron": "* * * * * *"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = schedule["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let res = http.post(format!("{a}/v1/agents/{agent}/schedules/{sid}/pause")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ex: serde_json::Value =
        http.get(format!("{a}/v1/agents/{agent}/schedules/{sid}/executions")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let ex = ex["data"].as_array().unwrap();
    assert!(ex.len() >= 3, "expected several fires in 5 s: {ex:?}");
    let times: std::collections::BTreeSet<&str> = ex.iter().map(|e| e["scheduled_at"].as_str().unwrap()).collect();
    assert_eq!(times.len(), ex.len(), "a due time fired twice: {ex:?}");
    assert!(ex.iter().all(|e| e["outcome"] == "started"), "{ex:?}");
    // One session per execution, and no other.
    let sessions: serde_json::Value =
        http.get(format!("{a}/v1/sessions?agent_id={agent}&limit=100")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let sessions = sessions["data"].as_array().unwrap();
    assert_eq!(sessions.len(), ex.len(), "sessions {} vs executions {}", sessions.len(), ex.len());
    // Consecutive seconds: nothing skipped between the first and the last fire.
    let first = chrono::DateTime::parse_from_rfc3339(times.first().unwrap()).unwrap().timestamp();
    let last = chrono::DateTime::parse_from_rfc3339(times.last().unwrap()).unwrap().timestamp();
    assert_eq!((last - first + 1) as usize, ex.len(), "{times:?}");
    drop(replicas);
    let _ = std::fs::remove_dir_all(&home);
}

/// One SSE frame a client received: `(id, type, data)`.
type Seen = (String, String, serde_json::Value);

/// A frame with an id, a type and JSON data, as [`Seen`]; `None` for anything else.
fn as_seen(frame: SseFrame) -> Option<Seen> {
    let data = frame.json()?;
    Some((frame.id?, frame.event?, data))
}

/// Many runs streaming at once keep the group-commit writer busy; `kill -9` lands in the middle
/// of its batches. After a restart, every event any client received is in the log exactly as it
/// was sent, the logs have no holes, and no run is left `running`.
async fn kill_9_mid_group_commit(database: Option<&str>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // 2,000 deltas 5 ms apart: each run streams for 10 s, longer than the test waits.
    let (model_url, _model) = slow_model(2_000, Duration::from_millis(5)).await;
    let home = temp_dir();
    let data = home.join("data");
    let serve = || {
        let mut c = steward(&home);
        c.args(["serve", "--data-dir"]).arg(&data);
        if let Some(url) = database {
            c.args(["--database-url", url]);
        }
        start(c).unwrap()
    };
    let first = serve();
    let key = ops_account(&home, Some(&data), database).api_key;
    let http = http();
    let agent = provision(&http, &first.url, &key, &model_url).await;
    const RUNS: usize = 16;
    // Per session: its id and the frames its client received.
    type Received = Vec<(String, Vec<Seen>)>;
    let seen: std::sync::Arc<std::sync::Mutex<Received>> = Default::default();
    let mut clients = Vec::new();
    for _ in 0..RUNS {
        let (http, url, key, agent, seen) = (http.clone(), first.url.clone(), key.clone(), agent.clone(), seen.clone());
        clients.push(tokio::spawn(async move {
            let sid = create_session(&http, &url, &key, &agent, "go").await.unwrap();
            let slot = {
                let mut seen = seen.lock().unwrap();
                seen.push((sid.clone(), Vec::new()));
                seen.len() - 1
            };
            let Ok(res) = http.get(format!("{url}/v1/sessions/{sid}/stream")).bearer_auth(&key).send().await else { return };
            let mut body = res.bytes_stream();
            let mut frames = SseDecoder::default();
            // Frames are recorded as they arrive, until the connection dies with the server.
            while let Some(Ok(chunk)) = body.next().await {
                seen.lock().unwrap()[slot].1.extend(frames.push(&chunk).into_iter().filter_map(as_seen));
            }
        }));
    }
    // Bounded: wait until every client has received a good number of events.
    for _ in 0..400 {
        let enough = {
            let s = seen.lock().unwrap();
            s.len() == RUNS && s.iter().all(|(_, e)| e.len() >= 30)
        };
        if enough {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut first = first;
    first.kill();
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), RUNS);
    assert!(
        seen.iter().all(|(_, e)| e.len() >= 30),
        "every client streamed before the kill: {:?}",
        seen.iter().map(|(_, e)| e.len()).collect::<Vec<_>>()
    );

    let second = serve();
    let mut received = 0;
    for (sid, got) in &seen {
        let log = events(&http, &second.url, &key, sid).await;
        // No holes: the log is numbered 1..n.
        for (i, e) in log.iter().enumerate() {
            let id = e["id"].as_str().unwrap();
            assert!(id.ends_with(&format!("_{:012}", i + 1)), "hole in the log of {sid} at {i}: {id}");
        }
        let by_id: std::collections::HashMap<&str, &serde_json::Value> = log.iter().map(|e| (e["id"].as_str().unwrap(), e)).collect();
        for (id, kind, data) in got {
            let stored =
                by_id.get(id.as_str()).unwrap_or_else(|| panic!("{sid}: event {id} ({kind}) reached a client but is not in the log"));
            assert_eq!((stored["type"].as_str().unwrap(), &stored["data"]), (kind.as_str(), data), "{sid}: {id} changed");
            received += 1;
        }
        let last = log.last().unwrap();
        assert_eq!((last["type"].as_str(), last["data"]["type"].as_str()), (Some("agent_error"), Some("interrupted")), "{sid}: {last}");
    }
    assert!(received >= RUNS * 30);
    let runs: serde_json::Value =
        http.get(format!("{}/v1/runs?status=running", second.url)).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(0), "no run is left running: {runs}");
    drop(second);
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_group_commit_loses_no_event_a_client_saw_sqlite() {
    kill_9_mid_group_commit(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_group_commit_loses_no_event_a_client_saw_postgres() {
    let Some((_schema, url)) = pg_schema_url().await else { return };
    kill_9_mid_group_commit(Some(&url)).await;
}
