//! Triggers and schedules (§11), which the user sees as one thing, "triggers": `list_triggers`,
//! `create_trigger`, `update_trigger`, `pause_trigger`, `resume_trigger`. Ids decide the
//! route: `trg_…` (webhook and integration triggers) under `…/triggers`, `sch_…` under
//! `…/schedules`. Disconnecting a trigger is CLI-only (§9: `steward trigger disconnect`).

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::rest::{Rest, TriggerKind, TriggerRef, done, excerpt, pick, seg};
use super::schema::{self, Args};

/// A trigger that has not fired for this long counts as quiet.
const QUIET_DAYS: i64 = 7;
/// Agents whose triggers are read at once.
const CONCURRENCY: usize = 4;
const TRIGGER_FIELDS: [&str; 6] = ["name", "description", "input_template", "allow_token", "component", "account_id"];
const SCHEDULE_FIELDS: [&str; 6] = ["name", "description", "input_template", "cron", "timezone", "missed"];
const DISCONNECT: &str = "steward trigger disconnect <agent> <trg_id>";

pub(super) fn definition(name: &str) -> Option<(&'static str, Value)> {
    let agent = schema::agent("The agent the trigger belongs to: its id (`agt_…`) or its name. Optional when `trigger_id` is given.");
    let trigger_id = schema::trigger_id("The trigger (`trg_…`) or schedule (`sch_…`), from list_triggers.");
    Some(match name {
        "list_triggers" => (
            "List the triggers of one agent, or of every live agent: webhook triggers, integration triggers (an app's trigger \
             component, e.g. `slack.app_mention`) and cron schedules, each with state (active/paused, resume_at), fire_count, \
             last_fired_at, last_error and `quiet` (never fired, or not in 7 days). Answers 'which triggers fire and which are \
             quiet'. Disconnecting a trigger is not a tool: tell the user to run `steward trigger disconnect <agent> <trg_id>` (owner only).",
            schema::object(
                json!({"agent": schema::agent("Only this agent: its id (`agt_…`) or its name. Default: every live agent.")}),
                &[],
            ),
        ),
        "create_trigger" => (
            "Create a trigger that starts runs of an agent. `kind`: `webhook` (a signed inbound URL), `integration` (events of a \
             connected app: call list_trigger_components for the `component` id and list_connected_accounts for the `account_id` \
             first; if the app has no connected account, call start_integration_connect and wait for the user), or `schedule` \
             (`cron` + IANA `timezone`). Ask the user for anything missing (channel, time zone, schedule) instead of guessing. \
             A webhook's secret is in the result once: give it to the user with the inbound URL.",
            schema::object(
                json!({
                    "agent": schema::agent("The agent to run: its id (`agt_…`) or its name."),
                    "kind": schema::one_of(&["webhook", "integration", "schedule"], "What starts the runs."),
                    "name": schema::slug("A name unique among the agent's triggers (lowercase letters, digits, `-`, `_`)."),
                    "description": schema::string("What the trigger is for."),
                    "input_template": schema::string("minijinja template of the run's input. Webhook/integration: over `payload`, `headers`, `received_at` (e.g. `New issue: {{ payload.issue.title }}`); schedule: over `scheduled_at`, `fired_at`, `schedule`. Default: the payload as JSON / a short note."),
                    "allow_token": schema::boolean("Webhook: also accept the secret itself in the `Steward-Trigger-Token` header, for senders that cannot sign (default false)."),
                    "component": schema::string("Integration: the trigger component id, e.g. `slack.app_mention`, from list_trigger_components."),
                    "account_id": schema::id("cac_", "Integration: the connected account (`cac_…`) the events come from, from list_connected_accounts."),
                    "cron": schema::string("Schedule: 5 fields `min hour day month weekday` (e.g. `0 9 * * MON-FRI`), 6 with seconds first, or @daily/@hourly…"),
                    "timezone": schema::string("Schedule: IANA time zone of the cron times, e.g. `Europe/Berlin` (default UTC)."),
                    "missed": schema::one_of(&["skip", "fire_once"], "Schedule: what happens to times missed while the server was down (default skip)."),
                }),
                &["agent", "kind", "name"],
            ),
        ),
        "update_trigger" => (
            "Change a trigger or schedule. Only the fields given change. Triggers (`trg_…`) take name, description, \
             input_template, allow_token, component, account_id; schedules (`sch_…`) take name, description, input_template, \
             cron, timezone, missed. Look it up with list_triggers first.",
            schema::object(
                json!({
                    "agent": agent,
                    "trigger_id": trigger_id,
                    "name": schema::slug("New name."),
                    "description": schema::string("New description."),
                    "input_template": schema::string("New minijinja input template."),
                    "allow_token": schema::boolean("Trigger: accept the secret in `Steward-Trigger-Token`."),
                    "component": schema::string("Integration trigger: the trigger component id."),
                    "account_id": schema::id("cac_", "Integration trigger: the connected account (`cac_…`)."),
                    "cron": schema::string("Schedule: the new cron expression."),
                    "timezone": schema::string("Schedule: the new IANA time zone."),
                    "missed": schema::one_of(&["skip", "fire_once"], "Schedule: the missed-fire policy."),
                }),
                &["trigger_id"],
            ),
        ),
        "pause_trigger" => (
            "Pause a trigger or schedule: deliveries are refused and schedules do not fire until resumed — the reversible way to \
             stop one. With `resume_at` it resumes by itself then: an RFC 3339 time, or a local time like `09:00` or \
             `2026-11-24T09:00` meaning the next such time in `time_zone` (default: the sandbox's `time_zone`, shown by list_sandboxes; ask the user if it may not be theirs). \
             Permanently removing a trigger is not a tool (`steward trigger disconnect <agent> <trg_id>`).",
            schema::object(
                json!({
                    "agent": agent,
                    "trigger_id": trigger_id,
                    "resume_at": schema::string("When to resume by itself: RFC 3339 (`2026-11-24T09:00:00+01:00`) or a local time (`09:00`, `2026-11-24T09:00`)."),
                    "time_zone": schema::string("IANA time zone of a local `resume_at`, e.g. `Europe/Berlin` (default: the sandbox's time zone)."),
                }),
                &["trigger_id"],
            ),
        ),
        "resume_trigger" => (
            "Resume a paused trigger or schedule now. A schedule continues from now on (times missed while paused do not fire).",
            schema::object(json!({"agent": agent, "trigger_id": trigger_id}), &["trigger_id"]),
        ),
        _ => return None,
    })
}

