//! `steward provider list|get|add|delete` (§8): the model providers of the current sandbox,
//! where its agents and its Concierge send model calls.
//!
//! `add` takes the provider's API key from an environment variable or from stdin, never as a
//! flag value (that would land in shell history and `ps`). It stores the key in a new vault,
//! then creates the provider; if the provider cannot be created, the vault is deleted again, so
//! nothing half-made is left. The key is held as a `Secret` and must never be printed, not even
//! in an error. Deleting a provider shows it and asks first; its key vault is kept.

use std::env::VarError;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use steward_core::ValidationError;
use steward_core::provider::{ProviderConfig, ProviderId, ProviderKind};
use steward_core::vault::vault_name;

use super::context::Context;
use super::credentials::Secret;
use super::http::{Api, ApiError, id};
use super::output::{cell, confirm, print_fields, print_table, prompt, table, when};

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Anthropic's Messages API [default URL: https://api.anthropic.com].
    Anthropic,
    /// OpenAI's Chat Completions [default URL: https://api.openai.com/v1].
    #[value(name = "openai")]
    OpenAi,
    /// Google Gemini [default URL: https://generativelanguage.googleapis.com/v1beta].
    Google,
    /// Any server speaking OpenAI's protocol: vLLM, llama.cpp, Ollama, gateways (needs --base-url).
    #[value(name = "openai_compatible")]
    OpenAiCompatible,
}

impl From<Kind> for ProviderKind {
    fn from(k: Kind) -> ProviderKind {
        match k {
            Kind::Anthropic => ProviderKind::Anthropic,
            Kind::OpenAi => ProviderKind::OpenAi,
            Kind::Google => ProviderKind::Google,
            Kind::OpenAiCompatible => ProviderKind::OpenAiCompatible,
        }
    }
}

const ADD_EXAMPLES: &str = "\
Examples:
  steward provider add anthropic --kind anthropic --model claude-sonnet-4-6 --api-key-env ANTHROPIC_API_KEY
  pass show openai | steward provider add openai --kind openai --model gpt-5 --model gpt-5-mini --api-key-stdin
  steward provider add local --kind openai_compatible --base-url http://127.0.0.1:8000/v1 --model llama-3.1-8b";

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// List the model providers of the current sandbox.
    List,
    /// Show one provider.
    Get {
        /// The provider id (a slug such as `anthropic`).
        id: String,
    },
    /// Add a model provider, storing its API key in a new vault first.
    ///
    /// The API key is never taken as a flag value: it would land in your shell history and in
    /// `ps`. Name an environment variable that holds it (--api-key-env), pipe it in
    /// (--api-key-stdin), or reuse a vault that already holds it (--vault). A key given with
    /// --api-key-env or --api-key-stdin goes into a new vault named `<id>-api-key`; if the
    /// provider cannot be created, that vault is deleted again. The key is never printed.
    ///
    /// (The global --api-key is your Steward credential, not the provider's key.)
    #[command(after_long_help = ADD_EXAMPLES)]
    Add(AddArgs),
    /// Delete a provider (agents that name it fail until it is re-created). Asks first.
    ///
    /// The vault holding its API key is kept, so `steward provider add … --vault vlt_…` brings
    /// the provider back as it was.
    Delete {
        /// The provider id (a slug such as `anthropic`).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The id agents name in `--model <id>/<model>`: a slug such as `anthropic` or `local-vllm`.
    pub id: String,
    /// The wire protocol the provider speaks.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// A model agents may use with this provider; repeat for several.
    #[arg(long = "model", value_name = "MODEL", required = true)]
    pub models: Vec<String>,
    /// Where to send requests [default: the kind's public API; required for openai_compatible].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The NAME of an environment variable holding the API key (not the key itself).
    #[arg(long, value_name = "NAME", group = "key")]
    pub api_key_env: Option<String>,
    /// Read the API key from one line of stdin (at a terminal, the line is shown as you type).
    #[arg(long, group = "key")]
    pub api_key_stdin: bool,
    /// A vault (vlt_…) of this sandbox that already holds the API key.
    #[arg(long, value_name = "VAULT_ID", group = "key")]
    pub vault: Option<String>,
}

