//! Server configuration from flags, `STEWARD_*` environment variables and a TOML config file,
//! in that precedence (§15), merged once into `ServerConfig`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use steward_core::clock::{Clock, SystemClock};
use steward_core::redact::SecretRegistry;
use steward_llm::{RetryPolicy, Timeouts};
use steward_runtime::RuntimeConfig;
use steward_server::config::{Database, ServerConfig, SmtpConfig};
use steward_server::secrets::MasterKey;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";

/// Where the data lives; shared by `serve` and `admin`.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database, the master key and mail.log [default: the user's data dir, e.g. ~/.local/share/steward]
    #[arg(long, env = "STEWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use PostgreSQL instead of the embedded SQLite file, e.g. postgres://user@127.0.0.1:5432/steward
    #[arg(long, env = "STEWARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML config file [default: ~/.config/steward/steward.toml if it exists]
    #[arg(long, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on [default: 127.0.0.1:8420]
    #[arg(long, env = "STEWARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// File holding the base64 master key [default: <data-dir>/master.key, created on first start].
    /// Replicas sharing a PostgreSQL database must all use the same key (or set STEWARD_MASTER_KEY).
    #[arg(long, env = "STEWARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// SMTP server for login codes, e.g. smtp://user:pass@mail.example.com:587?tls=required. Without it, codes go to <data-dir>/mail.log
    #[arg(long, env = "STEWARD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// From: address for login mails [default: steward@localhost]
    #[arg(long, env = "STEWARD_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Lifetime of login session tokens, in seconds [default: 43200 (12 h)]
    #[arg(long, env = "STEWARD_SESSION_TTL_SECS")]
    pub session_ttl_secs: Option<i64>,
    /// Directory of agent workspaces [default: <data-dir>/workspaces]
    #[arg(long, env = "STEWARD_WORKSPACES_DIR")]
    pub workspaces_dir: Option<PathBuf>,
    /// Refuse `mcp_stdio` tool sources (programs started on this host); only `mcp_http` and built-in ones remain
    #[arg(long, env = "STEWARD_NO_STDIO_SOURCES")]
    pub no_stdio_sources: bool,
    /// Most runs executing at once on this server; more wait, queued, for a slot [default: 64]
    #[arg(long, env = "STEWARD_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
    /// How often this server heartbeats the runs it executes, in seconds [default: 2]
    #[arg(long, env = "STEWARD_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    /// A run whose heartbeat is older than this (seconds) was left by a dead replica and is ended as `interrupted`;
    /// also the lease of an in-flight Idempotency-Key. Lower recovers faster, but a replica stalled that long loses its runs
    /// [default: 10; at least 3 heartbeats]
    #[arg(long, env = "STEWARD_STALE_AFTER_SECS")]
    pub stale_after_secs: Option<u64>,
    /// This server's public base URL, used in OAuth callbacks (`<url>/v1/integrations/callback`) [default: http://<listen address>]
    #[arg(long, env = "STEWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The Telegram Bot API base URL (chat channels) [default: https://api.telegram.org]
    #[arg(long, env = "STEWARD_TELEGRAM_API_URL")]
    pub telegram_api_url: Option<String>,
    /// The Slack Web API base URL (chat channels) [default: https://slack.com/api]
    #[arg(long, env = "STEWARD_SLACK_API_URL")]
    pub slack_api_url: Option<String>,
    /// Directory of extra integration app files (`*.json`/`*.toml`); a file with a shipped app's id replaces that app
    #[arg(long, env = "STEWARD_INTEGRATIONS_DIR")]
    pub integrations_dir: Option<PathBuf>,
    /// The Concierge's model, `provider_id/model` (a provider configured in each sandbox) [default: the sandbox's first provider and its first model]
    #[arg(long, env = "STEWARD_CONCIERGE_MODEL")]
    pub concierge_model: Option<String>,
}

/// The config file. Every key is optional; unknown keys are an error so typos do not pass.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub master_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    pub session_ttl_secs: Option<i64>,
    pub workspaces_dir: Option<PathBuf>,
    pub no_stdio_sources: Option<bool>,
    pub max_concurrent_runs: Option<usize>,
    pub heartbeat_secs: Option<u64>,
    pub stale_after_secs: Option<u64>,
    pub public_url: Option<String>,
    pub telegram_api_url: Option<String>,
    pub slack_api_url: Option<String>,
    pub integrations_dir: Option<PathBuf>,
    pub concierge_model: Option<String>,
    /// `[integrations.<app>]` tables: `client_id`, `client_secret`, `webhook_secret`.
    #[serde(default)]
    pub integrations: std::collections::BTreeMap<String, steward_runtime::integrations::AppCredentials>,
}

