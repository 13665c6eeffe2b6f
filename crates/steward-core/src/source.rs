//! Tool sources (§6): where an agent's tools come from. A source is an MCP server reached over
//! stdio (a command the server starts) or streamable HTTP (a URL), a connected integration
//! account (§10: the tools its app offers, authorised with the account's token), or one of the
//! built-in toolsets (`workspace`, `shell`, `http_fetch`).
//!
//! The wire shape is flat — `{name, description, kind, …kind's fields}` — and is also what is
//! stored. A configuration is validated as a whole after every change, so a stored source is
//! always usable as far as its shape goes. Values of `env` and `headers` are either plain
//! strings or references to a vault of the same sandbox (`{"vault_id": "vlt_…", "prefix":
//! "Bearer "}`); secrets belong in vaults, the source only names them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::agent::check_slug;
use crate::ids::{self, ConnectedAccountId, SandboxId, SourceId, VaultId};

const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_ARGS: usize = 100;
const MAX_ARG_CHARS: usize = 4_000;
const MAX_MAP: usize = 50;
const MAX_URL_LEN: usize = 2_048;
/// Longest connect timeout a source may ask for.
pub const MAX_TIMEOUT_SECONDS: u64 = 120;
/// Connect/list timeout when a source does not set one.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// What kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An MCP server started as a child process, spoken to over stdin/stdout.
    McpStdio,
    /// An MCP server at a streamable-HTTP URL.
    McpHttp,
    /// One of the toolsets built into the server.
    Builtin,
    /// The tools of a connected integration account's app (§10).
    Integration,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::McpStdio => "mcp_stdio",
            SourceKind::McpHttp => "mcp_http",
            SourceKind::Builtin => "builtin",
            SourceKind::Integration => "integration",
        }
    }
}

/// The built-in toolsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toolset {
    /// List, read, write and edit files in the agent's workspace.
    Workspace,
    /// Run a command in the agent's sandboxed environment.
    Shell,
    /// HTTP GET/POST under the environment's network policy.
    HttpFetch,
}

impl Toolset {
    pub fn as_str(self) -> &'static str {
        match self {
            Toolset::Workspace => "workspace",
            Toolset::Shell => "shell",
            Toolset::HttpFetch => "http_fetch",
        }
    }
}

