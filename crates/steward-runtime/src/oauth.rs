//! A small, explicit OAuth 2 client for connecting integrations (§10): the authorize URL
//! (authorization code + PKCE, RFC 6749 §4.1 and RFC 7636), the code exchange, refresh and
//! revocation (RFC 7009), and the signed `state` that carries who started a connection.
//!
//! It knows no app catalog: a glue layer maps an app's settings onto [`AuthorizeRequest`] and
//! [`TokenEndpoint`]. It stores nothing: single use of a `state` is the store's job (its nonce).
//!
//! Provider quirks it absorbs: GitHub answers form-encoded unless asked for JSON (and answers
//! errors with 200), Slack answers errors as `200 {"ok": false, "error": …}`, some providers
//! send numbers as strings. Error messages never contain a token, code, verifier or the client
//! secret: anything quoted from a provider's answer is scrubbed of what was sent.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use steward_core::redact::Redactor;
use url::Url;
use url::form_urlencoded;

/// The largest token-endpoint answer read; anything longer is cut off as an error.
const MAX_BODY: usize = 1 << 20;
/// Characters of a provider's answer quoted in an error.
const EXCERPT: usize = 200;
/// Parameters [`authorize_url`] sets itself; `extra_params` may not override them.
const RESERVED: [&str; 7] = ["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];
/// Provider error codes meaning "this grant is dead, the user must connect again": the RFC's,
/// GitHub's (`bad_verification_code`, `bad_refresh_token`) and Slack's.
const DEAD_GRANT: [&str; 6] =
    ["invalid_grant", "bad_verification_code", "bad_refresh_token", "invalid_code", "invalid_refresh_token", "token_revoked"];

/// A PKCE pair (RFC 7636): the verifier stays with us, the challenge goes in the authorize URL.
#[derive(Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    /// A fresh 64-character verifier from the unreserved set and its S256 challenge.
    pub fn generate() -> Pkce {
        const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        let mut rng = rand::rng();
        let verifier = (0..64).map(|_| UNRESERVED[rng.random_range(0..UNRESERVED.len())] as char).collect();
        Pkce::from_verifier(verifier)
    }

    /// The pair for a given verifier: challenge = base64url-nopad(SHA-256(verifier)).
    pub fn from_verifier(verifier: String) -> Pkce {
        let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
        Pkce { verifier, challenge }
    }
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce").field("verifier", &"<redacted>").field("challenge", &self.challenge).finish()
    }
}

/// What goes into the URL the user's browser is sent to.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    pub authorize_url: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    /// `" "` for most providers, `","` for Slack.
    pub scope_separator: &'a str,
    pub state: &'a str,
    /// The S256 challenge; `None` for providers that reject PKCE.
    pub code_challenge: Option<&'a str>,
    /// Provider-specific extras (`access_type=offline`, `prompt=consent`, …).
    pub extra_params: &'a BTreeMap<String, String>,
}

/// The authorize URL: `authorize_url` with `response_type=code`, the client, redirect, scopes
/// (joined with the separator; omitted when empty), state and PKCE parameters appended,
/// form-encoded as RFC 6749 Appendix B says. Query parameters already in `authorize_url` are
/// kept unless they name a parameter set here or in `extra_params` (those win).
pub fn authorize_url(req: &AuthorizeRequest<'_>) -> Result<String, OAuthError> {
    if let Some(k) = req.extra_params.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(OAuthError::Invalid(format!("extra authorize parameter `{k}` would override one Steward sets itself; remove it")));
    }
    let mut url = http_url(req.authorize_url, "authorize_url")?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !RESERVED.contains(&k.as_ref()) && !req.extra_params.contains_key(k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    {
        let mut q = url.query_pairs_mut();
        q.extend_pairs(&kept);
        q.append_pair("response_type", "code").append_pair("client_id", req.client_id).append_pair("redirect_uri", req.redirect_uri);
        if !req.scopes.is_empty() {
            q.append_pair("scope", &req.scopes.join(req.scope_separator));
        }
        q.append_pair("state", req.state);
        if let Some(challenge) = req.code_challenge {
            q.append_pair("code_challenge", challenge).append_pair("code_challenge_method", "S256");
        }
        q.extend_pairs(req.extra_params);
    }
    Ok(url.into())
}