pub fn load_file(explicit: Option<&Path>) -> anyhow::Result<FileConfig> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match dirs::config_dir().map(|d| d.join("steward").join("steward.toml")) {
            Some(p) if p.exists() => p,
            _ => return Ok(FileConfig::default()),
        },
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The data dir and database both `serve` and `admin` use.
pub fn storage(args: &StorageArgs, file: &FileConfig) -> anyhow::Result<(PathBuf, Database)> {
    let data_dir = match args.data_dir.clone().or_else(|| file.data_dir.clone()) {
        Some(d) => d,
        None => dirs::data_dir().map(|d| d.join("steward")).context("cannot find a data directory for this user; pass --data-dir")?,
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let database = match args.database_url.clone().or_else(|| file.database_url.clone()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Database::Postgres(url),
        Some(url) if url.starts_with("sqlite:") => {
            Database::Sqlite(PathBuf::from(url.trim_start_matches("sqlite://").trim_start_matches("sqlite:")))
        }
        Some(other) => bail!("--database-url must start with postgres:// or sqlite: (got `{}`)", other.split(':').next().unwrap_or("")),
        None => Database::Sqlite(data_dir.join("steward.db")),
    };
    Ok((data_dir, database))
}

fn build(args: ServeArgs) -> anyhow::Result<(ServerConfig, bool)> {
    let file = load_file(args.storage.config.as_deref())?;
    let (data_dir, database) = storage(&args.storage, &file)?;
    let listen = match args.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse().expect("the default address parses"),
    };
    // The master key: STEWARD_MASTER_KEY, then a key file (flag, env, config), then the config
    // file's inline key, then <data-dir>/master.key (created on first start).
    let env_key = std::env::var("STEWARD_MASTER_KEY").ok().filter(|k| !k.trim().is_empty());
    let (master_key, created) = if let Some(k) = env_key {
        (MasterKey::from_base64(&k).map_err(|e| anyhow::anyhow!("STEWARD_MASTER_KEY: {e}"))?, false)
    } else if let Some(path) = args.master_key_file.or(file.master_key_file) {
        (MasterKey::load_or_create(&path).map_err(anyhow::Error::msg)?.0, false)
    } else if let Some(k) = file.master_key {
        (MasterKey::from_base64(&k).map_err(|e| anyhow::anyhow!("config master_key: {e}"))?, false)
    } else {
        MasterKey::load_or_create(&data_dir.join("master.key")).map_err(anyhow::Error::msg)?
    };
    let smtp = args.smtp_url.or(file.smtp_url).map(|url| SmtpConfig {
        url,
        from: args.smtp_from.clone().or(file.smtp_from.clone()).unwrap_or_else(|| "steward@localhost".into()),
    });
    let session_ttl_secs = args.session_ttl_secs.or(file.session_ttl_secs).unwrap_or(12 * 3600);
    if !(60..=30 * 86_400).contains(&session_ttl_secs) {
        bail!("--session-ttl-secs must be between 60 and 2592000 (30 days); got {session_ttl_secs}");
    }
    let mut runtime = RuntimeConfig { node_id: node_id(&data_dir)?, ..RuntimeConfig::default() };
    runtime.tools.workspaces = args.workspaces_dir.or(file.workspaces_dir).unwrap_or_else(|| data_dir.join("workspaces"));
    runtime.tools.allow_stdio_sources = !(args.no_stdio_sources || file.no_stdio_sources.unwrap_or(false));
    if let Some(n) = args.max_concurrent_runs.or(file.max_concurrent_runs) {
        if !(1..=100_000).contains(&n) {
            bail!("--max-concurrent-runs must be between 1 and 100000; got {n}");
        }
        runtime.max_concurrent_runs = n;
    }
    let heartbeat = args.heartbeat_secs.or(file.heartbeat_secs).unwrap_or(runtime.heartbeat.as_secs());
    let stale_after = args.stale_after_secs.or(file.stale_after_secs).unwrap_or(runtime.stale_after.as_secs());
    if !(1..=300).contains(&heartbeat) {
        bail!("--heartbeat-secs must be between 1 and 300; got {heartbeat}");
    }
    if stale_after < 3 * heartbeat || stale_after > 3600 {
        bail!("--stale-after-secs must be at least 3 heartbeats ({}) and at most 3600; got {stale_after}", 3 * heartbeat);
    }
    runtime.heartbeat = std::time::Duration::from_secs(heartbeat);
    runtime.stale_after = std::time::Duration::from_secs(stale_after);
    let mut catalog = steward_core::integration::Catalog::shipped();
    if let Some(dir) = args.integrations_dir.or(file.integrations_dir) {
        catalog = catalog.with_dir(&dir).map_err(|e| anyhow::anyhow!("integration apps in {}: {e}", dir.display()))?;
    }
    for app in file.integrations.keys() {
        if catalog.get(app).is_none() {
            bail!(
                "[integrations.{app}] in the config file names no app of the catalog; add the app with --integrations-dir or fix the name"
            );
        }
    }
    let public_url = args.public_url.or(file.public_url).unwrap_or_else(|| format!("http://{listen}"));
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        bail!("--public-url must start with http:// or https:// (got `{public_url}`)");
    }
    runtime.integrations = steward_runtime::integrations::IntegrationsConfig {
        catalog: Arc::new(catalog),
        credentials: file.integrations,
        public_url,
        state_key: Vec::new(), // derived from the master key by the server
    };
    let mut channels = steward_server::config::ChannelsConfig::default();
    if let Some(url) = args.telegram_api_url.or(file.telegram_api_url) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--telegram-api-url must start with http:// or https:// (got `{url}`)");
        }
        channels.telegram_api_url = url.trim_end_matches('/').to_owned();
    }
    if let Some(url) = args.slack_api_url.or(file.slack_api_url) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--slack-api-url must start with http:// or https:// (got `{url}`)");
        }
        channels.slack_api_url = url.trim_end_matches('/').to_owned();
    }
    let concierge_model = args.concierge_model.or(file.concierge_model);
    if let Some(m) = &concierge_model {
        steward_server::config::parse_concierge_model(m).map_err(|e| anyhow::anyhow!("--concierge-model: {e}"))?;
    }
    let config = ServerConfig {
        concierge_model,
        listen,
        data_dir,
        master_key,
        smtp,
        session_ttl_secs,
        runtime,
        llm_timeouts: Timeouts::default(),
        llm_retry: RetryPolicy::default(),
        sse_heartbeat: std::time::Duration::from_secs(15),
        stream_poll: ServerConfig::default_stream_poll(&database),
        database,
        channels,
    };
    Ok((config, created))
}