pub async fn run(ctx: &Context, cmd: ProviderCommand) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        ProviderCommand::List => {
            let listing = api.list_all("/v1/providers", &[]).await?;
            ctx.out.show(&listing.to_json(), || {
                let mut t = table(&["ID", "KIND", "BASE URL", "MODELS", "KEY VAULT"]);
                for p in &listing.items {
                    t.add_row(vec![
                        cell(&p["id"]),
                        cell(&p["provider"]),
                        cell(&p["base_url"]),
                        cell(&p["models"]),
                        cell(&p["api_key_vault_id"]),
                    ]);
                }
                print_table(&t, "no model providers in this sandbox; add one with `steward provider add`");
            })
        }
        ProviderCommand::Get { id } => {
            let pid = provider_id(&id, "see `steward provider list`")?;
            let p = api.get(&format!("/v1/providers/{pid}")).await?;
            ctx.out.show(&p, || print_provider(&p))
        }
        ProviderCommand::Add(args) => add(ctx, &api, args).await,
        ProviderCommand::Delete { id, yes } => {
            let pid = provider_id(&id, "see `steward provider list`")?;
            if !yes {
                let p = api.get(&format!("/v1/providers/{pid}")).await?;
                eprintln!(
                    "provider `{pid}` ({} at {}; models {}), created {}; agents that name it fail their next run until it is re-created",
                    cell(&p["provider"]),
                    cell(&p["base_url"]),
                    cell(&p["models"]),
                    when(&p["created_at"])
                );
                if let Some(v) = p["api_key_vault_id"].as_str() {
                    eprintln!("  its API key stays in vault {v}; `steward provider add {pid} … --vault {v}` brings it back");
                }
            }
            confirm(&format!("delete provider {pid}"), yes)?;
            let done = api.delete(&format!("/v1/providers/{pid}")).await?;
            ctx.out.show(&done, || println!("deleted provider {pid}"))
        }
    }
}

async fn add(ctx: &Context, api: &Api, args: AddArgs) -> anyhow::Result<()> {
    let pid = provider_id(&args.id, "choose an id such as `anthropic` or `local-vllm`")?;
    // The server checks all of this again; checking it here first means a typo never costs a
    // vault round trip (or leaves one behind if the undo fails).
    let config = ProviderConfig::new(args.kind.into(), args.base_url.clone(), None, args.models.clone()).map_err(flag_error)?;
    let existing = args.vault.as_deref().map(|v| id(v, "vlt_", "pass the id of a vault of this sandbox")).transpose()?;
    let key = read_key(&args, pid)?;
    let new_vault = match &key {
        Some(k) => Some(create_key_vault(api, pid, k).await?),
        None => None,
    };

    let mut body = json!({"id": pid, "provider": config.kind.as_str(), "models": config.models});
    if let Some(u) = &args.base_url {
        body["base_url"] = json!(u);
    }
    if let Some(v) = new_vault.as_deref().or(existing) {
        body["api_key_vault_id"] = json!(v);
    }
    let provider = match api.post("/v1/providers", &body).await {
        Ok(p) => p,
        Err(e) => {
            return Err(match &new_vault {
                Some(v) => undo_vault(api, v, e).await,
                None => e,
            });
        }
    };
    ctx.out.show(&provider, || {
        print_provider(&provider);
        eprintln!();
        if let Some(v) = &new_vault {
            eprintln!("the API key is stored in the new vault {v} (`{pid}-api-key`); it is not shown again");
        }
        let first = provider["models"][0].as_str().unwrap_or("MODEL");
        eprintln!("agents use it as --model {pid}/{first}; `steward chat` uses the sandbox's first provider (by id)");
    })
}

