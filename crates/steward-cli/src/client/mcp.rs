//! `steward mcp`: the management tools (§5) as an MCP server on stdin/stdout, for any MCP client
//! (an IDE, a desktop assistant, another agent). The tools call the REST API with this command's
//! credential in this command's sandbox, so the caller's role decides the catalog exactly as it
//! does for the Concierge: owners and editors get all 28 tools, viewers the 13 read tools.
//!
//! Stdout carries MCP frames only: everything this module says goes to stderr, and any problem
//! with the credential or the sandbox ends the command before the first frame.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use steward_core::tenancy::Role;
use steward_manage::mcp::ManagementServer;
use steward_manage::{HttpApi, Toolkit};

use super::context::Context;
use super::http::id;

/// Long enough for `test_agent`, which waits for a whole agent run.
const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn serve(ctx: &Context) -> anyhow::Result<()> {
    // Warnings from the MCP layer (e.g. a malformed frame) go to stderr, never to stdout.
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_writer(std::io::stderr).try_init();

    let api = ctx.api()?;
    let sandbox = ctx.sandbox_or_home(&api).await?;
    let sandbox = id(&sandbox, "sbx_", "see `steward sandbox list`")?.to_owned();
    let view = api.get(&format!("/v1/sandboxes/{sandbox}")).await?;
    let role: Role = view["role"]
        .as_str()
        .context("the server's answer for the sandbox has no `role`; is this a Steward server?")?
        .parse()
        .map_err(|e: steward_core::ValidationError| anyhow::anyhow!("the server named an unknown role: {}", e.message))?;

    let token = ctx.credential(Utc::now())?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("steward-cli/", env!("CARGO_PKG_VERSION"), " (mcp)"))
        .connect_timeout(Duration::from_secs(10))
        .timeout(TOOL_CALL_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let api = HttpApi::new(http, ctx.server.clone(), sandbox.clone(), Arc::new(move || token.expose().to_owned()));
    let toolkit = Toolkit::new(Arc::new(api), sandbox.clone(), role);
    let count = toolkit.tools().len();
    eprintln!(
        "steward mcp: serving {count} management tools for sandbox {sandbox} ({}) as {role} on {} over stdio",
        view["name"].as_str().unwrap_or("?"),
        ctx.server
    );
    ManagementServer::new(toolkit).serve_stdio().await?;
    Ok(())
}
