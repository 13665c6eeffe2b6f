//! Integrations (§10) through the real server: the catalog, an OAuth connect against a local
//! fake authorization server (PKCE, signed single-use state), the connected account and the
//! session that started it being told, publications, an integration trigger verified the way
//! GitHub signs, revocation, and the bad inputs of the connect flow.

mod common;

use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer, User, error_message};
use hmac::{KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use steward_test_support::fake_oauth::{self, FakeOAuth, FakeOAuthConfig, TokenMode};

/// A server whose `github` app points at `fake` (an operator app file), with client credentials.
async fn server(fake: &FakeOAuth) -> TestServer {
    let dir = common::temp_dir();
    let mut github: Value = serde_json::from_str(include_str!("../../steward-core/catalog/github.json")).unwrap();
    github["oauth"]["authorize_url"] = json!(fake.authorize_url());
    github["oauth"]["token_url"] = json!(fake.token_url());
    github["oauth"]["revoke_url"] = json!(fake.revoke_url());
    std::fs::write(dir.join("github.json"), github.to_string()).unwrap();
    let catalog = steward_core::integration::Catalog::shipped().with_dir(&dir).unwrap();
    let (id, secret) = (fake.config().client_id.clone(), fake.config().client_secret.clone());
    TestServer::start_configured(Backend::Sqlite, move |c| {
        c.runtime.integrations.catalog = std::sync::Arc::new(catalog);
        c.runtime
            .integrations
            .credentials
            .insert("github".into(), serde_json::from_value(json!({"client_id": id, "client_secret": secret})).unwrap());
    })
    .await
    .unwrap()
}

/// Follows an authorize URL through the fake (which consents) to our callback.
async fn authorize(s: &TestServer, url: &str) -> (StatusCode, Value) {
    let callback = fake_oauth::follow_authorize(url).await;
    assert!(callback.starts_with(&s.url), "the fake redirects to our callback: {callback}");
    let res = s.http.get(&callback).send().await.unwrap();
    let st = res.status();
    (st, res.json().await.unwrap())
}

async fn connect(s: &TestServer, u: &User, body: Value) -> Value {
    let (st, c) = s.post("/v1/integrations/github/connect", &u.key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    c
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[tokio::test]
async fn connect_a_github_account_publish_an_agent_and_start_runs_from_signed_github_events() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let model = FakeModel::start(|_, _| Reply::Text("On it.".into())).await;
    let s = server(&fake).await;
    let u = s.user("ada@example.com").await;

    // The catalog lists the shipped apps, GitHub configured, with its components.
    let (st, list) = s.get("/v1/integrations", &u.key).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    for app in ["slack", "github", "linear", "google", "discord", "telegram"] {
        assert!(ids.contains(&app), "{app} is in the catalog: {ids:?}");
    }
    let gh = list["data"].as_array().unwrap().iter().find(|a| a["id"] == "github").unwrap();
    assert_eq!((gh["configured"].as_bool(), gh["connect"].as_str()), (Some(true), Some("oauth")));
    assert!(gh["trigger_components"].to_string().contains("github.issue_opened"));
    let (_, one) = s.get("/v1/integrations/github", &u.key).await;
    assert!(one["trigger_components"][0]["payload_schema"].is_object(), "{one}");

    // A conversation that starts the connect is told when the account lands.
    s.fake_provider(&u.key, &model.url, "m").await;
    let (st, agent) = s.post("/v1/agents", &u.key, json!({"name": "triage", "model": {"provider_id": "anthropic", "name": "m"}})).await;
    assert_eq!(st, StatusCode::CREATED, "{agent}");
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let (st, session) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent_id, "input": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(st, StatusCode::CREATED, "{session}");
    let session_id = session["id"].as_str().unwrap().to_owned();

    let c = connect(&s, &u, json!({"session_id": session_id})).await;
    let url = c["authorize_url"].as_str().unwrap();
    assert!(url.starts_with(&fake.authorize_url()), "{url}");
    for p in ["state", "code_challenge", "client_id", "redirect_uri"] {
        assert!(fake_oauth::query_param(url, p).is_some(), "the authorize URL has {p}: {url}");
    }
    let connect_id = c["connect_id"].as_str().unwrap().to_owned();
    let (_, pending) = s.get(&format!("/v1/integrations/connects/{connect_id}"), &u.key).await;
    assert_eq!(pending["status"], "pending", "{pending}");

    let (st, landed) = authorize(&s, url).await;
    assert_eq!(st, StatusCode::OK, "{landed}");
    let account_id = landed["connected_account"]["id"].as_str().unwrap().to_owned();
    assert!(account_id.starts_with("cac_"));
    assert_eq!(landed["connected_account"]["status"], "active");
    assert!(!landed.to_string().contains("access_token"), "no token in the answer: {landed}");
    let (_, done) = s.get(&format!("/v1/integrations/connects/{connect_id}"), &u.key).await;
    assert_eq!((done["status"].as_str(), done["connected_account"]["id"].as_str()), (Some("connected"), Some(account_id.as_str())));
    let (_, accounts) = s.get("/v1/connected_accounts", &u.key).await;
    assert_eq!(accounts["data"].as_array().unwrap().len(), 1, "{accounts}");
    let (_, events) = s.get(&format!("/v1/sessions/{session_id}/events"), &u.key).await;
    assert!(events.to_string().contains("integration_connect") && events.to_string().contains(&account_id), "{events}");

    // Publications: one agent per target; another sandbox's agent is not found.
    let pub_path = "/v1/integrations/github/publications";
    let (st, p) =
        s.post(pub_path, &u.key, json!({"connected_account_id": account_id, "agent_id": agent_id, "target": "octo-org/hello"})).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (st, dup) =
        s.post(pub_path, &u.key, json!({"connected_account_id": account_id, "agent_id": agent_id, "target": "octo-org/hello"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{dup}");
    let mallory = s.user("mallory@example.com").await;
    let (st, stolen) =
        s.post(pub_path, &mallory.key, json!({"connected_account_id": account_id, "agent_id": agent_id, "target": "x"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "another sandbox's account is not found: {stolen}");
    let (_, pubs) = s.get(pub_path, &u.key).await;
    assert_eq!(pubs["data"].as_array().unwrap().len(), 1);

    // An integration trigger on `github.issue_opened`, verified with X-Hub-Signature-256.
    let (st, t) = s
        .post(
            &format!("/v1/agents/{agent_id}/triggers"),
            &u.key,
            json!({"name": "issues", "component": "github.issue_opened", "account_id": account_id, "input_template": "Issue: {{ payload.issue.title }}"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(t["verification"], "app:github");
    let secret = t["secret"].as_str().unwrap().to_owned();
    let hook = format!("{}{}", s.url, t["url"].as_str().unwrap());
    let send = |body: Value, event: &'static str, delivery: &'static str, sig: Option<String>| {
        let body = serde_json::to_vec(&body).unwrap();
        let sig = sig.unwrap_or_else(|| github_signature(&secret, &body));
        let req = s
            .http
            .post(&hook)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sig)
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json::<Value>().await.unwrap())
        }
    };
    let issue = json!({"action": "opened", "issue": {"number": 1, "title": "Crash on save", "html_url": "https://x", "user": {"login": "octocat"}}, "repository": {"full_name": "o/r"}, "sender": {"login": "octocat"}});
    let (st, d) = send(issue.clone(), "issues", "gh-1", None).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["delivery_id"], "gh-1", "GitHub's delivery id dedupes");
    let (st, again) = send(issue.clone(), "issues", "gh-1", None).await;
    assert_eq!((st, again["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{again}");
    let (st, other) = send(json!({"action": "closed"}), "issues", "gh-2", None).await;
    assert_eq!((st, other["ignored"].as_bool()), (StatusCode::OK, Some(true)), "another event is acknowledged and ignored: {other}");
    let (st, forged) = send(issue.clone(), "issues", "gh-3", Some(github_signature("not-the-secret", b"{}"))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{forged}");
    let (st, steward_signed) = send(issue.clone(), "issues", "gh-4", Some("v1=00".into())).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{steward_signed}");
    let run = d["run_id"].as_str().unwrap();
    let (_, r) = s.get(&format!("/v1/runs/{run}"), &u.key).await;
    assert!(r["input"].to_string().contains("Issue: Crash on save"), "{r}");
    let (_, listed) = s.get(&format!("/v1/agents/{agent_id}/triggers"), &u.key).await;
    assert_eq!(listed["data"][0]["fire_count"], 1, "{listed}");

    // Revoking needs owner, revokes at the app, and takes the publications with it.
    let editor = s.member("vic@example.com", &u.sandbox_id, steward_core::tenancy::Role::Editor).await;
    let (st, _) = s.call(Method::DELETE, &format!("/v1/connected_accounts/{account_id}"), Some(&editor.key), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let before = fake.revocations();
    let (st, gone) = s.call(Method::DELETE, &format!("/v1/connected_accounts/{account_id}"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK, "{gone}");
    assert!(fake.revocations() > before, "the tokens were revoked at the app");
    let (_, accounts) = s.get("/v1/connected_accounts", &u.key).await;
    assert_eq!(accounts["data"], json!([]));
    let (_, pubs) = s.get(pub_path, &u.key).await;
    assert_eq!(pubs["data"], json!([]));
}

#[tokio::test]
async fn forged_replayed_and_refused_callbacks_store_nothing() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let s = server(&fake).await;
    let u = s.user("ada@example.com").await;

    let (st, e) = s.post("/v1/integrations/nosuchapp/connect", &u.key, json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");
    assert!(error_message(&e).contains("known apps"), "{e}");
    let (st, e) = s.post("/v1/integrations/slack/connect", &u.key, json!({})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "an app without client credentials: {e}");
    assert!(error_message(&e).contains("client_id"), "{e}");

    // A forged state.
    let c = connect(&s, &u, json!({})).await;
    let url = c["authorize_url"].as_str().unwrap().to_owned();
    let callback = fake_oauth::follow_authorize(&url).await;
    let state = fake_oauth::query_param(&callback, "state").unwrap();
    let forged = callback.replace(&state, &format!("{}x", &state[..state.len() - 1]));
    let res = s.http.get(&forged).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("state"));
    // The real one works once; the replay is refused.
    let (st, ok) = {
        let res = s.http.get(&callback).send().await.unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(st, StatusCode::OK, "{ok}");
    let res = s.http.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("already used"));

    // The provider answers an HTML page instead of a token: clear error, nothing stored.
    let (_, before) = s.get("/v1/connected_accounts", &u.key).await;
    fake.set_mode(TokenMode::HtmlPage);
    let c = connect(&s, &u, json!({})).await;
    let (st, e) = authorize(&s, c["authorize_url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(error_message(&e).contains("text/html"), "{e}");
    assert!(!e.to_string().contains(&fake.config().client_secret), "{e}");
    let (_, status) = s.get(&format!("/v1/integrations/connects/{}", c["connect_id"].as_str().unwrap()), &u.key).await;
    assert_eq!(status["status"], "failed", "{status}");
    fake.set_mode(TokenMode::Normal);
    // The user denies consent.
    fake.set_deny_consent(true);
    let c = connect(&s, &u, json!({})).await;
    let (st, e) = authorize(&s, c["authorize_url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(error_message(&e).contains("access_denied"), "{e}");
    let (_, after) = s.get("/v1/connected_accounts", &u.key).await;
    assert_eq!(before, after, "failed connects stored nothing");

    // A callback without state, and a browser asking for HTML gets a page.
    let res = s.http.get(format!("{}/v1/integrations/callback?code=x", s.url)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("<h1>Not connected</h1>"));
    // Another sandbox cannot see the connect.
    let mallory = s.user("mallory@example.com").await;
    let (st, _) = s.get(&format!("/v1/integrations/connects/{}", c["connect_id"].as_str().unwrap()), &mallory.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // An integration trigger needs a real component and an account of its app.
    let (_, agent) = s.post("/v1/agents", &u.key, json!({"name": "a", "model": {"provider_id": "p", "name": "m"}})).await;
    let agent_id = agent["id"].as_str().unwrap_or("agt_x").to_owned();
    let (st, e) = s.post(&format!("/v1/agents/{agent_id}/triggers"), &u.key, json!({"name": "t", "component": "github.nope"})).await;
    assert!(st == StatusCode::BAD_REQUEST || st == StatusCode::UNPROCESSABLE_ENTITY || st == StatusCode::NOT_FOUND, "{st} {e}");
    let (st, e) =
        s.post(&format!("/v1/agents/{agent_id}/triggers"), &u.key, json!({"name": "t", "component": "github.issue_opened"})).await;
    assert!(st != StatusCode::CREATED, "an OAuth app's component needs its account: {e}");
}
