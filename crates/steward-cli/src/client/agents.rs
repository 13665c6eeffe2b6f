//! `steward agent …` (§3): list, get, create, update, archive, delete (§9: shows the agent and
//! asks first), the state changes and the version history. An agent is named by its id
//! (`agt_…`) or by its name in the current sandbox.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::agent_fields::{AgentFields, body_file};
use super::context::Context;
use super::http::{Api, id};
use super::output::{cell, confirm, print_fields, print_table, short, table, when};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List the agents of the current sandbox.
    List {
        /// List archived agents instead of live ones.
        #[arg(long)]
        archived: bool,
    },
    /// Show one agent at its current version.
    Get {
        /// Agent id (agt_…) or name.
        agent: String,
    },
    /// Create an agent from flags, or from a JSON file with --file.
    Create {
        #[command(flatten)]
        fields: AgentFields,
        /// A JSON file with the whole agent (the body of POST /v1/agents), sent as is; `-` for stdin.
        #[arg(long, value_name = "PATH", conflicts_with = "AgentFields")]
        file: Option<PathBuf>,
    },
    /// Change only the fields given; the agent's version goes up by one.
    ///
    /// `--tool`, `--tool-source` and `--meta` replace the whole list or map.
    Update {
        /// Agent id (agt_…) or name.
        agent: String,
        #[command(flatten)]
        fields: AgentFields,
        /// Go back to the model's default temperature.
        #[arg(long, conflicts_with = "temperature")]
        clear_temperature: bool,
        /// A JSON file of fields to change (the body of PATCH /v1/agents/{id}), sent as is; `-` for stdin.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["AgentFields", "clear_temperature"])]
        file: Option<PathBuf>,
    },
    /// Archive an agent: it takes no new work; existing sessions keep their version.
    Archive {
        /// Agent id (agt_…) or name.
        agent: String,
    },
    /// Delete an agent and all its versions. Irreversible; owner only; asks first.
    Delete {
        /// Agent id (agt_…) or name.
        agent: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Pause an agent: it accepts nothing new; in-flight runs finish.
    Pause {
        /// Agent id (agt_…) or name.
        agent: String,
    },
    /// Resume a paused, stopped or failed agent.
    Resume {
        /// Agent id (agt_…) or name.
        agent: String,
    },
    /// Stop an agent: in-flight runs are cancelled and it takes no work.
    Stop {
        /// Agent id (agt_…) or name.
        agent: String,
    },
    /// List an agent's versions, newest first.
    Versions {
        /// Agent id (agt_…) or name.
        agent: String,
    },
}

const ID_HINT: &str = "pass an agent id or name (see `steward agent list`)";

pub async fn run(ctx: &Context, cmd: AgentCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    let out = ctx.out;
    match cmd {
        AgentCommand::List { archived } => list(ctx, &api, archived).await,
        AgentCommand::Get { agent } => {
            let a = find(&api, &agent).await?;
            out.show(&a, || print_agent(&a))
        }
        AgentCommand::Create { fields, file } => {
            let body = match file {
                Some(path) => body_file(&path)?,
                None => {
                    let body = fields.to_body()?;
                    if !body.contains_key("name") || !body.contains_key("model") {
                        bail!("an agent needs --name and --model (or pass --file agent.json)");
                    }
                    Value::Object(body)
                }
            };
            let a = api.post("/v1/agents", &body).await?;
            out.show(&a, || print_agent(&a))
        }
        AgentCommand::Update { agent, fields, clear_temperature, file } => {
            let body = match file {
                Some(path) => body_file(&path)?,
                None => {
                    let mut body = fields.to_body()?;
                    if clear_temperature {
                        body.insert("temperature".into(), Value::Null);
                    }
                    if body.is_empty() {
                        bail!("nothing to update: pass at least one field flag (see `steward agent update --help`)");
                    }
                    Value::Object(body)
                }
            };
            let agent_id = resolve(&api, &agent).await?;
            let a = api.patch(&format!("/v1/agents/{agent_id}"), &body).await?;
            out.show(&a, || print_agent(&a))
        }
        AgentCommand::Archive { agent } => {
            let agent_id = resolve(&api, &agent).await?;
            let a = api.post(&format!("/v1/agents/{agent_id}/archive"), &json!({})).await?;
            out.show(&a, || {
                println!("archived agent {} ({agent_id}); existing sessions keep their version", cell(&a["name"]));
            })
        }
        AgentCommand::Delete { agent, yes } => {
            let a = find(&api, &agent).await?;
            let agent_id = a["id"].as_str().unwrap_or_default().to_owned();
            eprintln!(
                "agent {} ({agent_id}), version {}, state {}{}; deleting removes it and all its versions",
                cell(&a["name"]),
                cell(&a["version"]),
                cell(&a["state"]),
                if a["archived_at"].is_string() { ", archived" } else { "" }
            );
            confirm(&format!("delete agent {}", cell(&a["name"])), yes)?;
            let done = api.delete(&format!("/v1/agents/{agent_id}")).await?;
            out.show(&done, || {
                println!("deleted agent {} ({agent_id})", cell(&a["name"]));
            })
        }
        AgentCommand::Pause { agent } => set_state(ctx, &api, &agent, "pause").await,
        AgentCommand::Resume { agent } => set_state(ctx, &api, &agent, "resume").await,
        AgentCommand::Stop { agent } => set_state(ctx, &api, &agent, "stop").await,
        AgentCommand::Versions { agent } => {
            let agent_id = resolve(&api, &agent).await?;
            let listing = api.list_all(&format!("/v1/agents/{agent_id}/versions"), &[]).await?;
            out.show(&listing.to_json(), || {
                let mut t = table(&["VERSION", "CREATED", "NAME", "MODEL", "TURNS", "TEMP", "PROMPT"]);
                for v in &listing.items {
                    t.add_row(vec![
                        cell(&v["version"]),
                        when(&v["created_at"]),
                        cell(&v["name"]),
                        model(v),
                        cell(&v["max_turns"]),
                        cell(&v["temperature"]),
                        short(v["system_prompt"].as_str().unwrap_or(""), 40),
                    ]);
                }
                print_table(&t, "no versions");
            })
        }
    }
}

