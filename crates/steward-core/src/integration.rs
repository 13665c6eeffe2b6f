//! The integration app catalog (§10): for each app (Slack, GitHub, Linear, …) how an account is
//! connected (OAuth 2 settings), which tools a connected account offers, how the app's inbound
//! events are authenticated, and the trigger components (§11) those events can fire.
//!
//! Pure data and pure functions. Apps are parsed from JSON (or TOML) and validated as a whole
//! (`validate.rs`); the shipped apps are embedded, operator apps are read from a directory
//! (`catalog.rs`, the only code here that touches a file); inbound requests are checked the way
//! each vendor signs them (`verify.rs`). Nothing here opens a socket or keeps a token: the runtime
//! and server do that with what these types tell them.

mod catalog;
mod validate;
mod verify;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use catalog::{Catalog, CatalogError};
pub use verify::verify_inbound;

/// One app of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// A slug: a lowercase letter, then up to 39 lowercase letters, digits, `-` or `_`.
    pub id: String,
    /// The name people see (`Slack`).
    pub display_name: String,
    /// What connecting the app gives an agent, in a sentence or two.
    #[serde(default)]
    pub description: String,
    /// How an account is connected. `None` for apps without OAuth: Telegram bots are
    /// authorised by a bot token the operator supplies (from @BotFather), not by a user's consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSettings>,
    /// The tools a connected account offers.
    pub tools: AppTools,
    /// How the app's inbound requests are authenticated; `None` if the app sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<InboundVerification>,
    /// Where a delivery's unique id is found; the first source present wins. Empty: the app's
    /// deliveries carry no id that is unique across retries and channels, so none are deduplicated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_id: Vec<ValueSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_components: Vec<TriggerComponent>,
}

/// OAuth 2 authorization-code settings of an app. Client id and secret are not here: they come
/// from the operator's configuration or a vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    pub authorize_url: String,
    pub token_url: String,
    /// Where a token is revoked on disconnect (POST with `token`); `None` when the app has no
    /// RFC 7009-style endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    /// Scopes requested at authorization; may be empty.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How scopes are joined in the `scope` parameter (Slack and Linear use `,`).
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// How the client authenticates at the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Whether to send a PKCE challenge (S256).
    #[serde(default = "default_pkce")]
    pub pkce: bool,
    /// Further query parameters of the authorize URL (Google: `access_type=offline`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// A JSON pointer to the access token in the token response when it is not the top-level
    /// `access_token` (Slack user tokens: `/authed_user/access_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<String>,
    /// JSON pointers into the token response naming the connected account (Slack:
    /// `/team/id`, `/team/name`). Without `account_id` a sandbox has one account of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_label: Option<String>,
}

fn default_scope_separator() -> String {
    " ".to_string()
}

fn default_pkce() -> bool {
    true
}

impl OAuthSettings {
    /// The value of the authorize URL's `scope` parameter.
    pub fn scope_param(&self) -> String {
        self.scopes.join(&self.scope_separator)
    }
}

/// How the client id and secret reach the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic authentication.
    Basic,
    /// `client_id` and `client_secret` form fields.
    #[default]
    Body,
}

/// The tools a connected account offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppTools {
    /// The app's remote MCP server (streamable HTTP), called with `Authorization: Bearer <token>`.
    Mcp { url: String },
    /// A small set of HTTP calls described here.
    Http {
        base_url: String,
        /// How the account's token is presented.
        #[serde(default)]
        auth: HttpAuth,
        tools: Vec<HttpTool>,
    },
    /// No tools; the app only sends events.
    None,
}

/// How an HTTP tool presents the account's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`.
    #[default]
    Bearer,
    /// `Authorization: Bot <token>` (Discord bot tokens).
    Bot,
    /// In the URL: `base_url` holds `{token}` (Telegram: `https://api.telegram.org/bot{token}`).
    Url,
}

/// One HTTP call offered as a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTool {
    /// The tool name the model sees: 1–64 of `a-z A-Z 0-9 _ -`.
    pub name: String,
    pub description: String,
    pub method: HttpMethod,
    /// Appended to `base_url`; `{param}` placeholders are filled from the arguments. Arguments not
    /// used by the path go to the query string (GET, DELETE) or a JSON body (the others).
    pub path: String,
    /// JSON Schema (an object schema) of the arguments.
    pub input_schema: Value,
}

/// The HTTP method of a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}

impl HttpTool {
    /// The names of the path's `{param}` placeholders, in order.
    pub fn path_params(&self) -> Vec<&str> {
        placeholders(&self.path)
    }