/// How the client proves itself to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// A provider's token endpoint and the client credentials for it. Without a secret (a public
/// client) only `client_id` is sent, in the body, whatever `client_auth` says.
#[derive(Clone)]
pub struct TokenEndpoint {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_auth: ClientAuth,
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// A successful token response.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// `now_ms + expires_in`; `None` when the provider did not say.
    pub expires_at_ms: Option<i64>,
    pub scope: Option<String>,
    pub token_type: Option<String>,
    /// The rest of the response (e.g. Slack's `team` and `authed_user`), with every
    /// `access_token`, `refresh_token` and `id_token` removed at any depth: safe to store in clear.
    pub raw: Value,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .field("raw", &self.raw)
            .finish()
    }
}

/// Why a token-endpoint call failed. Messages say what happened and what to do, and never
/// contain a token, code, verifier or the client secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider answered with an OAuth error (`{"error", "error_description"}`, or Slack's
    /// `{"ok": false, "error"}`).
    #[error("the provider refused the request (HTTP {status}): {error}{}; {}", paren(description), provider_hint(error))]
    Provider { status: u16, error: String, description: Option<String> },
    /// The answer was neither JSON nor a form-encoded token response (a login page, a proxy error).
    #[error("the token endpoint answered {status} with {content_type} instead of a JSON token response: {excerpt}; {}", page_hint(*status))]
    NotATokenResponse { status: u16, content_type: String, excerpt: String },
    /// The endpoint could not be reached or did not answer in time.
    #[error("{0}")]
    Transport(String),
    /// Bad configuration or a response missing what OAuth requires (e.g. `access_token`).
    #[error("{0}")]
    Invalid(String),
}

impl OAuthError {
    /// True when the grant is dead (code used or expired, refresh token revoked or rotated
    /// away): the account needs the user to connect again; retrying will not help.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, OAuthError::Provider { error, .. } if DEAD_GRANT.contains(&error.as_str()))
    }
}

fn paren(description: &Option<String>) -> String {
    description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
}

fn provider_hint(error: &str) -> &'static str {
    match error {
        e if DEAD_GRANT.contains(&e) => "the code or refresh token is expired, revoked or already used: connect the account again",
        "invalid_client" | "unauthorized_client" | "bad_client_secret" | "incorrect_client_credentials" => {
            "check the app's client id and secret, and whether the provider wants them in a Basic header or the body"
        }
        "redirect_uri_mismatch" | "invalid_redirect_uri" | "bad_redirect_uri" => {
            "check that the redirect URI is the one registered with the provider"
        }
        "invalid_scope" => "check the scopes the app requests",
        _ => "see the provider's documentation for this error",
    }
}

fn page_hint(status: u16) -> &'static str {
    if status == 429 || status >= 500 { "the provider may be down or rate-limiting; try again later" } else { "check token_url" }
}

/// An HTTP client for token endpoints. Cheap to clone; share one.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    http: reqwest::Client,
}

/// Which call is being made: it names the endpoint in transport errors.
#[derive(Clone, Copy)]
enum Call {
    Token,
    Revoke,
}

impl OAuthClient {
    /// A client whose every request (connect to last byte) must finish within `timeout`.
    /// Redirects are not followed: a token endpoint that redirects is misconfigured.
    pub fn new(timeout: Duration) -> OAuthClient {
        // Built without a default TLS provider, reqwest needs the process-wide one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("steward-oauth")
            .build()
            .expect("a reqwest client with rustls builds");
        OAuthClient { http }
    }

