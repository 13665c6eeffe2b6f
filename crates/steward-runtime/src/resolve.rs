//! Tool resolution (§6): at the start of every run, and for the dry run of
//! `GET /v1/agents/{id}/tools`, turn an agent's `tool_sources` and `tools` allowlist into the
//! catalog given to the model, and record the **tool resolution trace**.
//!
//! Rules:
//! - Sources are resolved concurrently, each within its own timeout. A source that fails
//!   (missing, cannot start, times out, a vault it names is gone, its connected account needs to
//!   be connected again) is reported in the trace and contributes no tools; the run goes on.
//! - An `integration` source's entry also names its app and account (`app`, `app_name`,
//!   `account_id`, `account_label`); its token is redacted like a vault value (`app_tools.rs`).
//! - The platform's own `current_time` comes first, as the pseudo-source `platform` (not for
//!   Concierge runs, whose catalog is exactly the management tools; `preamble.rs`).
//! - Tool names are made safe for every provider (`[A-Za-z0-9_-]`, at most 64 characters).
//! - The allowlist keeps a tool when it names the tool (`search`) or the tool qualified by its
//!   source name (`github__search`); an empty allowlist keeps everything.
//! - When two kept tools have the same name, both are exposed as `<source name>__<tool>`
//!   (source names are unique per sandbox, so this is deterministic); the trace maps every
//!   exposed name to its source and original name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use steward_core::agent::AgentConfig;
use steward_core::environment::EnvironmentConfig;
use steward_core::ids::{AgentId, EnvironmentId, SandboxId, SourceId};
use steward_core::source::{Source, SourceKind, ValueRef};
use steward_llm::ToolSpec;
use steward_store::StoreError;

use crate::app_tools::AppToolset;
use crate::builtin::{AgentEnv, toolset};
use crate::engine::Runtime;
use crate::mcp::{McpError, McpPool, McpTarget};
use crate::tools::{Catalog, Tool, ToolContext};
use crate::workspace::Workspace;

/// Longest tool name every provider accepts.
const MAX_TOOL_NAME: usize = 64;

/// The outcome of resolution.
#[derive(Debug)]
pub struct Resolution {
    pub catalog: Catalog,
    /// The tool resolution trace, as stored on the run.
    pub trace: Value,
}

/// A tool offered by a source, before the allowlist and naming.
struct Offered {
    name: String,
    tool: Arc<dyn Tool>,
}

struct SourceResult {
    trace: serde_json::Map<String, Value>,
    source_name: String,
    offered: Vec<Offered>,
}

/// An MCP tool reached through the pool.
#[derive(Debug)]
struct McpTool {
    pool: McpPool,
    key: String,
    target: McpTarget,
    spec: ToolSpec,
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }
    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<String, String> {
        let Value::Object(args) = arguments else {
            return Err("the tool arguments must be a JSON object".into());
        };
        self.pool.call_tool(&self.key, &self.target, &self.spec.name, args, ctx.tool_timeout).await
    }
}

/// `name` made acceptable to every provider.
pub fn safe_tool_name(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if s.is_empty() {
        s.push('_');
    }
    s.truncate(MAX_TOOL_NAME);
    s
}

#[async_trait::async_trait]
impl crate::agent_loop::RunTools for Runtime {
    async fn resolve(
        &self,
        run: &steward_core::session::Run,
        agent: &steward_core::agent::Agent,
        config: &AgentConfig,
    ) -> Result<Resolution, StoreError> {
        match &agent.concierge_of {
            Some(account) => Ok(self.resolve_concierge_tools(&run.sandbox_id, account).await),
            None => self.resolve_tools(&run.sandbox_id, &run.agent_id, config).await,
        }
    }
}

impl Runtime {
    /// The agent's workspace directory (created if missing).
    pub fn workspace(&self, sandbox: &SandboxId, agent: &AgentId) -> Result<Workspace, String> {
        let dir = self.inner.config.tools.workspaces.join(sandbox.as_str()).join(agent.as_str());
        Workspace::open(&dir).map_err(|e| format!("cannot open the agent's workspace: {e}"))
    }

