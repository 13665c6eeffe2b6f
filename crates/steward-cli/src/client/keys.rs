//! `steward apikey create|list|revoke` (§1): keys of the current sandbox. The secret is
//! printed once at creation; revocation shows the key and asks first (§9).

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::agents;
use super::context::Context;
use super::http::{Api, id};
use super::output::{cell, confirm, print_fields, print_table, table, when};

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum KeyKind {
    /// Acts as your account, with your role in each sandbox.
    Account,
    /// May only start, message and read the sessions of one agent (--agent).
    AgentInvoke,
    /// Like agent_invoke, with sessions partitioned by end user, for embedding (--agent).
    AgentDelegate,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            KeyKind::Account => "account",
            KeyKind::AgentInvoke => "agent_invoke",
            KeyKind::AgentDelegate => "agent_delegate",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key in the current sandbox; its secret is shown only once.
    Create {
        /// A label to tell the key apart, e.g. `ci` or `laptop`.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "account")]
        kind: KeyKind,
        /// The agent (id or name) an agent_invoke or agent_delegate key acts for.
        #[arg(long)]
        agent: Option<String>,
    },
    /// List the keys of the current sandbox (never their secrets).
    List,
    /// Revoke a key, effective immediately. Owner only; asks first.
    Revoke {
        /// The key id (key_…), from `steward apikey list`.
        key_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(ctx: &Context, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        ApiKeyCommand::Create { name, kind, agent } => {
            let mut body = json!({ "name": name, "kind": kind.as_str() });
            if let Some(a) = agent {
                body["agent_id"] = json!(agents::resolve(&api, &a).await?);
            }
            let key = api.post("/v1/api_keys", &body).await?;
            ctx.out.show(&key, || {
                print_fields(&[
                    ("id", cell(&key["id"])),
                    ("name", cell(&key["name"])),
                    ("kind", cell(&key["kind"])),
                    ("sandbox", cell(&key["sandbox_id"])),
                    ("agent", cell(&key["agent_id"])),
                    ("secret", cell(&key["secret"])),
                ]);
                eprintln!("\nthe secret is shown only this once; store it now (e.g. export STEWARD_API_KEY=…)");
            })
        }
        ApiKeyCommand::List => {
            let listing = api.list_all("/v1/api_keys", &[]).await?;
            ctx.out.show(&listing.to_json(), || {
                let mut t = table(&["ID", "NAME", "KIND", "PREFIX", "AGENT", "CREATED", "REVOKED"]);
                for k in &listing.items {
                    t.add_row(vec![
                        cell(&k["id"]),
                        cell(&k["name"]),
                        cell(&k["kind"]),
                        cell(&k["prefix"]),
                        cell(&k["agent_id"]),
                        when(&k["created_at"]),
                        when(&k["revoked_at"]),
                    ]);
                }
                print_table(&t, "no API keys in this sandbox");
            })
        }
        ApiKeyCommand::Revoke { key_id, yes } => {
            let key_id = id(&key_id, "key_", "see `steward apikey list`")?;
            if !yes {
                let key = find(&api, key_id).await?;
                eprintln!(
                    "API key {key_id} `{}` ({}, {}…), created {}; everything using it stops working at once",
                    cell(&key["name"]),
                    cell(&key["kind"]),
                    cell(&key["prefix"]),
                    when(&key["created_at"])
                );
                if key["revoked_at"].is_string() {
                    eprintln!("  (it was already revoked at {})", cell(&key["revoked_at"]));
                }
            }
            confirm(&format!("revoke API key {key_id}"), yes)?;
            let done = api.post(&format!("/v1/api_keys/{key_id}/revoke"), &json!({})).await?;
            ctx.out.show(&done, || {
                println!("revoked API key {key_id} ({})", cell(&done["name"]));
            })
        }
    }
}

/// The key with this id among the current sandbox's keys.
async fn find(api: &Api, key_id: &str) -> anyhow::Result<Value> {
    let listing = api.list_all("/v1/api_keys", &[]).await?;
    match listing.items.into_iter().find(|k| k["id"] == key_id) {
        Some(k) => Ok(k),
        None => bail!(
            "API key {key_id} is not among this sandbox's keys; pass the sandbox it was created in with --sandbox (see `steward apikey list`)"
        ),
    }
}