/// This node's stable identity (`<data-dir>/node.id`, created once), so a restarted server
/// recognises the runs its previous life left running and recovers them at once.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("node.id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = RuntimeConfig::default().node_id;
            std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// Installs the log subscriber (`STEWARD_LOG`, tracing's filter syntax), whose every line is
/// scrubbed of the secrets in `registry`.
pub fn init_logging(registry: SecretRegistry) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    steward_server::logging::init(filter, registry);
}

/// `steward serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let registry = SecretRegistry::new();
    init_logging(registry.clone());
    let (mut config, created_key) = build(args)?;
    config.runtime.log_redaction = registry;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = steward_server::open_store(&config, clock.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let where_ = match &config.database {
        Database::Sqlite(p) => format!("SQLite {}", p.display()),
        Database::Postgres(_) => "PostgreSQL".to_owned(),
    };
    if created_key {
        eprintln!("created a new master key in {}", config.data_dir.join("master.key").display());
    }
    let data_dir = config.data_dir.clone();
    let mail = if config.smtp.is_some() {
        "login codes are sent by SMTP".to_owned()
    } else {
        format!("login codes are written to {}", config.mail_log().display())
    };
    let state = steward_server::AppState::new(store, config, clock).map_err(anyhow::Error::msg)?;
    println!("steward listening on http://{addr} ({where_}); {mail}");
    println!("get an API key: steward admin create-account --email you@example.com --data-dir {}", data_dir.display());
    steward_server::serve(state, listener).await
}
