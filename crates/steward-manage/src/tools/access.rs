//! Sandboxes and API keys: `list_sandboxes`, `list_api_keys`, `mint_agent_invoke_key`,
//! `mint_agent_delegate_key`. Minting returns the key's plaintext exactly once, with what the
//! key may do; revoking is CLI-only (§9) and never a tool.

use serde_json::{Value, json};

use super::rest::{Rest, done, listing, pick};
use super::schema::{self, Args};

pub(super) fn definition(name: &str) -> Option<(&'static str, Value)> {
    Some(match name {
        "list_sandboxes" => (
            "List the sandboxes the user has a role in (id, name, the user's role, whether archived); `current: true` marks the one \
             these tools act in. The tools always act in the current sandbox. Archiving or destroying a sandbox is not a tool: tell \
             the user to run `steward sandbox archive <sbx_id>` or `steward sandbox destroy <sbx_id>` (owner only; irreversible for destroy).",
            schema::object(json!({"archived": schema::boolean("List archived sandboxes instead of live ones (default false).")}), &[]),
        ),
        "list_api_keys" => (
            "List the API keys of the current sandbox: id (`key_…`), name, kind (`account`, `agent_invoke`, `agent_delegate`), \
             the agent an agent key is bound to, the first characters of the key, created/revoked times. Secrets are never \
             listed and cannot be recovered. Revoking is not a tool: tell the user to run `steward apikey revoke <key_id>` (owner only).",
            schema::object(json!({}), &[]),
        ),
        "mint_agent_invoke_key" => (
            "Mint an agent invoke key: it may only start sessions with, message, and read the sessions of one agent (no \
             management access). Use it for a backend or script that talks to the agent. The result holds the plaintext key \
             once: give it to the user and say it cannot be shown again. Look the agent up first if unsure of its name; for \
             embedding the agent in a page or bot used by many end users, use mint_agent_delegate_key instead.",
            key_schema("invoke"),
        ),
        "mint_agent_delegate_key" => (
            "Mint an agent delegate key, for embedding one agent in a third-party surface (a web page, a bot): every session \
             is partitioned by an `end_user` id the caller supplies, so end users never see each other's sessions. The result \
             holds the plaintext key once: give it to the user and say it cannot be shown again. For a single trusted backend, \
             mint_agent_invoke_key is simpler.",
            key_schema("delegate"),
        ),
        _ => return None,
    })
}

fn key_schema(kind: &str) -> Value {
    schema::object(
        json!({
            "agent": schema::agent("The agent the key acts for: its id (`agt_…`) or its name."),
            "name": schema::text(&format!("A label to tell the key apart, e.g. `website-widget` (default: `<agent>-{kind}`)."), 100),
        }),
        &["agent"],
    )
}

pub(super) async fn list_sandboxes(rest: &Rest<'_>, args: &Args, current: &str) -> Result<String, String> {
    let path = if args.bool("archived") == Some(true) { "/v1/sandboxes?archived=true" } else { "/v1/sandboxes" };
    let (items, more) = rest.list(path, 100, "list sandboxes").await?;
    let items: Vec<Value> = items
        .iter()
        .map(|s| {
            let mut v = pick(s, &["id", "name", "role", "time_zone", "created_at", "archived_at"]);
            if s["id"] == current {
                v["current"] = json!(true);
            }
            v
        })
        .collect();
    done(listing("sandboxes", items, more))
}

pub(super) async fn list_api_keys(rest: &Rest<'_>) -> Result<String, String> {
    let (items, more) = rest.list("/v1/api_keys", 100, "list API keys").await?;
    let items: Vec<Value> =
        items.iter().map(|k| pick(k, &["id", "name", "kind", "agent_id", "prefix", "created_at", "revoked_at"])).collect();
    let mut out = listing("api_keys", items, more);
    out["revoke_with"] = json!("steward apikey revoke <key_id>  (owner only; not a tool)");
    done(out)
}

/// Which agent key to mint.
#[derive(Debug, Clone, Copy)]
pub(super) enum AgentKey {
    Invoke,
    Delegate,
}

impl AgentKey {
    fn kind(self) -> &'static str {
        match self {
            AgentKey::Invoke => "agent_invoke",
            AgentKey::Delegate => "agent_delegate",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            AgentKey::Invoke => {
                "This agent invoke key may only start sessions with, message, and read the sessions of this one agent; \
                 it has no access to management routes (not even the agent's configuration)."
            }
            AgentKey::Delegate => {
                "This agent delegate key is for embedding this one agent in a third-party surface (a web page, a bot): every \
                 request names an `end_user` id (body, query or `Steward-End-User` header) and every session is partitioned by \
                 it, so end users never see each other's sessions. It has no access to management routes."
            }
        }
    }
}

pub(super) async fn mint_agent_key(rest: &Rest<'_>, args: &Args, key: AgentKey) -> Result<String, String> {
    let raw_agent = args.str("agent").unwrap_or_default();
    let agent_id = rest.agent_id(raw_agent).await?;
    let suffix = match key {
        AgentKey::Invoke => "invoke",
        AgentKey::Delegate => "delegate",
    };
    let name = args.str("name").map(str::to_owned).unwrap_or_else(|| format!("{raw_agent}-{suffix}"));
    let body = json!({"name": name, "kind": key.kind(), "agent_id": agent_id});
    let created = rest.post("/v1/api_keys", body, &format!("mint an {} key for agent {agent_id}", key.kind())).await?;
    let key_id = created["id"].as_str().unwrap_or("key_…");
    done(json!({
        "key_id": key_id,
        "name": created["name"],
        "kind": created["kind"],
        "agent_id": created["agent_id"],
        "secret": created["secret"],
        "what_it_may_do": key.explanation(),
        "shown_once": format!(
            "The secret above is shown only this once and cannot be shown again: the user must store it now. \
             Revoke it with `steward apikey revoke {key_id}` (owner only)."
        ),
    }))
}
