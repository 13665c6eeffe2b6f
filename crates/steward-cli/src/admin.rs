//! `steward admin …`: commands that work on the store directly, for bootstrapping a
//! self-hosted server (they may run while the server does).

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use steward_core::clock::SystemClock;
use steward_core::keys;
use steward_core::tenancy::{Email, KeyKind, sandbox_name};
use steward_server::config::Database;
use steward_store::{NewApiKey, Store};

use crate::settings::{StorageArgs, load_file, storage};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account (or reuse the one with this email), a sandbox it owns, and an account API key.
    CreateAccount(CreateAccount),
}

#[derive(Debug, Args)]
pub struct CreateAccount {
    /// The account's email address.
    #[arg(long)]
    email: String,
    /// Name of the sandbox to create (reused if the account already owns one by this name).
    #[arg(long, default_value = "default")]
    sandbox: String,
    #[command(flatten)]
    storage: StorageArgs,
    /// Print {"account_id", "sandbox_id", "api_key"} as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateAccount(args) => create_account(args).await,
    }
}

async fn create_account(args: CreateAccount) -> anyhow::Result<()> {
    let email = Email::parse(&args.email, "--email").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let name = sandbox_name(&args.sandbox, "--sandbox").map_err(|e| anyhow::anyhow!("--sandbox: {}", e.message))?;
    let file = load_file(args.storage.config.as_deref())?;
    let (_, database) = storage(&args.storage, &file)?;
    let clock = Arc::new(SystemClock);
    let store = match &database {
        Database::Sqlite(p) => Store::open_sqlite(p, clock).await,
        Database::Postgres(url) => Store::connect(url, clock).await,
    }
    .context("cannot open the store")?;
    let account = store.ensure_account(&email).await?;
    let sandbox = match store.owned_sandbox_by_name(&account.id, &name).await? {
        Some(s) => s,
        None => store.create_sandbox(&account.id, &name).await?,
    };
    let minted = keys::mint();
    store
        .create_api_key(NewApiKey {
            sandbox_id: sandbox.id.clone(),
            account_id: account.id.clone(),
            kind: KeyKind::Account,
            agent_id: None,
            name: "admin create-account".into(),
            key_hash: minted.hash.clone(),
            display_prefix: minted.display_prefix.clone(),
        })
        .await?;
    store.close().await;
    if args.json {
        println!("{}", serde_json::json!({"account_id": account.id, "sandbox_id": sandbox.id, "api_key": minted.plaintext}));
    } else {
        println!("account   {} ({})", account.id, email.as_str());
        println!("sandbox   {} ({})", sandbox.id, sandbox.name);
        println!("api key   {}", minted.plaintext);
        println!("\nThe key is shown only once. Use it with: export STEWARD_API_KEY={}", minted.plaintext);
    }
    Ok(())
}
