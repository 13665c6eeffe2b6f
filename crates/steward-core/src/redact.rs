//! Secret redaction, the one mechanism for it: a [`Redactor`] replaces every secret the platform
//! injected into a request (a provider key, an MCP header or environment value, an integration
//! token) in whatever that request's answer produced — error messages, tool results, traces —
//! before it is stored, streamed or logged. A [`SecretRegistry`] is the process-wide set the log
//! writer scrubs every line with, so no crate's log line (ours or a third party's, such as the MCP
//! client's) can carry a secret the process decrypted.
//!
//! Why two scopes: what a run stores and streams is redacted only with that run's own secrets. A
//! process-wide set used there would replace another tenant's secret in a caller's text, and the
//! caller could then test guesses of other tenants' secrets by echoing them and watching what
//! comes back redacted. Logs are the operator's, so they take the whole set.
//!
//! A secret is matched verbatim and in the spellings an answer is likely to echo it in:
//! percent-encoded (a URL or form body) and JSON-escaped. Values shorter than
//! [`MIN_SECRET_LEN`] are not secrets worth the noise of replacing them everywhere.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shorter values are never redacted (they would match ordinary words).
pub const MIN_SECRET_LEN: usize = 4;

/// Most secrets the process-wide registry holds; the oldest registered go first. Secrets are
/// registered again each time they are decrypted, i.e. each time they are used.
pub const REGISTRY_CAPACITY: usize = 10_000;

/// Replaces a fixed set of secrets in text. Cheap to clone; `Debug` shows only the count.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Arc<AhoCorasick>>,
    count: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.count).finish()
    }
}

impl Redactor {
    /// A redactor of `secrets` (values shorter than [`MIN_SECRET_LEN`] are ignored).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        let mut count = 0;
        for s in secrets {
            let s = s.as_ref();
            if s.len() < MIN_SECRET_LEN {
                continue;
            }
            count += 1;
            for spelling in spellings(s) {
                if !patterns.contains(&spelling) {
                    patterns.push(spelling);
                }
            }
        }
        if patterns.is_empty() {
            return Self::default();
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("literal patterns of bounded size always build");
        Self { matcher: Some(Arc::new(matcher)), count }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                let replacements = vec![REDACTED; m.patterns_len()];
                Cow::Owned(m.replace_all(text, &replacements))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// Like [`Redactor::redact`], for an owned string.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(o) => o,
        }
    }

    /// `bytes` with every secret replaced (for writers that see bytes, not text).
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.matcher {
            Some(m) if m.is_match(bytes) => {
                let replacements = vec![REDACTED.as_bytes(); m.patterns_len()];
                Cow::Owned(m.replace_all_bytes(bytes, &replacements))
            }
            _ => Cow::Borrowed(bytes),
        }
    }

    /// `value` with every string in it (object keys included) redacted.
    pub fn redact_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(o) = self.redact(s) {
                    *s = o;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().filter(|k| matches!(self.redact(k), Cow::Owned(_))).cloned().collect();
                for k in keys {
                    if let Some(v) = map.remove(&k) {
                        map.insert(self.redact_string(k), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_json(v));
            }
            _ => {}
        }
    }
}

/// The spellings of `secret` an answer may echo: verbatim, percent-encoded, JSON-escaped.
fn spellings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    let encoded = percent_encode(secret);
    if encoded != secret {
        out.push(encoded.clone());
        // Form bodies write a space as `+`.
        if secret.contains(' ') {
            out.push(encoded.replace("%20", "+"));
        }
    }
    let json = serde_json::to_string(secret).expect("a string serializes");
    let json = &json[1..json.len() - 1];
    if json != secret {
        out.push(json.to_owned());
    }
    out
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The process-wide set of secrets the log writer scrubs (see the module doc for why runs do
/// not use it). Cheap to clone; clones share the set.
#[derive(Clone)]
pub struct SecretRegistry {
    inner: Arc<RwLock<Registry>>,
}

struct Registry {
    capacity: usize,
    order: VecDeque<String>,
    known: HashSet<String>,
    /// Rebuilt on the first read after a change, so registering many secrets stays linear.
    redactor: Option<Redactor>,
}

impl Default for SecretRegistry {
    fn default() -> Self {
        Self::with_capacity(REGISTRY_CAPACITY)
    }
}

impl fmt::Debug for SecretRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.inner.read().map(|r| r.order.len()).unwrap_or(0);
        f.debug_struct("SecretRegistry").field("secrets", &n).finish()
    }
}

