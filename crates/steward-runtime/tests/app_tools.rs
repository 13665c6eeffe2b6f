//! A connected integration account as a tool source (§6, §10), through `Runtime::resolve_tools`
//! as a run starts: an operator app whose tools are HTTP calls to a fake API on a loopback port
//! (bearer and in-URL tokens, path/query/body, error answers, redirects, the output cap), an app
//! whose tools come from the real npm `server-everything` over streamable HTTP, and accounts
//! that need to be connected again or are gone. The token must appear in no result, error or
//! trace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use steward_core::agent::AgentConfig;
use steward_core::clock::SystemClock;
use steward_core::ids::{AgentId, ConnectedAccountId, SandboxId};
use steward_core::integration::Catalog;
use steward_core::source::SourceConfig;
use steward_core::tenancy::Email;
use steward_llm::{RetryPolicy, Timeouts};
use steward_runtime::integrations::IntegrationsConfig;
use steward_runtime::resolve::Resolution;
use steward_runtime::tools::{MAX_TOOL_OUTPUT, ToolContext};
use steward_runtime::vault::VaultCipher;
use steward_runtime::{Providers, Runtime, RuntimeConfig};
use steward_store::{NewConnectedAccount, Store};
use steward_test_support::agent_config;
use steward_test_support::peers::everything_over_http;

const BEARER_TOKEN: &str = "gho_bearer-SECRET-7f3a91c2";
const BOT_TOKEN: &str = "123456:bot-SECRET-AAH8d2kq";
const MCP_TOKEN: &str = "mcp-SECRET-token-55e0b7";
const CALL: Duration = Duration::from_secs(20);

/// One request as the fake API saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query exactly as sent (percent-encoding kept).
    uri: String,
    authorization: Option<String>,
    body: String,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    fn last(&self) -> Seen {
        self.all().pop().expect("the fake API got a request")
    }
}

