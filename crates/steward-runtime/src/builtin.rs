//! The built-in toolsets (§6): `workspace` (files of the agent's workspace), `shell` (a command
//! in the agent's sandbox, see `sandbox.rs`) and `http_fetch` (HTTP under the environment's
//! network policy). Each tool holds the agent's [`AgentEnv`]: its workspace and the policy of its
//! environment, with vault values already decrypted.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use steward_core::environment::{Limits, Network};
use steward_core::source::Toolset;
use steward_llm::ToolSpec;

use crate::sandbox::{NetworkPolicy, SandboxConfig, SandboxLimits, ShellRequest, run_shell};
use crate::tools::{MAX_TOOL_OUTPUT, Tool, ToolContext};
use crate::workspace::Workspace;

/// Largest file `read_file` returns (the model sees at most the tool output cap of it).
pub const MAX_READ_BYTES: u64 = 4 * 1024 * 1024;
/// Largest response body `http_fetch` reads.
pub const MAX_FETCH_BYTES: usize = 1024 * 1024;
/// Most redirects `http_fetch` follows (each hop is checked against the policy again).
const MAX_REDIRECTS: usize = 5;

/// What the built-in tools of one agent work with.
#[derive(Debug)]
pub struct AgentEnv {
    /// Stable key for the sandbox user and logs: the agent id.
    pub agent_key: String,
    pub workspace: Workspace,
    /// Environment variables for shell commands, vault values decrypted.
    pub env: BTreeMap<String, String>,
    pub network: Network,
    pub limits: Limits,
    pub sandbox: SandboxConfig,
}

/// The tools of `toolset`.
pub fn toolset(toolset: Toolset, env: Arc<AgentEnv>) -> Vec<Arc<dyn Tool>> {
    match toolset {
        Toolset::Workspace => vec![
            Arc::new(ListFiles(env.clone())),
            Arc::new(ReadFile(env.clone())),
            Arc::new(WriteFile(env.clone())),
            Arc::new(EditFile(env)),
        ],
        Toolset::Shell => vec![Arc::new(Shell(env))],
        Toolset::HttpFetch => vec![Arc::new(HttpFetch(env))],
    }
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, String> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| format!("`{name}` is required and must be a string"))
}

fn spec(name: &str, description: &str, schema: Value) -> ToolSpec {
    ToolSpec { name: name.into(), description: description.into(), input_schema: schema }
}

#[derive(Debug)]
struct ListFiles(Arc<AgentEnv>);

#[async_trait::async_trait]
impl Tool for ListFiles {
    fn spec(&self) -> ToolSpec {
        spec(
            "list_files",
            "Lists one directory of your workspace (paths are relative to the workspace root).",
            json!({"type": "object", "properties": {"path": {"type": "string", "description": "Directory, relative; default the root"}}, "additionalProperties": false}),
        )
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<String, String> {
        let path = args.get("path").and_then(Value::as_str).unwrap_or("");
        let entries = self.0.workspace.list(path).await.map_err(|e| e.to_string())?;
        let items: Vec<Value> =
            entries.iter().map(|e| json!({"path": e.path, "kind": format!("{:?}", e.kind).to_lowercase(), "size": e.size})).collect();
        Ok(serde_json::to_string(&items).expect("entries serialize"))
    }
}

#[derive(Debug)]
struct ReadFile(Arc<AgentEnv>);

#[async_trait::async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "read_file",
            "Reads a text file of your workspace.",
            json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"], "additionalProperties": false}),
        )
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<String, String> {
        let bytes = self.0.workspace.read(str_arg(&args, "path")?, MAX_READ_BYTES).await.map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[derive(Debug)]
struct WriteFile(Arc<AgentEnv>);

#[async_trait::async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "write_file",
            "Creates or replaces a file of your workspace with `content` (parent directories are created).",
            json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"], "additionalProperties": false}),
        )
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<String, String> {
        let path = str_arg(&args, "path")?;
        let content = str_arg(&args, "content")?;
        self.0.workspace.write(path, content.as_bytes()).await.map_err(|e| e.to_string())?;
        Ok(format!("wrote {} bytes to {path}", content.len()))
    }
}