    /// Exchanges an authorization code (with the PKCE verifier when one was sent) for tokens.
    pub async fn exchange_code(
        &self,
        ep: &TokenEndpoint,
        code: &str,
        verifier: Option<&str>,
        redirect_uri: &str,
        now_ms: i64,
    ) -> Result<TokenSet, OAuthError> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        let answer = self.post(Call::Token, &ep.token_url, ep, form).await?;
        token_set(&answer, now_ms, &secrets(ep, &[code, verifier.unwrap_or_default()]))
    }

    /// Trades a refresh token for new tokens. When the provider does not rotate refresh tokens
    /// (its answer has none), the returned set carries the old one, so the caller can always
    /// store the whole set as it is.
    pub async fn refresh(&self, ep: &TokenEndpoint, refresh_token: &str, now_ms: i64) -> Result<TokenSet, OAuthError> {
        let form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        let answer = self.post(Call::Token, &ep.token_url, ep, form).await?;
        let mut set = token_set(&answer, now_ms, &secrets(ep, &[refresh_token]))?;
        set.refresh_token.get_or_insert_with(|| refresh_token.to_owned());
        Ok(set)
    }

    /// Revokes an access or refresh token (RFC 7009). Per the RFC an already-invalid token is
    /// not an error; any 2xx without an OAuth error in the body counts as done.
    pub async fn revoke(&self, revoke_url: &str, ep: &TokenEndpoint, token: &str) -> Result<(), OAuthError> {
        let answer = self.post(Call::Revoke, revoke_url, ep, vec![("token", token)]).await?;
        let secrets = secrets(ep, &[token]);
        match parse_body(&answer) {
            Some(map) => check_oauth_error(&answer, &map, &secrets).map(drop),
            None if answer.ok() => Ok(()),
            None => Err(OAuthError::Provider {
                status: answer.status,
                error: format!("http_{}", answer.status),
                description: Some(excerpt(&answer.body, &secrets)),
            }),
        }
    }

    async fn post(&self, call: Call, url: &str, ep: &TokenEndpoint, mut form: Vec<(&str, &str)>) -> Result<Answer, OAuthError> {
        let name = match call {
            Call::Token => "token_url",
            Call::Revoke => "revoke_url",
        };
        let parsed = http_url(url, name)?;
        let mut req = self.http.post(parsed.clone()).header("accept", "application/json");
        match (&ep.client_secret, ep.client_auth) {
            (Some(secret), ClientAuth::Basic) => {
                let pair = format!("{}:{}", form_encode(&ep.client_id), form_encode(secret));
                let mut value = reqwest::header::HeaderValue::try_from(format!("Basic {}", STANDARD.encode(pair)))
                    .map_err(|_| OAuthError::Invalid("the client id or secret cannot go in an HTTP header".into()))?;
                value.set_sensitive(true);
                req = req.header(reqwest::header::AUTHORIZATION, value);
            }
            (secret, _) => {
                form.push(("client_id", &ep.client_id));
                form.extend(secret.as_deref().map(|s| ("client_secret", s)));
            }
        }
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = req.header("content-type", "application/x-www-form-urlencoded").body(body);
        let transport = |e: reqwest::Error| transport_error(call, &parsed, e);
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(OAuthError::Invalid(format!(
                    "the answer from {} is larger than {} KiB; check {name}",
                    host(&parsed),
                    MAX_BODY / 1024
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, content_type, body })
    }
}

/// A token endpoint's answer, read whole.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The media type without parameters, for messages.
    fn media_type(&self) -> String {
        let t = self.content_type.split(';').next().unwrap_or_default().trim();
        if t.is_empty() { "no content type".into() } else { t.to_ascii_lowercase() }
    }
}

fn http_url(raw: &str, name: &str) -> Result<Url, OAuthError> {
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(u),
        _ => Err(OAuthError::Invalid(format!("{name} `{raw}` is not an absolute http(s) URL; fix the app's OAuth settings"))),
    }
}

fn host(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => "(no host)".into(),
    }
}

fn transport_error(call: Call, url: &Url, e: reqwest::Error) -> OAuthError {
    let (endpoint, setting) = match call {
        Call::Token => ("token endpoint", "token_url"),
        Call::Revoke => ("revocation endpoint", "revoke_url"),
    };
    let host = host(url);
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    OAuthError::Transport(if e.is_timeout() {
        format!("the {endpoint} at {host} did not answer in time; try again later, or check {setting}")
    } else if e.is_connect() {
        format!("cannot connect to the {endpoint} at {host} ({cause}); check {setting} and that the provider is reachable")
    } else {
        format!("the request to the {endpoint} at {host} failed ({cause}); try again later, or check {setting}")
    })
}

/// What was sent and must never be echoed back in a message.
fn secrets<'a>(ep: &'a TokenEndpoint, sent: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = sent.to_vec();
    all.extend(ep.client_secret.as_deref());
    all.retain(|s| !s.is_empty());
    all
}

