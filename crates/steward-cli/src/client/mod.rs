//! The API client commands. (Being written.)

use clap::{Args, Subcommand};

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Server URL [default: the stored login's server, else http://127.0.0.1:8420]
    #[arg(long, global = true, env = "STEWARD_URL")]
    pub server: Option<String>,
    /// API key or session token [default: the stored login]
    #[arg(long, global = true, env = "STEWARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Sandbox to act in [default: .steward/refs.json, else the key's own sandbox]
    #[arg(long, global = true, env = "STEWARD_SANDBOX")]
    pub sandbox: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show who the current credentials belong to.
    Whoami,
}

pub async fn run(_opts: GlobalOpts, _cmd: Command) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