#[derive(Debug)]
struct EditFile(Arc<AgentEnv>);

#[async_trait::async_trait]
impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "edit_file",
            "Replaces the one occurrence of `old_text` in a workspace file with `new_text`. Fails if `old_text` occurs zero or several times; include more context to make it unique.",
            json!({"type": "object", "properties": {"path": {"type": "string"}, "old_text": {"type": "string"}, "new_text": {"type": "string"}},
                   "required": ["path", "old_text", "new_text"], "additionalProperties": false}),
        )
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<String, String> {
        let path = str_arg(&args, "path")?;
        self.0.workspace.edit(path, str_arg(&args, "old_text")?, str_arg(&args, "new_text")?).await.map_err(|e| e.to_string())?;
        Ok(format!("edited {path}"))
    }
}

#[derive(Debug)]
struct Shell(Arc<AgentEnv>);

impl Shell {
    fn limits(&self) -> SandboxLimits {
        let l = &self.0.limits;
        SandboxLimits {
            cpu_seconds: l.cpu_seconds,
            memory_bytes: l.memory_mb * 1024 * 1024,
            max_processes: l.max_processes,
            wall_clock: Duration::from_secs(l.timeout_seconds),
            max_output_bytes: MAX_TOOL_OUTPUT / 2,
        }
    }
}

#[async_trait::async_trait]
impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        spec(
            "shell",
            "Runs a command with /bin/sh in your sandbox. Your workspace is /workspace (the working directory, the only writable place besides a scratch /tmp). Network, CPU, memory, process and time limits apply. Returns exit code, stdout and stderr.",
            json!({"type": "object", "properties": {"command": {"type": "string", "description": "A shell command line"}}, "required": ["command"], "additionalProperties": false}),
        )
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<String, String> {
        let command = str_arg(&args, "command")?;
        let network = match &self.0.network {
            Network::None => NetworkPolicy::None,
            Network::Allowlist(h) => NetworkPolicy::Allowlist(h.clone()),
            Network::Open => NetworkPolicy::Open,
        };
        let limits = self.limits();
        let req = ShellRequest { agent_key: &self.0.agent_key, command, env: &self.0.env, limits: &limits, network: &network };
        let out = run_shell(&self.0.sandbox, &self.0.workspace, &req).await.map_err(|e| e.to_string())?;
        Ok(serde_json::to_string(&out).expect("a shell outcome serializes"))
    }
}

#[derive(Debug)]
struct HttpFetch(Arc<AgentEnv>);

