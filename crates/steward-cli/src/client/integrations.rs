//! `steward integration …` (§10): the app catalog, connecting an account by OAuth (the
//! authorize URL is printed, then the connect is polled until it lands), connected accounts,
//! and publications (which agent serves which workspace or channel). `revoke` is destructive
//! (§9: the tokens are revoked at the app and the account goes with its publications): it
//! shows what goes and asks first, as does `unpublish`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::agents;
use super::context::Context;
use super::http::{Api, id};
use super::output::{cell, confirm, print_fields, print_table, short, table, when};

/// How often `connect` asks whether the account has landed.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// The app catalog: how each app connects, whether the server has its client credentials, connected accounts.
    List,
    /// One app: its tools, connected accounts and trigger components.
    Show {
        /// The app id, e.g. `slack` (see `steward integration list`).
        app: String,
    },
    /// Connect an account of an app: prints the URL to open in a browser, then waits until the authorization lands.
    ///
    /// The authorize URL is printed alone on a line of stdout (with --json it goes to stderr and
    /// stdout holds only the final status object, or with --no-wait the started connect).
    Connect {
        /// The app id, e.g. `slack`.
        app: String,
        /// A session (ses_…) to tell when the account lands.
        #[arg(long = "session", value_name = "ID")]
        session: Option<String>,
        /// How long to wait for the authorization, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
        /// Print the URL and return at once; check later with `steward integration accounts`.
        #[arg(long)]
        no_wait: bool,
    },
    /// Connected accounts of the current sandbox, with their status.
    Accounts {
        /// Only accounts of this app.
        #[arg(long = "app", value_name = "ID")]
        app: Option<String>,
    },
    /// Revoke a connected account's tokens at the app and delete it with its publications. Owner only; asks first.
    Revoke {
        /// The connected account (cac_…), from `steward integration accounts`.
        account_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Publish an agent on a workspace or channel of a connected account.
    Publish {
        /// The app id, e.g. `slack`.
        app: String,
        /// The connected account (cac_…).
        #[arg(long = "account", value_name = "CAC_ID")]
        account: String,
        /// The agent (id or name).
        #[arg(long)]
        agent: String,
        /// The workspace or channel id at the app, e.g. a Slack channel id `C0123456789`.
        #[arg(long)]
        target: String,
    },
    /// Which agent serves which workspace or channel of an app.
    Publications {
        /// The app id, e.g. `slack`.
        app: String,
    },
    /// Remove a publication: the agent stops serving that workspace or channel. Asks first.
    Unpublish {
        /// The app id, e.g. `slack`.
        app: String,
        /// The publication (pub_…), from `steward integration publications <app>`.
        pub_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(ctx: &Context, cmd: IntegrationCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        IntegrationCommand::List => {
            let v = api.get("/v1/integrations").await?;
            ctx.out.show(&v, || {
                let mut t = table(&["APP", "NAME", "CONNECT", "CONFIGURED", "ACCOUNTS", "COMPONENTS"]);
                for a in items(&v) {
                    t.add_row(vec![
                        cell(&a["id"]),
                        cell(&a["display_name"]),
                        cell(&a["connect"]),
                        yes_no(&a["configured"]),
                        account_count(&a["accounts"]),
                        items(&a["trigger_components"]).len().to_string(),
                    ]);
                }
                print_table(&t, "the server's catalog has no apps");
            })
        }
        IntegrationCommand::Show { app } => {
            let app = app_id(&app)?;
            let a = api.get(&format!("/v1/integrations/{app}")).await?;
            ctx.out.show(&a, || show_app(&a))
        }
        IntegrationCommand::Connect { app, session, timeout, no_wait } => {
            connect(ctx, &api, app_id(&app)?, session.as_deref(), Duration::from_secs(timeout), no_wait).await
        }
        IntegrationCommand::Accounts { app } => {
            let query = match &app {
                Some(a) => vec![("app_id", app_id(a)?.to_owned())],
                None => vec![],
            };
            let v = api.get_query("/v1/connected_accounts", &query).await?;
            ctx.out.show(&v, || {
                let mut t = table(&["ID", "APP", "LABEL", "STATUS", "REASON", "TOKEN EXPIRES", "CONNECTED"]);
                for x in items(&v) {
                    t.add_row(vec![
                        cell(&x["id"]),
                        cell(&x["app_id"]),
                        cell(&x["label"]),
                        cell(&x["status"]),
                        short(x["status_reason"].as_str().unwrap_or(""), 60),
                        when(&x["expires_at"]),
                        when(&x["created_at"]),
                    ]);
                }
                print_table(&t, "no connected accounts; connect one with `steward integration connect <app>`");
            })
        }
        IntegrationCommand::Revoke { account_id, yes } => revoke(ctx, &api, &account_id, yes).await,
        IntegrationCommand::Publish { app, account, agent, target } => {
            let app = app_id(&app)?;
            let account = id(&account, "cac_", "see `steward integration accounts`")?;
            let agent = agents::resolve(&api, &agent).await?;
            let body = json!({"connected_account_id": account, "agent_id": agent, "target": target});
            let p = api.post(&format!("/v1/integrations/{app}/publications"), &body).await?;
            ctx.out.show(&p, || {
                print_fields(&[
                    ("id", cell(&p["id"])),
                    ("app", cell(&p["app_id"])),
                    ("account", cell(&p["connected_account_id"])),
                    ("agent", cell(&p["agent_id"])),
                    ("target", cell(&p["target"])),
                    ("created", when(&p["created_at"])),
                ])
            })
        }
        IntegrationCommand::Publications { app } => {
            let app = app_id(&app)?;
            let v = api.get(&format!("/v1/integrations/{app}/publications")).await?;
            ctx.out.show(&v, || {
                let mut t = table(&["ID", "ACCOUNT", "AGENT", "TARGET", "CREATED"]);
                for p in items(&v) {
                    t.add_row(vec![
                        cell(&p["id"]),
                        cell(&p["connected_account_id"]),
                        cell(&p["agent_id"]),
                        cell(&p["target"]),
                        when(&p["created_at"]),
                    ]);
                }
                print_table(
                    &t,
                    &format!("no publications of {app}; add one with `steward integration publish {app} --account … --agent … --target …`"),
                );
            })
        }
        IntegrationCommand::Unpublish { app, pub_id, yes } => {
            let app = app_id(&app)?;
            let pid = id(&pub_id, "pub_", &format!("see `steward integration publications {app}`"))?;
            if !yes {
                let v = api.get(&format!("/v1/integrations/{app}/publications")).await?;
                let Some(p) = items(&v).iter().find(|p| p["id"] == pid) else {
                    bail!(
                        "publication {pid} is not among {app}'s publications in this sandbox; see `steward integration publications {app}`"
                    );
                };
                eprintln!(
                    "publication {pid}: agent {} serves {} `{}` of account {}; the agent stops serving it",
                    cell(&p["agent_id"]),
                    app,
                    cell(&p["target"]),
                    cell(&p["connected_account_id"])
                );
            }
            confirm(&format!("remove publication {pid}"), yes)?;
            let done = api.delete(&format!("/v1/integrations/{app}/publications/{pid}")).await?;
            ctx.out.show(&done, || println!("removed publication {pid}"))
        }
    }
}

/// The items of a `{"data": [...]}` answer (or of any JSON list).
fn items(v: &Value) -> &[Value] {
    v.get("data").unwrap_or(v).as_array().map(Vec::as_slice).unwrap_or_default()
}

fn yes_no(v: &Value) -> String {
    if v.as_bool() == Some(true) { "yes".into() } else { "no".into() }
}

/// `2`, or `2 (1 needs_reauth)` when some must be connected again.
fn account_count(accounts: &Value) -> String {
    let all = items(accounts);
    let stale = all.iter().filter(|a| a["status"] == "needs_reauth").count();
    if stale == 0 { all.len().to_string() } else { format!("{} ({stale} needs_reauth)", all.len()) }
}

/// Checks a user-typed app id (a slug such as `slack`) before it goes into a URL path.
fn app_id(raw: &str) -> anyhow::Result<&str> {
    let mut chars = raw.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok && raw.len() <= 40 {
        Ok(raw)
    } else {
        bail!(
            "`{}` is not an app id: expected a lowercase slug such as `slack`; see `steward integration list`",
            steward_core::ids::shorten(raw)
        )
    }
}

fn show_app(a: &Value) {
    let tools = match a["tools"]["kind"].as_str() {
        Some("mcp") => format!("MCP server at {}", cell(&a["tools"]["url"])),
        Some("http") => cell(&a["tools"]["names"]),
        _ => "-".into(),
    };
    let accounts: Vec<String> = items(&a["accounts"])
        .iter()
        .map(|x| match x["status"].as_str() {
            Some("active") => format!("{} {}", cell(&x["id"]), cell(&x["label"])),
            _ => format!("{} {} [{}: {}]", cell(&x["id"]), cell(&x["label"]), cell(&x["status"]), cell(&x["status_reason"])),
        })
        .collect();
    print_fields(&[
        ("id", cell(&a["id"])),
        ("name", cell(&a["display_name"])),
        ("description", cell(&a["description"])),
        ("connect", cell(&a["connect"])),
        ("configured", yes_no(&a["configured"])),
        ("tools", tools),
        ("accounts", if accounts.is_empty() { "-".into() } else { accounts.join("\n") }),
    ]);
    let components = items(&a["trigger_components"]);
    if !components.is_empty() {
        println!();
        let mut t = table(&["COMPONENT", "NAME", "DESCRIPTION"]);
        for c in components {
            t.add_row(vec![cell(&c["id"]), cell(&c["display_name"]), short(c["description"].as_str().unwrap_or(""), 80)]);
        }
        print_table(&t, "");
    }
    if a["connect"] == "oauth" && a["configured"] == false {
        let app = cell(&a["id"]);
        eprintln!("\nnot configured: the server's operator sets [integrations.{app}] client_id and client_secret in its config file");
    }
}

/// How a connect ended (or stopped being waited for); each holds the last status object.
enum Ended {
    Connected(Value),
    Failed(Value),
    Expired(Value),
    TimedOut(Value),
}

async fn connect(ctx: &Context, api: &Api, app: &str, session: Option<&str>, timeout: Duration, no_wait: bool) -> anyhow::Result<()> {
    let mut body = json!({});
    if let Some(s) = session {
        body["session_id"] = json!(id(s, "ses_", "pass the session's id (ses_…)")?);
    }
    let started = api.post(&format!("/v1/integrations/{app}/connect"), &body).await?;
    let url = cell(&started["authorize_url"]);
    if ctx.out.json {
        eprintln!("{url}");
        eprintln!("open this URL in a browser to connect {app}");
    } else {
        println!("{url}");
        eprintln!("open this URL in a browser to connect {app} (the app redirects back to {})", cell(&started["redirect_uri"]));
    }
    if no_wait {
        return ctx.out.show(&started, || {
            eprintln!(
                "not waiting; the link works until {}. Check with `steward integration accounts --app {app}`",
                when(&started["expires_at"])
            )
        });
    }
    let connect_id = started["connect_id"].as_str().unwrap_or_default();
    if connect_id.is_empty() || !connect_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        bail!("the server answered the connect without a usable connect_id; is {} a Steward server?", ctx.server);
    }
    let ended = wait(api, app, connect_id, timeout).await?;
    let retry = format!("run `steward integration connect {app}` to try again");
    match ended {
        Ended::Connected(s) => {
            let account = &s["connected_account"];
            ctx.out.show(&s, || println!("connected {app} account {} ({})", cell(&account["label"]), cell(&account["id"])))
        }
        Ended::Failed(s) => {
            ctx.out.show(&s, || {})?;
            bail!("connecting {app} failed: {}; {retry}", cell(&s["error"]))
        }
        Ended::Expired(s) => {
            ctx.out.show(&s, || {})?;
            bail!("the connect link for {app} expired before the authorization completed; {retry}")
        }
        Ended::TimedOut(s) => {
            ctx.out.show(&s, || {})?;
            bail!(
                "timed out after {} s waiting for the authorization of {app} in the browser. The link still works until {}: \
                 finish it and check with `steward integration accounts --app {app}`, or {retry} (--timeout SECS waits longer)",
                timeout.as_secs(),
                when(&s["expires_at"])
            )
        }
    }
}

