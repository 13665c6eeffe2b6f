//! The server's configuration: one struct, built once at start by the binary from flags,
//! `STEWARD_*` environment variables and the config file, then passed down.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

impl ServerConfig {
    /// The file login codes go to when SMTP is not configured.
    pub fn mail_log(&self) -> PathBuf {
        self.data_dir.join("mail.log")
    }
}