#[async_trait::async_trait]
impl Tool for HttpFetch {
    fn spec(&self) -> ToolSpec {
        spec(
            "http_fetch",
            "Fetches a URL with GET or POST, under your environment's network policy. Returns the status, content type and up to 1 MiB of the body as text.",
            json!({"type": "object", "properties": {
                "url": {"type": "string", "description": "http:// or https:// URL"},
                "method": {"type": "string", "enum": ["GET", "POST"]},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"type": "string", "description": "POST body"}
            }, "required": ["url"], "additionalProperties": false}),
        )
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<String, String> {
        let mut url = reqwest::Url::parse(str_arg(&args, "url")?).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
        let post = match args.get("method").and_then(Value::as_str).unwrap_or("GET") {
            "GET" => false,
            "POST" => true,
            other => return Err(format!("method `{other}` is not supported; use GET or POST")),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(h) = args.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                let name =
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("`{k}` is not a valid header name"))?;
                let value = v
                    .as_str()
                    .and_then(|v| reqwest::header::HeaderValue::from_str(v).ok())
                    .ok_or_else(|| format!("header `{k}` must be a string without line breaks"))?;
                headers.insert(name, value);
            }
        }
        let body = args.get("body").and_then(Value::as_str).map(str::to_owned);
        let timeout = Duration::from_secs(self.0.limits.timeout_seconds.min(60));
        for _ in 0..=MAX_REDIRECTS {
            let addr = check_destination(&self.0.network, &url).await?;
            let host = url.host_str().unwrap_or_default().to_owned();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .resolve(&host, addr)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            let mut req = if post { client.post(url.clone()) } else { client.get(url.clone()) };
            req = req.headers(headers.clone());
            if let Some(b) = &body
                && post
            {
                req = req.body(b.clone());
            }
            let res = req.send().await.map_err(|e| format!("request to {url} failed: {}", without_url(&e)))?;
            let status = res.status();
            if status.is_redirection()
                && let Some(loc) = res.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok())
            {
                url = url.join(loc).map_err(|_| format!("the server redirected to an invalid location `{loc}`"))?;
                continue;
            }
            let content_type = res.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let mut buf = Vec::new();
            let mut truncated = false;
            let mut stream = res.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| format!("reading the body of {url} failed: {}", without_url(&e)))?;
                let room = MAX_FETCH_BYTES - buf.len();
                if chunk.len() > room {
                    buf.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                buf.extend_from_slice(&chunk);
            }
            let mut out = format!("HTTP {}\ncontent-type: {content_type}\n\n{}", status, String::from_utf8_lossy(&buf));
            if truncated {
                out.push_str(&format!("\n[body truncated at {MAX_FETCH_BYTES} bytes]"));
            }
            return Ok(out);
        }
        Err(format!("more than {MAX_REDIRECTS} redirects; stopped at {url}"))
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "the URL");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// Decides whether the policy lets `url` be fetched, and which address to connect to (the
/// address is pinned so DNS cannot change between this check and the connection).
async fn check_destination(network: &Network, url: &reqwest::Url) -> Result<SocketAddr, String> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("only http and https URLs can be fetched, not `{}`", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(80);
    let listed = match network {
        Network::None => {
            return Err("network access is off for this agent (environment network policy `none`); ask an editor to allow the host in the agent's environment".into());
        }
        Network::Allowlist(hosts) => {
            if !hosts.iter().any(|p| host_matches(p, &host, port)) {
                return Err(format!("`{host}` is not in this agent's network allowlist ({}); ask an editor to add it", hosts.join(", ")));
            }
            true
        }
        Network::Open => false,
    };
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?.collect();
    let first = *addrs.first().ok_or_else(|| format!("`{host}` has no address"))?;
    if !listed && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "`{host}` resolves to {}, a loopback, private or link-local address; those are reachable only when listed explicitly in the environment's allowlist",
            bad.ip()
        ));
    }
    Ok(first)
}

/// `example.com`, `*.example.com` (any subdomain, not the apex), optionally `:port`.
fn host_matches(pattern: &str, host: &str, port: u16) -> bool {
    let (pat_host, pat_port) = match pattern.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()),
        None => (pattern, None),
    };
    if pat_port.is_some_and(|p| p != port) {
        return false;
    }
    match pat_host.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.'),
        None => host == pat_host,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (seg[0] & 0xfe00) == 0xfc00 || (seg[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(host_matches("example.com", "example.com", 443));
        assert!(!host_matches("example.com", "evil-example.com", 443));
        assert!(host_matches("*.example.com", "api.example.com", 443));
        assert!(!host_matches("*.example.com", "example.com", 443));
        assert!(!host_matches("*.example.com", "apiexample.com", 443));
        assert!(host_matches("127.0.0.1:8080", "127.0.0.1", 8080));
        assert!(!host_matches("127.0.0.1:8080", "127.0.0.1", 8081));
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn policy_decides_before_any_connection() {
        let url = reqwest::Url::parse("http://127.0.0.1:9/x").unwrap();
        assert!(check_destination(&Network::None, &url).await.unwrap_err().contains("none"));
        assert!(check_destination(&Network::Open, &url).await.unwrap_err().contains("loopback"));
        assert!(check_destination(&Network::Allowlist(vec!["example.com".into()]), &url).await.unwrap_err().contains("allowlist"));
        assert_eq!(check_destination(&Network::Allowlist(vec!["127.0.0.1:9".into()]), &url).await.unwrap(), "127.0.0.1:9".parse().unwrap());
        let file = reqwest::Url::parse("file:///etc/passwd").unwrap();
        assert!(check_destination(&Network::Open, &file).await.unwrap_err().contains("http"));
    }
}
