//! Agents (§3): `list_agents`, `get_agent`, `create_agent`, the four partial updates
//! (`update_agent_prompt`, `update_agent_tools`, `update_agent_model_settings`,
//! `update_agent_tool_sources`) and `test_agent`. Every update is a `PATCH` holding only the
//! fields the user mentioned; list edits (`add`/`remove`) read the current list first.
//! Deleting an agent is CLI-only (§9: `steward agent delete`).

use serde_json::{Map, Value, json};

use super::rest::{Rest, capped, done, excerpt, listing, pick, seg};
use super::schema::{self, Args};

const AGENT_ARG: &str = "The agent: its id (`agt_…`) or its name (e.g. `support`).";

pub(super) fn definition(name: &str) -> Option<(&'static str, Value)> {
    Some(match name {
        "list_agents" => (
            "List the agents of the sandbox: id, name, description, state (`active`, `paused`, `stopped`, `error` with a reason), \
             model, version, tool sources and tool allowlist. Use it to find an agent the user names, and before updating one. \
             Deleting an agent is not a tool: tell the user to run `steward agent delete <agent>` (owner only, irreversible).",
            schema::object(json!({"archived": schema::boolean("List archived agents instead of live ones (default false).")}), &[]),
        ),
        "get_agent" => (
            "Show one agent at its current version: the whole configuration (model, system prompt, tool sources, tool allowlist, \
             max_turns, max_output_tokens, temperature), state and version. Read it before changing the agent so the change \
             touches only what the user asked for.",
            schema::object(json!({"agent": schema::agent(AGENT_ARG)}), &["agent"]),
        ),
        "create_agent" => (
            "Create an agent (version 1, state `active`). Needs a name, a provider id and a model name: if the user did not say \
             which model or what to call the agent, ask instead of guessing. `tool_sources` are source ids from list_sources; \
             `tools` is an allowlist of tool names (empty: every tool of the sources). Check the result with list_agent_tools \
             and try it with test_agent.",
            schema::object(
                json!({
                    "name": schema::slug("Unique name in the sandbox: lowercase letters, digits, `-`, `_` (e.g. `support-triage`)."),
                    "description": schema::string("What the agent does, one sentence."),
                    "provider_id": schema::slug("The model provider id configured in the sandbox, e.g. `anthropic` or `openai`."),
                    "model": schema::text("The provider's model name, e.g. `claude-sonnet-4-6`.", 200),
                    "system_prompt": schema::string("The agent's instructions."),
                    "max_turns": schema::integer("Model↔tool round trips per run (default 20).", 1, 1000),
                    "max_output_tokens": schema::integer("Output tokens per model call (default 4096).", 1, 1_000_000),
                    "temperature": schema::number("Sampling temperature; leave out for the model's default.", 0.0, 2.0),
                    "tool_sources": schema::ids("src_", "Tool source ids (`src_…`) the agent gets tools from."),
                    "tools": schema::strings("Allowlist of tool names; empty or absent means every tool of its sources."),
                }),
                &["name", "provider_id", "model"],
            ),
        ),
        "update_agent_prompt" => (
            "Replace an agent's system prompt and/or description; nothing else changes and the version goes up by one. Read \
             the current prompt with get_agent first and, for an edit, send the whole new prompt with only the requested change applied.",
            schema::object(
                json!({
                    "agent": schema::agent(AGENT_ARG),
                    "system_prompt": schema::string("The new system prompt, whole."),
                    "description": schema::string("The new description."),
                }),
                &["agent"],
            ),
        ),
        "update_agent_tools" => (
            "Change an agent's tool allowlist: `tools` replaces it, or `add`/`remove` edit the current one. An empty allowlist \
             means every tool of the agent's sources. Use list_agent_tools first to see the names its sources offer and which \
             allowlist entries match nothing (stale entries are why an agent 'does not use' a tool). Only the allowlist changes.",
            list_schema(
                "tools",
                schema::strings("The whole new allowlist (replaces the current one); [] allows every tool."),
                schema::strings,
                "tool names",
            ),
        ),
        "update_agent_model_settings" => (
            "Change an agent's provider+model, max_turns, max_output_tokens or temperature. A partial update: only the settings \
             given change (e.g. only `max_turns`). `model` alone keeps the current provider; a new `provider_id` needs a `model` \
             of that provider (ask the user which). Look the agent up with get_agent first.",
            schema::object(
                json!({
                    "agent": schema::agent(AGENT_ARG),
                    "provider_id": schema::slug("A model provider id, e.g. `anthropic`; give `model` with it."),
                    "model": schema::text("The provider's model name, e.g. `claude-sonnet-4-6`.", 200),
                    "max_turns": schema::integer("Model↔tool round trips per run.", 1, 1000),
                    "max_output_tokens": schema::integer("Output tokens per model call.", 1, 1_000_000),
                    "temperature": schema::number("Sampling temperature.", 0.0, 2.0),
                    "reset_temperature": schema::boolean("true: go back to the model's default temperature."),
                }),
                &["agent"],
            ),
        ),
        "update_agent_tool_sources" => (
            "Change which tool sources an agent gets tools from: `tool_sources` replaces the list, or `add`/`remove` edit it \
             (source ids from list_sources; provision_source creates one). Look the agent up with get_agent first; only its \
             sources change. Check the result with list_agent_tools.",
            list_schema(
                "tool_sources",
                schema::ids("src_", "The whole new list of source ids (replaces the current one)."),
                |d| schema::ids("src_", d),
                "source ids",
            ),
        ),
        "test_agent" => (
            "Run an agent once now and wait for the result: output text, status, stop reason, error, usage, and the tools it \
             called with their errors. Give `input` (a message), or `trigger_id` (one of its `trg_…` triggers) plus a `payload` \
             rendered through the trigger's template like a real delivery (not counted as a fire). It is a real run: it costs \
             tokens and the agent's tools really act (it may post messages), so say what you are about to test.",
            schema::object(
                json!({
                    "agent": schema::agent(AGENT_ARG),
                    "input": schema::string("The message to send the agent."),
                    "trigger_id": schema::id("trg_", "Test through this trigger of the agent (`trg_…`) instead of `input`."),
                    "payload": {"type": "object", "description": "With `trigger_id`: the event payload, e.g. an example from list_trigger_components."},
                    "timeout_secs": schema::integer("How long to wait for the run, in seconds (default 120).", 1, 600),
                }),
                &["agent"],
            ),
        ),
        _ => return None,
    })
}

