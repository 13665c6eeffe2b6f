//! `steward setup` (a sandbox for this directory) and `steward sandbox
//! list|update|archive|destroy` (§1, §9). Archive and destroy show what they affect and ask
//! first.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::context::Context;
use super::credentials::{Refs, refs_path};
use super::http::{Api, id};
use super::output::{cell, confirm, print_table, table, when};

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The sandbox's name [default: this directory's name]
    #[arg(long)]
    name: Option<String>,
    /// Replace an existing .steward/refs.json (the old sandbox is left as it is).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// List the sandboxes you have a role in.
    List {
        /// List archived sandboxes instead of live ones.
        #[arg(long)]
        archived: bool,
    },
    /// Rename a sandbox or set its time zone (local times such as a pause until `09:00` are read in it).
    Update {
        /// The sandbox id (sbx_…) [default: the current sandbox]
        id: Option<String>,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// An IANA time zone, e.g. `Europe/Berlin`.
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// Archive a sandbox: it becomes read-only. Owner only; asks first.
    Archive {
        /// The sandbox id (sbx_…).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Destroy a sandbox and everything in it. Irreversible; owner only; asks first.
    Destroy {
        /// The sandbox id (sbx_…).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

const ID_HINT: &str = "see `steward sandbox list`";

/// `steward setup`: create a sandbox and bind this directory to it.
pub async fn setup(ctx: &Context, args: SetupArgs) -> anyhow::Result<()> {
    let path = refs_path(&ctx.cwd);
    if path.exists() && !args.force {
        bail!("{} already exists, so this directory is set up; pass --force to create a new sandbox and replace it", path.display());
    }
    let name = match args.name {
        Some(n) => n,
        None => ctx.cwd.file_name().map(|n| n.to_string_lossy().into_owned()).context("this directory has no name to use; pass --name")?,
    };
    let api = ctx.api()?;
    let sandbox = api.post("/v1/sandboxes", &json!({ "name": name })).await?;
    let sandbox_id = sandbox["id"].as_str().context("the server's answer has no sandbox `id`")?.to_owned();
    let refs = Refs { sandbox_id: sandbox_id.clone(), server: ctx.server.clone() };
    let written = refs.write(&ctx.cwd)?;
    ctx.out.show(&sandbox, || {
        println!("created sandbox {} ({sandbox_id})", cell(&sandbox["name"]));
        println!("wrote {}; commands run in this directory now act in it", written.display());
    })
}

pub async fn run(ctx: &Context, cmd: SandboxCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        SandboxCommand::List { archived } => list(ctx, &api, archived).await,
        SandboxCommand::Update { id: raw, name, time_zone } => {
            if name.is_none() && time_zone.is_none() {
                bail!("nothing to update: pass --name and/or --time-zone");
            }
            let sbx = match raw {
                Some(raw) => id(&raw, "sbx_", ID_HINT)?.to_owned(),
                None => ctx.sandbox_or_home(&api).await?,
            };
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(z) = time_zone {
                body.insert("time_zone".into(), json!(z));
            }
            let done = api.patch(&format!("/v1/sandboxes/{sbx}"), &serde_json::Value::Object(body)).await?;
            ctx.out.show(&done, || {
                println!("sandbox {} ({sbx}): time zone {}", cell(&done["name"]), cell(&done["time_zone"]));
            })
        }
        SandboxCommand::Archive { id: raw, yes } => {
            let sbx = id(&raw, "sbx_", ID_HINT)?;
            preview(&api, sbx, Action::Archive).await?;
            confirm(&format!("archive sandbox {sbx}"), yes)?;
            let done = api.post(&format!("/v1/sandboxes/{sbx}/archive"), &json!({})).await?;
            ctx.out.show(&done, || {
                println!("archived sandbox {} ({sbx}); it is now read-only", cell(&done["name"]));
            })
        }
        SandboxCommand::Destroy { id: raw, yes } => {
            let sbx = id(&raw, "sbx_", ID_HINT)?;
            preview(&api, sbx, Action::Destroy).await?;
            confirm(&format!("destroy sandbox {sbx}"), yes)?;
            let done = api.delete(&format!("/v1/sandboxes/{sbx}")).await?;
            ctx.out.show(&done, || {
                println!("destroyed sandbox {sbx}");
                if ctx.sandbox.as_deref() == Some(sbx)
                    && let Some(from) = &ctx.sandbox_from
                {
                    println!("note: {from} still names it; run `steward setup --force` for a new one");
                }
            })
        }
    }
}

async fn list(ctx: &Context, api: &Api, archived: bool) -> anyhow::Result<()> {
    let query = [("archived", archived.to_string())];
    let listing = api.list_all("/v1/sandboxes", &query).await?;
    ctx.out.show(&listing.to_json(), || {
        let mut headers = vec!["", "ID", "NAME", "ROLE", "CREATED"];
        if archived {
            headers.push("ARCHIVED");
        }
        let mut t = table(&headers);
        for s in &listing.items {
            let current = ctx.sandbox.as_deref() == s["id"].as_str();
            let mut row =
                vec![if current { "*" } else { "" }.to_owned(), cell(&s["id"]), cell(&s["name"]), cell(&s["role"]), when(&s["created_at"])];
            if archived {
                row.push(when(&s["archived_at"]));
            }
            t.add_row(row);
        }
        print_table(&t, if archived { "no archived sandboxes" } else { "no sandboxes; create one with `steward setup`" });
        if listing.next_cursor.is_some() {
            eprintln!("(showing the first {}; use --json and the API's cursor for more)", listing.items.len());
        }
    })
}

/// What archiving or destroying a sandbox affects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Archive,
    Destroy,
}

/// Shows a sandbox and what it holds before archiving or destroying it.
async fn preview(api: &Api, sbx: &str, action: Action) -> anyhow::Result<()> {
    let sandbox = api.get(&format!("/v1/sandboxes/{sbx}")).await?;
    let in_it = api.with_sandbox(sbx);
    let agents = count(&in_it, "/v1/agents", false, "agent").await?;
    let archived = count(&in_it, "/v1/agents", true, "archived agent").await?;
    eprintln!(
        "sandbox {} ({sbx}), owner {}, created {}{}",
        cell(&sandbox["name"]),
        cell(&sandbox["owner_id"]),
        when(&sandbox["created_at"]),
        if sandbox["archived_at"].is_string() { ", already archived" } else { "" }
    );
    match action {
        Action::Archive => {
            eprintln!("  holds {agents} and {archived}; archiving makes it read-only");
        }
        Action::Destroy => {
            let keys = count(&in_it, "/v1/api_keys", false, "API key").await?;
            eprintln!("  holds {agents}, {archived} and {keys}; destroying removes them all, irreversibly");
            let me = api.get("/v1/me").await?;
            if me["key"]["sandbox_id"] == sbx {
                eprintln!("  the API key you are using was minted in it and stops working too");
            }
        }
    }
    Ok(())
}

/// "N things" in one page of a list endpoint ("100+ things" when there are more).
async fn count(api: &Api, path: &str, archived: bool, noun: &str) -> anyhow::Result<String> {
    let mut query = vec![("limit", "100".to_owned())];
    if archived {
        query.push(("archived", "true".to_owned()));
    }
    let page = api.get_query(path, &query).await?;
    let n = page["data"].as_array().map_or(0, Vec::len);
    let more = if page["next_cursor"].is_string() { "+" } else { "" };
    let plural = if n == 1 && more.is_empty() { "" } else { "s" };
    Ok(format!("{n}{more} {noun}{plural}"))
}
