//! `steward source list|get|add|delete` (§6, §9): tool sources of the current sandbox.
//! Deleting one is destructive (agents lose its tools): it shows the source and asks first.

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::context::Context;
use super::http::id;
use super::output::{cell, confirm, print_fields, print_table, table, when};

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Toolset {
    /// List, read, write and edit files of the agent's workspace.
    Workspace,
    /// Run commands in the agent's sandbox.
    Shell,
    /// HTTP GET/POST under the environment's network policy.
    HttpFetch,
}

// Parsed once per process, so the size of the `add` flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// List the sources of the current sandbox.
    List,
    /// Show one source.
    Get {
        /// The source id (src_…).
        id: String,
    },
    /// Add a source: an MCP server started here (--command, owner only), one at a URL (--url), or a built-in toolset (--toolset).
    Add {
        /// A unique slug; it prefixes tool names when two sources offer the same one.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A built-in toolset.
        #[arg(long, value_enum, conflicts_with_all = ["command", "url"])]
        toolset: Option<Toolset>,
        /// The MCP server program (stdio), e.g. `npx`; arguments go in --arg.
        #[arg(long, conflicts_with = "url")]
        command: Option<String>,
        /// An argument of --command (repeat for several).
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// A streamable-HTTP MCP endpoint.
        #[arg(long)]
        url: Option<String>,
        /// KEY=VALUE for the stdio server's environment (plain text; use --env-vault for secrets).
        #[arg(long)]
        env: Vec<String>,
        /// KEY=vlt_… : an environment variable taken from a vault.
        #[arg(long)]
        env_vault: Vec<String>,
        /// Name=VALUE HTTP header (plain text).
        #[arg(long)]
        header: Vec<String>,
        /// Name=vlt_…[:PREFIX] : a header taken from a vault, e.g. Authorization=vlt_…:"Bearer ".
        #[arg(long)]
        header_vault: Vec<String>,
        /// Connect-and-list timeout in seconds (default 10).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Delete a source (owner only; agents using it lose its tools). Asks first.
    Delete {
        /// The source id (src_…).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn pair<'a>(raw: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => bail!("--{flag} takes KEY=VALUE, got `{raw}`"),
    }
}

fn vault_ref(raw: &str) -> Value {
    match raw.split_once(':') {
        Some((vault, prefix)) => json!({"vault_id": vault, "prefix": prefix}),
        None => json!({"vault_id": raw}),
    }
}

pub async fn run(ctx: &Context, cmd: SourceCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        SourceCommand::List => {
            let listing = api.list_all("/v1/sources", &[]).await?;
            ctx.out.show(&listing.to_json(), || {
                let mut t = table(&["ID", "NAME", "KIND", "WHAT", "CREATED"]);
                for s in &listing.items {
                    let what = match s["kind"].as_str() {
                        Some("mcp_stdio") => cell(&s["command"]),
                        Some("mcp_http") => cell(&s["url"]),
                        _ => cell(&s["toolset"]),
                    };
                    t.add_row(vec![cell(&s["id"]), cell(&s["name"]), cell(&s["kind"]), what, when(&s["created_at"])]);
                }
                print_table(&t, "no tool sources in this sandbox; add one with `steward source add`");
            })
        }
        SourceCommand::Get { id: raw } => {
            let sid = id(&raw, "src_", "see `steward source list`")?;
            let s = api.get(&format!("/v1/sources/{sid}")).await?;
            ctx.out.show(&s, || println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default()))
        }
        SourceCommand::Add { name, description, toolset, command, args, url, env, env_vault, header, header_vault, timeout } => {
            let mut body = json!({"name": name});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            match (toolset, command, url) {
                (Some(t), None, None) => {
                    body["kind"] = json!("builtin");
                    body["toolset"] = json!(match t {
                        Toolset::Workspace => "workspace",
                        Toolset::Shell => "shell",
                        Toolset::HttpFetch => "http_fetch",
                    });
                }
                (None, Some(c), None) => {
                    body["kind"] = json!("mcp_stdio");
                    body["command"] = json!(c);
                    body["args"] = json!(args);
                }
                (None, None, Some(u)) => {
                    body["kind"] = json!("mcp_http");
                    body["url"] = json!(u);
                }
                _ => bail!("give exactly one of --toolset, --command or --url"),
            }
            let mut envs = Map::new();
            for e in &env {
                let (k, v) = pair(e, "env")?;
                envs.insert(k.into(), json!(v));
            }
            for e in &env_vault {
                let (k, v) = pair(e, "env-vault")?;
                envs.insert(k.into(), vault_ref(v));
            }
            if !envs.is_empty() {
                body["env"] = Value::Object(envs);
            }
            let mut headers = Map::new();
            for h in &header {
                let (k, v) = pair(h, "header")?;
                headers.insert(k.into(), json!(v));
            }
            for h in &header_vault {
                let (k, v) = pair(h, "header-vault")?;
                headers.insert(k.into(), vault_ref(v));
            }
            if !headers.is_empty() {
                body["headers"] = Value::Object(headers);
            }
            if let Some(t) = timeout {
                body["timeout_seconds"] = json!(t);
            }
            let s = api.post("/v1/sources", &body).await?;
            ctx.out.show(&s, || {
                print_fields(&[("id", cell(&s["id"])), ("name", cell(&s["name"])), ("kind", cell(&s["kind"]))]);
                eprintln!("\nadd it to an agent: steward agent update <agent> --tool-source {}", cell(&s["id"]));
            })
        }
        SourceCommand::Delete { id: raw, yes } => {
            let sid = id(&raw, "src_", "see `steward source list`")?;
            if !yes {
                let s = api.get(&format!("/v1/sources/{sid}")).await?;
                eprintln!(
                    "source {sid} `{}` ({}), created {}; agents that list it lose its tools",
                    cell(&s["name"]),
                    cell(&s["kind"]),
                    when(&s["created_at"])
                );
            }
            confirm(&format!("delete source {sid}"), yes)?;
            let done = api.delete(&format!("/v1/sources/{sid}")).await?;
            ctx.out.show(&done, || println!("deleted source {sid}"))
        }
    }
}
