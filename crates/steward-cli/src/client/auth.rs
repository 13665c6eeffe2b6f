//! `steward login`, `logout` and `whoami`: email one-time-code sign-in (§1) and the stored
//! session token it leaves in the config dir.

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::context::Context;
use super::credentials::{Secret, StoredLogin};
use super::output::{cell, print_fields, prompt};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account's email address [default: asked on stdin]
    #[arg(long)]
    email: Option<String>,
    /// The six-digit code from an earlier sign-in mail; no new code is sent.
    /// Without it, a code is sent and then read from stdin.
    #[arg(long)]
    code: Option<String>,
}

/// `steward login`: send a code, read it back, store the session token.
pub async fn login(ctx: &Context, args: LoginArgs) -> anyhow::Result<()> {
    let api = ctx.anonymous_api()?;
    let email = match args.email {
        Some(e) => e,
        None => prompt("email: ")?.filter(|e| !e.is_empty()).context("no email address given; pass --email")?,
    };
    let code = match args.code {
        Some(c) => c,
        None => {
            api.post("/v1/auth/email/start", &json!({ "email": email })).await?;
            eprintln!(
                "sent a sign-in code to {email} if an account has that address (check your mail, or <data-dir>/mail.log on a dev server)"
            );
            prompt("6-digit code: ")?
                .filter(|c| !c.is_empty())
                .with_context(|| format!("no code entered; run `steward login --email {email} --code CODE` with the code from the mail"))?
        }
    };
    let answer = api.post("/v1/auth/email/verify", &json!({ "email": email, "code": code.trim() })).await?;
    let field = |name: &str| answer[name].as_str().map(str::to_owned).with_context(|| format!("the server's login answer has no `{name}`"));
    let login = StoredLogin {
        server: ctx.server.clone(),
        token: Secret::new(field("token")?),
        expires_at: field("expires_at")?,
        account_id: field("account_id")?,
        email: email.clone(),
    };
    let path = login.save(&ctx.config_dir)?;
    let shown = json!({
        "server": login.server,
        "account_id": login.account_id,
        "email": login.email,
        "expires_at": login.expires_at,
        "credentials_file": path.display().to_string(),
    });
    ctx.out.show(&shown, || {
        println!("signed in as {email} ({}) on {} until {}", login.account_id, login.server, login.expires_at);
        println!("the session token is stored in {}", path.display());
    })
}

/// `steward logout`: forget the stored session token.
pub fn logout(ctx: &Context) -> anyhow::Result<()> {
    let removed = StoredLogin::delete(&ctx.config_dir)?;
    let shown = json!({
        "signed_out": removed.is_some(),
        "credentials_file": removed.as_ref().map(|p| p.display().to_string()),
    });
    ctx.out.show(&shown, || match &removed {
        Some(p) => println!("signed out; removed {}", p.display()),
        None => println!("not signed in; nothing to remove"),
    })
}

/// `steward whoami`: the account and credential the server sees, and where commands act.
pub async fn whoami(ctx: &Context) -> anyhow::Result<()> {
    let api = ctx.api()?;
    let me = api.get("/v1/me").await?;
    ctx.out.show(&me, || {
        let via = match me["key"].as_object() {
            Some(k) => format!("API key {} ({}, home sandbox {})", cell(&k["id"]), cell(&k["kind"]), cell(&k["sandbox_id"])),
            None => match &ctx.login {
                Some(l) => format!("session token (expires {})", l.expires_at),
                None => "session token".to_owned(),
            },
        };
        let sandbox = match (&ctx.sandbox, &ctx.sandbox_from) {
            (Some(s), Some(from)) => format!("{s} (from {from})"),
            _ if me["key"].is_object() => "the key's home sandbox".to_owned(),
            _ => "your oldest sandbox (run `steward setup` or pass --sandbox to choose)".to_owned(),
        };
        print_fields(&[
            ("account", format!("{} ({})", cell(&me["email"]), cell(&me["account_id"]))),
            ("server", ctx.server.clone()),
            ("via", via),
            ("sandbox", sandbox),
        ]);
    })
}
