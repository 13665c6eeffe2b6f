//! A fake OAuth 2 authorization server for tests: authorization code with PKCE, refresh with
//! rotation, RFC 7009 revocation and a `/me` endpoint that answers 200 only for a live token,
//! on a loopback port. Switches flip misbehaviour at run time (a refresh that fails with
//! `invalid_grant`, an HTML page, Slack's `200 {"ok": false}`, a form-encoded answer, a delay).
//!
//! Time is never waited for: [`FakeOAuth::expire_all_tokens`] ends every access token at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Which client authentication the fake's token and revocation endpoints accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeClientAuth {
    Basic,
    Body,
    Either,
}

/// The registered client and how the fake issues tokens.
#[derive(Clone, Debug)]
pub struct FakeOAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    pub expires_in_secs: u64,
    pub client_auth: FakeClientAuth,
    /// Refuse authorize requests without an S256 challenge.
    pub require_pkce: bool,
    /// Issue a new refresh token on refresh (the old one then fails); else keep the old one.
    pub rotate_refresh_tokens: bool,
}

impl Default for FakeOAuthConfig {
    fn default() -> Self {
        FakeOAuthConfig {
            client_id: "fake-client".into(),
            // Characters that must be form-encoded in a Basic header and in an echoed body.
            client_secret: "fake-secret/with+odd chars".into(),
            expires_in_secs: 3600,
            client_auth: FakeClientAuth::Either,
            require_pkce: true,
            rotate_refresh_tokens: true,
        }
    }
}

/// How `POST /token` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenMode {
    Normal,
    /// Every refresh gets `400 {"error": "invalid_grant"}`.
    RefreshInvalidGrant,
    /// `200 text/html`: a login page that echoes the request form (client secret included).
    HtmlPage,
    /// Slack's way: `200 {"ok": false, "error": <this>}`.
    SlackNotOk(String),
    /// Successes form-encoded, as GitHub answers without `Accept: application/json`.
    FormEncoded,
}

/// A running fake; the server stops when this is dropped.
pub struct FakeOAuth {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOAuth {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    config: FakeOAuthConfig,
    world: Mutex<World>,
    token_requests: AtomicUsize,
    refreshes: AtomicUsize,
    revocations: AtomicUsize,
}

struct World {
    mode: TokenMode,
    deny_consent: bool,
    delay: Duration,
    expires_in_secs: u64,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    revoked: Vec<String>,
    next_grant: u64,
    last_client_auth: Option<&'static str>,
    last_accept: Option<String>,
}

struct Code {
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
    used: bool,
}

struct Token {
    refresh: bool,
    grant: u64,
    scope: String,
    /// Access tokens only.
    expires_at: Option<Instant>,
    dead: bool,
}

impl FakeOAuth {
    /// Binds 127.0.0.1:0 and serves until dropped. Also installs the process-wide rustls
    /// provider, which the tests' reqwest clients need.
    pub async fn start(config: FakeOAuthConfig) -> FakeOAuth {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let world = World {
            mode: TokenMode::Normal,
            deny_consent: false,
            delay: Duration::ZERO,
            expires_in_secs: config.expires_in_secs,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            revoked: Vec::new(),
            next_grant: 1,
            last_client_auth: None,
            last_accept: None,
        };
        let shared = Arc::new(Shared {
            config,
            world: Mutex::new(world),
            token_requests: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            revocations: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/me", get(me))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("fake OAuth server runs") });
        FakeOAuth { base_url, shared, server }
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base_url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.base_url)
    }
    /// `GET` with `Authorization: Bearer <token>`: 200 for a live access token, else 401.
    pub fn me_url(&self) -> String {
        format!("{}/me", self.base_url)
    }
    pub fn config(&self) -> &FakeOAuthConfig {
        &self.shared.config
    }

    pub fn set_mode(&self, mode: TokenMode) {
        self.shared.world().mode = mode;
    }
    /// The simulated user refuses consent: `/authorize` redirects with `error=access_denied`.
    pub fn set_deny_consent(&self, deny: bool) {
        self.shared.world().deny_consent = deny;
    }
    /// `/token` waits this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.world().delay = delay;
    }
    /// `expires_in` of tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        self.shared.world().expires_in_secs = secs;
    }
    /// Ends every access token issued so far (refresh tokens stay valid).
    pub fn expire_all_tokens(&self) {
        let now = Instant::now();
        for t in self.shared.world().tokens.values_mut().filter(|t| !t.refresh) {
            t.expires_at = Some(now);
        }
    }

