//! `steward channel …` (§10): the sandbox's bot per chat platform (`bot set|show|delete`) and an
//! agent's links to chats (`link`, `status`, `unlink`, `list`). Bot secrets are read from
//! environment variables named on the command line or from a JSON object on stdin, never taken
//! as arguments (they would land in shell history and `ps`); the server never returns them.

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::agents;
use super::context::Context;
use super::output::{cell, confirm, print_fields, print_table, table, when};

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "lowercase")]
pub enum Platform {
    Slack,
    Discord,
    Telegram,
    Whatsapp,
}

impl Platform {
    fn as_str(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Discord => "discord",
            Platform::Telegram => "telegram",
            Platform::Whatsapp => "whatsapp",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "lowercase")]
pub enum Receive {
    /// Telegram calls this server's public URL (`--public-url`).
    Webhook,
    /// One replica long-polls Telegram (`getUpdates`): no public URL needed.
    Polling,
}

/// `FIELD=VALUE`.
fn pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{raw}` is not FIELD=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Configure (or replace) the sandbox's bot on a platform.
    ///
    /// Fields — Telegram: bot_token (+ webhook_secret, minted when absent); Slack: bot_token,
    /// signing_secret (+ app_token); Discord: application_id, public_key, bot_token; WhatsApp:
    /// phone_number_id, access_token, app_secret. Examples:
    ///
    ///   steward channel bot set telegram --secret-env bot_token=TELEGRAM_BOT_TOKEN --receive polling
    ///
    ///   steward channel bot set discord --set application_id=123 --set public_key=ab12… --secret-env bot_token=DISCORD_TOKEN
    Set {
        platform: Platform,
        /// A non-secret field, FIELD=VALUE (repeatable).
        #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = pair)]
        fields: Vec<(String, String)>,
        /// A secret field read from an environment variable, FIELD=VARIABLE (repeatable).
        #[arg(long = "secret-env", value_name = "FIELD=VARIABLE", value_parser = pair)]
        secret_env: Vec<(String, String)>,
        /// Read more fields as one JSON object from stdin.
        #[arg(long)]
        stdin_json: bool,
        /// Telegram: how messages arrive [default: webhook].
        #[arg(long, value_enum)]
        receive: Option<Receive>,
        /// Telegram: do not call setWebhook (you register the webhook yourself).
        #[arg(long)]
        no_webhook: bool,
        /// What senders are told while the agent is paused or stopped (one line).
        #[arg(long)]
        paused_message: Option<String>,
    },
    /// Show the sandbox's bot on a platform (settings and the names of its secret fields).
    Show { platform: Platform },
    /// Remove the sandbox's bot on a platform (links stay and work again once a bot is set).
    Delete { platform: Platform },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// The sandbox's bots.
    #[command(subcommand)]
    Bot(BotCommand),
    /// Get a one-time link code for an agent: send `/link CODE` to the bot from the chat to link.
    Link {
        /// The agent (id or name).
        agent: String,
        platform: Platform,
    },
    /// Whether an agent is linked on a platform, where, and the last failed reply.
    Status { agent: String, platform: Platform },
    /// Unlink an agent's chats on a platform (or only --chat).
    Unlink {
        agent: String,
        platform: Platform,
        /// Only this chat id.
        #[arg(long)]
        chat: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// The chats an agent is linked to, on every platform.
    List { agent: String },
}

pub async fn run(ctx: &Context, cmd: ChannelCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        ChannelCommand::Bot(BotCommand::Set { platform, fields, secret_env, stdin_json, receive, no_webhook, paused_message }) => {
            let mut body = Map::new();
            if stdin_json {
                let mut raw = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut raw).context("cannot read stdin")?;
                match serde_json::from_str::<Value>(&raw).context("stdin is not JSON")? {
                    Value::Object(m) => body.extend(m),
                    _ => bail!("--stdin-json wants one JSON object, e.g. {{\"bot_token\": \"…\"}}"),
                }
            }
            for (k, v) in fields {
                body.insert(k, json!(v));
            }
            for (k, var) in secret_env {
                // The variable is named on this command line: it is this command's input.
                let v = std::env::var(&var).with_context(|| format!("environment variable {var} (for {k}) is not set"))?;
                body.insert(k, json!(v));
            }
            if let Some(r) = receive {
                body.insert("receive".into(), json!(if matches!(r, Receive::Polling) { "polling" } else { "webhook" }));
            }
            if no_webhook {
                body.insert("register_webhook".into(), json!(false));
            }
            if let Some(m) = paused_message {
                body.insert("paused_message".into(), json!(m));
            }
            let bot = api.put(&format!("/v1/channels/{}/bot", platform.as_str()), &Value::Object(body)).await?;
            show_bot(ctx, &bot)
        }
        ChannelCommand::Bot(BotCommand::Show { platform }) => {
            let bot = api.get(&format!("/v1/channels/{}/bot", platform.as_str())).await?;
            show_bot(ctx, &bot)
        }
        ChannelCommand::Bot(BotCommand::Delete { platform }) => {
            let v = api.delete(&format!("/v1/channels/{}/bot", platform.as_str())).await?;
            ctx.out.show(&v, || println!("the {} bot was removed", platform.as_str()))
        }
        ChannelCommand::Link { agent, platform } => {
            let id = agents::resolve(&api, &agent).await?;
            let v = api.post(&format!("/v1/agents/{id}/{}/link", platform.as_str()), &json!({})).await?;
            ctx.out.show(&v, || {
                print_fields(&[("code", cell(&v["code"])), ("expires", when(&v["expires_at"])), ("deep link", cell(&v["deep_link"]))]);
                println!("\n{}", cell(&v["instruction"]));
                if v["bot_configured"] == false {
                    eprintln!("note: this sandbox has no {} bot yet; set one with `steward channel bot set`", platform.as_str());
                }
            })
        }
        ChannelCommand::Status { agent, platform } => {
            let id = agents::resolve(&api, &agent).await?;
            let v = api.get(&format!("/v1/agents/{id}/{}/status", platform.as_str())).await?;
            ctx.out.show(&v, || {
                println!("{}: {}", platform.as_str(), cell(&v["status"]));
                print_bindings(v["bindings"].as_array().map(Vec::as_slice).unwrap_or_default());
                let f = &v["last_delivery_failure"];
                if !f.is_null() {
                    println!("last failed reply: {} (HTTP {}) at {}", cell(&f["error"]), cell(&f["status_code"]), when(&f["at"]));
                }
            })
        }
        ChannelCommand::Unlink { agent, platform, chat, yes } => {
            let id = agents::resolve(&api, &agent).await?;
            let what = match &chat {
                Some(c) => format!("unlink {agent} from {} chat {c}", platform.as_str()),
                None => format!("unlink {agent} from every {} chat", platform.as_str()),
            };
            confirm(&what, yes)?;
            let mut path = format!("/v1/agents/{id}/{}/unlink", platform.as_str());
            if let Some(c) = &chat {
                path.push_str(&format!("?chat_id={}", urlencode(c)));
            }
            let v = api.delete(&path).await?;
            ctx.out.show(&v, || println!("{} chat(s) unlinked", cell(&v["removed"])))
        }
        ChannelCommand::List { agent } => {
            let id = agents::resolve(&api, &agent).await?;
            let v = api.get(&format!("/v1/agents/{id}/channels")).await?;
            ctx.out.show(&v, || print_bindings(v["data"].as_array().map(Vec::as_slice).unwrap_or_default()))
        }
    }
}

fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn print_bindings(bindings: &[Value]) {
    let mut t = table(&["PLATFORM", "CHAT", "KIND", "TITLE", "USER", "RESPOND", "LINKED"]);
    for b in bindings {
        t.add_row(vec![
            cell(&b["platform"]),
            cell(&b["chat_id"]),
            cell(&b["chat_kind"]),
            cell(&b["chat_title"]),
            cell(&b["user_name"]),
            cell(&b["respond"]),
            when(&b["linked_at"]),
        ]);
    }
    print_table(&t, "no linked chats; get a code with `steward channel link <agent> <platform>`");
}

fn show_bot(ctx: &Context, bot: &Value) -> anyhow::Result<()> {
    ctx.out.show(bot, || {
        if bot["configured"] == false {
            println!(
                "no {} bot in this sandbox; set one with `steward channel bot set {}`",
                cell(&bot["platform"]),
                cell(&bot["platform"])
            );
            return;
        }
        print_fields(&[
            ("platform", cell(&bot["platform"])),
            ("sandbox", cell(&bot["sandbox_id"])),
            ("settings", cell(&bot["settings"])),
            ("secrets", cell(&bot["secret_fields"])),
            ("webhook", cell(&bot["webhook_path"])),
            ("updated", when(&bot["updated_at"])),
        ]);
    })
}
