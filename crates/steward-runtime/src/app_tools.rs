//! A connected integration account as a tool source (§6, §10): the tools its app offers,
//! authorised with the account's access token.
//!
//! An `integration` source names a connected account; its app says how tools are reached
//! (`AppTools`): the app's own MCP server (through the pool, with `Authorization: Bearer`), or a
//! few HTTP calls described in the catalog, each offered here as a tool.
//!
//! What this module must never do: send the token anywhere but the app's configured base URL or
//! MCP URL (redirects are not followed, and a filled path that leaves the base URL is refused),
//! or put the token in a result, an error, the trace or `Debug` output. Resolution also adds the
//! token to the run's redacted values, so anything that echoes it is scrubbed a second time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use steward_core::ids::{ConnectedAccountId, SandboxId, SourceId};
use steward_core::integration::{AppTools, HttpAuth, HttpMethod, HttpTool};
use steward_core::redact::Redactor;
use steward_llm::ToolSpec;

use crate::engine::Runtime;
use crate::mcp::McpTarget;
use crate::tools::{MAX_TOOL_OUTPUT, Tool, ToolContext};
use crate::vault::Secret;

/// How much of an error answer's body a tool error quotes.
const ERROR_EXCERPT_BYTES: usize = 512;
/// Room left under the tool output cap for the truncation note.
const NOTE_ROOM: usize = 128;
/// Connecting to an app's API may take this long (the whole call is bounded by the tool timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an account's app offers once its token is in hand.
pub(crate) enum AppToolset {
    /// The app's MCP server, to be listed through the pool under `key`.
    Mcp { key: String, target: McpTarget },
    /// HTTP calls, one tool each.
    Http(Vec<Arc<dyn Tool>>),
}

/// An account resolved for one run: its toolset and the token to redact.
pub(crate) struct ResolvedAccount {
    pub toolset: AppToolset,
    pub token: Secret,
}

impl Runtime {
    /// The toolset of the integration source `source` (account `account_id`) in `sandbox`,
    /// within `timeout`. Names the app and the account in `trace` as soon as they are known,
    /// so a failing source still says which account it is. Errors are user-facing.
    pub(crate) async fn integration_toolset(
        &self,
        sandbox: &SandboxId,
        source: &SourceId,
        account_id: &ConnectedAccountId,
        trace: &mut Map<String, Value>,
        timeout: Duration,
    ) -> Result<ResolvedAccount, String> {
        trace.insert("account_id".into(), json!(account_id));
        let missing = || {
            format!(
                "connected account {account_id} no longer exists (disconnected?); connect the app again and point the source's `account_id` at the new account"
            )
        };
        let account = self.inner.store.connected_account(account_id).await.map_err(|e| e.to_string())?;
        // Another sandbox's account is treated as missing, exactly like a missing one.
        let account = account.filter(|a| &a.sandbox_id == sandbox).ok_or_else(missing)?;
        trace.insert("account_label".into(), json!(account.label));
        let integrations = self.inner.integrations.clone();
        let app = integrations.app(&account.app_id).map_err(|e| e.to_string())?.clone();
        trace.insert("app".into(), json!(app.id));
        trace.insert("app_name".into(), json!(app.display_name));
        let no_tools = || format!("{} offers no tools (it only sends events); remove this source from the agent", app.display_name);
        if app.tools == AppTools::None {
            return Err(no_tools());
        }

        // A refresh must not be cut off halfway (the provider may have rotated the refresh token
        // already), so it runs on a tracked task that finishes even if this resolution gives up.
        let id = account_id.clone();
        let fetch = self.inner.tracker.spawn(async move { integrations.access_token(&id).await });
        let (_, token) = match tokio::time::timeout(timeout, fetch).await {
            Err(_) => return Err(format!("getting the access token of {} did not finish within {} s", account.label, timeout.as_secs())),
            Ok(Err(e)) => return Err(format!("getting the access token failed: {e}")),
            Ok(Ok(got)) => got.map_err(|e| e.to_string())?,
        };
        let toolset = match &app.tools {
            AppTools::None => return Err(no_tools()),
            AppTools::Mcp { url } => {
                let (key, target) = mcp_target(source, url, &token);
                AppToolset::Mcp { key, target }
            }
            AppTools::Http { base_url, auth, tools } => {
                let api = Arc::new(HttpApi::new(&app.display_name, base_url, *auth, &token)?);
                AppToolset::Http(
                    tools.iter().map(|t| Arc::new(HttpAppTool { api: api.clone(), tool: t.clone() }) as Arc<dyn Tool>).collect(),
                )
            }
        };
        Ok(ResolvedAccount { toolset, token })
    }
}

