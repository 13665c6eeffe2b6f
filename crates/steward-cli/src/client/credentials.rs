//! What the client keeps on disk: the stored login (`<config dir>/credentials.json`, mode
//! 0600) and a project directory's `.steward/refs.json`. This module only reads and writes
//! those files; deciding which server, key and sandbox to use is `context.rs`'s job.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A key or session token. `Debug` and `Display` never show it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("…")
    }
}

/// The file name of the stored login inside the config dir.
const CREDENTIALS_FILE: &str = "credentials.json";

/// What `steward login` stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLogin {
    /// The server the token was issued by; the token is never sent anywhere else.
    pub server: String,
    pub token: Secret,
    /// RFC 3339.
    pub expires_at: String,
    pub account_id: String,
    pub email: String,
}

impl StoredLogin {
    /// The stored login in `config_dir`, if there is one.
    pub fn load(config_dir: &Path) -> anyhow::Result<Option<StoredLogin>> {
        let path = config_dir.join(CREDENTIALS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let login = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged; delete it with `steward logout` and run `steward login` again", path.display()))?;
        Ok(Some(login))
    }

    /// Writes the login to `config_dir` (created if needed), readable by the user only.
    pub fn save(&self, config_dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(config_dir).with_context(|| format!("cannot create {}", config_dir.display()))?;
        let path = config_dir.join(CREDENTIALS_FILE);
        let text = serde_json::to_string_pretty(self)? + "\n";
        write_private(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Removes the stored login; `Ok(None)` when there was none.
    pub fn delete(config_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        let path = config_dir.join(CREDENTIALS_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Some(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file with mode 0600, so the secret is never
/// readable by others, not even for a moment, and a crash leaves the old file whole.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `.steward/refs.json`: binds a project directory to a sandbox on a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refs {
    pub sandbox_id: String,
    pub server: String,
}

/// The refs file relative to a project directory.
pub fn refs_path(dir: &Path) -> PathBuf {
    dir.join(".steward").join("refs.json")
}

impl Refs {
    /// The refs file of `start` or its nearest parent that has one.
    pub fn find(start: &Path) -> anyhow::Result<Option<(Refs, PathBuf)>> {
        for dir in start.ancestors() {
            let path = refs_path(dir);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let refs = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a valid refs file ({{\"sandbox_id\", \"server\"}}); fix it or recreate it with `steward setup --force`",
                    path.display()
                )
            })?;
            return Ok(Some((refs, path)));
        }
        Ok(None)
    }

    /// Writes `<dir>/.steward/refs.json`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = refs_path(dir);
        let parent = path.parent().expect("refs.json has a parent");
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}
