//! Integrations (§10): `list_apps`, `list_trigger_components`, `list_connected_accounts`,
//! `start_integration_connect`. Revoking a connected account is CLI-only
//! (`steward integration revoke`).

use futures::StreamExt;
use serde_json::{Value, json};

use super::rest::{Rest, done, excerpt, pick, query_value, seg};
use super::schema::{self, Args};

const APP_ARG: &str = "The app id, e.g. `slack`, `github`, `linear` (from list_apps).";

pub(super) fn definition(name: &str) -> Option<(&'static str, Value)> {
    Some(match name {
        "list_apps" => (
            "List the integration apps (Slack, GitHub, Linear, Google, Discord, Telegram, …): how each connects, whether the \
             server has its client credentials (`configured`), whether it offers tools, its trigger component ids, and the \
             sandbox's connected accounts of it. An OAuth app (`connect: oauth`) whose `configured` is false cannot be connected until \
             the server's operator adds its client credentials.",
            schema::object(json!({}), &[]),
        ),
        "list_trigger_components" => (
            "List the trigger components of one app (or of every app): id (e.g. `slack.app_mention`), what it fires on, its \
             payload schema and an example payload. Call it before create_trigger with kind `integration`, to pick the \
             `component` and write an `input_template` over the payload's real fields.",
            schema::object(json!({"app": schema::slug(&format!("Only this app. {APP_ARG}"))}), &[]),
        ),
        "list_connected_accounts" => (
            "List the sandbox's connected integration accounts: id (`cac_…`), app, label, status (`active`, or `needs_reauth`: \
             connect again) and scopes. Call it before creating an integration trigger or source; with no account for the app, \
             use start_integration_connect. Revoking an account is not a tool: `steward integration revoke <cac_id>` (owner only).",
            schema::object(json!({"app": schema::slug(&format!("Only accounts of this app. {APP_ARG}"))}), &[]),
        ),
        "start_integration_connect" => (
            "Start connecting an account of an app (OAuth): returns an authorize URL for the user to open in a browser, and the \
             connect id. Give the URL to the user and wait: once they have authorized, list_connected_accounts shows the new \
             account. Use it when list_connected_accounts has no (active) account for the app the user wants.",
            schema::object(json!({"app": schema::slug(APP_ARG)}), &["app"]),
        ),
        _ => return None,
    })
}

fn account_view(a: &Value) -> Value {
    pick(a, &["id", "app_id", "label", "external_id", "status", "status_reason", "scopes", "expires_at", "created_at"])
}

fn accounts(app: &Value) -> Value {
    json!(app["accounts"].as_array().into_iter().flatten().map(|a| pick(a, &["id", "label", "status"])).collect::<Vec<_>>())
}

pub(super) async fn list_apps(rest: &Rest<'_>) -> Result<String, String> {
    let listed = rest.get("/v1/integrations", "list integration apps").await?;
    let apps: Vec<Value> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let mut v = pick(a, &["id", "display_name", "connect", "configured"]);
            v["description"] = json!(excerpt(a["description"].as_str().unwrap_or_default(), 200));
            v["tools"] = a["tools"]["kind"].clone();
            v["trigger_components"] =
                json!(a["trigger_components"].as_array().into_iter().flatten().map(|c| c["id"].clone()).collect::<Vec<_>>());
            v["accounts"] = accounts(a);
            v
        })
        .collect();
    done(json!({"apps": apps}))
}

/// One app with its components in full.
async fn app_components(rest: &Rest<'_>, app_id: &str) -> Result<Value, String> {
    let app = rest.get(&format!("/v1/integrations/{}", seg(app_id)?), &format!("get integration app `{app_id}`")).await?;
    let components: Vec<Value> = app["trigger_components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| pick(c, &["id", "display_name", "description", "payload_schema", "example"]))
        .collect();
    Ok(json!({"app_id": app["id"], "display_name": app["display_name"], "accounts": accounts(&app), "components": components}))
}

pub(super) async fn list_trigger_components(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    if let Some(app) = args.str("app") {
        return done(json!({"apps": [app_components(rest, app).await?]}));
    }
    let listed = rest.get("/v1/integrations", "list integration apps").await?;
    let ids: Vec<String> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["trigger_components"].as_array().is_some_and(|c| !c.is_empty()))
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    // Futures collected first (see `triggers::list_triggers` for why).
    let reads: Vec<_> = ids.iter().map(|id| app_components(rest, id)).collect();
    let apps: Vec<Result<Value, String>> = futures::stream::iter(reads).buffered(4).collect().await;
    done(json!({"apps": apps.into_iter().collect::<Result<Vec<_>, _>>()?}))
}

pub(super) async fn list_connected_accounts(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let path = match args.str("app") {
        Some(app) => format!("/v1/connected_accounts?app_id={}", query_value(app)),
        None => "/v1/connected_accounts".to_owned(),
    };
    let listed = rest.get(&path, "list connected accounts").await?;
    let items: Vec<Value> = listed["data"].as_array().into_iter().flatten().map(account_view).collect();
    let none = items.is_empty();
    let mut out = json!({"accounts": items});
    if none {
        out["note"] = json!("no connected accounts; start one with start_integration_connect");
    }
    done(out)
}

pub(super) async fn start_integration_connect(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let app = args.str("app").unwrap_or_default();
    let started = rest.post(&format!("/v1/integrations/{}/connect", seg(app)?), json!({}), &format!("start connecting `{app}`")).await?;
    let mut out = pick(&started, &["connect_id", "authorize_url", "expires_at"]);
    out["app_id"] = json!(app);
    out["next"] = json!(
        "Give the user the authorize_url to open in a browser and authorize; it expires at expires_at. Once they have, \
         list_connected_accounts shows the account (its `cac_…` id is what triggers and sources need)."
    );
    done(out)
}
