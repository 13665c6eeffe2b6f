//! Which server, credential and sandbox a client command uses, decided once at start from
//! flags, `STEWARD_*` environment variables (through clap), the stored login and the nearest
//! `.steward/refs.json`. Nothing below this module looks at the environment.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};

use super::GlobalOpts;
use super::credentials::{Refs, Secret, StoredLogin};
use super::http::Api;
use super::output::Output;

/// Where the client looks when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8420";

/// Everything a client command needs to know about where it acts.
#[derive(Debug)]
pub struct Context {
    /// Holds `credentials.json`.
    pub config_dir: PathBuf,
    /// The directory the command runs in; `steward setup` writes its refs here.
    pub cwd: PathBuf,
    /// The server URL, without a trailing slash.
    pub server: String,
    /// Why this server: `--server`, a refs file, the stored login or the default.
    pub server_from: String,
    /// The sandbox sent as `Steward-Sandbox`, if any.
    pub sandbox: Option<String>,
    /// Why this sandbox: `--sandbox` or the refs file's path.
    pub sandbox_from: Option<String>,
    pub login: Option<StoredLogin>,
    api_key: Option<Secret>,
    pub out: Output,
}

impl Context {
    /// Resolves flags (and their environment variables), the stored login and refs.json.
    pub fn resolve(opts: GlobalOpts) -> anyhow::Result<Context> {
        let config_dir = match opts.config_dir {
            Some(d) => d,
            None => {
                dirs::config_dir().map(|d| d.join("steward")).context("cannot find a config directory for this user; pass --config-dir")?
            }
        };
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let login = StoredLogin::load(&config_dir)?;
        let refs = Refs::find(&cwd)?;
        let (server, server_from) = if let Some(s) = opts.server.filter(|s| !s.trim().is_empty()) {
            (s, "--server / STEWARD_URL".to_owned())
        } else if let Some((r, path)) = &refs {
            (r.server.clone(), path.display().to_string())
        } else if let Some(l) = &login {
            (l.server.clone(), "the stored login".to_owned())
        } else {
            (DEFAULT_SERVER.to_owned(), "the default".to_owned())
        };
        let (sandbox, sandbox_from) = if let Some(s) = opts.sandbox.filter(|s| !s.trim().is_empty()) {
            (Some(s), Some("--sandbox / STEWARD_SANDBOX".to_owned()))
        } else if let Some((r, path)) = &refs {
            (Some(r.sandbox_id.clone()), Some(path.display().to_string()))
        } else {
            (None, None)
        };
        Ok(Context {
            config_dir,
            cwd,
            server: normalize(&server),
            server_from,
            sandbox,
            sandbox_from,
            login,
            api_key: opts.api_key.filter(|k| !k.trim().is_empty()).map(|k| Secret::new(k.trim().to_owned())),
            out: Output { json: opts.json },
        })
    }

    /// The bearer credential: `--api-key`, else the stored login's token for this server.
    pub fn credential(&self, now: DateTime<Utc>) -> anyhow::Result<Secret> {
        if let Some(k) = &self.api_key {
            return Ok(k.clone());
        }
        let Some(login) = &self.login else {
            bail!(
                "not signed in: run `steward login`, or pass --api-key (or set STEWARD_API_KEY) with a key from `steward admin create-account`"
            );
        };
        if normalize(&login.server) != self.server {
            bail!(
                "you are signed in to {}, but this command talks to {} (from {}); run `steward login --server {}` or pass --api-key",
                login.server,
                self.server,
                self.server_from,
                self.server
            );
        }
        let expires = DateTime::parse_from_rfc3339(&login.expires_at)
            .with_context(|| format!("the stored login has a bad expiry `{}`; run `steward login`", login.expires_at))?;
        if expires <= now {
            bail!("session expired; run `steward login` (the stored session ended at {})", login.expires_at);
        }
        Ok(login.token.clone())
    }

    /// A client that authenticates every request and names the sandbox, if one is known.
    pub fn api(&self) -> anyhow::Result<Api> {
        let token = self.credential(Utc::now())?;
        Api::new(&self.server, Some(token), self.sandbox.clone())
    }

    /// A client for the unauthenticated login endpoints.
    pub fn anonymous_api(&self) -> anyhow::Result<Api> {
        Api::new(&self.server, None, None)
    }

    /// The sandbox to act in for routes that take it in the path: the known one, else the
    /// API key's home sandbox (from `GET /v1/me`).
    pub async fn sandbox_or_home(&self, api: &Api) -> anyhow::Result<String> {
        if let Some(s) = &self.sandbox {
            return Ok(s.clone());
        }
        let me = api.get("/v1/me").await?;
        match me["key"]["sandbox_id"].as_str() {
            Some(s) => Ok(s.to_owned()),
            None => bail!("which sandbox? pass --sandbox sbx_… (see `steward sandbox list`), or run `steward setup` in this directory"),
        }
    }
}

/// A server URL without trailing slashes, so `http://h/` and `http://h` are the same server.
pub fn normalize(server: &str) -> String {
    server.trim().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(server: &str, login_server: &str, expires_at: &str) -> Context {
        Context {
            config_dir: PathBuf::from("/nonexistent"),
            cwd: PathBuf::from("/"),
            server: normalize(server),
            server_from: "--server / STEWARD_URL".into(),
            sandbox: None,
            sandbox_from: None,
            login: Some(StoredLogin {
                server: login_server.into(),
                token: Secret::new("tok".into()),
                expires_at: expires_at.into(),
                account_id: "acc_1".into(),
                email: "a@example.com".into(),
            }),
            api_key: None,
            out: Output { json: false },
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn stored_token_is_used_only_for_its_server_and_until_it_expires() {
        let ok = context("http://h:1/", "http://h:1", "2030-01-01T01:00:00Z");
        assert_eq!(ok.credential(now()).unwrap().expose(), "tok");
        let other = context("http://evil:1", "http://h:1", "2030-01-01T01:00:00Z");
        let e = other.credential(now()).unwrap_err().to_string();
        assert!(e.contains("signed in to http://h:1"), "{e}");
        let expired = context("http://h:1", "http://h:1", "2029-12-31T23:00:00Z");
        let e = expired.credential(now()).unwrap_err().to_string();
        assert!(e.contains("session expired"), "{e}");
    }

    #[test]
    fn an_api_key_wins_over_the_stored_login() {
        let mut c = context("http://evil:1", "http://h:1", "2000-01-01T00:00:00Z");
        c.api_key = Some(Secret::new("stw_x".into()));
        assert_eq!(c.credential(now()).unwrap().expose(), "stw_x");
        assert_eq!(format!("{:?}", c.api_key), "Some(Secret(…))");
    }
}
