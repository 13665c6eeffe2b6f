//! Test harness: a real server on a loopback port over a fresh store (SQLite file, or a fresh
//! PostgreSQL schema when `STEWARD_TEST_DATABASE_URL` is set, dropped with the server), a manual
//! clock, and helpers to make users and requests. The fake model is the shared one.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use steward_test_support::fake_model;

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use steward_core::clock::{Clock, ManualClock, SystemClock};
use steward_core::ids::{AccountId, SandboxId};
use steward_core::keys;
use steward_core::tenancy::{Email, KeyKind, Role};
use steward_server::config::{Database, ServerConfig};
use steward_server::secrets::MasterKey;
use steward_store::{NewApiKey, Store};
use steward_test_support::postgres::PgSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub store: Store,
    pub data_dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
    /// The PostgreSQL schema, dropped after the server stops (fields drop after `drop`).
    _schema: Option<PgSchema>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("steward-test-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_on(Backend::Sqlite).await.expect("sqlite always starts")
    }

    /// `None` when PostgreSQL is not configured (and not required).
    pub async fn start_on(backend: Backend) -> Option<Self> {
        Self::start_configured(backend, |_| {}).await
    }

    /// Like `start_on`, letting the test adjust the configuration first.
    pub async fn start_configured(backend: Backend, adjust: impl FnOnce(&mut ServerConfig)) -> Option<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data_dir = temp_dir();
        let (database, schema) = match backend {
            Backend::Sqlite => (Database::Sqlite(data_dir.join("steward.db")), None),
            Backend::Postgres => {
                let schema = PgSchema::create("steward_api").await?;
                (Database::Postgres(schema.url().to_owned()), Some(schema))
            }
        };
        let clock = ManualClock::new(SystemClock.now_ms());
        let config = ServerConfig {
            concierge_model: None,
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            master_key: MasterKey::load_or_create(&data_dir.join("master.key")).unwrap().0,
            smtp: None,
            session_ttl_secs: 3600,
            runtime: steward_runtime::RuntimeConfig {
                heartbeat: std::time::Duration::from_millis(200),
                poll: std::time::Duration::from_millis(100),
                tools: steward_runtime::ToolsConfig { workspaces: data_dir.join("workspaces"), ..Default::default() },
                ..Default::default()
            },
            llm_timeouts: steward_llm::Timeouts {
                connect: std::time::Duration::from_secs(5),
                response: std::time::Duration::from_secs(10),
                idle: std::time::Duration::from_secs(5),
            },
            llm_retry: steward_llm::RetryPolicy {
                max_attempts: 2,
                base_delay: std::time::Duration::from_millis(10),
                max_delay: std::time::Duration::from_millis(100),
            },
            sse_heartbeat: std::time::Duration::from_millis(500),
            stream_poll: ServerConfig::default_stream_poll(&database),
            database,
            channels: Default::default(),
        };
        let mut config = config;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        config.runtime.integrations.public_url = url.clone();
        adjust(&mut config);
        let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
        let store = steward_server::open_store(&config, clock_dyn.clone()).await.expect("open store");
        let state = steward_server::AppState::new(store.clone(), config, clock_dyn).unwrap();
        state.set_local_addr(listener.local_addr().unwrap());
        state.runtime.start().await.expect("start the runtime");
        state.start_channels();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, steward_server::app(state)).await;
        });
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap();
        Some(Self { url, http, clock, store, data_dir, task, _schema: schema })
    }

    /// A new account owning a new sandbox, with an account key.
    pub async fn user(&self, email: &str) -> User {
        let account = self.store.ensure_account(&Email::parse(email, "email").unwrap()).await.unwrap();
        let sandbox = self.store.create_sandbox(&account.id, &format!("{email}'s sandbox")).await.unwrap();
        let key = self.key(&account.id, &sandbox.id, KeyKind::Account, None).await;
        User { account_id: account.id, sandbox_id: sandbox.id, key }
    }

    /// Mints a key directly in the store.
    pub async fn key(&self, account: &AccountId, sandbox: &SandboxId, kind: KeyKind, agent: Option<&str>) -> String {
        let minted = keys::mint();
        self.store
            .create_api_key(NewApiKey {
                sandbox_id: sandbox.clone(),
                account_id: account.clone(),
                kind,
                agent_id: agent.map(|a| steward_core::ids::AgentId::parse(a, "agent").unwrap()),
                name: "test".into(),
                key_hash: minted.hash,
                display_prefix: minted.display_prefix,
            })
            .await
            .unwrap();
        minted.plaintext
    }

    /// Gives `user` a role in `sandbox` and a key homed there.
    pub async fn member(&self, email: &str, sandbox: &SandboxId, role: Role) -> User {
        let u = self.user(email).await;
        self.store.put_grant(sandbox, &u.account_id, role).await.unwrap();
        let key = self.key(&u.account_id, sandbox, KeyKind::Account, None).await;
        User { account_id: u.account_id, sandbox_id: sandbox.clone(), key }
    }

    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, path, key, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        // An event stream never ends: report its status and leave the body unread.
        if res.headers().get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream")) {
            return (status, Value::Null);
        }
        let text = res.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    /// An `anthropic` provider at `base_url` (a fake model's) offering `model`, created through
    /// the API.
    pub async fn fake_provider(&self, key: &str, base_url: &str, model: &str) {
        let body = serde_json::json!({"id": "anthropic", "provider": "anthropic", "base_url": base_url, "models": [model]});
        let (st, p) = self.post("/v1/providers", key, body).await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
    }

    /// A new user (ada@example.com) with a [`TestServer::fake_provider`] offering `model` and an
    /// agent `name` on it; returns the user and the agent's id.
    pub async fn user_with_agent(&self, base_url: &str, model: &str, name: &str) -> (User, String) {
        let u = self.user("ada@example.com").await;
        self.fake_provider(&u.key, base_url, model).await;
        let body = serde_json::json!({"name": name, "model": {"provider_id": "anthropic", "name": model}});
        let (st, a) = self.post("/v1/agents", &u.key, body).await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        (u, a["id"].as_str().unwrap().to_owned())
    }

    /// Creates an agent through the API and returns its JSON.
    pub async fn agent(&self, key: &str, name: &str) -> Value {
        let (s, v) = self.post("/v1/agents", key, agent_body(name)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
}

pub struct User {
    pub account_id: AccountId,
    pub sandbox_id: SandboxId,
    pub key: String,
}

pub fn agent_body(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "description": "Answers support email",
        "model": {"provider_id": "anthropic", "name": "claude-sonnet-4-6"},
        "system_prompt": "You are helpful.",
        "tools": ["search_issues"],
        "max_turns": 15,
        "max_output_tokens": 4096,
        "temperature": 0.2,
        "metadata": {"team": "support"}
    })
}

/// Posts `body` (JSON) to a trigger's inbound `url` (a path) with the given headers; returns the
/// status and the answer, as JSON when it is.
pub async fn deliver(s: &TestServer, url: &str, body: impl AsRef<[u8]>, headers: &[(&str, String)]) -> (StatusCode, Value) {
    let mut req = s.http.post(format!("{}{url}", s.url)).header("content-type", "application/json").body(body.as_ref().to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    let st = res.status();
    let text = res.text().await.unwrap();
    (st, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Asserts a §2 error body and returns its message.
pub fn error_message(v: &Value) -> String {
    let e = v.get("error").unwrap_or_else(|| panic!("not a §2 error body: {v}"));
    assert!(e.get("type").and_then(Value::as_str).is_some(), "error without type: {v}");
    e.get("message").and_then(Value::as_str).unwrap_or_else(|| panic!("error without message: {v}")).to_owned()
}

pub fn error_param(v: &Value) -> Option<String> {
    v["error"]["param"].as_str().map(str::to_owned)
}