/// A value of `env` or `headers`: plain text, or a secret taken from a vault at the moment of use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValueRef {
    Plain(String),
    Vault {
        vault_id: VaultId,
        /// Text put before the secret, e.g. `Bearer `.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

impl ValueRef {
    /// The vault this value reads, if any.
    pub fn vault(&self) -> Option<&VaultId> {
        match self {
            ValueRef::Vault { vault_id, .. } => Some(vault_id),
            ValueRef::Plain(_) => None,
        }
    }
}

/// The user-editable configuration of a source (also its wire shape minus the platform fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A slug unique in the sandbox; it prefixes tool names when two sources offer the same name.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: SourceKind,
    /// `mcp_stdio`: the program to start (looked up on the server's `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `mcp_stdio`: its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `mcp_stdio`: environment variables of the child (it gets nothing else but `PATH`, `HOME`, `LANG`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, ValueRef>,
    /// `mcp_http`: the streamable-HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `mcp_http`: request headers (e.g. `Authorization` from a vault).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, ValueRef>,
    /// `builtin`: which toolset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolset: Option<Toolset>,
    /// `integration`: the connected account (`cac_…`) whose app's tools this source offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<ConnectedAccountId>,
    /// How long connecting and listing tools may take (default 10 s, at most 120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl SourceConfig {
    /// Parses and validates a configuration from JSON (the create body minus platform fields).
    pub fn from_json(value: serde_json::Value) -> Result<Self, ValidationError> {
        let config: SourceConfig = from_value(value)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies a partial update: the keys present replace the current ones, `null` clears an
    /// optional field. The result is validated as a whole.
    pub fn patched(&self, patch: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ValidationError> {
        let mut current = serde_json::to_value(self).expect("a source config serializes");
        let obj = current.as_object_mut().expect("a source config is an object");
        for (k, v) in patch {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
        Self::from_json(current)
    }

    pub fn timeout_seconds(&self) -> u64 {
        self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)
    }

    /// Every vault the configuration reads.
    pub fn vaults(&self) -> Vec<&VaultId> {
        self.env.values().chain(self.headers.values()).filter_map(ValueRef::vault).collect()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        check_slug(&self.name, "name")?;
        crate::text::check_description(&self.description, "description", MAX_DESCRIPTION_CHARS)?;
        if let Some(t) = self.timeout_seconds
            && (t == 0 || t > MAX_TIMEOUT_SECONDS)
        {
            return Err(ValidationError::new("timeout_seconds", format!("{t} is out of range; use 1 to {MAX_TIMEOUT_SECONDS}")));
        }
        let only = |present: bool, field: &str| -> Result<(), ValidationError> {
            if present {
                return Err(ValidationError::new(
                    field,
                    format!("`{field}` does not apply to a `{}` source; remove it", self.kind.as_str()),
                ));
            }
            Ok(())
        };
        match self.kind {
            SourceKind::McpStdio => {
                let command = self.command.as_deref().ok_or_else(|| {
                    ValidationError::new("command", "an `mcp_stdio` source needs `command`, the program to start (e.g. `npx`)")
                })?;
                check_text(command, "command", 1_000)?;
                if command.trim().is_empty() || command.contains(char::is_whitespace) {
                    return Err(ValidationError::new(
                        "command",
                        "give the program alone (no spaces); put its arguments in `args`, e.g. {\"command\": \"npx\", \"args\": [\"-y\", \"pkg\"]}",
                    ));
                }
                if self.args.len() > MAX_ARGS {
                    return Err(ValidationError::new("args", format!("has {} items; the limit is {MAX_ARGS}", self.args.len())));
                }
                for (i, a) in self.args.iter().enumerate() {
                    check_text(a, &format!("args[{i}]"), MAX_ARG_CHARS)?;
                }
                check_map(&self.env, "env", check_env_name)?;
                only(self.url.is_some(), "url")?;
                only(!self.headers.is_empty(), "headers")?;
                only(self.toolset.is_some(), "toolset")?;
                only(self.account_id.is_some(), "account_id")?;
            }
            SourceKind::McpHttp => {
                let url = self.url.as_deref().ok_or_else(|| {
                    ValidationError::new(
                        "url",
                        "an `mcp_http` source needs `url`, its streamable-HTTP endpoint (e.g. https://mcp.example.com/mcp)",
                    )
                })?;
                check_url(url)?;
                check_map(&self.headers, "headers", check_header_name)?;
                only(self.command.is_some(), "command")?;
                only(!self.args.is_empty(), "args")?;
                only(!self.env.is_empty(), "env")?;
                only(self.toolset.is_some(), "toolset")?;
                only(self.account_id.is_some(), "account_id")?;
            }
            SourceKind::Builtin => {
                if self.toolset.is_none() {
                    return Err(ValidationError::new(
                        "toolset",
                        "a `builtin` source needs `toolset`: `workspace`, `shell` or `http_fetch`",
                    ));
                }
                only(self.command.is_some(), "command")?;
                only(!self.args.is_empty(), "args")?;
                only(!self.env.is_empty(), "env")?;
                only(self.url.is_some(), "url")?;
                only(!self.headers.is_empty(), "headers")?;
                only(self.account_id.is_some(), "account_id")?;
            }
            SourceKind::Integration => {
                let account = self.account_id.as_ref().ok_or_else(|| {
                    ValidationError::new(
                        "account_id",
                        "an `integration` source needs `account_id`, a connected account of this sandbox (`cac_…`, see GET /v1/connected_accounts)",
                    )
                })?;
                ids::check(account.as_str(), ConnectedAccountId::PREFIX, "account_id")?;
                only(self.command.is_some(), "command")?;
                only(!self.args.is_empty(), "args")?;
                only(!self.env.is_empty(), "env")?;
                only(self.url.is_some(), "url")?;
                only(!self.headers.is_empty(), "headers")?;
                only(self.toolset.is_some(), "toolset")?;
            }
        }
        Ok(())
    }
}

/// A stored source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: SourceId,
    pub sandbox_id: SandboxId,
    pub config: SourceConfig,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.config.name, self.id)
    }
}

/// Deserializes `value`, naming the offending field (`network`, `env.TOKEN`) in the error.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let param = if path.is_empty() || path == "." { "body".to_string() } else { path };
        ValidationError::new(param, describe_serde(e.inner()))
    })
}