/// The pool key and target of an app's MCP server. The key holds a short hash of the token, so
/// a refreshed token opens a new connection while runs that started with the old one keep
/// theirs (the old one closes when idle, or with the source).
pub(crate) fn mcp_target(source: &SourceId, url: &str, token: &Secret) -> (String, McpTarget) {
    let digest = Sha256::digest(token.expose().as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let headers = [("Authorization".to_owned(), format!("Bearer {}", token.expose()))].into();
    (format!("{source}/token-{short}"), McpTarget::Http { url: url.to_owned(), headers })
}

/// An app's HTTP API as one connected account reaches it.
struct HttpApi {
    app_name: String,
    /// The base URL, `{token}` filled for `auth: url`, without a trailing `/`.
    base: String,
    /// The `Authorization` value (marked sensitive), unless the token is in the URL.
    authorization: Option<HeaderValue>,
    /// Scrubs the token from answers; built once, not per call.
    redactor: Redactor,
    client: reqwest::Client,
}

impl fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApi").field("app_name", &self.app_name).finish_non_exhaustive()
    }
}

impl HttpApi {
    fn new(app_name: &str, base_url: &str, auth: HttpAuth, token: &Secret) -> Result<HttpApi, String> {
        let header = |scheme: &str| {
            let mut v = HeaderValue::try_from(format!("{scheme} {}", token.expose())).map_err(|_| {
                format!("the access token of this {app_name} account cannot be sent in a header; connect the account again")
            })?;
            v.set_sensitive(true);
            Ok::<_, String>(Some(v))
        };
        let (base, authorization) = match auth {
            HttpAuth::Bearer => (base_url.to_owned(), header("Bearer")?),
            HttpAuth::Bot => (base_url.to_owned(), header("Bot")?),
            HttpAuth::Url => {
                // Only URL-safe tokens go in the URL: anything else could change which URL it is.
                if token.expose().is_empty() || !token.expose().bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:".contains(&b)) {
                    return Err(format!("the access token of this {app_name} account cannot be put in a URL; connect the account again"));
                }
                (base_url.replace("{token}", token.expose()), None)
            }
        };
        // Normalised as a request URL will be, so the prefix check of every call compares like with like.
        let base = reqwest::Url::parse(&base)
            .map_err(|_| format!("the base URL of {app_name}'s API is not a valid URL; fix the app's catalog entry"))?
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        // Built without a default TLS provider, reqwest needs the process-wide one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent("steward")
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpApi { app_name: app_name.to_owned(), base, authorization, redactor: Redactor::new([token.expose()]), client })
    }

    /// `text` with the token replaced (the catalog redacts again; this keeps the tool honest alone).
    fn scrub(&self, text: String) -> String {
        self.redactor.redact_string(text)
    }
}

/// One HTTP call of an app, offered as a tool.
#[derive(Debug)]
struct HttpAppTool {
    api: Arc<HttpApi>,
    tool: HttpTool,
}

#[async_trait::async_trait]
impl Tool for HttpAppTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec { name: self.tool.name.clone(), description: self.tool.description.clone(), input_schema: self.tool.input_schema.clone() }
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<String, String> {
        self.send(arguments, ctx.tool_timeout).await.map(|s| self.api.scrub(s)).map_err(|e| self.api.scrub(e))
    }
}