/// `agent`, the whole new list `field`, or `add`/`remove` edits; `item` builds the edit lists.
fn list_schema(field: &str, replace: Value, item: fn(&str) -> Value, items: &str) -> Value {
    let mut props = Map::new();
    props.insert("agent".into(), schema::agent(AGENT_ARG));
    props.insert(field.into(), replace);
    props.insert("add".into(), item(&format!("{items} to add to the current list")));
    props.insert("remove".into(), item(&format!("{items} to remove from the current list")));
    schema::object(Value::Object(props), &["agent"])
}

/// An agent in a list: enough to tell agents apart and see their state.
fn summary(a: &Value) -> Value {
    let mut v = pick(a, &["id", "name", "state", "state_reason", "model", "version", "tool_sources", "tools", "updated_at", "archived_at"]);
    if let Some(d) = a["description"].as_str().filter(|d| !d.is_empty()) {
        v["description"] = json!(excerpt(d, 200));
    }
    v
}

/// An agent in full (less the sandbox id and metadata noise).
fn full(a: &Value) -> Value {
    pick(
        a,
        &[
            "id",
            "name",
            "description",
            "state",
            "state_reason",
            "version",
            "model",
            "system_prompt",
            "tool_sources",
            "tools",
            "max_turns",
            "max_output_tokens",
            "temperature",
            "environment_id",
            "skills",
            "token_balance",
            "created_at",
            "updated_at",
            "archived_at",
        ],
    )
}