    /// Every `POST /token`, whatever its grant or outcome.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }
    /// `POST /token` with `grant_type=refresh_token`.
    pub fn refreshes(&self) -> usize {
        self.shared.refreshes.load(Ordering::SeqCst)
    }
    /// Every `POST /revoke`.
    pub fn revocations(&self) -> usize {
        self.shared.revocations.load(Ordering::SeqCst)
    }
    /// Tokens sent to `/revoke`, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.shared.world().revoked.clone()
    }
    /// `"basic"` or `"body"`: how the last authenticated request sent the client credentials.
    pub fn last_client_auth(&self) -> Option<&'static str> {
        self.shared.world().last_client_auth
    }
    /// The `Accept` header of the last `POST /token`.
    pub fn last_accept(&self) -> Option<String> {
        self.shared.world().last_accept.clone()
    }
    /// Whether `/me` would accept this access token now.
    pub fn is_live(&self, access_token: &str) -> bool {
        self.shared.world().live(access_token)
    }
}

/// Plays the browser at the consent step: `GET`s `authorize_url` without following the redirect
/// and returns the `Location` it was sent to (the redirect URI with `code`/`error` and `state`).
pub async fn follow_authorize(authorize_url: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("reqwest client");
    let resp = http.get(authorize_url).send().await.expect("GET /authorize");
    assert_eq!(resp.status(), 302, "authorize answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    resp.headers()[header::LOCATION].to_str().expect("ASCII Location").to_owned()
}

/// The decoded value of `name` in `url`'s query.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or_default();
    query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| form_decode(k) == name).map(|(_, v)| form_decode(v))
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `"basic"`/`"body"` when the request carries this client's credentials one way (not both).
    fn client_auth(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<&'static str, Refusal> {
        let c = &self.config;
        let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
        let (how, id, secret) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "more than one client authentication"));
            }
            (Some(b), None) => {
                let decoded = STANDARD.decode(b).ok().and_then(|d| String::from_utf8(d).ok()).unwrap_or_default();
                let (id, secret) = decoded.split_once(':').unwrap_or_default();
                ("basic", form_decode(id), form_decode(secret))
            }
            (None, secret) => ("body", form.get("client_id").cloned().unwrap_or_default(), secret.cloned().unwrap_or_default()),
        };
        let allowed =
            matches!((c.client_auth, how), (FakeClientAuth::Either, _) | (FakeClientAuth::Basic, "basic") | (FakeClientAuth::Body, "body"));
        if !allowed || id != c.client_id || secret != c.client_secret {
            return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"));
        }
        self.world().last_client_auth = Some(how);
        Ok(how)
    }
}

impl World {
    fn live(&self, access_token: &str) -> bool {
        self.tokens.get(access_token).is_some_and(|t| !t.refresh && !t.dead && t.expires_at.is_none_or(|e| Instant::now() < e))
    }

    /// A fresh access token (and refresh token when `refresh`) for `grant`, as a JSON answer body.
    fn issue(&mut self, grant: u64, scope: &str, refresh: bool) -> serde_json::Value {
        let access = format!("fake_at_{}", random_hex());
        let expires_at = Instant::now() + Duration::from_secs(self.expires_in_secs);
        let access_token = Token { refresh: false, grant, scope: scope.into(), expires_at: Some(expires_at), dead: false };
        self.tokens.insert(access.clone(), access_token);
        let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in_secs, "scope": scope});
        if refresh {
            let rt = format!("fake_rt_{}", random_hex());
            self.tokens.insert(rt.clone(), Token { refresh: true, grant, scope: scope.into(), expires_at: None, dead: false });
            body["refresh_token"] = json!(rt);
        }
        body
    }
}