    /// Problems with the tool set-up of this host, for the operator (logged at start): the
    /// shell sandbox cannot be built, or (as root) the workspaces are out of reach of the
    /// unprivileged users commands run as.
    pub async fn tool_warnings(&self) -> Vec<String> {
        let tools = self.inner.config.tools.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            if let Err(e) = crate::sandbox::check(&tools.sandbox) {
                out.push(format!("the `shell` tool will not work: {e}"));
            }
            if let Err(e) = std::fs::create_dir_all(&tools.workspaces) {
                out.push(format!("cannot create the workspaces directory {}: {e}", tools.workspaces.display()));
            } else if crate::workspace::effective_uid() == 0 {
                use std::os::unix::fs::MetadataExt;
                let blocked = tools.workspaces.ancestors().find(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 == 0));
                if let Some(dir) = blocked {
                    out.push(format!(
                        "the `shell` tool will not work: running as root, commands run as unprivileged users that cannot reach {}                          because {} is not searchable by others; pass --workspaces-dir with a directory under e.g. /var/lib/steward,                          or `chmod o+x {}`",
                        tools.workspaces.display(),
                        dir.display(),
                        dir.display()
                    ));
                }
            }
            out
        })
        .await
        .unwrap_or_default()
    }

    /// Drops the pooled connection of a deleted source.
    pub async fn forget_source(&self, id: &SourceId) {
        self.inner.mcp.forget(id.as_str()).await;
    }

    /// Resolves the tools of `config` (an agent version of `agent` in `sandbox`).
    pub async fn resolve_tools(&self, sandbox: &SandboxId, agent: &AgentId, config: &AgentConfig) -> Result<Resolution, StoreError> {
        let store = &self.inner.store;
        let sources = store.sources_by_id(sandbox, &config.tool_sources).await?;
        let mut secrets: Vec<String> = Vec::new();

        // The environment's policy, needed by the built-in toolsets.
        let env_policy: Result<EnvironmentConfig, String> = match &config.environment_id {
            None => Ok(EnvironmentConfig::default_policy()),
            Some(id) => match store.cached_environment(&EnvironmentId::from_trusted(id.clone())).await? {
                Some(e) if &e.sandbox_id == sandbox => Ok(e.config),
                _ => Err(format!("the agent's environment {id} no longer exists")),
            },
        };

        // One workspace (a directory created on first use) for every source that needs it.
        let workspace: Result<Workspace, String> = if sources.is_empty() { Err("unused".into()) } else { self.workspace(sandbox, agent) };
        let mut futures = Vec::new();
        for id in &config.tool_sources {
            let Some(source) = sources.iter().find(|s| s.id.as_str() == id).cloned() else {
                let mut t = serde_json::Map::new();
                t.insert("source_id".into(), json!(id));
                t.insert("connected".into(), json!(false));
                t.insert("error".into(), json!(format!("source {id} does not exist (deleted?); remove it from the agent's tool_sources")));
                futures.push(futures::future::Either::Left(std::future::ready((
                    SourceResult { trace: t, source_name: id.clone(), offered: vec![] },
                    vec![],
                ))));
                continue;
            };
            let this = self.clone();
            let env_policy = env_policy.clone();
            let sandbox = sandbox.clone();
            let agent = agent.clone();
            let workspace = workspace.clone();
            futures.push(futures::future::Either::Right(async move {
                this.resolve_source(&sandbox, &agent, source, env_policy, workspace).await
            }));
        }
        let mut results = vec![platform_source()];
        for (r, s) in futures::future::join_all(futures).await {
            results.push(r);
            secrets.extend(s);
        }

        // Allowlist, then naming.
        let allow = &config.tools;
        let mut matched: Vec<bool> = vec![false; allow.len()];
        let mut kept: Vec<(usize, Offered)> = Vec::new();
        for (i, r) in results.iter_mut().enumerate() {
            let mut kept_names = Vec::new();
            for o in r.offered.drain(..) {
                let safe = safe_tool_name(&o.name);
                let qualified = format!("{}__{}", r.source_name, safe);
                let hits: Vec<usize> =
                    allow.iter().enumerate().filter(|(_, a)| **a == o.name || **a == safe || **a == qualified).map(|(j, _)| j).collect();
                for &j in &hits {
                    matched[j] = true;
                }
                if allow.is_empty() || !hits.is_empty() {
                    kept_names.push(json!(o.name));
                    kept.push((i, o));
                }
            }
            r.trace.insert("kept".into(), Value::Array(kept_names));
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, o) in &kept {
            *counts.entry(safe_tool_name(&o.name)).or_default() += 1;
        }
        let mut catalog = Catalog::default();
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut entries = Vec::new();
        for (i, o) in kept {
            let safe = safe_tool_name(&o.name);
            let mut exposed = if counts[&safe] > 1 { safe_tool_name(&format!("{}__{}", results[i].source_name, safe)) } else { safe };
            let mut n = 2;
            while used.contains(&exposed) {
                let suffix = format!("_{n}");
                let mut base = exposed.clone();
                base.truncate(MAX_TOOL_NAME - suffix.len());
                exposed = format!("{base}{suffix}");
                n += 1;
            }
            used.insert(exposed.clone());
            entries.push(json!({"name": exposed, "source": results[i].source_name, "tool": o.name}));
            catalog.push(Some(exposed), o.tool);
        }
        let has_secrets = !secrets.is_empty();
        catalog.redact_values(secrets);
        let unmatched: Vec<&String> = allow.iter().zip(&matched).filter(|(_, m)| !**m).map(|(a, _)| a).collect();
        let sources_trace: Vec<Value> = results.into_iter().map(|r| Value::Object(r.trace)).collect();
        let mut trace = json!({"sources": sources_trace, "unmatched_allowlist": unmatched, "catalog": entries});
        if has_secrets {
            // Errors may quote configuration; never a secret.
            catalog.redactor().redact_json(&mut trace);
        }
        Ok(Resolution { catalog, trace })
    }

    /// The tools of a Concierge run (§5): exactly the management tools `account` may use in
    /// `sandbox` with its role now — no platform tools (the current time and the sandbox's
    /// time zone are in the run's system prompt instead, see `preamble`). The trace has the
    /// pseudo-source `management` with the role, so "which catalog did the model get" is
    /// answerable per run.
    pub async fn resolve_concierge_tools(&self, sandbox: &SandboxId, account: &steward_core::ids::AccountId) -> Resolution {
        let started = Instant::now();
        let mut catalog = Catalog::default();
        let mut entries: Vec<Value> = Vec::new();
        let mut source = json!({"source_id": "management", "name": "management", "kind": "management", "connected": true});
        match self.inner.management.get() {
            None => {
                source["connected"] = json!(false);
                source["error"] = json!("this process serves no management tools");
            }
            Some(m) => match m.tools_for(sandbox, account).await {
                Err(e) => {
                    source["connected"] = json!(false);
                    source["error"] = json!(e);
                }
                Ok((role, tools)) => {
                    source["role"] = json!(role.as_str());
                    let mut names = Vec::with_capacity(tools.len());
                    for t in tools {
                        let name = t.spec().name;
                        entries.push(json!({"name": name, "source": "management", "tool": name}));
                        names.push(name);
                        catalog.push(None, t);
                    }
                    source["offered"] = json!(names);
                    source["kept"] = json!(names);
                }
            },
        }
        source["duration_ms"] = json!(started.elapsed().as_millis() as u64);
        let trace = json!({"sources": [source], "unmatched_allowlist": [], "catalog": entries});
        Resolution { catalog, trace }
    }

    /// One source: its trace entry, the tools it offers, and the secrets injected into it.
    async fn resolve_source(
        &self,
        sandbox: &SandboxId,
        agent: &AgentId,
        source: Source,
        env_policy: Result<EnvironmentConfig, String>,
        workspace: Result<Workspace, String>,
    ) -> (SourceResult, Vec<String>) {
        let started = Instant::now();
        let c = &source.config;
        let mut t = serde_json::Map::new();
        t.insert("source_id".into(), json!(source.id));
        t.insert("name".into(), json!(c.name));
        t.insert("kind".into(), json!(c.kind.as_str()));
        let mut secrets = Vec::new();
        let timeout = Duration::from_secs(c.timeout_seconds());
        let outcome: Result<(Vec<Offered>, Vec<Value>), String> = async {
            match c.kind {
                SourceKind::Builtin => {
                    let toolset_kind = c.toolset.expect("a builtin source has a toolset");
                    let policy = env_policy?;
                    let (env, s) = self.values(sandbox, &policy.env).await?;
                    secrets.extend(s);
                    let workspace = workspace?;
                    let agent_env = Arc::new(AgentEnv {
                        agent_key: agent.to_string(),
                        workspace,
                        env,
                        network: policy.network,
                        limits: policy.limits,
                        sandbox: self.inner.config.tools.sandbox.clone(),
                    });
                    let tools = toolset(toolset_kind, agent_env).into_iter().map(|tool| Offered { name: tool.spec().name, tool }).collect();
                    Ok((tools, vec![]))
                }
                SourceKind::McpStdio | SourceKind::McpHttp => {
                    let target = if c.kind == SourceKind::McpStdio {
                        if !self.inner.config.tools.allow_stdio_sources {
                            return Err("this server does not allow `mcp_stdio` sources (turned off by the operator)".to_string());
                        }
                        let (env, s) = self.values(sandbox, &c.env).await?;
                        secrets.extend(s);
                        let cwd = workspace?.root().to_path_buf();
                        McpTarget::Stdio { command: c.command.clone().unwrap_or_default(), args: c.args.clone(), env, cwd: Some(cwd) }
                    } else {
                        let (headers, s) = self.values(sandbox, &c.headers).await?;
                        secrets.extend(s);
                        McpTarget::Http { url: c.url.clone().unwrap_or_default(), headers }
                    };
                    // One pooled connection per source; the workspace cwd makes stdio servers
                    // per agent, so the key includes the agent for them.
                    let key = match c.kind {
                        SourceKind::McpStdio => format!("{}/{}", source.id, agent),
                        _ => source.id.to_string(),
                    };
                    self.mcp_offered(key, target, timeout).await.map_err(|e| e.to_string())
                }
                SourceKind::Integration => {
                    let account = c.account_id.as_ref().expect("an integration source names an account");
                    let resolved = self.integration_toolset(sandbox, &source.id, account, &mut t, timeout).await?;
                    secrets.push(resolved.token.expose().to_owned());
                    match resolved.toolset {
                        AppToolset::Http(tools) => {
                            Ok((tools.into_iter().map(|tool| Offered { name: tool.spec().name, tool }).collect(), vec![]))
                        }
                        AppToolset::Mcp { key, target } => {
                            let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
                            self.mcp_offered(key, target, left).await.map_err(|e| match e {
                                McpError::Unauthorized(_) => {
                                    "the app's MCP server refused the account's token; connect the account again".to_owned()
                                }
                                other => other.to_string(),
                            })
                        }
                    }
                }
            }
        }
        .await;
        t.insert("duration_ms".into(), json!(started.elapsed().as_millis() as u64));
        let offered = match outcome {
            Ok((tools, rejected)) => {
                t.insert("connected".into(), json!(true));
                t.insert("offered".into(), json!(tools.iter().map(|o| o.name.clone()).collect::<Vec<_>>()));
                if !rejected.is_empty() {
                    t.insert("rejected".into(), Value::Array(rejected));
                }
                tools
            }
            Err(e) => {
                t.insert("connected".into(), json!(false));
                t.insert("error".into(), json!(e));
                t.insert("offered".into(), json!([]));
                vec![]
            }
        };
        (SourceResult { trace: t, source_name: source.config.name.clone(), offered }, secrets)
    }

    /// The tools an MCP server offers through the pool (listed within `timeout`), and the tools
    /// it offered with invalid schemas.
    async fn mcp_offered(&self, key: String, target: McpTarget, timeout: Duration) -> Result<(Vec<Offered>, Vec<Value>), McpError> {
        let listing = tokio::time::timeout(timeout, self.inner.mcp.list_tools(&key, &target))
            .await
            .map_err(|_| McpError::Timeout(format!("did not list its tools within {} s", timeout.as_secs())))??;
        let rejected = listing.rejected.iter().map(|(n, why)| json!({"name": n, "reason": why})).collect();
        let tools = listing
            .tools
            .iter()
            .map(|m| Offered {
                name: m.name.clone(),
                tool: Arc::new(McpTool {
                    pool: self.inner.mcp.clone(),
                    key: key.clone(),
                    target: target.clone(),
                    spec: ToolSpec { name: m.name.clone(), description: m.description.clone(), input_schema: m.input_schema.clone() },
                }) as Arc<dyn Tool>,
            })
            .collect();
        Ok((tools, rejected))
    }

    /// Plain values and decrypted vault values of an `env`/`headers` map, and the secrets.
    async fn values(
        &self,
        sandbox: &SandboxId,
        map: &BTreeMap<String, ValueRef>,
    ) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
        let mut out = BTreeMap::new();
        let mut secrets = Vec::new();
        for (k, v) in map {
            match v {
                ValueRef::Plain(s) => {
                    out.insert(k.clone(), s.clone());
                }
                ValueRef::Vault { vault_id, prefix } => {
                    let secret = self.inner.providers.secret(sandbox, vault_id).await.map_err(|e| format!("`{k}`: {e}"))?;
                    secrets.push(secret.expose().to_owned());
                    out.insert(k.clone(), format!("{}{}", prefix.as_deref().unwrap_or(""), secret.expose()));
                }
            }
        }
        Ok((out, secrets))
    }
}

fn platform_source() -> SourceResult {
    let builtin = Catalog::builtin();
    let names: Vec<String> = builtin.specs().into_iter().map(|s| s.name).collect();
    let mut t = serde_json::Map::new();
    t.insert("source_id".into(), Value::Null);
    t.insert("name".into(), json!("platform"));
    t.insert("kind".into(), json!("platform"));
    t.insert("connected".into(), json!(true));
    t.insert("offered".into(), json!(names));
    let offered = vec![Offered { name: "current_time".into(), tool: Arc::new(crate::tools::CurrentTime) as Arc<dyn Tool> }];
    SourceResult { trace: t, source_name: "platform".into(), offered }
}