async fn list(ctx: &Context, api: &Api, archived: bool) -> anyhow::Result<()> {
    let listing = api.list_all("/v1/agents", &[("archived", archived.to_string())]).await?;
    ctx.out.show(&listing.to_json(), || {
        let mut t = table(&["ID", "NAME", "MODEL", "STATE", "VERSION", "UPDATED"]);
        for a in &listing.items {
            t.add_row(vec![cell(&a["id"]), cell(&a["name"]), model(a), cell(&a["state"]), cell(&a["version"]), when(&a["updated_at"])]);
        }
        let empty = if archived {
            "no archived agents"
        } else {
            "no agents yet; create one with `steward agent create --name NAME --model PROVIDER/MODEL`"
        };
        print_table(&t, empty);
        if listing.next_cursor.is_some() {
            eprintln!("(showing the first {}; use the API's cursor for more)", listing.items.len());
        }
    })
}

async fn set_state(ctx: &Context, api: &Api, agent: &str, action: &str) -> anyhow::Result<()> {
    let agent_id = resolve(api, agent).await?;
    let a = api.post(&format!("/v1/agents/{agent_id}/{action}"), &json!({})).await?;
    ctx.out.show(&a, || {
        println!("agent {} ({agent_id}) is now {}", cell(&a["name"]), cell(&a["state"]));
    })
}

/// The agent an id or name refers to. Names are looked up among live agents, then archived ones.
async fn find(api: &Api, agent: &str) -> anyhow::Result<Value> {
    if agent.starts_with("agt_") {
        let agent_id = id(agent, "agt_", ID_HINT)?;
        return api.get(&format!("/v1/agents/{agent_id}")).await;
    }
    for archived in [false, true] {
        let listing = api.list_all("/v1/agents", &[("archived", archived.to_string())]).await?;
        if let Some(a) = listing.items.into_iter().find(|a| a["name"] == agent) {
            return Ok(a);
        }
    }
    bail!("no agent named `{agent}` in this sandbox; see `steward agent list` (or pass --sandbox)")
}

/// The id of the agent an id or name refers to, without a request when it is an id.
pub(super) async fn resolve(api: &Api, agent: &str) -> anyhow::Result<String> {
    if agent.starts_with("agt_") {
        return Ok(id(agent, "agt_", ID_HINT)?.to_owned());
    }
    let a = find(api, agent).await?;
    Ok(a["id"].as_str().unwrap_or_default().to_owned())
}

fn model(a: &Value) -> String {
    format!("{}/{}", cell(&a["model"]["provider_id"]), cell(&a["model"]["name"]))
}

fn print_agent(a: &Value) {
    let state = match a["state_reason"].as_str() {
        Some(r) => format!("{} ({r})", cell(&a["state"])),
        None => cell(&a["state"]),
    };
    let balance = if a["token_balance"].is_null() { "unlimited".to_owned() } else { cell(&a["token_balance"]) };
    let mut rows = vec![
        ("id", cell(&a["id"])),
        ("name", cell(&a["name"])),
        ("description", cell(&a["description"])),
        ("model", model(a)),
        ("state", state),
        ("version", cell(&a["version"])),
        ("system prompt", short(a["system_prompt"].as_str().unwrap_or(""), 60)),
        ("tool sources", cell(&a["tool_sources"])),
        ("tools", cell(&a["tools"])),
        ("max turns", cell(&a["max_turns"])),
        ("max output tokens", cell(&a["max_output_tokens"])),
        ("temperature", cell(&a["temperature"])),
        ("metadata", cell(&a["metadata"])),
        ("token balance", balance),
        ("updated", when(&a["updated_at"])),
    ];
    if a["archived_at"].is_string() {
        rows.push(("archived", when(&a["archived_at"])));
    }
    print_fields(&rows);
}