/// The fake API: records every request; `/v1/things/missing` is a 404 that echoes the
/// Authorization header (as careless APIs do), `/v1/things/moved` redirects to `elsewhere`,
/// `/v1/things/big` answers 300 KB; everything else answers 200 echoing the request.
async fn fake_api(
    State((log, elsewhere)): State<(Log, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        authorization: headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.0.lock().unwrap().push(seen.clone());
    match uri.path() {
        p if p.ends_with("/things/missing") => {
            (StatusCode::NOT_FOUND, format!(r#"{{"message": "Not Found", "you_sent": "{}"}}"#, seen.authorization.unwrap_or_default()))
                .into_response()
        }
        p if p.ends_with("/things/moved") => (StatusCode::FOUND, [(header::LOCATION, format!("{elsewhere}/steal"))]).into_response(),
        p if p.ends_with("/things/big") => "x".repeat(300_000).into_response(),
        _ => axum::Json(json!({"ok": true, "method": seen.method, "uri": seen.uri, "auth": seen.authorization, "body": seen.body}))
            .into_response(),
    }
}

/// Serves `router` on 127.0.0.1:0; returns `http://127.0.0.1:<port>`.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    vault: VaultCipher,
    rt: Runtime,
    owner: steward_core::ids::AccountId,
    sandbox: SandboxId,
}

/// A SQLite store, a sandbox, and a runtime whose catalog holds the shipped apps plus `apps`.
async fn world(apps: &[Value]) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let catalog_dir = dir.path().join("apps");
    std::fs::create_dir(&catalog_dir).unwrap();
    for app in apps {
        std::fs::write(catalog_dir.join(format!("{}.json", app["id"].as_str().unwrap())), app.to_string()).unwrap();
    }
    let catalog = Catalog::shipped().with_dir(&catalog_dir).unwrap();
    let clock = Arc::new(SystemClock);
    let store = Store::open_sqlite(&dir.path().join("steward.db"), clock.clone()).await.unwrap();
    let owner = store.ensure_account(&Email::parse("owner@example.com", "email").unwrap()).await.unwrap().id;
    let sandbox = store.create_sandbox(&owner, "apps").await.unwrap().id;
    let vault = VaultCipher::new([9; 32]);
    let providers = Providers::new(store.clone(), vault.clone(), Timeouts::default(), RetryPolicy::default());
    let mut rc = RuntimeConfig::default();
    rc.tools.workspaces = dir.path().join("workspaces");
    rc.integrations = IntegrationsConfig {
        catalog: Arc::new(catalog),
        credentials: BTreeMap::new(),
        public_url: "http://127.0.0.1:1".into(),
        state_key: vec![3; 32],
    };
    let rt = Runtime::new(store.clone(), providers, clock, rc);
    World { _dir: dir, store, vault, rt, owner, sandbox }
}

impl World {
    /// A connected account of `app` in `sandbox` whose sealed access token is `token`.
    async fn account(&self, sandbox: &SandboxId, app: &str, external_id: &str, label: &str, token: &str) -> ConnectedAccountId {
        let new = NewConnectedAccount {
            sandbox_id: sandbox.clone(),
            app_id: app.into(),
            external_id: external_id.into(),
            label: label.into(),
            scopes: None,
            expires_at: None,
            info: json!({}),
            connected_by: self.owner.clone(),
        };
        let plain = json!({"access_token": token, "refresh_token": null}).to_string();
        let (vault, sandbox) = (self.vault.clone(), sandbox.clone());
        self.store.upsert_connected_account(new, move |id| vault.encrypt(sandbox.as_str(), id.as_str(), &plain)).await.unwrap().id
    }

    async fn source(&self, config: Value) -> String {
        self.store.create_source(&self.sandbox, SourceConfig::from_json(config).unwrap()).await.unwrap().id.to_string()
    }

    async fn resolve(&self, sources: Vec<String>) -> Resolution {
        // One agent per resolution (agent names are unique in a sandbox).
        let name = format!("apps-{}", AgentId::generate().as_str().trim_start_matches("agt_"));
        let config = AgentConfig { tool_sources: sources, ..agent_config(&name, "p", "m") };
        let agent: AgentId = self.store.create_agent(&self.sandbox, config.clone()).await.unwrap().id;
        self.rt.resolve_tools(&self.sandbox, &agent, &config).await.unwrap()
    }
}

fn ctx() -> ToolContext {
    ToolContext { clock: Arc::new(SystemClock), tool_timeout: CALL }
}

async fn call(r: &Resolution, tool: &str, args: Value) -> Result<String, String> {
    r.catalog.call(tool, args, &ctx(), CALL).await
}

/// The trace entry of the source named `name`.
fn entry<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no source `{name}` in {trace:#}"))
}

fn names(r: &Resolution) -> Vec<String> {
    r.catalog.specs().into_iter().map(|s| s.name).collect()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [BEARER_TOKEN, BOT_TOKEN, MCP_TOKEN, "bot-SECRET", "bearer-SECRET"] {
        assert!(!text.contains(secret), "{what} holds a token: {text}");
    }
}

fn http_app(id: &str, base_url: &str, auth: &str) -> Value {
    json!({
        "id": id,
        "display_name": "Fake Tracker",
        "tools": {
            "kind": "http",
            "base_url": base_url,
            "auth": auth,
            "tools": [
                {
                    "name": "list_issues",
                    "description": "Lists the issues of a repository.",
                    "method": "GET",
                    "path": "/repos/{owner}/{repo}/issues",
                    "input_schema": {"type": "object", "properties": {
                        "owner": {"type": "string"}, "repo": {"type": "string"},
                        "state": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}}
                    }, "required": ["owner", "repo"]}
                },
                {
                    "name": "create_issue",
                    "description": "Opens an issue.",
                    "method": "POST",
                    "path": "/repos/{owner}/{repo}/issues",
                    "input_schema": {"type": "object", "properties": {
                        "owner": {"type": "string"}, "repo": {"type": "string"}, "title": {"type": "string"}, "body": {"type": "string"}
                    }, "required": ["owner", "repo", "title"]}
                },
                {
                    "name": "get_thing",
                    "description": "Reads one thing.",
                    "method": "GET",
                    "path": "/things/{id}",
                    "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
                }
            ]
        }
    })
}

