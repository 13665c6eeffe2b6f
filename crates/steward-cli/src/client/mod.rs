//! The API client commands: everything `steward` does by calling a Steward server over HTTP.
//!
//! `context.rs` decides once which server, credential and sandbox a command uses; `http.rs`
//! is the one HTTP client; `output.rs` prints tables or JSON and asks for confirmation; the
//! other files hold one resource's commands each. This module never touches the store.

mod agent_fields;
mod agents;
mod auth;
mod channels;
mod chat;
mod context;
mod credentials;
mod grants;
mod http;
mod integrations;
mod keys;
mod mcp;
mod output;
mod providers;
mod sandboxes;
mod sources;
mod triggers;

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Server URL [default: .steward/refs.json's server, else the stored login's, else http://127.0.0.1:8420]
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
    /// Where the stored login lives [default: the user's config dir, e.g. ~/.config/steward]
    #[arg(long, global = true, env = "STEWARD_CONFIG_DIR", hide = true)]
    pub config_dir: Option<PathBuf>,
}

// Parsed once per process, so the size of the agent flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in with a one-time code sent to your email; stores a session token.
    Login(auth::LoginArgs),
    /// Forget the stored session token.
    Logout,
    /// Show who the current credentials belong to.
    Whoami,
    /// Create a sandbox for this directory and write .steward/refs.json.
    Setup(sandboxes::SetupArgs),
    /// Sandboxes: list, archive, destroy.
    #[command(subcommand)]
    Sandbox(sandboxes::SandboxCommand),
    /// API keys of the current sandbox: create, list, revoke.
    #[command(subcommand)]
    Apikey(keys::ApiKeyCommand),
    /// Share the current sandbox: add, list, remove grants.
    #[command(subcommand)]
    Grant(grants::GrantCommand),
    /// Agents of the current sandbox.
    #[command(subcommand)]
    Agent(agents::AgentCommand),
    /// Tool sources of the current sandbox: list, get, add, delete.
    #[command(subcommand)]
    Source(sources::SourceCommand),
    /// Model providers of the current sandbox, which agents and the Concierge call: list, get, add, delete.
    #[command(subcommand)]
    Provider(providers::ProviderCommand),
    /// Webhook triggers of an agent: create, list, pause, resume, disconnect.
    #[command(subcommand)]
    Trigger(triggers::TriggerCommand),
    /// Cron schedules of an agent: create, list, pause, resume, history.
    #[command(subcommand)]
    Schedule(triggers::ScheduleCommand),
    /// Chat channels: a bot per platform (bot set|show|delete), and agents linked to chats (link, status, unlink, list).
    #[command(subcommand)]
    Channel(channels::ChannelCommand),
    /// Integration apps (Slack, GitHub, …): list, connect accounts, revoke, publish agents.
    #[command(subcommand)]
    Integration(integrations::IntegrationCommand),
    /// Talk to the Concierge, the assistant that manages the current sandbox (interactive, or one turn with -m).
    ///
    /// At the prompt, /new starts a new conversation and /exit (or end of input) quits; Ctrl-C
    /// stops a reply (the server cancels that run). With -m, the session id goes to stderr so a
    /// script can continue with --session; --json prints each event as one JSON line.
    Chat(chat::ChatArgs),
    /// Serve the management tools as an MCP server on stdin/stdout.
    ///
    /// An MCP client starts `steward mcp` and speaks MCP over its stdin and stdout. The tools act
    /// in the current sandbox (--sandbox, else .steward/refs.json, else the API key's own) with
    /// your credential and your role there: owners and editors get all 28 tools, viewers the 13
    /// read tools. Destructive operations stay CLI-only. Nothing but MCP goes to stdout.
    ///
    /// In an MCP client's configuration:
    ///
    /// {"command": "steward", "args": ["mcp"], "env": {"STEWARD_URL": "https://steward.example.com", "STEWARD_API_KEY": "stw_…", "STEWARD_SANDBOX": "sbx_…"}}
    Mcp,
}