fn scrub(text: &str, secrets: &[&str]) -> String {
    // A page may echo the form body, where the value is form-encoded (`+` for a space, and
    // `form_urlencoded`'s own choice of reserved characters), so that spelling is a secret too.
    let spellings = secrets.iter().flat_map(|s| [s.to_string(), form_encode(s)]);
    Redactor::new(spellings).redact(text).into_owned()
}

/// At most [`EXCERPT`] characters of a body, whitespace collapsed, secrets scrubbed.
fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    let text = scrub(&String::from_utf8_lossy(body), secrets);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(empty body)".into();
    }
    match text.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The body as a JSON object, from JSON or from a form-encoded answer (GitHub without
/// `Accept`); `None` when it is neither.
fn parse_body(answer: &Answer) -> Option<Map<String, Value>> {
    let media = answer.media_type();
    let json = || serde_json::from_slice::<Value>(&answer.body).ok().and_then(|v| if let Value::Object(m) = v { Some(m) } else { None });
    let form = || {
        let map: Map<String, Value> =
            form_urlencoded::parse(&answer.body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
        (map.contains_key("access_token") || map.contains_key("error")).then_some(map)
    };
    if media.contains("json") || answer.body.trim_ascii_start().starts_with(b"{") {
        json()
    } else if media == "application/x-www-form-urlencoded" || media == "text/plain" {
        form()
    } else {
        None
    }
}

/// An OAuth error in the body (any status), or a non-2xx answer without one.
fn check_oauth_error(answer: &Answer, map: &Map<String, Value>, secrets: &[&str]) -> Result<(), OAuthError> {
    let text = |k: &str| map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| scrub(s, secrets));
    let error = text("error").or_else(|| (map.get("ok") == Some(&Value::Bool(false))).then(|| "unknown_error".into()));
    if let Some(error) = error {
        let error: String = error.chars().take(100).collect();
        let description = text("error_description").map(|d| d.chars().take(EXCERPT).collect());
        return Err(OAuthError::Provider { status: answer.status, error, description });
    }
    if !answer.ok() {
        let description = text("message").map(|d| d.chars().take(EXCERPT).collect());
        return Err(OAuthError::Provider { status: answer.status, error: format!("http_{}", answer.status), description });
    }
    Ok(())
}

fn token_set(answer: &Answer, now_ms: i64, secrets: &[&str]) -> Result<TokenSet, OAuthError> {
    let Some(mut map) = parse_body(answer) else {
        return Err(OAuthError::NotATokenResponse {
            status: answer.status,
            content_type: answer.media_type(),
            excerpt: excerpt(&answer.body, secrets),
        });
    };
    check_oauth_error(answer, &map, secrets)?;
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let Some(access_token) = text(map.remove("access_token")) else {
        let fields = map.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        return Err(OAuthError::Invalid(format!(
            "the token response has no access_token (fields: {fields}); check token_url and the app's OAuth settings"
        )));
    };
    let refresh_token = text(map.remove("refresh_token"));
    let expires_in = match map.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let scope = match map.get("scope") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
        _ => None,
    };
    let token_type = map.get("token_type").and_then(Value::as_str).map(str::to_owned);
    let mut raw = Value::Object(map);
    strip_tokens(&mut raw);
    Ok(TokenSet {
        access_token,
        refresh_token,
        expires_at_ms: expires_in.map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
        scope,
        token_type,
        raw,
    })
}

/// Removes every token field at any depth (Slack nests a user token in `authed_user`).
fn strip_tokens(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in ["access_token", "refresh_token", "id_token"] {
                m.remove(k);
            }
            m.values_mut().for_each(strip_tokens);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_tokens),
        _ => {}
    }
}

/// What a signed `state` carries from the connect request to the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    /// Random; the store records it so each state is accepted once.
    pub nonce: String,
    pub sandbox_id: String,
    pub app_id: String,
    /// The account that started the connection.
    pub account_id: String,
    /// The run or conversation that started it, if any.
    pub session_id: Option<String>,
    pub expires_at_ms: i64,
}

/// Why a `state` was refused. Every case means: start the connection again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the OAuth state parameter is malformed; start connecting the account again")]
    Malformed,
    #[error("the OAuth state parameter was not issued by this server (bad signature); start connecting the account again")]
    BadSignature,
    #[error("the OAuth state has expired; start connecting the account again")]
    Expired,
}

