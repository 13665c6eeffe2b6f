//! Tool sources (§6): `list_sources`, `get_source`, `provision_source`, `update_source`.
//! Deleting a source is CLI-only (§9: `steward source delete`).

use serde_json::{Map, Value, json};

use super::rest::{Rest, done, listing, pick, seg};
use super::schema::{self, Args};

/// The fields of a source a tool may set, in the API's names.
const FIELDS: [&str; 11] =
    ["name", "description", "kind", "url", "headers", "command", "args", "env", "toolset", "account_id", "timeout_seconds"];

pub(super) fn definition(name: &str) -> Option<(&'static str, Value)> {
    Some(match name {
        "list_sources" => (
            "List the tool sources of the sandbox: id (`src_…`), name, kind (`mcp_http`, `mcp_stdio`, `builtin`, `integration`), \
             and what it points at (URL, command, toolset or connected account). Agents get tools from the sources listed in \
             their `tool_sources`. Deleting a source is not a tool: tell the user to run `steward source delete <src_id>` (owner only).",
            schema::object(json!({}), &[]),
        ),
        "get_source" => (
            "Show one tool source with its whole configuration: kind, URL or command and arguments, headers and env (as vault \
             references, never secrets), timeout. Read it before update_source, and to check where an agent's failing source points.",
            schema::object(json!({"source_id": schema::id("src_", "The source id (`src_…`), from list_sources.")}), &["source_id"]),
        ),
        "provision_source" => (
            "Add a tool source: an MCP server at a streamable-HTTP `url` (`mcp_http`), an MCP server started on the server host \
             (`mcp_stdio`: `command` + `args`; needs the owner role), a built-in `toolset` (`builtin`: workspace, shell, \
             http_fetch), or a connected integration account (`integration`: `account_id` from list_connected_accounts). Secrets \
             never go in plain text: headers and env values take `{\"vault_id\": \"vlt_…\", \"prefix\": \"Bearer \"}`; if the user \
             has no vault for the secret, ask them to create one (`POST /v1/vaults`). Ask for a missing URL or command rather than \
             guessing; then attach the source to an agent with update_agent_tool_sources.",
            source_schema(true),
        ),
        "update_source" => (
            "Change a tool source. Only the fields given change (`null` is not needed: leave a field out to keep it). Look the \
             source up with get_source first. Agents using it pick the change up on their next run.",
            source_schema(false),
        ),
        _ => return None,
    })
}

fn source_schema(create: bool) -> Value {
    let mut props = json!({
        "name": schema::slug("A unique name in the sandbox (lowercase letters, digits, `-`, `_`); it prefixes tool names when two sources offer the same one."),
        "description": schema::string("What the source is for."),
        "kind": schema::one_of(&["mcp_http", "mcp_stdio", "builtin", "integration"], "What kind of source."),
        "url": schema::string("`mcp_http`: the streamable-HTTP endpoint, e.g. `https://mcp.example.com/mcp`."),
        "headers": schema::value_refs("`mcp_http`: request headers; each value a plain string or {\"vault_id\": \"vlt_…\", \"prefix\": \"Bearer \"}."),
        "command": schema::string("`mcp_stdio`: the program alone, no spaces (e.g. `npx`); its arguments go in `args`."),
        "args": schema::strings("`mcp_stdio`: the program's arguments."),
        "env": schema::value_refs("`mcp_stdio`: environment variables; each value a plain string or {\"vault_id\": \"vlt_…\"}."),
        "toolset": schema::one_of(&["workspace", "shell", "http_fetch"], "`builtin`: which built-in toolset."),
        "account_id": schema::id("cac_", "`integration`: the connected account (`cac_…`) whose app's tools this source offers."),
        "timeout_seconds": schema::integer("Connect-and-list timeout in seconds (default 10).", 1, 120),
    });
    if create {
        schema::object(props, &["name", "kind"])
    } else {
        props["source_id"] = schema::id("src_", "The source to change (`src_…`).");
        schema::object(props, &["source_id"])
    }
}

/// A source for a model: what it is and what it points at.
fn view(s: &Value) -> Value {
    pick(
        s,
        &[
            "id",
            "name",
            "description",
            "kind",
            "url",
            "headers",
            "command",
            "args",
            "env",
            "toolset",
            "account_id",
            "timeout_seconds",
            "created_at",
            "updated_at",
        ],
    )
}

pub(super) async fn list_sources(rest: &Rest<'_>) -> Result<String, String> {
    let (items, more) = rest.list("/v1/sources", 100, "list tool sources").await?;
    // Listed without headers/env values: names are enough to tell sources apart.
    let items: Vec<Value> = items
        .iter()
        .map(|s| {
            let mut v = pick(s, &["id", "name", "description", "kind", "url", "command", "args", "toolset", "account_id", "updated_at"]);
            for k in ["headers", "env"] {
                if let Some(m) = s[k].as_object().filter(|m| !m.is_empty()) {
                    v[k] = json!(m.keys().collect::<Vec<_>>());
                }
            }
            v
        })
        .collect();
    let mut out = listing("sources", items, more);
    out["delete_with"] = json!("steward source delete <src_id>  (owner only; not a tool)");
    done(out)
}

pub(super) async fn get_source(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = args.str("source_id").unwrap_or_default();
    let s = rest.get(&format!("/v1/sources/{}", seg(id)?), &format!("get source {id}")).await?;
    done(view(&s))
}

pub(super) async fn provision_source(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let body: Map<String, Value> = args.only(&FIELDS);
    let name = args.str("name").unwrap_or_default();
    let s = rest.post("/v1/sources", Value::Object(body), &format!("create source `{name}`")).await?;
    let mut out = view(&s);
    out["next"] = json!("Attach it to an agent with update_agent_tool_sources (add), then check with list_agent_tools.");
    done(out)
}

pub(super) async fn update_source(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = args.str("source_id").unwrap_or_default();
    let body = args.only(&FIELDS);
    if body.is_empty() {
        return Err(format!("nothing to change: give at least one field of source {id} to update (e.g. `url` or `headers`)"));
    }
    let s = rest.patch(&format!("/v1/sources/{}", seg(id)?), body, &format!("update source {id}")).await?;
    done(view(&s))
}