fn agent_path(id: &str) -> Result<String, String> {
    Ok(format!("/v1/agents/{}", seg(id)?))
}

pub(super) async fn list_agents(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let path = if args.bool("archived") == Some(true) { "/v1/agents?archived=true" } else { "/v1/agents" };
    let (items, more) = rest.list(path, 100, "list agents").await?;
    done(listing("agents", items.iter().map(summary).collect(), more))
}

pub(super) async fn get_agent(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    done(full(&rest.get(&agent_path(&id)?, &format!("get agent {id}")).await?))
}

pub(super) async fn create_agent(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let mut body =
        args.only(&["name", "description", "system_prompt", "max_turns", "max_output_tokens", "temperature", "tool_sources", "tools"]);
    body.insert("model".into(), json!({"provider_id": args.str("provider_id"), "name": args.str("model")}));
    let name = args.str("name").unwrap_or_default();
    let a = rest.post("/v1/agents", Value::Object(body), &format!("create agent `{name}`")).await?;
    let mut out = full(&a);
    out["next"] = json!("Check its tools with list_agent_tools and try it with test_agent.");
    done(out)
}

/// The PATCH of a partial update, answered with what changed.
async fn patch(rest: &Rest<'_>, id: &str, body: Map<String, Value>) -> Result<Value, String> {
    let changed: Vec<String> = body.keys().cloned().collect();
    let a = rest.patch(&agent_path(id)?, body, &format!("update agent {id}")).await?;
    let mut out = pick(&a, &["id", "name", "version", "updated_at"]);
    for k in &changed {
        out[k.as_str()] = a[k.as_str()].clone();
    }
    out["changed"] = json!(changed);
    Ok(out)
}

pub(super) async fn update_agent_prompt(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let body = args.only(&["system_prompt", "description"]);
    if body.is_empty() {
        return Err("nothing to change: give `system_prompt` and/or `description`".into());
    }
    let id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    let mut out = patch(rest, &id, body).await?;
    if let Some(p) = out["system_prompt"].as_str() {
        out["system_prompt"] = json!(excerpt(p, 500));
    }
    done(out)
}

/// Which list `update_agent_list` edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AgentList {
    Tools,
    ToolSources,
}

impl AgentList {
    fn field(self) -> &'static str {
        match self {
            AgentList::Tools => "tools",
            AgentList::ToolSources => "tool_sources",
        }
    }
}

/// `update_agent_tools` and `update_agent_tool_sources`: replace the list, or edit the current one.
pub(super) async fn update_agent_list(rest: &Rest<'_>, args: &Args, list: AgentList) -> Result<String, String> {
    let field = list.field();
    let (add, remove) = (args.strings("add").unwrap_or_default(), args.strings("remove").unwrap_or_default());
    let replace = args.strings(field);
    if replace.is_some() && !(add.is_empty() && remove.is_empty()) {
        return Err(format!("give either `{field}` (the whole new list) or `add`/`remove` (edits of the current list), not both"));
    }
    if replace.is_none() && add.is_empty() && remove.is_empty() {
        return Err(format!("nothing to change: give `{field}` (the whole new list) or `add`/`remove`"));
    }
    let id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    let mut notes: Vec<String> = Vec::new();
    let next = match replace {
        Some(next) => next,
        None => {
            let current_agent = rest.get(&agent_path(&id)?, &format!("get agent {id}")).await?;
            let current: Vec<String> = current_agent[field]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            let next = merged(list, &current, &add, &remove, &mut notes)?;
            if next == current {
                let mut out = pick(&current_agent, &["id", "name", "version", field]);
                out["changed"] = json!([]);
                out["notes"] = json!(notes);
                return done(out);
            }
            next
        }
    };
    if list == AgentList::Tools && next.is_empty() {
        notes.push("the allowlist is now empty: the agent gets every tool of its sources".into());
    }
    let mut body = Map::new();
    body.insert(field.into(), json!(next));
    let mut out = patch(rest, &id, body).await?;
    if !notes.is_empty() {
        out["notes"] = json!(notes);
    }
    out["check"] = json!("list_agent_tools shows the tools the agent gets now");
    done(out)
}

