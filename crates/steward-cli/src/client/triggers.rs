//! `steward trigger …` (webhook triggers) and `steward schedule …` (cron schedules) of an agent
//! (§11). `trigger disconnect` deletes a trigger (owner, destructive, §9): it shows what goes
//! and asks first.

use clap::Subcommand;
use serde_json::{Value, json};

use super::agents;
use super::context::Context;
use super::http::id;
use super::output::{cell, confirm, print_fields, print_table, table, when};

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Create a webhook trigger for an agent; prints its URL and secret (shown once).
    Create {
        /// The agent (id or name).
        agent: String,
        #[arg(long)]
        name: String,
        /// minijinja over `payload`, `headers`, `received_at` [default: the payload as JSON]
        #[arg(long)]
        template: Option<String>,
        /// Also accept the secret in the Steward-Trigger-Token header (for senders that cannot sign).
        #[arg(long)]
        allow_token: bool,
    },
    /// List an agent's triggers with their fire counts and last errors.
    List { agent: String },
    /// Pause a trigger (deliveries get 409), optionally until an RFC 3339 time.
    Pause {
        agent: String,
        trigger_id: String,
        #[arg(long)]
        until: Option<String>,
    },
    /// Resume a paused trigger.
    Resume { agent: String, trigger_id: String },
    /// Delete a trigger; its URL stops working. Owner only; asks first.
    Disconnect {
        agent: String,
        trigger_id: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a cron schedule for an agent.
    Create {
        /// The agent (id or name).
        agent: String,
        #[arg(long)]
        name: String,
        /// 5 or 6 cron fields, e.g. "0 9 * * MON-FRI".
        #[arg(long)]
        cron: String,
        /// IANA time zone [default: UTC]
        #[arg(long)]
        timezone: Option<String>,
        /// minijinja over `scheduled_at`, `fired_at`, `schedule`.
        #[arg(long)]
        template: Option<String>,
        /// Missed times while the server was down: skip (default) or fire_once.
        #[arg(long)]
        missed: Option<String>,
    },
    /// List an agent's schedules with their next due time.
    List { agent: String },
    /// Pause a schedule, optionally until an RFC 3339 time.
    Pause {
        agent: String,
        schedule_id: String,
        #[arg(long)]
        until: Option<String>,
    },
    /// Resume a paused schedule from now.
    Resume { agent: String, schedule_id: String },
    /// The schedule's executions: scheduled time, fired time, run, outcome.
    History { agent: String, schedule_id: String },
}

fn show_trigger(t: &Value) {
    print_fields(&[
        ("id", cell(&t["id"])),
        ("name", cell(&t["name"])),
        ("state", cell(&t["state"])),
        ("url", cell(&t["url"])),
        ("fired", format!("{} times, last {}", cell(&t["fire_count"]), when(&t["last_fired_at"]))),
        ("last error", cell(&t["last_error"])),
    ]);
}

pub async fn run_trigger(ctx: &Context, cmd: TriggerCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        TriggerCommand::Create { agent, name, template, allow_token } => {
            let agent = agents::resolve(&api, &agent).await?;
            let mut body = json!({"name": name, "allow_token": allow_token});
            if let Some(t) = template {
                body["input_template"] = json!(t);
            }
            let t = api.post(&format!("/v1/agents/{agent}/triggers"), &body).await?;
            ctx.out.show(&t, || {
                show_trigger(&t);
                println!("secret   {}", cell(&t["secret"]));
                eprintln!(
                    "\nthe secret is shown only this once. Senders sign with Standard Webhooks (any standardwebhooks library, with this secret): \
                     webhook-id, webhook-timestamp and webhook-signature: v1,<base64 HMAC-SHA256 of \"<id>.<timestamp>.<body>\"> keyed with the \
                     base64-decoded part after whsec_. Older senders may send Steward-Timestamp and Steward-Signature: v1=<hex>, each signature once."
                );
            })
        }
        TriggerCommand::List { agent } => {
            let agent = agents::resolve(&api, &agent).await?;
            let v = api.get(&format!("/v1/agents/{agent}/triggers")).await?;
            ctx.out.show(&v, || {
                let mut t = table(&["ID", "NAME", "STATE", "FIRED", "LAST FIRED", "LAST ERROR"]);
                for x in v["data"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        cell(&x["id"]),
                        cell(&x["name"]),
                        cell(&x["state"]),
                        cell(&x["fire_count"]),
                        when(&x["last_fired_at"]),
                        cell(&x["last_error"]),
                    ]);
                }
                print_table(&t, "no triggers; create one with `steward trigger create <agent> --name …`");
            })
        }
        TriggerCommand::Pause { agent, trigger_id, until } => {
            let agent = agents::resolve(&api, &agent).await?;
            let tid = id(&trigger_id, "trg_", "see `steward trigger list <agent>`")?;
            let body = until.map(|u| json!({"resume_at": u})).unwrap_or_else(|| json!({}));
            let t = api.post(&format!("/v1/agents/{agent}/triggers/{tid}/pause"), &body).await?;
            ctx.out.show(&t, || show_trigger(&t))
        }
        TriggerCommand::Resume { agent, trigger_id } => {
            let agent = agents::resolve(&api, &agent).await?;
            let tid = id(&trigger_id, "trg_", "see `steward trigger list <agent>`")?;
            let t = api.post(&format!("/v1/agents/{agent}/triggers/{tid}/resume"), &json!({})).await?;
            ctx.out.show(&t, || show_trigger(&t))
        }
        TriggerCommand::Disconnect { agent, trigger_id, yes } => {
            let agent = agents::resolve(&api, &agent).await?;
            let tid = id(&trigger_id, "trg_", "see `steward trigger list <agent>`")?;
            if !yes {
                let t = api.get(&format!("/v1/agents/{agent}/triggers/{tid}")).await?;
                eprintln!(
                    "trigger {tid} `{}` (fired {} times); its URL {} stops working and senders get 404",
                    cell(&t["name"]),
                    cell(&t["fire_count"]),
                    cell(&t["url"])
                );
            }
            confirm(&format!("disconnect trigger {tid}"), yes)?;
            let done = api.delete(&format!("/v1/agents/{agent}/triggers/{tid}")).await?;
            ctx.out.show(&done, || println!("disconnected trigger {tid}"))
        }
    }
}

