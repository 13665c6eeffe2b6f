//! `steward grant add|list|remove` (§1): who else may work in the current sandbox, as
//! `editor` or `viewer`. Removing access shows the grant and asks first.

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::context::Context;
use super::http::id;
use super::output::{cell, confirm, print_table, table, when};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GrantRole {
    /// May read and make reversible changes.
    Editor,
    /// May only read.
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Share the current sandbox with someone (or change their role). Owner only.
    Add {
        /// Their email address; an account is created for a new address so they can log in.
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: GrantRole,
    },
    /// Who has access to the current sandbox.
    List,
    /// Remove someone's access to the current sandbox. Owner only; asks first.
    Remove {
        /// Their account id (acc_…), from `steward grant list`.
        account_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(ctx: &Context, cmd: GrantCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    let sbx = ctx.sandbox_or_home(&api).await?;
    let sbx = id(&sbx, "sbx_", "pass --sandbox sbx_… (see `steward sandbox list`)")?;
    let grants = format!("/v1/sandboxes/{sbx}/grants");
    match cmd {
        GrantCommand::Add { email, role } => {
            let role = match role {
                GrantRole::Editor => "editor",
                GrantRole::Viewer => "viewer",
            };
            let grant = api.post(&grants, &json!({ "email": email, "role": role })).await?;
            ctx.out.show(&grant, || {
                println!("{} ({}) is now {} in sandbox {sbx}", cell(&grant["email"]), cell(&grant["account_id"]), cell(&grant["role"]));
            })
        }
        GrantCommand::List => {
            let listing = api.list_all(&grants, &[]).await?;
            ctx.out.show(&listing.to_json(), || {
                let mut t = table(&["ACCOUNT", "EMAIL", "ROLE", "SINCE"]);
                for g in &listing.items {
                    t.add_row(vec![cell(&g["account_id"]), cell(&g["email"]), cell(&g["role"]), when(&g["created_at"])]);
                }
                print_table(&t, &format!("sandbox {sbx} is not shared with anyone"));
            })
        }
        GrantCommand::Remove { account_id, yes } => {
            let account = id(&account_id, "acc_", "see `steward grant list`")?;
            if !yes {
                let listing = api.list_all(&grants, &[]).await?;
                let Some(g) = listing.items.iter().find(|g| g["account_id"] == account) else {
                    bail!("account {account} has no grant on sandbox {sbx}; see `steward grant list`");
                };
                eprintln!("{} ({account}) loses the `{}` role in sandbox {sbx}", cell(&g["email"]), cell(&g["role"]));
            }
            confirm(&format!("remove {account}'s access"), yes)?;
            let done = api.delete(&format!("{grants}/{account}")).await?;
            ctx.out.show(&done, || {
                println!("removed {account}'s access to sandbox {sbx}");
            })
        }
    }
}