/// `current` without `remove`, plus `add` (in order, without duplicates). An empty tool
/// allowlist means "every tool", so edits that would start from or end at an empty allowlist
/// are refused: they would silently widen or narrow what the agent may use.
fn merged(list: AgentList, current: &[String], add: &[String], remove: &[String], notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    if list == AgentList::Tools && current.is_empty() {
        return Err("the agent's allowlist is empty, which means it may use every tool of its sources; `add`/`remove` cannot \
                    edit that. To restrict it, give `tools` with the whole list of tool names to allow (list_agent_tools shows \
                    the names its sources offer)."
            .into());
    }
    let mut next: Vec<String> = Vec::new();
    for item in current {
        if !remove.contains(item) && !next.contains(item) {
            next.push(item.clone());
        }
    }
    for r in remove {
        if !current.contains(r) {
            notes.push(format!("`{r}` was not in the list"));
        }
    }
    for a in add {
        if next.contains(a) {
            notes.push(format!("`{a}` was already in the list"));
        } else {
            next.push(a.clone());
        }
    }
    if list == AgentList::Tools && next.is_empty() {
        return Err("removing these would leave the allowlist empty, which means every tool of the agent's sources; if that \
                    is what the user wants, give `tools: []`; otherwise keep at least one tool."
            .into());
    }
    Ok(next)
}

pub(super) async fn update_agent_model_settings(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let mut body = args.only(&["max_turns", "max_output_tokens", "temperature"]);
    if args.bool("reset_temperature") == Some(true) {
        if args.has("temperature") {
            return Err("give `temperature` or `reset_temperature`, not both".into());
        }
        body.insert("temperature".into(), Value::Null);
    }
    if args.has("provider_id") && !args.has("model") {
        return Err("a new `provider_id` needs the `model` of that provider to use; ask the user which model".into());
    }
    if !args.has("model") && body.is_empty() {
        return Err(
            "nothing to change: give `model` (and `provider_id`), `max_turns`, `max_output_tokens`, `temperature` or `reset_temperature`"
                .into(),
        );
    }
    let id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    if let Some(model) = args.str("model") {
        let provider = match args.str("provider_id") {
            Some(p) => p.to_owned(),
            // A model alone stays with the current provider.
            None => {
                let a = rest.get(&agent_path(&id)?, &format!("get agent {id}")).await?;
                a["model"]["provider_id"].as_str().unwrap_or_default().to_owned()
            }
        };
        body.insert("model".into(), json!({"provider_id": provider, "name": model}));
    }
    done(patch(rest, &id, body).await?)
}

pub(super) async fn test_agent(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    match (args.has("input"), args.has("trigger_id")) {
        (true, true) => return Err("give `input` or `trigger_id` (with `payload`), not both".into()),
        (false, false) => return Err("give `input` (a message) or `trigger_id` with a `payload` to test with".into()),
        _ => {}
    }
    if args.has("payload") && !args.has("trigger_id") {
        return Err("`payload` goes with `trigger_id`: it is rendered through that trigger's template".into());
    }
    let id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    let body = args.only(&["input", "trigger_id", "payload", "timeout_secs"]);
    let r = rest.post(&format!("{}/test", agent_path(&id)?), Value::Object(body), &format!("test agent {id}")).await?;
    let mut out = pick(&r, &["run_id", "session_id", "status", "stop_reason", "error", "usage", "duration_ms"]);
    out["tool_calls"] = capped(&r["tool_calls"]);
    if let Some(t) = r["output_text"].as_str() {
        out["output_text"] = json!(excerpt(t, 8000));
    }
    if matches!(r["status"].as_str(), Some("queued" | "running")) {
        out["note"] = json!("the run had not finished when the wait ended; it goes on: follow it with list_runs and get_run_trace");
    }
    done(out)
}