/// Turns a serde error into a message a user can act on.
pub(crate) fn describe_serde(e: &serde_json::Error) -> String {
    let msg = e.to_string().replace(
        "data did not match any variant of untagged enum ValueRef",
        "a value of `env`/`headers` must be a string or {\"vault_id\": \"vlt_…\", \"prefix\": \"…\"}",
    );
    // serde's messages end with " at line 1 column 2", which means nothing for a parsed value.
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

pub(crate) fn check_text(v: &str, param: &str, max: usize) -> Result<(), ValidationError> {
    if v.chars().any(|c| c == '\0') {
        return Err(ValidationError::new(param, "contains a NUL character; remove it"));
    }
    if v.chars().count() > max {
        return Err(ValidationError::new(param, format!("is {} characters long; the limit is {max}", v.chars().count())));
    }
    Ok(())
}

pub(crate) fn check_map(
    map: &BTreeMap<String, ValueRef>,
    param: &str,
    check_name: fn(&str, &str) -> Result<(), ValidationError>,
) -> Result<(), ValidationError> {
    if map.len() > MAX_MAP {
        return Err(ValidationError::new(param, format!("has {} entries; the limit is {MAX_MAP}", map.len())));
    }
    for (k, v) in map {
        let field = format!("{param}.{}", ids::shorten(k));
        check_name(k, &field)?;
        match v {
            ValueRef::Plain(s) => check_text(s, &field, 8_000)?,
            ValueRef::Vault { prefix, vault_id } => {
                ids::check(vault_id.as_str(), VaultId::PREFIX, &format!("{field}.vault_id"))?;
                if let Some(p) = prefix {
                    check_text(p, &format!("{field}.prefix"), 100)?;
                }
            }
        }
        if let ValueRef::Plain(s) = v
            && s.contains(['\r', '\n'])
        {
            return Err(ValidationError::new(field, "may not contain line breaks"));
        }
    }
    Ok(())
}

pub(crate) fn check_env_name(k: &str, field: &str) -> Result<(), ValidationError> {
    let ok = !k.is_empty()
        && k.len() <= 128
        && k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(field, "is not a valid variable name: use letters, digits and `_`, not starting with a digit"))
    }
}