/// A trigger or schedule for a model: what starts it, its state and its firing record.
fn view(t: &Value, kind: TriggerKind) -> Value {
    let (name, specific): (&str, &[&str]) = match kind {
        TriggerKind::Trigger if t["component"].is_string() => ("integration", &["component", "account_id"]),
        TriggerKind::Trigger => ("webhook", &["url"]),
        TriggerKind::Schedule => ("schedule", &["cron", "timezone", "next_fire_at"]),
    };
    let common = ["state", "resume_at", "fire_count", "last_fired_at", "last_error", "last_error_at"];
    let keys: Vec<&str> = ["id", "name"].into_iter().chain(specific.iter().copied()).chain(common).collect();
    let mut v = pick(t, &keys);
    v["kind"] = json!(name);
    v
}

/// `view` with the quiet judgement at `now`: never fired, or not for `QUIET_DAYS`.
fn with_quiet(t: &Value, kind: TriggerKind, now: DateTime<Utc>) -> Value {
    let mut v = view(t, kind);
    let last = t["last_fired_at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc));
    let why = match last {
        None => Some("never fired".to_owned()),
        Some(at) if now - at > chrono::Duration::days(QUIET_DAYS) => Some(format!("last fired {} days ago", (now - at).num_days())),
        Some(_) => None,
    };
    v["quiet"] = json!(why.is_some());
    if let Some(why) = why {
        v["quiet_reason"] = json!(why);
    }
    v
}

/// Both kinds of one agent, or the error reading them.
async fn of_agent(rest: &Rest<'_>, agent_id: &str, now: DateTime<Utc>) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for kind in [TriggerKind::Trigger, TriggerKind::Schedule] {
        let path = format!("/v1/agents/{}/{}", seg(agent_id)?, kind.collection());
        let listed = rest.get(&path, &format!("list the {} of agent {agent_id}", kind.collection())).await?;
        out.extend(listed["data"].as_array().into_iter().flatten().map(|t| with_quiet(t, kind, now)));
    }
    Ok(out)
}