/// The provider's API key from the environment variable or stdin the user named, if any.
fn read_key(args: &AddArgs, pid: &str) -> anyhow::Result<Option<Secret>> {
    let raw = if let Some(var) = &args.api_key_env {
        // The variable is named on this command line, so it is this command's input, not
        // configuration read behind the user's back (which only context.rs does).
        env_key(var)?
    } else if args.api_key_stdin {
        match prompt(&format!("API key for provider `{pid}` (shown as you type; end with Enter): "))? {
            Some(line) if !line.trim().is_empty() => line,
            _ => bail!("--api-key-stdin read no key; pipe it in, e.g. `pass show {pid} | steward provider add {pid} … --api-key-stdin`"),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(Secret::new(raw.trim().to_owned())))
}

fn env_key(var: &str) -> anyhow::Result<String> {
    // A mistyped `--api-key-env $KEY` passes the key itself: only a conventional variable name
    // (upper case, digits, `_`) is ever repeated in a message.
    let conventional = var.bytes().next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && var.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let valid_name = !var.is_empty() && !var.contains(['=', '\0']);
    let value = if valid_name { std::env::var(var) } else { Err(VarError::NotPresent) };
    match value {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) if conventional => bail!("environment variable {var} is empty; set it to the provider's API key, or use --api-key-stdin"),
        Err(VarError::NotPresent) if conventional => {
            bail!("environment variable {var} is not set; `export {var}=…` first (e.g. from your password manager), or use --api-key-stdin")
        }
        Err(VarError::NotUnicode(_)) if conventional => bail!("environment variable {var} is not valid UTF-8; an API key is text"),
        _ => bail!(
            "--api-key-env takes the NAME of a set environment variable (e.g. ANTHROPIC_API_KEY), not the key itself; \
             if you typed the key there, it is now in your shell history, so consider rotating it"
        ),
    }
}

/// Stores `key` in a new vault named `<id>-api-key` and returns the vault's id.
async fn create_key_vault(api: &Api, pid: &str, key: &Secret) -> anyhow::Result<String> {
    let name = format!("{pid}-api-key");
    if vault_name(&name, "name").is_err() {
        bail!(
            "the provider id `{pid}` is too long for its key vault `{name}` (vault names have at most 63 characters); \
             choose an id of at most 55 characters, or store the key in a vault yourself (POST /v1/vaults) and pass --vault vlt_…"
        );
    }
    let body = json!({
        "name": name,
        "secret": key.expose(),
        "description": format!("API key of model provider `{pid}` (stored by `steward provider add`)"),
    });
    let vault = match api.post("/v1/vaults", &body).await {
        Ok(v) => v,
        Err(e) if is_conflict_on(&e, "name") => return Err(vault_exists(api, &name).await),
        Err(e) => return Err(e.context("cannot store the API key in a vault")),
    };
    let vid = vault["id"].as_str().context("POST /v1/vaults answered without a vault id; is this a Steward server?")?;
    Ok(id(vid, "vlt_", "the server answered with a bad vault id")?.to_owned())
}

fn is_conflict_on(e: &anyhow::Error, param: &str) -> bool {
    e.downcast_ref::<ApiError>().is_some_and(|a| a.kind == "conflict" && a.param.as_deref() == Some(param))
}

/// The error for a key vault name that is taken, naming the vault to pass to --vault.
async fn vault_exists(api: &Api, name: &str) -> anyhow::Error {
    let found = api.list_all("/v1/vaults", &[]).await.ok().and_then(|l| l.items.into_iter().find(|v| v["name"] == name));
    let vid = found.as_ref().and_then(|v| v["id"].as_str()).unwrap_or("vlt_…");
    anyhow!(
        "a vault named `{name}` already exists in this sandbox ({vid}), probably from an earlier `steward provider add`; \
         to use the key stored there, pass --vault {vid} instead of --api-key-env/--api-key-stdin (to store a new key \
         instead, an owner deletes that vault first: DELETE /v1/vaults/{vid})"
    )
}