/// Polls the connect about once a second until it is no longer pending or `timeout` passes.
async fn wait(api: &Api, app: &str, connect_id: &str, timeout: Duration) -> anyhow::Result<Ended> {
    let deadline = Instant::now() + timeout;
    let _progress = Progress::start(app, timeout);
    loop {
        let s = api.get(&format!("/v1/integrations/connects/{connect_id}")).await?;
        match s["status"].as_str() {
            Some("pending") => {}
            Some("connected") => return Ok(Ended::Connected(s)),
            Some("expired") => return Ok(Ended::Expired(s)),
            _ => return Ok(Ended::Failed(s)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Ended::TimedOut(s));
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// A spinner on stderr while waiting when stderr is a terminal; else one plain line. Cleared
/// when dropped, whatever way the wait ends.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn start(app: &str, timeout: Duration) -> Progress {
        let message = format!("waiting for the authorization of {app} in the browser");
        if !std::io::stderr().is_terminal() {
            eprintln!("{message} (up to {} s)…", timeout.as_secs());
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed}; Ctrl-C stops waiting)") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

async fn revoke(ctx: &Context, api: &Api, raw: &str, yes: bool) -> anyhow::Result<()> {
    let cid = id(raw, "cac_", "see `steward integration accounts`")?;
    if !yes {
        let a = api.get(&format!("/v1/connected_accounts/{cid}")).await?;
        let app = app_id(a["app_id"].as_str().unwrap_or_default())?;
        let pubs = api.get(&format!("/v1/integrations/{app}/publications")).await?;
        let mine: Vec<&Value> = items(&pubs).iter().filter(|p| p["connected_account_id"] == cid).collect();
        eprintln!(
            "connected account {cid}: {app} `{}` ({}), connected {}; its tokens are revoked at the app and it is deleted",
            cell(&a["label"]),
            cell(&a["status"]),
            when(&a["created_at"])
        );
        if mine.is_empty() {
            eprintln!("  it has no publications");
        } else {
            eprintln!("  with its {} publication(s), whose agents stop serving them:", mine.len());
            for p in mine {
                eprintln!("    {} agent {} on `{}`", cell(&p["id"]), cell(&p["agent_id"]), cell(&p["target"]));
            }
        }
    }
    confirm(&format!("revoke connected account {cid}"), yes)?;
    let done = api.delete(&format!("/v1/connected_accounts/{cid}")).await?;
    if let Some(w) = done["warning"].as_str() {
        eprintln!("warning: {w}");
    }
    ctx.out.show(&done, || println!("revoked connected account {cid}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: IntegrationCommand,
    }

    #[test]
    fn app_ids_are_checked_before_they_reach_a_path() {
        assert_eq!(app_id("slack").unwrap(), "slack");
        assert!(app_id("google-drive_2").is_ok());
        for bad in ["", "Slack", "2slack", "slack/../x", "a".repeat(41).as_str()] {
            let e = app_id(bad).unwrap_err().to_string();
            assert!(e.contains("steward integration list"), "{e}");
        }
    }

    #[test]
    fn connect_waits_five_minutes_unless_told_otherwise() {
        let Cli { command } = Cli::try_parse_from(["x", "connect", "slack"]).unwrap();
        assert!(matches!(command, IntegrationCommand::Connect { timeout: 300, no_wait: false, .. }), "{command:?}");
        assert!(Cli::try_parse_from(["x", "connect", "slack", "--timeout", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "publish", "slack", "--account", "cac_x", "--agent", "a"]).is_err(), "--target is required");
    }

    #[test]
    fn stale_accounts_are_flagged_in_the_count() {
        assert_eq!(account_count(&json!([])), "0");
        assert_eq!(account_count(&json!([{"status": "active"}, {"status": "needs_reauth"}])), "2 (1 needs_reauth)");
    }
}