    /// The path with its placeholders filled from `args`, each value percent-encoded as one
    /// path segment. The error names the missing or unusable argument.
    pub fn fill_path(&self, args: &serde_json::Map<String, Value>) -> Result<String, String> {
        let mut out = String::with_capacity(self.path.len());
        let mut rest = self.path.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| format!("`{}` has an unclosed `{{`", self.path))?;
            let name = &rest[open + 1..close];
            let value = match args.get(name) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return Err(format!("argument `{name}` must be a non-empty string or a number")),
                None => return Err(format!("argument `{name}` is required")),
            };
            out.push_str(&rest[..open]);
            out.push_str(&encode_segment(&value));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

pub(crate) fn placeholders(path: &str) -> Vec<&str> {
    path.split('{').skip(1).filter_map(|s| s.split_once('}').map(|(name, _)| name)).collect()
}

fn encode_segment(v: &str) -> String {
    v.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// How an app's inbound requests are authenticated, each exactly as the vendor documents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InboundVerification {
    /// Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:<timestamp>:<body>")>` under the
    /// signing secret, `X-Slack-Request-Timestamp` (seconds) within the window.
    SlackV0 {
        /// How far the timestamp may be from the server's clock, either way (default 300).
        #[serde(default = "default_slack_tolerance")]
        tolerance_secs: u64,
    },
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>` under the webhook secret.
    GithubSha256,
    /// Linear: `Linear-Signature: <hex HMAC-SHA256(body)>`, and the body's `webhookTimestamp`
    /// (milliseconds) within the window.
    LinearSha256 {
        /// How far `webhookTimestamp` may be from the server's clock, either way (default 60).
        #[serde(default = "default_linear_tolerance")]
        tolerance_secs: u64,
    },
    /// Discord: `X-Signature-Ed25519: <hex signature of timestamp + body>`, checked with the
    /// application's public key.
    DiscordEd25519,
    /// Telegram: `X-Telegram-Bot-Api-Secret-Token` equals the secret given to `setWebhook`.
    TelegramSecretToken,
    /// A named header equals the secret (Google push channels: `X-Goog-Channel-Token`).
    HeaderToken {
        /// The header's name.
        header: String,
    },
}

fn default_slack_tolerance() -> u64 {
    300
}

fn default_linear_tolerance() -> u64 {
    60
}

impl InboundVerification {
    /// The `kind` as written in a catalog file.
    pub fn kind(&self) -> &'static str {
        match self {
            InboundVerification::SlackV0 { .. } => "slack_v0",
            InboundVerification::GithubSha256 => "github_sha256",
            InboundVerification::LinearSha256 { .. } => "linear_sha256",
            InboundVerification::DiscordEd25519 => "discord_ed25519",
            InboundVerification::TelegramSecretToken => "telegram_secret_token",
            InboundVerification::HeaderToken { .. } => "header_token",
        }
    }

    /// What the secret is, in the vendor's words, for forms and error messages.
    pub fn secret_name(&self) -> &'static str {
        match self {
            InboundVerification::SlackV0 { .. } => "the Slack app's signing secret",
            InboundVerification::GithubSha256 => "the GitHub webhook secret",
            InboundVerification::LinearSha256 { .. } => "the Linear webhook signing secret",
            InboundVerification::DiscordEd25519 => "the Discord application's public key (hex)",
            InboundVerification::TelegramSecretToken => "the secret_token given to Telegram's setWebhook",
            InboundVerification::HeaderToken { .. } => "the channel token given when the channel was created",
        }
    }
}

/// Where a value of an inbound delivery is found: `header:<Name>` or a JSON pointer (`/event/type`)
/// into the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ValueSource {
    /// `header:<Name>`: a request header (looked up case-insensitively by the caller).
    Header(String),
    /// `/a/b`: a JSON pointer (RFC 6901) into the parsed body.
    Pointer(String),
}

impl ValueSource {
    /// Parses `header:<Name>` or `/json/pointer`; the error says which forms are accepted.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(name) = raw.strip_prefix("header:") {
            let ok =
                !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            return if ok { Ok(ValueSource::Header(name.to_string())) } else { Err(format!("`{raw}` does not name a valid HTTP header")) };
        }
        if raw.starts_with('/') {
            let escapes_ok = raw.match_indices('~').all(|(i, _)| matches!(raw.as_bytes().get(i + 1), Some(b'0' | b'1')));
            return if escapes_ok {
                Ok(ValueSource::Pointer(raw.to_string()))
            } else {
                Err(format!("`{raw}` is not a JSON pointer: `~` must be followed by 0 or 1"))
            };
        }
        Err(format!("`{raw}` is neither `header:<Name>` nor a JSON pointer starting with `/` (e.g. `/event/type`)"))
    }

    /// The value as text: a header's value, or a string, number or boolean of the body.
    pub fn read(&self, header: &dyn Fn(&str) -> Option<String>, payload: &Value) -> Option<String> {
        match self {
            ValueSource::Header(name) => header(name),
            ValueSource::Pointer(p) => match payload.pointer(p)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Null | Value::Array(_) | Value::Object(_) => None,
            },
        }
    }

    /// Whether the value is there at all (for a pointer: present and not `null`).
    pub fn is_present(&self, header: &dyn Fn(&str) -> Option<String>, payload: &Value) -> bool {
        match self {
            ValueSource::Header(name) => header(name).is_some(),
            ValueSource::Pointer(p) => payload.pointer(p).is_some_and(|v| !v.is_null()),
        }
    }
}

impl TryFrom<String> for ValueSource {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        ValueSource::parse(&raw)
    }
}

impl From<ValueSource> for String {
    fn from(v: ValueSource) -> String {
        v.to_string()
    }
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Header(name) => write!(f, "header:{name}"),
            ValueSource::Pointer(p) => f.write_str(p),
        }
    }
}

/// A kind of event of an app that a trigger can be bound to (e.g. `slack.app_mention`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerComponent {
    /// `<app id>.<name>`.
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// Conditions a delivery must meet, all of them.
    pub matches: Vec<Match>,
    /// JSON Schema of the payload the trigger receives.
    pub payload_schema: Value,
    /// An example payload; it must meet `matches` (together with `example_headers`).
    pub example: Value,
    /// Headers of the example delivery, for conditions on headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub example_headers: BTreeMap<String, String>,
}

/// One condition of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub source: ValueSource,
    /// The value required (numbers and booleans compare as their JSON text). Absent: the value
    /// need only be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
}

impl Match {
    /// Whether the delivery meets this condition.
    pub fn holds(&self, header: &dyn Fn(&str) -> Option<String>, payload: &Value) -> bool {
        match &self.equals {
            Some(want) => self.source.read(header, payload).is_some_and(|got| got == *want),
            None => self.source.is_present(header, payload),
        }
    }
}

impl TriggerComponent {
    /// Whether a delivery (its headers and parsed body) is an event of this component.
    pub fn matches(&self, header: &dyn Fn(&str) -> Option<String>, payload: &Value) -> bool {
        self.matches.iter().all(|m| m.holds(header, payload))
    }

    /// Whether the component's own example meets its conditions.
    pub fn example_matches(&self) -> bool {
        self.matches(&|name| header_in(&self.example_headers, name), &self.example)
    }
}

/// Case-insensitive header lookup in a map (HTTP header names are case-insensitive).
pub fn header_in(headers: &BTreeMap<String, String>, name: &str) -> Option<String> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

impl App {
    /// The delivery's unique id: the first of `delivery_id` that is present and not empty.
    pub fn delivery_id(&self, header: &dyn Fn(&str) -> Option<String>, payload: &Value) -> Option<String> {
        self.delivery_id.iter().filter_map(|s| s.read(header, payload)).find(|v| !v.trim().is_empty())
    }

    /// The answer to a handshake that must be given before any event, for a delivery already
    /// verified: Slack's `url_verification` (echo the challenge) and Discord's PING (`{"type": 1}`).
    /// Which handshake applies follows from the app's verification scheme, so an operator's
    /// replacement of `slack` keeps it.
    pub fn challenge_response(&self, payload: &Value) -> Option<Value> {
        match self.webhook.as_ref()? {
            InboundVerification::SlackV0 { .. } if payload.get("type")?.as_str()? == "url_verification" => {
                let challenge = payload.get("challenge")?.as_str()?;
                Some(serde_json::json!({ "challenge": challenge }))
            }
            InboundVerification::DiscordEd25519 if payload.get("type")?.as_u64()? == 1 => Some(serde_json::json!({ "type": 1 })),
            _ => None,
        }
    }

    /// The component with this full id (`slack.app_mention`).
    pub fn component(&self, id: &str) -> Option<&TriggerComponent> {
        self.trigger_components.iter().find(|c| c.id == id)
    }

    /// The components a delivery matches, in catalog order.
    pub fn matching_components<'a>(
        &'a self,
        header: &'a dyn Fn(&str) -> Option<String>,
        payload: &'a Value,
    ) -> impl Iterator<Item = &'a TriggerComponent> + 'a {
        self.trigger_components.iter().filter(move |c| c.matches(header, payload))
    }
}