fn show_schedule(s: &Value) {
    print_fields(&[
        ("id", cell(&s["id"])),
        ("name", cell(&s["name"])),
        ("cron", format!("{} ({})", cell(&s["cron"]), cell(&s["timezone"]))),
        ("state", cell(&s["state"])),
        ("next", when(&s["next_fire_at"])),
        ("fired", format!("{} times, last {}", cell(&s["fire_count"]), when(&s["last_fired_at"]))),
    ]);
}

pub async fn run_schedule(ctx: &Context, cmd: ScheduleCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        ScheduleCommand::Create { agent, name, cron, timezone, template, missed } => {
            let agent = agents::resolve(&api, &agent).await?;
            let mut body = json!({"name": name, "cron": cron});
            for (k, v) in [("timezone", timezone), ("input_template", template), ("missed", missed)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let s = api.post(&format!("/v1/agents/{agent}/schedules"), &body).await?;
            ctx.out.show(&s, || show_schedule(&s))
        }
        ScheduleCommand::List { agent } => {
            let agent = agents::resolve(&api, &agent).await?;
            let v = api.get(&format!("/v1/agents/{agent}/schedules")).await?;
            ctx.out.show(&v, || {
                let mut t = table(&["ID", "NAME", "CRON", "ZONE", "STATE", "NEXT", "FIRED", "LAST ERROR"]);
                for x in v["data"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        cell(&x["id"]),
                        cell(&x["name"]),
                        cell(&x["cron"]),
                        cell(&x["timezone"]),
                        cell(&x["state"]),
                        when(&x["next_fire_at"]),
                        cell(&x["fire_count"]),
                        cell(&x["last_error"]),
                    ]);
                }
                print_table(&t, "no schedules; create one with `steward schedule create <agent> --name … --cron …`");
            })
        }
        ScheduleCommand::Pause { agent, schedule_id, until } => {
            let agent = agents::resolve(&api, &agent).await?;
            let sid = id(&schedule_id, "sch_", "see `steward schedule list <agent>`")?;
            let body = until.map(|u| json!({"resume_at": u})).unwrap_or_else(|| json!({}));
            let s = api.post(&format!("/v1/agents/{agent}/schedules/{sid}/pause"), &body).await?;
            ctx.out.show(&s, || show_schedule(&s))
        }
        ScheduleCommand::Resume { agent, schedule_id } => {
            let agent = agents::resolve(&api, &agent).await?;
            let sid = id(&schedule_id, "sch_", "see `steward schedule list <agent>`")?;
            let s = api.post(&format!("/v1/agents/{agent}/schedules/{sid}/resume"), &json!({})).await?;
            ctx.out.show(&s, || show_schedule(&s))
        }
        ScheduleCommand::History { agent, schedule_id } => {
            let agent = agents::resolve(&api, &agent).await?;
            let sid = id(&schedule_id, "sch_", "see `steward schedule list <agent>`")?;
            let v = api.get(&format!("/v1/agents/{agent}/schedules/{sid}/executions")).await?;
            ctx.out.show(&v, || {
                let mut t = table(&["SCHEDULED", "FIRED", "OUTCOME", "RUN", "ERROR"]);
                for x in v["data"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        when(&x["scheduled_at"]),
                        when(&x["fired_at"]),
                        cell(&x["outcome"]),
                        cell(&x["run_id"]),
                        cell(&x["error"]),
                    ]);
                }
                print_table(&t, "no executions yet");
            })
        }
    }
}