pub async fn run(opts: GlobalOpts, cmd: Command) -> anyhow::Result<()> {
    let ctx = context::Context::resolve(opts)?;
    let result = match cmd {
        Command::Login(args) => auth::login(&ctx, args).await,
        Command::Logout => auth::logout(&ctx),
        Command::Whoami => auth::whoami(&ctx).await,
        Command::Setup(args) => sandboxes::setup(&ctx, args).await,
        Command::Sandbox(cmd) => sandboxes::run(&ctx, cmd).await,
        Command::Apikey(cmd) => keys::run(&ctx, cmd).await,
        Command::Grant(cmd) => grants::run(&ctx, cmd).await,
        Command::Agent(cmd) => agents::run(&ctx, cmd).await,
        Command::Source(cmd) => sources::run(&ctx, cmd).await,
        Command::Provider(cmd) => providers::run(&ctx, cmd).await,
        Command::Trigger(cmd) => triggers::run_trigger(&ctx, cmd).await,
        Command::Schedule(cmd) => triggers::run_schedule(&ctx, cmd).await,
        Command::Integration(cmd) => integrations::run(&ctx, cmd).await,
        Command::Channel(cmd) => channels::run(&ctx, cmd).await,
        Command::Mcp => mcp::serve(&ctx).await,
        Command::Chat(args) => chat::run(&ctx, args).await,
    };
    match result {
        Err(e) => Err(with_sandbox_hint(&ctx, e).await),
        ok => ok,
    }
}

/// A 404 caused by the sandbox a refs file or `--sandbox` chose says where that choice came
/// from. Whether the sandbox is the missing thing is asked of the server (`GET
/// /v1/sandboxes/{id}` answering `not_found`), not read from the error's wording.
async fn with_sandbox_hint(ctx: &context::Context, e: anyhow::Error) -> anyhow::Error {
    let (Some(sandbox), Some(from)) = (&ctx.sandbox, &ctx.sandbox_from) else {
        return e;
    };
    if e.downcast_ref::<http::ApiError>().is_none_or(|a| a.kind != "not_found") {
        return e;
    }
    let Ok(api) = ctx.api() else { return e };
    match api.get(&format!("/v1/sandboxes/{sandbox}")).await {
        Err(check) if check.downcast_ref::<http::ApiError>().is_some_and(|a| a.kind == "not_found") => {
            anyhow::anyhow!("{e}\nhint: sandbox {sandbox} was chosen by {from}; `steward sandbox list` shows the ones you can use")
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
        #[command(flatten)]
        client: GlobalOpts,
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn channel_commands_parse() {
        let ok = Cli::try_parse_from([
            "steward",
            "channel",
            "bot",
            "set",
            "telegram",
            "--secret-env",
            "bot_token=TG_TOKEN",
            "--receive",
            "polling",
        ]);
        assert!(ok.is_ok(), "{ok:?}");
        let ok = Cli::try_parse_from(["steward", "channel", "link", "helper", "telegram"]);
        assert!(ok.is_ok(), "{ok:?}");
        assert!(Cli::try_parse_from(["steward", "channel", "link", "helper", "signal"]).is_err());
        assert!(Cli::try_parse_from(["steward", "channel", "bot", "set", "slack", "--set", "no-equals"]).is_err());
    }

    #[test]
    fn agent_update_takes_flags_or_a_file_but_not_both() {
        let ok = Cli::try_parse_from(["steward", "agent", "update", "x", "--max-turns", "3"]);
        assert!(ok.is_ok(), "{ok:?}");
        let both = Cli::try_parse_from(["steward", "agent", "update", "x", "--name", "y", "--file", "a.json"]);
        assert!(both.is_err());
        let both = Cli::try_parse_from(["steward", "agent", "update", "x", "--clear-temperature", "--temperature", "1"]);
        assert!(both.is_err());
    }
}