/// Deletes the vault `add` made for a provider that could not be created; `error` says why.
async fn undo_vault(api: &Api, vault: &str, error: anyhow::Error) -> anyhow::Error {
    match api.delete(&format!("/v1/vaults/{vault}")).await {
        Ok(_) => anyhow!("{error:#}\nthe vault {vault} made for the API key was deleted again; nothing was added"),
        Err(d) => anyhow!(
            "{error:#}\nthe vault {vault} made for the API key could not be deleted again ({d:#}); \
             reuse it with --vault {vault}, or ask an owner of the sandbox to delete it"
        ),
    }
}

/// Checks a provider id before it goes into a URL path or a vault name.
fn provider_id<'a>(raw: &'a str, hint: &str) -> anyhow::Result<&'a str> {
    ProviderId::parse(raw, "id").map_err(|e| anyhow!("{}; {hint}", e.message))?;
    Ok(raw)
}

/// A domain validation error, naming the flag the user typed instead of the API field.
fn flag_error(e: ValidationError) -> anyhow::Error {
    let flag = match e.param.as_str() {
        "base_url" => "--base-url",
        p if p.starts_with("models") => "--model",
        p => p,
    };
    anyhow!("{flag}: {}", e.message)
}

fn print_provider(p: &Value) {
    print_fields(&[
        ("id", cell(&p["id"])),
        ("kind", cell(&p["provider"])),
        ("base_url", cell(&p["base_url"])),
        ("models", cell(&p["models"])),
        ("key vault", cell(&p["api_key_vault_id"])),
        ("sandbox", cell(&p["sandbox_id"])),
        ("created", when(&p["created_at"])),
        ("updated", when(&p["updated_at"])),
    ]);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ProviderCommand,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("provider").chain(args.iter().copied()))
    }

    #[test]
    fn add_takes_at_most_one_key_source_and_at_least_one_model() {
        assert!(parse(&["add", "a", "--kind", "openai", "--model", "m", "--api-key-env", "K"]).is_ok());
        assert!(parse(&["add", "a", "--kind", "openai_compatible", "--model", "m", "--model", "n"]).is_ok());
        assert!(parse(&["add", "a", "--kind", "openai", "--model", "m", "--api-key-env", "K", "--api-key-stdin"]).is_err());
        assert!(parse(&["add", "a", "--kind", "openai", "--model", "m", "--api-key-stdin", "--vault", "vlt_x"]).is_err());
        assert!(parse(&["add", "a", "--kind", "openai"]).is_err());
        assert!(parse(&["add", "a", "--kind", "open_ai", "--model", "m"]).is_err());
    }

    #[test]
    fn a_key_passed_where_a_variable_name_belongs_is_never_repeated() {
        let e = env_key("sk-ant-api03-planted").unwrap_err().to_string();
        assert!(!e.contains("planted") && e.contains("not the key itself"), "{e}");
        let e = env_key("STEWARD_TEST_SURELY_UNSET_VARIABLE").unwrap_err().to_string();
        assert!(e.contains("STEWARD_TEST_SURELY_UNSET_VARIABLE is not set"), "{e}");
        assert!(env_key("").is_err() && env_key("A=B").is_err());
    }

    #[test]
    fn validation_errors_name_the_flag() {
        let e = ProviderConfig::new(ProviderKind::OpenAiCompatible, None, None, vec!["m".into()]).unwrap_err();
        assert!(flag_error(e).to_string().starts_with("--base-url: "));
        let e = ProviderConfig::new(ProviderKind::OpenAi, None, None, vec!["a b".into()]).unwrap_err();
        assert!(flag_error(e).to_string().starts_with("--model: "));
    }
}
