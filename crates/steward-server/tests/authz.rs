//! Authorization over every route of the OpenAPI document (which is generated from the
//! handlers, so a new route appears here automatically): strangers get 404 and change nothing,
//! viewers may read but get 403 naming the role on every mutation, editors get 403 on owner-only
//! operations, agent keys reach no management route (not even their own agent's config). A new route without a fixture or an
//! expectation fails this test until someone decides what it should do.

mod common;

use std::collections::BTreeSet;

use common::{Backend, TestServer, User, agent_body, error_message};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_core::clock::Clock;
use steward_core::tenancy::{KeyKind, Role};

/// Routes anyone may call without a key. The OpenAPI document is one: it holds no tenant data,
/// and client generators and fuzzers need it before they have a credential.
const PUBLIC: &[&str] = &[
    "/health",
    "/v1/auth/email/start",
    "/v1/auth/email/verify",
    "/v1/channels/slack/{sandbox_id}/events",
    "/v1/channels/telegram/{sandbox_id}/webhook",
    "/v1/integrations/callback",
    "/v1/openapi.json",
    "/v1/webhooks/triggers/{trigger_id}",
];

/// Routes that act on the caller's own account rather than on a sandbox.
const ACCOUNT_LEVEL: &[(&str, &str)] =
    &[("GET", "/v1/sandboxes"), ("POST", "/v1/sandboxes"), ("GET", "/v1/me"), ("GET", "/metrics"), ("GET", "/v1/environments/templates")];

/// Operations that need `owner` (§9 destructive operations, and sharing).
const OWNER_ONLY: &[(&str, &str)] = &[
    ("DELETE", "/v1/sandboxes/{id}"),
    ("POST", "/v1/sandboxes/{id}/archive"),
    ("POST", "/v1/sandboxes/{id}/grants"),
    ("DELETE", "/v1/sandboxes/{id}/grants/{account_id}"),
    ("POST", "/v1/api_keys/{id}/revoke"),
    ("DELETE", "/v1/agents/{id}"),
    ("POST", "/v1/agent/delete/{id}"),
    ("DELETE", "/v1/vaults/{id}"),
    ("DELETE", "/v1/sources/{id}"),
    ("DELETE", "/v1/agents/{id}/triggers/{trigger_id}"),
    ("DELETE", "/v1/agent/{id}/triggers/{trigger_id}"),
    ("DELETE", "/v1/connected_accounts/{id}"),
];

/// POSTs any member may make, viewers included: talking to one's own Concierge (its tools are
/// filtered by the caller's role; see tests/concierge.rs).
const ANY_MEMBER_MAY_POST: &[(&str, &str)] = &[
    ("POST", "/v1/sandboxes/{sandbox_id}/concierge/test"),
    ("POST", "/v1/sandboxes/{sandbox_id}/concierge/chat"),
    ("POST", "/storage/sandboxes/{sandbox_id}/concierge/test"),
    ("POST", "/storage/sandboxes/{sandbox_id}/concierge/chat"),
    ("POST", "/v1/sandboxes/{sandbox_id}/mcp"),
];

struct World {
    owner: User,
    editor: User,
    viewer: User,
    stranger: User,
    agent_key: String,
    agent_id: String,
    other_agent_id: String,
    key_id: String,
    vault_id: String,
    source_id: String,
    environment_id: String,
    trigger_id: String,
    schedule_id: String,
    subscription_id: String,
    connected_account_id: String,
    publication_id: String,
    connect_id: String,
    session_id: String,
    run_id: String,
    binding_id: String,
}