impl HttpAppTool {
    async fn send(&self, arguments: Value, timeout: Duration) -> Result<String, String> {
        let Value::Object(mut args) = arguments else {
            return Err("the tool arguments must be a JSON object".into());
        };
        let name = &self.tool.name;
        // A path argument is one segment; `.` or `..` would make it another endpoint (or climb
        // out of the API's base URL).
        for p in self.tool.path_params() {
            if matches!(args.get(p).and_then(Value::as_str), Some("." | "..")) {
                return Err(format!("`{name}`: argument `{p}` may not be `.` or `..`"));
            }
        }
        let path = self.tool.fill_path(&args).map_err(|e| format!("`{name}`: {e}"))?;
        for p in self.tool.path_params() {
            args.remove(p);
        }
        let api = &self.api;
        let mut url = reqwest::Url::parse(&format!("{}{path}", api.base))
            .map_err(|e| format!("`{name}`: the filled path is not a valid URL: {e}"))?;
        // The token goes to the base URL and nowhere else, whatever the arguments were.
        if !url.as_str().starts_with(&format!("{}/", api.base)) && url.as_str() != api.base {
            return Err(format!("`{name}`: the path arguments lead outside {}'s API", api.app_name));
        }
        let method = self.tool.method;
        let with_query = matches!(method, HttpMethod::Get | HttpMethod::Delete);
        if with_query && !args.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &args {
                for item in query_values(v) {
                    q.append_pair(k, &item);
                }
            }
        }
        let method_wire = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("HTTP methods are valid");
        let mut req = api.client.request(method_wire, url).timeout(timeout);
        if let Some(auth) = &api.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if !with_query {
            req = req.json(&Value::Object(args));
        }
        let app = &api.app_name;
        let res = req.send().await.map_err(|e| transport_error(app, name, timeout, e))?;
        let status = res.status();
        if status.is_success() {
            let (body, more) = read_body(res, MAX_TOOL_OUTPUT - NOTE_ROOM).await.map_err(|e| transport_error(app, name, timeout, e))?;
            let mut out = String::from_utf8_lossy(&body).into_owned();
            if more {
                out.push_str(&format!("\n[response truncated after {} bytes]", body.len()));
            } else if out.is_empty() {
                out = format!("HTTP {status} (no content)");
            }
            return Ok(out);
        }
        let (body, more) = read_body(res, ERROR_EXCERPT_BYTES).await.unwrap_or_default();
        let excerpt = String::from_utf8_lossy(&body).split_whitespace().collect::<Vec<_>>().join(" ");
        let excerpt = if excerpt.is_empty() {
            "(empty body)".to_owned()
        } else if more {
            format!("{excerpt}…")
        } else {
            excerpt
        };
        let hint = if status.is_redirection() { " (redirects are not followed)" } else { "" };
        Err(format!("{app} answered `{name}` with HTTP {status}{hint}: {excerpt}"))
    }
}

/// A query argument's values: scalars as text, arrays as repeated keys, objects as JSON, null
/// as nothing.
fn query_values(v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec![],
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(query_values).collect(),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => vec![v.to_string()],
    }
}

/// Up to `limit` bytes of the body, and whether there was more.
async fn read_body(res: reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut buf = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// A transport failure, without the URL (it may hold the token).
fn transport_error(app: &str, tool: &str, timeout: Duration, e: reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("{app} did not answer `{tool}` within {} s", timeout.as_secs());
    }
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    format!("the request to {app} for `{tool}` failed: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mcp_key_follows_the_token_and_debug_hides_it() {
        let source = SourceId::from_trusted("src_01hzzzzzzzzzzzzzzzzzzzzzzz".into());
        let (a, target) = mcp_target(&source, "https://mcp.example.test/mcp", &Secret::new("tok-one-1234".into()));
        let (b, _) = mcp_target(&source, "https://mcp.example.test/mcp", &Secret::new("tok-two-5678".into()));
        assert_ne!(a, b);
        assert!(a.starts_with("src_01hzzzzzzzzzzzzzzzzzzzzzzz/"), "forget(source) must reach it: {a}");
        assert!(!a.contains("tok-one"));
        assert!(!format!("{target:?}").contains("tok-one"));
        let api = HttpApi::new("Fake", "https://api.example.test/bot{token}", HttpAuth::Url, &Secret::new("123:abc".into())).unwrap();
        assert!(!format!("{api:?}").contains("123:abc"));
        assert!(HttpApi::new("Fake", "https://api.example.test/bot{token}", HttpAuth::Url, &Secret::new("a/../b".into())).is_err());
    }

    #[test]
    fn query_values_flatten_arrays_and_drop_nulls() {
        assert_eq!(query_values(&json!(null)), Vec::<String>::new());
        assert_eq!(query_values(&json!(["a", 2, true])), vec!["a", "2", "true"]);
        assert_eq!(query_values(&json!({"k": 1})), vec![r#"{"k":1}"#]);
    }
}