async fn agent_entry(rest: &Rest<'_>, id: &str, name: &str, now: DateTime<Utc>) -> Value {
    let mut entry = json!({"agent_id": id, "agent": name});
    match of_agent(rest, id, now).await {
        Ok(triggers) => entry["triggers"] = json!(triggers),
        Err(e) => entry["error"] = json!(e),
    }
    entry
}

pub(super) async fn list_triggers(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let now = Utc::now();
    let agents: Vec<(String, String)> = match args.str("agent") {
        Some(raw) => vec![(rest.agent_id(raw).await?, raw.to_owned())],
        None => rest
            .live_agents()
            .await?
            .iter()
            .map(|a| (a["id"].as_str().unwrap_or_default().to_owned(), a["name"].as_str().unwrap_or_default().to_owned()))
            .collect(),
    };
    let single = args.has("agent");
    // Futures collected first: a closure inside the stream would make the call's future
    // lose `Send` for every lifetime (a known rustc limitation with higher-ranked closures).
    let reads: Vec<_> = agents.iter().take(super::rest::MAX_ITEMS).map(|(id, name)| agent_entry(rest, id, name, now)).collect();
    let results: Vec<Value> = futures::stream::iter(reads).buffered(CONCURRENCY).collect().await;
    if single && let Some(e) = results.first().and_then(|r| r["error"].as_str()) {
        return Err(e.to_owned());
    }
    let mut out = json!({
        "agents": results,
        "quiet_means": format!("never fired, or not fired in the last {QUIET_DAYS} days"),
        "disconnect_with": format!("{DISCONNECT}  (owner only; not a tool)"),
    });
    if agents.len() > super::rest::MAX_ITEMS {
        out["note"] = json!(format!(
            "showing the triggers of {} of {} agents; ask about one agent to see others",
            super::rest::MAX_ITEMS,
            agents.len()
        ));
    }
    done(out)
}

pub(super) async fn create_trigger(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let kind = args.str("kind").unwrap_or_default();
    let (fields, required, foreign): (&[&str], &str, &[&str]) = match kind {
        "webhook" => (&TRIGGER_FIELDS, "", &["component", "account_id", "cron", "timezone", "missed"]),
        "integration" => (&TRIGGER_FIELDS, "component", &["cron", "timezone", "missed"]),
        _ => (&SCHEDULE_FIELDS, "cron", &["allow_token", "component", "account_id"]),
    };
    if let Some(f) = foreign.iter().find(|f| args.has(f)) {
        return Err(format!("`{f}` does not apply to a `{kind}` trigger; leave it out"));
    }
    if !required.is_empty() && !args.has(required) {
        return Err(match kind {
            "integration" => {
                "an integration trigger needs `component` (e.g. `slack.app_mention`); find it with list_trigger_components".into()
            }
            _ => "a schedule needs `cron`; ask the user when it should run (and in which time zone) if they did not say".into(),
        });
    }
    let agent_id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    let collection = if kind == "schedule" { TriggerKind::Schedule } else { TriggerKind::Trigger };
    let path = format!("/v1/agents/{}/{}", seg(&agent_id)?, collection.collection());
    let name = args.str("name").unwrap_or_default();
    let created =
        rest.post(&path, Value::Object(args.only(fields)), &format!("create {kind} trigger `{name}` on agent {agent_id}")).await?;
    let mut out = view(&created, collection);
    out["agent_id"] = json!(agent_id);
    if collection == TriggerKind::Trigger {
        let url = created["url"].as_str().unwrap_or_default();
        out["inbound_url"] = json!(format!("POST <the Steward server's base URL>{url}"));
        out["verification"] = created["verification"].clone();
        out["secret"] = created["secret"].clone();
        out["secret_note"] = json!(secret_note(&created));
    }
    done(out)
}