/// The longest `state` [`verify_state`] looks at.
const MAX_STATE: usize = 4096;

/// `base64url(json(claims)) "." base64url(HMAC-SHA256(key, first part))`, no padding.
pub fn sign_state(key: &[u8], claims: &StateClaims) -> String {
    let payload = B64URL.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let sig = B64URL.encode(steward_core::signing::hmac_sha256(key, &[payload.as_bytes()]));
    format!("{payload}.{sig}")
}

/// Checks a `state`'s signature (constant time) and expiry and returns its claims. This does
/// not make a state single-use: the caller must consume its `nonce` in the store.
pub fn verify_state(key: &[u8], state: &str, now_ms: i64) -> Result<StateClaims, StateError> {
    if state.len() > MAX_STATE {
        return Err(StateError::Malformed);
    }
    let (payload, sig) = state.split_once('.').ok_or(StateError::Malformed)?;
    let sig = B64URL.decode(sig).map_err(|_| StateError::Malformed)?;
    if !steward_core::signing::hmac_sha256_matches(key, &[payload.as_bytes()], &sig) {
        return Err(StateError::BadSignature);
    }
    let json = B64URL.decode(payload).map_err(|_| StateError::Malformed)?;
    let claims: StateClaims = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
    if now_ms >= claims.expires_at_ms {
        return Err(StateError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: &str, body: &str) -> Answer {
        Answer { status, content_type: content_type.into(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b_and_generates_valid_verifiers() {
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let (a, b) = (Pkce::generate(), Pkce::generate());
        assert_eq!(a.verifier.len(), 64);
        assert!(a.verifier.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.challenge, Pkce::from_verifier(a.verifier.clone()).challenge);
        assert!(!format!("{a:?}").contains(&a.verifier));
    }

    #[test]
    fn form_encoded_answers_with_string_numbers_parse() {
        let set = token_set(
            &answer(
                200,
                "application/x-www-form-urlencoded; charset=utf-8",
                "access_token=gho_x&scope=repo%2Cuser&token_type=bearer&expires_in=28800",
            ),
            1_000,
            &[],
        )
        .unwrap();
        assert_eq!(set.access_token, "gho_x");
        assert_eq!(set.scope.as_deref(), Some("repo,user"));
        assert_eq!(set.expires_at_ms, Some(1_000 + 28_800_000));
        assert!(token_set(&answer(200, "text/plain", "hello"), 0, &[]).is_err_and(|e| matches!(e, OAuthError::NotATokenResponse { .. })));
    }

    #[test]
    fn nested_tokens_are_stripped_from_raw() {
        let body = r#"{"ok":true,"access_token":"xoxb-1","scope":["a","b"],"team":{"id":"T1"},"authed_user":{"id":"U1","access_token":"xoxp-2","refresh_token":"r"},"id_token":"j"}"#;
        let set = token_set(&answer(200, "application/json", body), 0, &[]).unwrap();
        assert_eq!(set.raw, serde_json::json!({"ok": true, "scope": ["a", "b"], "team": {"id": "T1"}, "authed_user": {"id": "U1"}}));
        assert_eq!(set.scope.as_deref(), Some("a b"));
        assert_eq!(set.expires_at_ms, None);
        assert!(!format!("{set:?}").contains("xoxb-1"));
    }

    #[test]
    fn github_style_200_error_and_missing_access_token_are_errors() {
        let e = token_set(
            &answer(
                200,
                "application/json",
                r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#,
            ),
            0,
            &[],
        )
        .unwrap_err();
        assert!(e.is_invalid_grant(), "{e}");
        let e = token_set(&answer(200, "application/json", r#"{"token_type":"bearer","secret_thing":"s3"}"#), 0, &[]).unwrap_err();
        assert!(matches!(e, OAuthError::Invalid(_)) && e.to_string().contains("token_type") && !e.to_string().contains("s3"), "{e}");
        let e = token_set(&answer(503, "text/html", "<h1>Service Unavailable</h1>"), 0, &[]).unwrap_err();
        assert!(e.to_string().contains("try again later"), "{e}");
    }
}