impl SecretRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry keeping at most `capacity` secrets (the oldest registered go first).
    pub fn with_capacity(capacity: usize) -> Self {
        let r = Registry { capacity: capacity.max(1), order: VecDeque::new(), known: HashSet::new(), redactor: None };
        Self { inner: Arc::new(RwLock::new(r)) }
    }

    /// Adds `secret` (a no-op for one already known or shorter than [`MIN_SECRET_LEN`]).
    pub fn register(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        if self.inner.read().map(|r| r.known.contains(secret)).unwrap_or(false) {
            return;
        }
        let Ok(mut r) = self.inner.write() else { return };
        if !r.known.insert(secret.to_owned()) {
            return;
        }
        r.order.push_back(secret.to_owned());
        while r.order.len() > r.capacity {
            if let Some(old) = r.order.pop_front() {
                r.known.remove(&old);
            }
        }
        r.redactor = None;
    }

    /// A redactor of every secret registered so far.
    pub fn redactor(&self) -> Redactor {
        if let Ok(r) = self.inner.read()
            && let Some(red) = &r.redactor
        {
            return red.clone();
        }
        let Ok(mut r) = self.inner.write() else { return Redactor::default() };
        if r.redactor.is_none() {
            r.redactor = Some(Redactor::new(r.order.iter()));
        }
        r.redactor.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_every_spelling_and_leaves_other_text_alone() {
        let r = Redactor::new(["sk-ant-123/4+5 6", "abc", "tok-xyz\"q"]);
        assert_eq!(r.redact("key sk-ant-123/4+5 6 end"), "key [redacted] end");
        assert_eq!(r.redact("u=sk-ant-123%2F4%2B5%206&x"), "u=[redacted]&x");
        assert_eq!(r.redact("form sk-ant-123%2F4%2B5+6"), "form [redacted]");
        assert_eq!(r.redact(r#"{"m":"tok-xyz\"q"}"#), r#"{"m":"[redacted]"}"#);
        assert!(matches!(r.redact("nothing abc here"), Cow::Borrowed(_)), "short values are not secrets");
        assert_eq!(r.redact_bytes(b"Bearer tok-xyz\"q!").as_ref(), b"Bearer [redacted]!");
    }

    #[test]
    fn overlapping_secrets_take_the_longest() {
        let r = Redactor::new(["secret-1", "secret-12345"]);
        assert_eq!(r.redact("a secret-12345 b secret-1 c"), "a [redacted] b [redacted] c");
    }

    #[test]
    fn json_strings_and_keys_are_redacted() {
        let r = Redactor::new(["hunter22"]);
        let mut v = json!({"error": "bad key hunter22", "hunter22": [1, "x hunter22"], "n": 3});
        r.redact_json(&mut v);
        assert_eq!(v, json!({"error": "bad key [redacted]", "[redacted]": [1, "x [redacted]"], "n": 3}));
        assert!(Redactor::new(Vec::<String>::new()).is_empty());
        assert!(format!("{r:?}").contains("secrets: 1") && !format!("{r:?}").contains("hunter"));
    }

    #[test]
    fn the_registry_is_shared_and_bounded() {
        let reg = SecretRegistry::new();
        let other = reg.clone();
        reg.register("first-secret");
        other.register("first-secret");
        reg.register("no");
        assert_eq!(other.redactor().redact("x first-secret"), "x [redacted]");
        let small = SecretRegistry::with_capacity(3);
        small.register("first-secret");
        assert_eq!(small.redactor().redact("first-secret"), "[redacted]");
        for i in 0..3 {
            small.register(&format!("filler-{i:06}"));
        }
        let reg = small;
        assert_eq!(reg.redactor().redact("first-secret"), "first-secret", "the oldest was dropped");
        assert_eq!(reg.redactor().redact("filler-000002"), "[redacted]");
    }
}
