//! Outgoing mail (login codes): SMTP when configured, else appended to `<data-dir>/mail.log`
//! (the development default, documented in the README).

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::config::SmtpConfig;

/// Where login codes go.
#[derive(Clone)]
pub enum Mailer {
    Smtp { transport: Box<AsyncSmtpTransport<Tokio1Executor>>, from: Mailbox },
    File { path: PathBuf, lock: Arc<Mutex<()>> },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
            Mailer::File { path, .. } => write!(f, "Mailer::File({})", path.display()),
        }
    }
}

impl Mailer {
    pub fn new(smtp: Option<&SmtpConfig>, mail_log: PathBuf) -> Result<Self, String> {
        match smtp {
            Some(cfg) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.url)
                    .map_err(|e| format!("bad SMTP URL (expected smtp://user:pass@host:port or smtps://…): {e}"))?
                    .build();
                let from = cfg.from.parse().map_err(|e| format!("bad SMTP from address `{}`: {e}", cfg.from))?;
                Ok(Mailer::Smtp { transport: Box::new(transport), from })
            }
            None => Ok(Mailer::File { path: mail_log, lock: Arc::new(Mutex::new(())) }),
        }
    }

    /// Sends a login code to `to`.
    pub async fn send_login_code(&self, to: &str, code: &str, ttl_minutes: i64) -> Result<(), String> {
        let subject = "Your Steward sign-in code";
        let text = format!(
            "Your Steward sign-in code is {code}\n\nIt expires in {ttl_minutes} minutes. If you did not ask for it, ignore this mail.\n"
        );
        match self {
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = to.parse().map_err(|e| format!("bad recipient: {e}"))?;
                let msg = Message::builder().from(from.clone()).to(to).subject(subject).body(text).map_err(|e| e.to_string())?;
                transport.send(msg).await.map_err(|e| format!("SMTP send failed: {e}"))?;
                Ok(())
            }
            Mailer::File { path, lock } => self::append(path, lock, &format!("to={to} subject=\"{subject}\" code={code}")).await,
        }
    }

    /// Records a note for the operator in the mail log (file mode only), e.g. a login attempt
    /// for an unknown address, which must not be revealed to the requester.
    pub async fn note(&self, line: &str) {
        if let Mailer::File { path, lock } = self
            && let Err(e) = append(path, lock, line).await
        {
            tracing::warn!(error = %e, "cannot write the mail log");
        }
    }
}

async fn append(path: &PathBuf, lock: &Mutex<()>, line: &str) -> Result<(), String> {
    let _guard = lock.lock().await;
    let mut opts = tokio::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).await.map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    f.write_all(format!("{stamp} {line}\n").as_bytes()).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // tokio hands writes to a background thread; without a flush the line may land after we
    // have told the user to look for it.
    f.flush().await.map_err(|e| format!("cannot write {}: {e}", path.display()))
}