fn check_header_name(k: &str, field: &str) -> Result<(), ValidationError> {
    let ok = !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err(ValidationError::new(field, "is not a valid HTTP header name"));
    }
    let lower = k.to_ascii_lowercase();
    if ["host", "content-length", "transfer-encoding", "connection", "mcp-session-id"].contains(&lower.as_str()) {
        return Err(ValidationError::new(field, format!("`{k}` is set by the client itself and cannot be configured")));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| Err(ValidationError::new("url", format!("`{}` {why}", ids::shorten(url))));
    if url.len() > MAX_URL_LEN {
        return bad(&format!("is longer than {MAX_URL_LEN} bytes"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("is not an absolute URL; use http://host[:port]/path or https://…");
    };
    if scheme != "http" && scheme != "https" {
        return bad("must use http or https");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return bad("has no host");
    }
    if authority.contains('@') {
        return bad("must not carry credentials; put them in `headers` from a vault");
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain a fragment, spaces or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: serde_json::Value) -> ValidationError {
        SourceConfig::from_json(v).unwrap_err()
    }

    #[test]
    fn valid_sources_round_trip() {
        for v in [
            json!({"name": "everything", "kind": "mcp_stdio", "command": "npx", "args": ["-y", "x"], "env": {"TZ": "UTC", "TOKEN": {"vault_id": "vlt_01hzzzzzzzzzzzzzzzzzzzzzzz"}}}),
            json!({"name": "gh", "kind": "mcp_http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": {"vault_id": "vlt_01hzzzzzzzzzzzzzzzzzzzzzzz", "prefix": "Bearer "}}}),
            json!({"name": "files", "kind": "builtin", "toolset": "workspace"}),
            json!({"name": "slack", "kind": "integration", "account_id": "cac_01hzzzzzzzzzzzzzzzzzzzzzzz", "timeout_seconds": 20}),
        ] {
            let c = SourceConfig::from_json(v.clone()).unwrap();
            let mut expected = v.clone();
            expected["description"] = json!("");
            assert_eq!(serde_json::to_value(&c).unwrap(), expected);
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(json!({"name": "x", "kind": "mcp_stdio"})).param, "command");
        assert_eq!(err(json!({"name": "x", "kind": "mcp_stdio", "command": "npx -y pkg"})).param, "command");
        assert_eq!(err(json!({"name": "x", "kind": "mcp_http"})).param, "url");
        assert_eq!(err(json!({"name": "x", "kind": "mcp_http", "url": "ftp://h/"})).param, "url");
        assert_eq!(err(json!({"name": "x", "kind": "mcp_http", "url": "https://u:p@h/"})).param, "url");
        assert_eq!(err(json!({"name": "x", "kind": "builtin"})).param, "toolset");
        assert_eq!(err(json!({"name": "x", "kind": "builtin", "toolset": "shell", "url": "https://h/"})).param, "url");
        assert_eq!(err(json!({"name": "Bad Name", "kind": "builtin", "toolset": "shell"})).param, "name");
        assert_eq!(err(json!({"name": "x", "kind": "mcp_stdio", "command": "a", "env": {"1X": "v"}})).param, "env.1X");
        assert_eq!(err(json!({"name": "x", "kind": "mcp_http", "url": "https://h/", "headers": {"Host": "v"}})).param, "headers.Host");
        assert_eq!(err(json!({"name": "x", "kind": "builtin", "toolset": "shell", "timeout_seconds": 0})).param, "timeout_seconds");
        assert_eq!(err(json!({"name": "x", "kind": "teleport"})).param, "kind");
        assert_eq!(
            err(json!({"name": "x", "kind": "mcp_stdio", "command": "a", "env": {"K": {"vault_id": "agt_01hzzzzzzzzzzzzzzzzzzzzzzz"}}}))
                .param,
            "env.K.vault_id"
        );
        assert!(err(json!({"name": "x", "kind": "mcp_stdio", "command": "a", "env": {"K": {"vault": "v"}}})).message.contains("vault_id"));
    }

    #[test]
    fn integration_sources_name_a_connected_account() {
        let missing = err(json!({"name": "x", "kind": "integration"}));
        assert_eq!(missing.param, "account_id");
        assert!(missing.message.contains("cac_"), "{}", missing.message);
        for bad in ["vlt_01hzzzzzzzzzzzzzzzzzzzzzzz", "cac_short", "cac_01HZZZZZZZZZZZZZZZZZZZZZZZ", ""] {
            let e = err(json!({"name": "x", "kind": "integration", "account_id": bad}));
            assert_eq!(e.param, "account_id", "{bad}: {}", e.message);
        }
        assert_eq!(err(json!({"name": "x", "kind": "integration", "account_id": 7})).param, "account_id");
        let ok = json!({"name": "x", "kind": "integration", "account_id": "cac_01hzzzzzzzzzzzzzzzzzzzzzzz"});
        for (field, value) in
            [("url", json!("https://h/mcp")), ("toolset", json!("shell")), ("command", json!("npx")), ("headers", json!({"A": "b"}))]
        {
            let mut v = ok.clone();
            v[field] = value;
            assert_eq!(err(v).param, field);
        }
        // Other kinds refuse an account.
        assert_eq!(
            err(json!({"name": "x", "kind": "builtin", "toolset": "shell", "account_id": "cac_01hzzzzzzzzzzzzzzzzzzzzzzz"})).param,
            "account_id"
        );
        let c = SourceConfig::from_json(ok).unwrap();
        assert_eq!(c.account_id.as_ref().map(|a| a.as_str()), Some("cac_01hzzzzzzzzzzzzzzzzzzzzzzz"));
        // Patching an integration source into an MCP one must drop the account.
        assert_eq!(c.patched(json!({"kind": "mcp_http", "url": "https://h/mcp"}).as_object().unwrap()).unwrap_err().param, "account_id");
    }

    #[test]
    fn patch_replaces_and_clears() {
        let c = SourceConfig::from_json(json!({"name": "x", "kind": "mcp_stdio", "command": "npx", "args": ["a"], "timeout_seconds": 5}))
            .unwrap();
        let p = c.patched(json!({"args": ["b"], "timeout_seconds": null}).as_object().unwrap()).unwrap();
        assert_eq!(p.args, vec!["b".to_string()]);
        assert_eq!(p.timeout_seconds, None);
        assert_eq!(p.command.as_deref(), Some("npx"));
        // Switching kind without the new kind's fields is refused, naming the missing field.
        assert_eq!(c.patched(json!({"kind": "mcp_http"}).as_object().unwrap()).unwrap_err().param, "url");
    }
}