/// What an `agent_invoke` key may do with its own agent: sessions, runs, messages.
const AGENT_KEY_ALLOWED: &[(&str, &str)] = &[
    ("GET", "/v1/me"),
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/{id}"),
    ("DELETE", "/v1/sessions/{id}"),
    ("POST", "/v1/sessions/{id}/messages"),
    ("POST", "/v1/sessions/{id}/cancel"),
    ("GET", "/v1/sessions/{id}/events"),
    ("GET", "/v1/sessions/{id}/stream"),
    ("GET", "/v1/runs/{id}"),
    ("GET", "/v1/runs/{id}/trace"),
    ("GET", "/v1/agents/{id}/messages"),
    ("POST", "/v1/agents/{id}/messages"),
    ("GET", "/v1/agents/{id}/conversations"),
    ("GET", "/v1/agent/{id}/messages"),
    ("POST", "/v1/agent/{id}/messages"),
    ("GET", "/v1/agent/{id}/conversations"),
];

/// The provider created in `world()`; provider paths take its slug.
const PROVIDER_ID: &str = "anthropic";

async fn world(s: &TestServer) -> World {
    let owner = s.user("owner@example.com").await;
    let editor = s.member("editor@example.com", &owner.sandbox_id, Role::Editor).await;
    let viewer = s.member("viewer@example.com", &owner.sandbox_id, Role::Viewer).await;
    let stranger = s.user("stranger@example.com").await;
    let agent = s.agent(&owner.key, "support").await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let (st, _) = s.patch(&format!("/v1/agents/{agent_id}"), &owner.key, json!({"max_turns": 16})).await;
    assert_eq!(st, StatusCode::OK);
    let other_agent_id = s.agent(&owner.key, "triage").await["id"].as_str().unwrap().to_owned();
    let agent_key = s.key(&owner.account_id, &owner.sandbox_id, KeyKind::AgentInvoke, Some(&agent_id)).await;
    let (st, key) = s.post("/v1/api_keys", &owner.key, json!({"name": "ci"})).await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let (st, vault) = s.post("/v1/vaults", &owner.key, json!({"name": "anthropic-key", "secret": "sk-ant-authz"})).await;
    assert_eq!(st, StatusCode::CREATED, "{vault}");
    let vault_id = vault["id"].as_str().unwrap().to_owned();
    // A closed loopback port: runs fail fast and nothing leaves the machine.
    let provider = json!({"id": PROVIDER_ID, "provider": "anthropic", "base_url": "http://127.0.0.1:9", "api_key_vault_id": vault_id, "models": ["claude-sonnet-4-6"]});
    let (st, v) = s.post("/v1/providers", &owner.key, provider).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, session) =
        s.post("/v1/sessions", &owner.key, json!({"agent_id": agent_id, "input": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(st, StatusCode::CREATED, "{session}");
    let (st, src) = s.post("/v1/sources", &owner.key, json!({"name": "files", "kind": "builtin", "toolset": "workspace"})).await;
    assert_eq!(st, StatusCode::CREATED, "{src}");
    let (st, env) = s.post("/v1/environments", &owner.key, json!({"name": "default-env"})).await;
    assert_eq!(st, StatusCode::CREATED, "{env}");
    let (st, v) =
        s.call(Method::PUT, &format!("/v1/agents/{agent_id}/files/content?path=readme.md"), Some(&owner.key), Some(json!("hello"))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, trg) = s.post(&format!("/v1/agents/{agent_id}/triggers"), &owner.key, json!({"name": "hook"})).await;
    assert_eq!(st, StatusCode::CREATED, "{trg}");
    let (st, sch) = s.post(&format!("/v1/agents/{agent_id}/schedules"), &owner.key, json!({"name": "nightly", "cron": "0 3 * * *"})).await;
    assert_eq!(st, StatusCode::CREATED, "{sch}");
    let (st, sub) = s.post("/v1/subscriptions", &owner.key, json!({"url": "http://127.0.0.1:9/hook", "events": ["run.completed"]})).await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    // A connected account (stored directly: no OAuth server here), a publication and a pending connect.
    let account = s
        .store
        .upsert_connected_account(
            steward_store::NewConnectedAccount {
                sandbox_id: owner.sandbox_id.clone(),
                app_id: "github".into(),
                external_id: "42".into(),
                label: "octo-org".into(),
                scopes: None,
                expires_at: None,
                info: json!({}),
                connected_by: owner.account_id.clone(),
            },
            |_| "sealed".into(),
        )
        .await
        .unwrap();
    let publication =
        s.store.create_publication(&account, &steward_core::ids::AgentId::from_trusted(agent_id.clone()), "octo-org/hello").await.unwrap();
    let connect_id = steward_core::ids::fresh("con_");
    let now = s.clock.now_ms();
    s.store
        .create_oauth_attempt(&steward_store::OAuthAttempt {
            nonce: connect_id.clone(),
            sandbox_id: owner.sandbox_id.clone(),
            app_id: "github".into(),
            account_id: owner.account_id.clone(),
            session_id: None,
            verifier: None,
            redirect_uri: "http://127.0.0.1:9/v1/integrations/callback".into(),
            created_at: now,
            expires_at: now + 600_000,
            used_at: None,
            connected_account_id: None,
            error: None,
        })
        .await
        .unwrap();
    // A chat bound to the agent, and a bot (Slack: its token is checked with the fake's auth.test).
    let agent = steward_core::ids::AgentId::from_trusted(agent_id.clone());
    let code = steward_core::channel::code_hash(&steward_core::channel::mint_link_code()).unwrap();
    let platform = steward_core::channel::Platform::Telegram;
    s.store.create_link_code(&owner.sandbox_id, &agent, platform, &code, 600_000, 5).await.unwrap();
    let chat = steward_core::channel::ChatRef {
        chat_id: "42".into(),
        chat_kind: steward_core::channel::ChatKind::Dm,
        chat_title: None,
        user_id: "42".into(),
        user_name: None,
    };
    let steward_store::Redemption::Bound(binding) = s.store.redeem_link_code(&owner.sandbox_id, platform, &code, &chat).await.unwrap()
    else {
        panic!("the code binds")
    };
    let (st, bot) = s
        .call(
            reqwest::Method::PUT,
            "/v1/channels/slack/bot",
            Some(&owner.key),
            Some(json!({"bot_token": steward_test_support::fake_slack::TOKEN, "signing_secret": "s"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{bot}");
    World {
        binding_id: binding.id.to_string(),
        connected_account_id: account.id.to_string(),
        publication_id: publication.id.to_string(),
        connect_id,
        subscription_id: sub["id"].as_str().unwrap().to_owned(),
        schedule_id: sch["id"].as_str().unwrap().to_owned(),
        trigger_id: trg["id"].as_str().unwrap().to_owned(),
        source_id: src["id"].as_str().unwrap().to_owned(),
        environment_id: env["id"].as_str().unwrap().to_owned(),
        vault_id,
        key_id: key["id"].as_str().unwrap().to_owned(),
        session_id: session["id"].as_str().unwrap().to_owned(),
        run_id: session["run_id"].as_str().unwrap().to_owned(),
        owner,
        editor,
        viewer,
        stranger,
        agent_key,
        agent_id,
        other_agent_id,
    }
}

/// Fills path parameters with the victim's resources.
fn fill(template: &str, w: &World, agent: &str) -> String {
    let mut out = String::new();
    for seg in template.split('/').skip(1) {
        out.push('/');
        let value = match seg {
            "{id}" if template.starts_with("/v1/sandboxes") => w.owner.sandbox_id.to_string(),
            "{id}" if template.starts_with("/v1/agents") || template.starts_with("/v1/agent/") => agent.to_owned(),
            "{id}" if template.starts_with("/v1/api_keys") => w.key_id.clone(),
            "{id}" if template.starts_with("/v1/vaults") => w.vault_id.clone(),
            "{id}" if template.starts_with("/v1/providers") => PROVIDER_ID.to_owned(),
            "{id}" if template.starts_with("/v1/sessions") => w.session_id.clone(),
            "{id}" if template.starts_with("/v1/runs") => w.run_id.clone(),
            "{id}" if template.starts_with("/v1/sources") => w.source_id.clone(),
            "{id}" if template.starts_with("/v1/environments") => w.environment_id.clone(),
            "{id}" if template.starts_with("/v1/subscriptions") => w.subscription_id.clone(),
            "{id}" if template.starts_with("/v1/connected_accounts") => w.connected_account_id.clone(),
            "{sandbox_id}" => w.owner.sandbox_id.to_string(),
            "{app_id}" => "github".to_owned(),
            "{pub_id}" => w.publication_id.clone(),
            "{connect_id}" => w.connect_id.clone(),
            "{account_id}" => w.viewer.account_id.to_string(),
            "{trigger_id}" => w.trigger_id.clone(),
            "{schedule_id}" => w.schedule_id.clone(),
            "{version}" => "1".to_owned(),
            "{platform}" if template.starts_with("/v1/channels") => "slack".to_owned(),
            "{platform}" => "telegram".to_owned(),
            "{binding_id}" => w.binding_id.clone(),
            s if s.starts_with('{') => panic!("no fixture for path parameter {s} in {template}; add one to authz.rs"),
            s => s.to_owned(),
        };
        out.push_str(&value);
    }
    out
}

/// `fill`, plus the query a route needs (workspace routes address a file).
fn fill_for(method: &str, template: &str, w: &World, agent: &str) -> String {
    let mut out = fill(template, w, agent);
    if template.ends_with("/files/content") || (template.ends_with("/files") && method == "DELETE") {
        out.push_str("?path=readme.md");
    }
    out
}

/// A valid body, so that authorization (not validation) is what answers.
fn body(method: &str, template: &str, w: &World) -> Option<Value> {
    Some(match (method, template) {
        ("POST", "/v1/agents") | ("POST", "/v1/agent/create") => agent_body("newcomer"),
        ("PATCH", "/v1/agents/{id}") | ("POST", "/v1/agent/update/{id}") => json!({"description": "changed"}),
        ("POST", "/v1/agents/{id}/status") | ("POST", "/v1/agent/{id}/status") => json!({"state": "paused"}),
        ("POST", "/v1/api_keys") => json!({"name": "new"}),
        ("POST", "/v1/sandboxes") => json!({"name": "mine"}),
        ("PATCH", "/v1/sandboxes/{id}") => json!({"name": "renamed"}),
        ("POST", "/v1/sandboxes/{id}/grants") => json!({"email": "someone@example.com", "role": "viewer"}),
        ("POST", "/v1/vaults") => json!({"name": "new-key", "secret": "sk-new"}),
        ("PATCH", "/v1/vaults/{id}") => json!({"description": "changed", "secret": "sk-rotated"}),
        ("POST", "/v1/providers") => json!({"id": "newcomer", "provider": "openai", "models": ["gpt-5"]}),
        ("PATCH", "/v1/providers/{id}") => json!({"models": ["claude-opus-4-1"], "api_key_vault_id": null}),
        ("POST", "/v1/sessions") => json!({"agent_id": w.agent_id, "input": [{"role": "user", "content": "hello"}]}),
        ("POST", "/v1/sessions/{id}/messages") => json!({"input": [{"role": "user", "content": "more"}], "on_busy": "enqueue"}),
        ("POST", "/v1/agents/{id}/balance") | ("POST", "/v1/agent/{id}/balance") => json!({"add": 100}),
        ("POST", "/v1/agents/{id}/messages") | ("POST", "/v1/agent/{id}/messages") => json!({"content": "hi", "wait": false}),
        ("POST", "/v1/sources") => json!({"name": "new-source", "kind": "builtin", "toolset": "shell"}),
        ("PATCH", "/v1/sources/{id}") => json!({"description": "changed"}),
        ("POST", "/v1/environments") => json!({"name": "new-env"}),
        ("PATCH", "/v1/environments/{id}") => json!({"description": "changed"}),
        ("PUT", "/v1/agents/{id}/files/content") => json!("overwritten"),
        ("POST", "/v1/agents/{id}/files/move") => json!({"from": "readme.md", "to": "moved.md"}),
        ("POST", "/v1/agents/{id}/triggers") | ("POST", "/v1/agent/{id}/triggers") => json!({"name": "new-trigger"}),
        ("PATCH", "/v1/agents/{id}/triggers/{trigger_id}") | ("PATCH", "/v1/agent/{id}/triggers/{trigger_id}") => {
            json!({"description": "changed"})
        }
        ("POST", "/v1/agents/{id}/triggers/{trigger_id}/pause") | ("POST", "/v1/agent/{id}/triggers/{trigger_id}/pause") => json!({}),
        ("POST", "/v1/subscriptions") => json!({"url": "http://127.0.0.1:9/other", "events": ["run.failed"]}),
        ("POST", "/v1/integrations/{app_id}/connect") => json!({}),
        ("POST", "/v1/integrations/{app_id}/publications") => {
            json!({"connected_account_id": w.connected_account_id, "agent_id": w.agent_id, "target": "octo-org/other"})
        }
        ("POST", "/v1/agents/{id}/schedules") | ("POST", "/v1/agent/{id}/schedules") => {
            json!({"name": "new-schedule", "cron": "0 4 * * *"})
        }
        ("PATCH", "/v1/agents/{id}/schedules/{schedule_id}") | ("PATCH", "/v1/agent/{id}/schedules/{schedule_id}") => {
            json!({"description": "changed"})
        }
        ("POST", "/v1/agents/{id}/schedules/{schedule_id}/pause") | ("POST", "/v1/agent/{id}/schedules/{schedule_id}/pause") => json!({}),
        ("POST", "/v1/sandboxes/{sandbox_id}/concierge/test")
        | ("POST", "/v1/sandboxes/{sandbox_id}/concierge/chat")
        | ("POST", "/storage/sandboxes/{sandbox_id}/concierge/test")
        | ("POST", "/storage/sandboxes/{sandbox_id}/concierge/chat") => json!({"message": "list my agents"}),
        ("POST", "/v1/sandboxes/{sandbox_id}/mcp") => json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ("POST", "/v1/agents/{id}/test") => json!({"input": "hello", "timeout_secs": 1}),
        ("PUT", "/v1/channels/{platform}/bot") => json!({"bot_token": "xoxb-2", "signing_secret": "other"}),
        ("PATCH", "/v1/agents/{id}/channels/{binding_id}") => json!({"respond": "all"}),
        ("POST", "/v1/auth/email/start") | ("POST", "/v1/auth/email/verify") => return None,
        _ => {
            let _ = w;
            return None;
        }
    })
}

fn routes(doc: &Value) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public =
                op.get("security").and_then(Value::as_array).is_some_and(|s| s.iter().all(|x| x.as_object().is_some_and(|o| o.is_empty())));
            let has_body = op.get("requestBody").is_some();
            out.push((method.to_uppercase(), path.clone(), public, has_body));
        }
    }
    out
}

async fn snapshot(s: &TestServer, w: &World) -> Value {
    let (_, agent) = s.get(&format!("/v1/agents/{}", w.agent_id), &w.owner.key).await;
    let (_, agents) = s.get("/v1/agents?limit=100", &w.owner.key).await;
    let (_, keys) = s.get("/v1/api_keys?limit=100", &w.owner.key).await;
    let (_, grants) = s.get(&format!("/v1/sandboxes/{}/grants", w.owner.sandbox_id), &w.owner.key).await;
    let (_, sandbox) = s.get(&format!("/v1/sandboxes/{}", w.owner.sandbox_id), &w.owner.key).await;
    let (_, vaults) = s.get("/v1/vaults?limit=100", &w.owner.key).await;
    let (_, providers) = s.get("/v1/providers?limit=100", &w.owner.key).await;
    let (_, sources) = s.get("/v1/sources?limit=100", &w.owner.key).await;
    let (_, environments) = s.get("/v1/environments?limit=100", &w.owner.key).await;
    let (_, files) = s.get(&format!("/v1/agents/{}/files", w.agent_id), &w.owner.key).await;
    let (_, readme) = s.get(&format!("/v1/agents/{}/files/content?path=readme.md", w.agent_id), &w.owner.key).await;
    let (_, triggers) = s.get(&format!("/v1/agents/{}/triggers", w.agent_id), &w.owner.key).await;
    let (_, schedules) = s.get(&format!("/v1/agents/{}/schedules", w.agent_id), &w.owner.key).await;
    let (_, subscriptions) = s.get("/v1/subscriptions", &w.owner.key).await;
    let (_, accounts) = s.get("/v1/connected_accounts", &w.owner.key).await;
    let (_, publications) = s.get("/v1/integrations/github/publications", &w.owner.key).await;
    let (_, channels) = s.get(&format!("/v1/agents/{}/channels", w.agent_id), &w.owner.key).await;
    let (_, bot) = s.get("/v1/channels/slack/bot", &w.owner.key).await;
    json!({"agent": agent, "agents": agents, "keys": keys, "grants": grants, "sandbox": sandbox, "vaults": vaults, "providers": providers,
           "sources": sources, "environments": environments, "files": files, "readme": readme, "triggers": triggers, "schedules": schedules, "subscriptions": subscriptions,
           "accounts": accounts, "publications": publications, "channels": channels, "bot": bot})
}

async fn run(backend: Backend) {
    let slack = steward_test_support::fake_slack::FakeSlack::start().await;
    let slack_url = slack.url.clone();
    let Some(s) = TestServer::start_configured(backend, move |c| c.channels.slack_api_url = slack_url).await else { return };
    let w = world(&s).await;
    // The document is public: fetched without any credential, it is the one a key sees.
    let (st, doc) = s.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    assert_eq!(s.get("/v1/openapi.json", &w.owner.key).await, (StatusCode::OK, doc.clone()));
    let mut all = routes(&doc);
    // Deletions last, so an allowed one (an agent key deleting its own session) cannot hide
    // the routes after it.
    all.sort_by_key(|r| r.0 == "DELETE");
    assert!(all.len() >= 35, "the OpenAPI document lists only {} operations", all.len());

    let public: BTreeSet<&str> = all.iter().filter(|r| r.2).map(|r| r.1.as_str()).collect();
    assert_eq!(public, PUBLIC.iter().copied().collect(), "the set of unauthenticated routes changed; update PUBLIC deliberately");

    let before = snapshot(&s, &w).await;
    let victim = [("Steward-Sandbox", w.owner.sandbox_id.as_str())];
    // Every read that answers 200 answers what the document says (schemathesis reaches few of
    // them: it has no fixtures, so most of its reads are 404s).
    let (mut documented_reads, mut undocumented) = (0, Vec::new());
    for (method, template, public, has_body) in &all {
        if *public {
            continue;
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let account_level = ACCOUNT_LEVEL.contains(&(method.as_str(), template.as_str()));
        let owner_only = OWNER_ONLY.contains(&(method.as_str(), template.as_str()));
        let mutating = method != "GET";
        let b = if *has_body {
            Some(body(method, template, &w).unwrap_or_else(|| panic!("no body fixture for {method} {template}; add one to authz.rs")))
        } else {
            None
        };
        let path = fill_for(method, template, &w, &w.agent_id);
        let route = format!("{method} {template}");

        // No credential at all.
        let (st, v) = s.call(m.clone(), &path, None, b.clone()).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{route} without a key: {v}");
        error_message(&v);

        // A stranger: 404 for anything in the victim's sandbox.
        if !account_level {
            let (st, v) = s.call_with(m.clone(), &path, Some(&w.stranger.key), b.clone(), &victim).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{route} as a stranger: {v}");
            let msg = error_message(&v);
            assert!(
                !msg.contains(w.owner.sandbox_id.as_str())
                    || template.starts_with("/v1/sandboxes")
                    || template.starts_with("/storage/sandboxes")
                    || !template.contains('{'),
                "{route}: 404 leaks the sandbox id: {msg}"
            );
        } else if method == "GET" && template == "/v1/sandboxes" {
            let (st, v) = s.get(&path, &w.stranger.key).await;
            assert_eq!(st, StatusCode::OK);
            assert!(!v.to_string().contains(w.owner.sandbox_id.as_str()), "a stranger sees the victim's sandbox: {v}");
        }

        // A viewer: reads succeed, mutations are 403 naming the role.
        if !account_level {
            let (st, v) = s.call_with(m.clone(), &path, Some(&w.viewer.key), b.clone(), &victim).await;
            if ANY_MEMBER_MAY_POST.contains(&(method.as_str(), template.as_str())) {
                assert_eq!(st, StatusCode::OK, "{route} as a viewer: {v}");
            } else if mutating {
                assert_eq!(st, StatusCode::FORBIDDEN, "{route} as a viewer: {v}");
                let need = if owner_only { "`owner`" } else { "`editor`" };
                let msg = error_message(&v);
                assert!(msg.contains(need) && msg.contains("`viewer`"), "{route}: the 403 should name {need} and the caller's role: {msg}");
            } else {
                assert_eq!(st, StatusCode::OK, "{route} as a viewer: {v}");
                documented_reads += usize::from(check_documented(&doc, template, &v, &mut undocumented));
            }
            // An editor: owner-only operations are 403 naming `owner`.
            if owner_only {
                let (st, v) = s.call_with(m.clone(), &path, Some(&w.editor.key), b.clone(), &victim).await;
                assert_eq!(st, StatusCode::FORBIDDEN, "{route} as an editor: {v}");
                assert!(error_message(&v).contains("`owner`"), "{route}: {v}");
            }
        }

        // An agent key: its own agent's sessions, runs and messages; no management, its own
        // agent's configuration included.
        let (st, v) = s.call(m.clone(), &path, Some(&w.agent_key), b.clone()).await;
        if AGENT_KEY_ALLOWED.contains(&(method.as_str(), template.as_str())) {
            assert!(st.is_success(), "{route} with an agent key: {st} {v}");
        } else {
            assert_eq!(st, StatusCode::FORBIDDEN, "{route} with an agent key: {v}");
            assert!(error_message(&v).contains("agent_invoke"), "{route}: {v}");
        }
        if template.contains("{id}") && (template.starts_with("/v1/agents") || template.starts_with("/v1/agent/")) {
            // …and another agent of the same sandbox is not its business either.
            let other = fill_for(method, template, &w, &w.other_agent_id);
            let (st, v) = s.call(m.clone(), &other, Some(&w.agent_key), b.clone()).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{method} {other} with another agent's key: {v}");
        }
    }
    let after = snapshot(&s, &w).await;
    assert_eq!(before, after, "refused requests changed state");
    assert!(undocumented.is_empty(), "answers that do not match the OpenAPI document:\n{}", undocumented.join("\n"));
    eprintln!("reads checked against the document: {documented_reads}");
    assert!(documented_reads >= 40, "only {documented_reads} reads were checked against the document");
}

/// Checks a 200 answer of `GET template` against the JSON schema the document gives it; records
/// a mismatch in `wrong`. `false` when the answer is not JSON (a file's content).
fn check_documented(doc: &Value, template: &str, answer: &Value, wrong: &mut Vec<String>) -> bool {
    let content = &doc["paths"][template]["get"]["responses"]["200"]["content"];
    let Some(schema) = content.get("application/json").and_then(|c| c.get("schema")) else {
        return false;
    };
    // The schema's `#/components/…` references resolve against a root that carries them.
    let mut root = schema.clone();
    if let Some(obj) = root.as_object_mut() {
        obj.insert("components".into(), doc["components"].clone());
    }
    let validator =
        jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("GET {template}: the documented schema does not compile: {e}"));
    let errors: Vec<String> = validator.iter_errors(answer).take(3).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if !errors.is_empty() {
        wrong.push(format!("GET {template}: {}", errors.join("; ")));
    }
    true
}

#[tokio::test]
async fn every_route_refuses_strangers_viewers_and_agent_keys_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_route_refuses_strangers_viewers_and_agent_keys_postgres() {
    run(Backend::Postgres).await;
}