async fn authorize(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != s.config.client_id {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let redirect_uri = get("redirect_uri");
    if get("response_type") != "code" || !redirect_uri.starts_with("http") {
        return (StatusCode::BAD_REQUEST, "response_type=code and an http(s) redirect_uri are required").into_response();
    }
    let challenge = q.get("code_challenge").cloned();
    let state = form_encode(&get("state"));
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let pkce_ok = match &challenge {
        Some(_) => get("code_challenge_method") == "S256",
        None => !s.config.require_pkce,
    };
    let location = if !pkce_ok {
        format!("{redirect_uri}{sep}error=invalid_request&error_description=S256+PKCE+required&state={state}")
    } else if s.world().deny_consent {
        format!("{redirect_uri}{sep}error=access_denied&state={state}")
    } else {
        let code = format!("fake_code_{}", random_hex());
        let record = Code { redirect_uri: redirect_uri.clone(), challenge, scope: get("scope"), used: false };
        s.world().codes.insert(code.clone(), record);
        format!("{redirect_uri}{sep}code={code}&state={state}")
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    if grant_type == "refresh_token" {
        s.refreshes.fetch_add(1, Ordering::SeqCst);
    }
    let (mode, delay) = {
        let mut w = s.world();
        w.last_accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (w.mode.clone(), w.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match &mode {
        TokenMode::HtmlPage => {
            // Sorted, so the client credentials come first and land in any excerpt.
            let sorted: std::collections::BTreeMap<_, _> = form.iter().collect();
            let echoed: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect();
            let page = format!("<html><body><h1>Sign in</h1><p>{}</p></body></html>", echoed.join("&"));
            return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
        }
        TokenMode::SlackNotOk(error) => return Json(json!({"ok": false, "error": error})).into_response(),
        _ => {}
    }
    if let Err(refused) = s.client_auth(&headers, &form) {
        return refused.into_response();
    }
    let answer = match grant_type.as_str() {
        "authorization_code" => exchange(&s, &form),
        "refresh_token" if mode == TokenMode::RefreshInvalidGrant => Err(invalid_grant("refresh token revoked")),
        "refresh_token" => refresh(&s, &form),
        _ => Err(oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "use authorization_code or refresh_token")),
    };
    match answer {
        Ok(body) if mode == TokenMode::FormEncoded => {
            let obj = body.as_object().expect("token body is an object");
            let pairs: Vec<String> =
                obj.iter().map(|(k, v)| format!("{k}={}", form_encode(&v.as_str().map_or_else(|| v.to_string(), str::to_owned)))).collect();
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")], pairs.join("&")).into_response()
        }
        Ok(body) => Json(body).into_response(),
        Err(refused) => refused.into_response(),
    }
}

fn exchange(s: &Shared, form: &HashMap<String, String>) -> Result<serde_json::Value, Refusal> {
    let mut w = s.world();
    let code = form.get("code").map(String::as_str).unwrap_or_default();
    let record = w.codes.get_mut(code).ok_or_else(|| invalid_grant("unknown code"))?;
    if record.used {
        return Err(invalid_grant("code already used"));
    }
    record.used = true;
    if form.get("redirect_uri") != Some(&record.redirect_uri) {
        return Err(invalid_grant("redirect_uri does not match the authorize request"));
    }
    if let Some(challenge) = &record.challenge {
        let verifier = form.get("code_verifier").ok_or_else(|| invalid_grant("code_verifier missing"))?;
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return Err(invalid_grant("PKCE verification failed"));
        }
    }
    let scope = record.scope.clone();
    let grant = w.next_grant;
    w.next_grant += 1;
    Ok(w.issue(grant, &scope, true))
}

fn refresh(s: &Shared, form: &HashMap<String, String>) -> Result<serde_json::Value, Refusal> {
    let mut w = s.world();
    let presented = form.get("refresh_token").map(String::as_str).unwrap_or_default();
    let (grant, scope) = match w.tokens.get_mut(presented) {
        Some(t) if t.refresh && !t.dead => {
            t.dead = s.config.rotate_refresh_tokens;
            (t.grant, t.scope.clone())
        }
        _ => return Err(invalid_grant("refresh token is invalid, revoked or already rotated")),
    };
    Ok(w.issue(grant, &scope, s.config.rotate_refresh_tokens))
}

async fn revoke(State(s): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    s.revocations.fetch_add(1, Ordering::SeqCst);
    if let Err(refused) = s.client_auth(&headers, &form) {
        return refused.into_response();
    }
    let Some(token) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required").into_response();
    };
    let mut w = s.world();
    w.revoked.push(token.clone());
    // Revoking either token of a grant ends the whole grant (RFC 7009 §2.1 allows this).
    if let Some(grant) = w.tokens.get(token).map(|t| t.grant) {
        w.tokens.values_mut().filter(|t| t.grant == grant).for_each(|t| t.dead = true);
    }
    StatusCode::OK.into_response()
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(t) if s.world().live(t) => Json(json!({"id": "fake-user-1", "login": "fake-user"})).into_response(),
        _ => oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is missing, expired or revoked").into_response(),
    }
}

/// An OAuth error answer: `{"error", "error_description"}` with its status.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.error, "error_description": self.description}))).into_response()
    }
}

fn oauth_error(status: StatusCode, error: &'static str, description: &'static str) -> Refusal {
    Refusal { status, error, description }
}

fn invalid_grant(description: &'static str) -> Refusal {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The inverse of [`form_encode`]; malformed escapes are kept as they are.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|&c| (c as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex(i + 1).is_some() && hex(i + 2).is_some() => {
                out.push((hex(i + 1).unwrap_or_default() * 16 + hex(i + 2).unwrap_or_default()) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