fn secret_note(t: &Value) -> String {
    let once = "The secret is shown only this once and cannot be shown again: the user must store it now \
                (a lost secret means disconnecting the trigger and creating a new one).";
    let how = match t["verification"].as_str() {
        Some("steward_v1") | None => {
            "Senders sign each delivery with Standard Webhooks (any `standardwebhooks` library does it with the secret as \
             given): headers `webhook-id` (the delivery id), `webhook-timestamp: <unix seconds>` and `webhook-signature: \
             v1,<base64 HMAC-SHA256 of \"<id>.<timestamp>.<raw body>\">`, keyed with the base64-decoded part of the secret \
             after `whsec_`. Older senders may use `Steward-Timestamp` + `Steward-Signature: v1=<hex HMAC-SHA256 of \
             \"<timestamp>.<raw body>\">`, each signature accepted once."
        }
        Some(_) => "Configure the app to send its events to the inbound URL; deliveries are verified the way that app signs them.",
    };
    let token =
        if t["allow_token"] == true { " Senders that cannot sign may send the secret in `Steward-Trigger-Token` instead." } else { "" };
    format!("{once} {how}{token}")
}

pub(super) async fn update_trigger(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = args.str("trigger_id").unwrap_or_default();
    let kind = TriggerKind::of(id)?;
    let (fields, others): (&[&str], &[&str]) = match kind {
        TriggerKind::Trigger => (&TRIGGER_FIELDS, &["cron", "timezone", "missed"]),
        TriggerKind::Schedule => (&SCHEDULE_FIELDS, &["allow_token", "component", "account_id"]),
    };
    if let Some(f) = others.iter().find(|f| args.has(f)) {
        return Err(format!("`{f}` does not apply to a {} (`{id}`); leave it out", kind.noun()));
    }
    let body: Map<String, Value> = args.only(fields);
    if body.is_empty() {
        return Err(format!("nothing to change: give at least one of {}", fields.join(", ")));
    }
    let at = rest.locate_trigger(args.str("agent"), id).await?;
    let updated = rest.patch(&at.path()?, body, &format!("update {} {id}", kind.noun())).await?;
    done(brief(&updated, &at))
}

/// A changed trigger or schedule, with its agent.
fn brief(t: &Value, at: &TriggerRef) -> Value {
    let mut v = view(t, at.kind);
    v["agent_id"] = json!(at.agent_id);
    if let Some(template) = t["input_template"].as_str() {
        v["input_template"] = json!(excerpt(template, 500));
    }
    v
}

pub(super) async fn pause_trigger(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = args.str("trigger_id").unwrap_or_default();
    if args.has("time_zone") && !args.has("resume_at") {
        return Err("`time_zone` only says how to read `resume_at`; give `resume_at` too, or leave both out to pause until resumed".into());
    }
    let at = rest.locate_trigger(args.str("agent"), id).await?;
    let body = Value::Object(args.only(&["resume_at", "time_zone"]));
    let paused = rest.post(&format!("{}/pause", at.path()?), body, &format!("pause {} {id}", at.kind.noun())).await?;
    let mut out = brief(&paused, &at);
    if !out["resume_at"].is_string() {
        out["note"] = json!("paused until resumed with resume_trigger");
    }
    done(out)
}

pub(super) async fn resume_trigger(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = args.str("trigger_id").unwrap_or_default();
    let at = rest.locate_trigger(args.str("agent"), id).await?;
    let resumed = rest.call(Method::POST, &format!("{}/resume", at.path()?), None, &format!("resume {} {id}", at.kind.noun())).await?;
    done(brief(&resumed, &at))
}