#[tokio::test]
async fn an_http_app_offers_its_calls_as_tools_with_the_accounts_token() {
    let thief_log = Log::default();
    let thief = serve(Router::new().fallback(fake_api).with_state((thief_log.clone(), String::new()))).await;
    let log = Log::default();
    let api = serve(Router::new().fallback(fake_api).with_state((log.clone(), thief.clone()))).await;
    let w =
        world(&[http_app("faketracker", &format!("{api}/v1"), "bearer"), http_app("fakebot", &format!("{api}/bot{{token}}"), "url")]).await;
    let account = w.account(&w.sandbox, "faketracker", "u-1", "ada@tracker", BEARER_TOKEN).await;
    let bot = w.account(&w.sandbox, "fakebot", "b-1", "helper_bot", BOT_TOKEN).await;
    let tracker = w.source(json!({"name": "tracker", "kind": "integration", "account_id": account})).await;
    let bot_source = w.source(json!({"name": "bot", "kind": "integration", "account_id": bot})).await;
    let r = w.resolve(vec![tracker, bot_source]).await;

    // Resolution lists the app's tools; the two apps have the same names, so both are namespaced.
    let e = entry(&r.trace, "tracker");
    assert_eq!(e["connected"], true, "{:#}", r.trace);
    assert_eq!(e["kind"], "integration");
    assert_eq!((e["app"].as_str(), e["app_name"].as_str()), (Some("faketracker"), Some("Fake Tracker")));
    assert_eq!((e["account_id"].as_str(), e["account_label"].as_str()), (Some(account.as_str()), Some("ada@tracker")));
    assert_eq!(e["offered"], json!(["list_issues", "create_issue", "get_thing"]));
    assert_eq!(entry(&r.trace, "bot")["account_label"], "helper_bot");
    let exposed = names(&r);
    for n in ["tracker__list_issues", "tracker__create_issue", "tracker__get_thing", "bot__create_issue"] {
        assert!(exposed.contains(&n.to_string()), "{exposed:?}");
    }
    let spec = r.catalog.specs().into_iter().find(|s| s.name == "tracker__create_issue").unwrap();
    assert_eq!(spec.description, "Opens an issue.");
    assert_eq!(spec.input_schema["required"], json!(["owner", "repo", "title"]));
    assert!(log.all().is_empty(), "resolution itself calls nothing");

    // GET: path placeholders filled and percent-encoded, the rest in the query string, bearer token.
    let mut outputs = Vec::new();
    let out =
        call(&r, "tracker__list_issues", json!({"owner": "ada lovelace", "repo": "a/b", "state": "open", "labels": ["bug", "p1"]})).await;
    let out = out.unwrap();
    let seen = log.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/v1/repos/ada%20lovelace/a%2Fb/issues?labels=bug&labels=p1&state=open", "{seen:?}");
    assert_eq!(seen.authorization.as_deref(), Some(format!("Bearer {BEARER_TOKEN}").as_str()));
    assert_eq!(seen.body, "");
    // The API echoed the header; the model sees it redacted.
    assert!(out.contains("[redacted]"), "{out}");
    outputs.push(out);

    // POST: the remaining arguments are a JSON body.
    let out =
        call(&r, "tracker__create_issue", json!({"owner": "ada", "repo": "engine", "title": "Bernoulli", "body": "note G"})).await.unwrap();
    let seen = log.last();
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("POST", "/v1/repos/ada/engine/issues"));
    assert_eq!(serde_json::from_str::<Value>(&seen.body).unwrap(), json!({"title": "Bernoulli", "body": "note G"}));
    outputs.push(out);

    // The token in the URL (`auth: url`), no Authorization header.
    let out = call(&r, "bot__create_issue", json!({"owner": "o", "repo": "r", "title": "t"})).await.unwrap();
    let seen = log.last();
    assert_eq!(seen.uri, format!("/bot{BOT_TOKEN}/repos/o/r/issues"));
    assert_eq!(seen.authorization, None);
    outputs.push(out);

    // A 404 is a tool error with the status and an excerpt of the body (the echoed token redacted).
    let before = log.all().len();
    let err = call(&r, "tracker__get_thing", json!({"id": "missing"})).await.unwrap_err();
    assert!(err.contains("404") && err.contains("Not Found") && err.contains("Fake Tracker"), "{err}");
    outputs.push(err);
    // A missing path argument is a tool error before anything is sent.
    let err = call(&r, "tracker__create_issue", json!({"owner": "ada", "title": "no repo"})).await.unwrap_err();
    assert!(err.contains("`repo`"), "{err}");
    outputs.push(err);
    // `..` may not turn a call into another endpoint (or climb out of the base URL).
    let err = call(&r, "tracker__get_thing", json!({"id": ".."})).await.unwrap_err();
    assert!(err.contains("`id` may not be `.` or `..`"), "{err}");
    outputs.push(err);
    assert_eq!(log.all().len(), before + 1, "only the 404 call reached the API");

    // Redirects are not followed: the token goes nowhere but the app's base URL.
    let err = call(&r, "tracker__get_thing", json!({"id": "moved"})).await.unwrap_err();
    assert!(err.contains("302") && err.contains("redirects are not followed"), "{err}");
    assert!(thief_log.all().is_empty(), "the redirect target got {:?}", thief_log.all());
    outputs.push(err);
    let err = call(&r, "bot__get_thing", json!({"id": "moved"})).await.unwrap_err();
    assert!(err.contains("302"), "{err}");
    assert!(thief_log.all().is_empty());
    outputs.push(err);

    // A large answer is capped like every tool's output.
    let out = call(&r, "tracker__get_thing", json!({"id": "big"})).await.unwrap();
    assert!(out.len() <= MAX_TOOL_OUTPUT && out.contains("truncated"), "{} bytes", out.len());

    for o in &outputs {
        assert_no_secret("a tool result or error", o);
    }
    assert_no_secret("the trace", &r.trace.to_string());

    // An API that is down is a readable tool error that does not name the token-bearing URL.
    drop(log);
    let dead = format!("http://127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let w2 = world(&[http_app("fakebot", &format!("{dead}/bot{{token}}"), "url")]).await;
    let bot = w2.account(&w2.sandbox, "fakebot", "b-1", "helper_bot", BOT_TOKEN).await;
    let s = w2.source(json!({"name": "bot", "kind": "integration", "account_id": bot})).await;
    let r2 = w2.resolve(vec![s]).await;
    let err = call(&r2, "get_thing", json!({"id": "x"})).await.unwrap_err();
    assert!(err.contains("Fake Tracker"), "{err}");
    assert_no_secret("a transport error", &err);
    w.rt.shutdown(Duration::from_secs(1)).await;
    w2.rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn accounts_that_need_reauth_or_are_gone_fail_their_source_only() {
    let log = Log::default();
    let api = serve(Router::new().fallback(fake_api).with_state((log.clone(), String::new()))).await;
    let events_only = json!({"id": "eventsonly", "display_name": "Events Only", "tools": {"kind": "none"}});
    let w = world(&[http_app("faketracker", &format!("{api}/v1"), "bearer"), events_only]).await;
    let good = w.account(&w.sandbox, "faketracker", "u-1", "good@tracker", BEARER_TOKEN).await;
    let stale = w.account(&w.sandbox, "faketracker", "u-2", "stale@tracker", "stale-token-1234").await;
    w.store.mark_needs_reauth(&stale, "refreshing the token failed: invalid_grant").await.unwrap();
    let other_sandbox = w.store.create_sandbox(&w.owner, "elsewhere").await.unwrap().id;
    let foreign = w.account(&other_sandbox, "faketracker", "u-3", "foreign@tracker", "foreign-token-1234").await;
    let quiet = w.account(&w.sandbox, "eventsonly", "e-1", "events", "events-token-1234").await;
    let gone = w.account(&w.sandbox, "faketracker", "u-4", "gone@tracker", "gone-token-1234").await;

    let mut ids = Vec::new();
    for (name, account) in [("good", &good), ("stale", &stale), ("foreign", &foreign), ("quiet", &quiet), ("gone", &gone)] {
        ids.push(w.source(json!({"name": name, "kind": "integration", "account_id": account})).await);
    }
    w.store.delete_connected_account(&gone).await.unwrap();
    let r = w.resolve(ids).await;

    let e = entry(&r.trace, "stale");
    assert_eq!(e["connected"], false, "{:#}", r.trace);
    let why = e["error"].as_str().unwrap();
    assert!(why.contains("needs to be connected again") && why.contains("invalid_grant"), "{why}");
    assert_eq!((e["account_label"].as_str(), e["app"].as_str()), (Some("stale@tracker"), Some("faketracker")));
    assert_eq!(e["offered"], json!([]));

    // Another sandbox's account reads exactly like a deleted one, and names nothing of it.
    let (f, g) = (entry(&r.trace, "foreign"), entry(&r.trace, "gone"));
    assert_eq!(f["connected"], false);
    assert!(f["error"].as_str().unwrap().contains("no longer exists"), "{f}");
    assert_eq!(f["error"].as_str().unwrap().replace(foreign.as_str(), "ID"), g["error"].as_str().unwrap().replace(gone.as_str(), "ID"));
    assert!(f.get("account_label").is_none() && !r.trace.to_string().contains("foreign@tracker"), "{f}");

    let q = entry(&r.trace, "quiet");
    assert_eq!(q["connected"], false);
    assert!(q["error"].as_str().unwrap().contains("offers no tools"), "{q}");

    // The healthy source still resolves and works.
    assert_eq!(entry(&r.trace, "good")["connected"], true);
    let out = call(&r, "list_issues", json!({"owner": "a", "repo": "b"})).await.unwrap();
    assert!(out.contains(r#""ok":true"#), "{out}");
    assert_eq!(log.last().authorization.as_deref(), Some(format!("Bearer {BEARER_TOKEN}").as_str()));
    assert_no_secret("the trace", &r.trace.to_string());
    assert!(!r.trace.to_string().contains("stale-token-1234"));
    w.rt.shutdown(Duration::from_secs(1)).await;
}

/// A pass-through proxy in front of the MCP server that records each request's Authorization
/// header (the reference server ignores it, so the test looks on the wire).
async fn auth_recorder(
    State((upstream, log)): State<(String, Log)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
    log.0.lock().unwrap().push(Seen { method: method.to_string(), uri: uri.to_string(), authorization, body: String::new() });
    let mut req = reqwest::Client::new().request(method, format!("{upstream}{uri}")).body(body);
    for (k, v) in &headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            req = req.header(k, v);
        }
    }
    let res = match req.send().await {
        Ok(res) => res,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(res.status());
    for (k, v) in res.headers() {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
            out = out.header(k, v);
        }
    }
    out.body(axum::body::Body::from_stream(res.bytes_stream())).unwrap()
}

#[tokio::test]
async fn an_mcp_app_offers_the_servers_tools_with_the_accounts_token() {
    let Some(server) = everything_over_http().await else { return };
    let port = server.port;

    let log = Log::default();
    let proxy = serve(Router::new().fallback(auth_recorder).with_state((format!("http://127.0.0.1:{port}"), log.clone()))).await;
    let app = json!({"id": "fakemcp", "display_name": "Fake MCP App", "tools": {"kind": "mcp", "url": format!("{proxy}/mcp")}});
    let w = world(&[app]).await;
    let account = w.account(&w.sandbox, "fakemcp", "m-1", "team-one", MCP_TOKEN).await;
    let source = w.source(json!({"name": "everything", "kind": "integration", "account_id": account, "timeout_seconds": 30})).await;
    let r = w.resolve(vec![source.clone()]).await;
    let e = entry(&r.trace, "everything");
    assert_eq!(e["connected"], true, "{:#}", r.trace);
    assert_eq!((e["app"].as_str(), e["account_label"].as_str()), (Some("fakemcp"), Some("team-one")));
    assert!(e["offered"].as_array().unwrap().iter().any(|t| t == "echo"), "{e}");
    assert_eq!(call(&r, "echo", json!({"message": "through the account"})).await.unwrap(), "Echo: through the account");
    // Whatever the server echoes, the account's token never reaches the model.
    assert_eq!(call(&r, "echo", json!({"message": MCP_TOKEN})).await.unwrap(), "Echo: [redacted]");
    assert_no_secret("the trace", &r.trace.to_string());
    let sent: Vec<Option<String>> = log.all().into_iter().map(|s| s.authorization).collect();
    assert!(!sent.is_empty() && sent.iter().all(|a| a.as_deref() == Some(&format!("Bearer {MCP_TOKEN}"))), "{sent:?}");

    // The account is connected again with a new token: the next run uses it (a new pooled
    // connection), and a run that started with the old one keeps working.
    w.account(&w.sandbox, "fakemcp", "m-1", "team-one", "mcp-SECOND-token-9d1c").await;
    let r2 = w.resolve(vec![source]).await;
    assert_eq!(entry(&r2.trace, "everything")["connected"], true, "{:#}", r2.trace);
    let before = log.all().len();
    assert_eq!(call(&r2, "echo", json!({"message": "mcp-SECOND-token-9d1c"})).await.unwrap(), "Echo: [redacted]");
    let sent: Vec<Option<String>> = log.all()[before..].iter().map(|s| s.authorization.clone()).collect();
    assert!(!sent.is_empty() && sent.iter().all(|a| a.as_deref() == Some("Bearer mcp-SECOND-token-9d1c")), "{sent:?}");
    assert_eq!(call(&r, "echo", json!({"message": "old run"})).await.unwrap(), "Echo: old run");
    w.rt.shutdown(Duration::from_secs(1)).await;
}

/// An MCP app whose server refuses the account's token (401 with a challenge) fails its source
/// with "connect the account again": resolution decides by `McpError::Unauthorized`, not by the
/// error's wording, and the token stays out of the trace.
#[tokio::test]
async fn an_mcp_app_refusing_the_token_says_to_connect_the_account_again() {
    let refuse =
        Router::new().fallback(|| async { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")], "") });
    let url = serve(refuse).await;
    let app = json!({"id": "lockedmcp", "display_name": "Locked MCP App", "tools": {"kind": "mcp", "url": format!("{url}/mcp")}});
    let w = world(&[app]).await;
    let account = w.account(&w.sandbox, "lockedmcp", "m-1", "team-one", MCP_TOKEN).await;
    let source = w.source(json!({"name": "locked", "kind": "integration", "account_id": account, "timeout_seconds": 10})).await;
    let r = w.resolve(vec![source]).await;
    let e = entry(&r.trace, "locked");
    assert_eq!(e["connected"], false, "{:#}", r.trace);
    assert_eq!(e["error"], "the app's MCP server refused the account's token; connect the account again", "{e}");
    assert!(names(&r).iter().all(|n| n == "current_time"), "the source contributes no tools: {:?}", names(&r));
    assert_no_secret("the trace", &r.trace.to_string());
    w.rt.shutdown(Duration::from_secs(1)).await;
}
