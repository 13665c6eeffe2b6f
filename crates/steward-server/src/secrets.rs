//! The server master key and the keys derived from it. The master key lives outside the
//! database (a file in the data dir, or configuration for PostgreSQL clusters, where every
//! replica must be given the same one). Its `Debug` never shows the bytes.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use hmac::{KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

/// 32 random bytes from which purpose-specific keys are derived.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses a base64 (standard or URL-safe) encoding of 32 bytes.
    pub fn from_base64(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
            .map_err(|_| "the master key must be base64 of 32 random bytes (make one with `openssl rand -base64 32`)".to_owned())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| "the master key must decode to exactly 32 bytes".to_owned())?;
        Ok(Self(arr))
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a fresh key if it is missing.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                writeln!(f, "{}", base64::engine::general_purpose::STANDARD.encode(bytes))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok((Self(bytes), true))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// A key for one purpose, so compromising one use does not expose another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}
