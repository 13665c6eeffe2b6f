//! The server's configuration: one struct, built once at start by the binary from flags,
//! `STEWARD_*` environment variables and the config file, then passed down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use steward_llm::{RetryPolicy, Timeouts};
use steward_runtime::RuntimeConfig;

use crate::secrets::MasterKey;

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded default: `<data-dir>/steward.db`.
    Sqlite(PathBuf),
    /// `postgres://…`, for several replicas.
    Postgres(String),
}

/// Outgoing mail for login codes. Without it, codes are appended to `<data-dir>/mail.log`.
#[derive(Clone)]
pub struct SmtpConfig {
    /// `smtp://user:pass@host:587?tls=required`, `smtps://…`, or `smtp://127.0.0.1:2525` (plain).
    pub url: String,
    /// The `From:` address.
    pub from: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SmtpConfig").field("from", &self.from).finish_non_exhaustive()
    }
}

/// Everything `steward serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub master_key: MasterKey,
    pub smtp: Option<SmtpConfig>,
    /// Lifetime of login session tokens.
    pub session_ttl_secs: i64,
    /// The agent runtime's tunables (node identity, heartbeats, tool timeout).
    pub runtime: RuntimeConfig,
    /// Time limits of model calls.
    pub llm_timeouts: Timeouts,
    /// Retries of model calls.
    pub llm_retry: RetryPolicy,
    /// Interval of heartbeat comments on idle event streams.
    pub sse_heartbeat: Duration,
    /// How often a stream's live tail re-reads the log without being woken. Events appended in
    /// this process wake tails at once; polling only covers other replicas, so SQLite (one
    /// process) can poll rarely and PostgreSQL clusters often.
    pub stream_poll: Duration,
    /// The Concierge's model as `provider_id/model`; `None` = each sandbox's first provider and
    /// its first model.
    pub concierge_model: Option<String>,
    /// Chat channels (§10): platform API base URLs (tests point them at local fakes).
    pub channels: ChannelsConfig,
}

/// Chat channels' settings.
#[derive(Debug, Clone)]
pub struct ChannelsConfig {
    /// The Telegram Bot API base URL (`https://api.telegram.org`); requests go to
    /// `<base>/bot<token>/<method>`.
    pub telegram_api_url: String,
    /// The Slack Web API base URL (`https://slack.com/api`); requests go to `<base>/<method>`.
    pub slack_api_url: String,
    /// How long a chat message's run may take before the reply is given up.
    pub reply_timeout: Duration,
    /// How often each replica looks for polled bots whose lease it can take.
    pub poll_tick: Duration,
    /// The long-poll `timeout` of `getUpdates` (below the lease's 30 s).
    pub poll_timeout: Duration,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            telegram_api_url: "https://api.telegram.org".into(),
            slack_api_url: "https://slack.com/api".into(),
            reply_timeout: Duration::from_secs(600),
            poll_tick: Duration::from_secs(5),
            poll_timeout: Duration::from_secs(10),
        }
    }
}

/// Splits `provider_id/model` (the model name may itself contain `/`).
pub fn parse_concierge_model(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('/') {
        Some((p, m)) if !p.trim().is_empty() && !m.trim().is_empty() => Ok((p.trim().to_owned(), m.trim().to_owned())),
        _ => Err(format!("`{raw}` is not `provider_id/model` (for example `anthropic/claude-sonnet-4-6`)")),
    }
}

impl ServerConfig {
    /// The stream poll interval that suits `database`.
    pub fn default_stream_poll(database: &Database) -> Duration {
        match database {
            Database::Sqlite(_) => Duration::from_secs(30),
            Database::Postgres(_) => Duration::from_millis(250),
        }
    }
}

impl ServerConfig {
    /// The file login codes go to when SMTP is not configured.
    pub fn mail_log(&self) -> PathBuf {
        self.data_dir.join("mail.log")
    }
}
