//! HTTP routes, one module per resource. Handlers are thin: parse input into domain types,
//! authorize with `Caller`, call the store, convert to wire types.

pub mod agents;
pub mod api_keys;
pub mod auth;
pub mod channels;
pub mod concierge;
pub mod files;
pub mod integrations;
pub mod mcp;
pub mod messages;
pub mod providers;
pub mod runs;
pub mod sandboxes;
pub mod schedules;
pub mod sessions;
pub mod sources;
pub mod subscriptions;
pub mod system;
pub mod triggers;
pub mod vaults;

/// The session event tail (`sessions::follow`), which the Concierge's chat stream reads too.
/// It stays in `sessions.rs` while the stream path is being rewritten; route modules reach it
/// here, through their shared parent, never through each other.
pub(crate) use sessions::follow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use steward_core::schedule::WallTimeError;
use steward_store::{Listing, PageRequest, StoreError};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// Default and maximum page sizes (§2).
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// A page of results (§2).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    pub fn from_listing<U>(listing: Listing<U>, convert: impl Fn(U) -> T) -> Self {
        Page {
            data: listing.items.into_iter().map(convert).collect(),
            next_cursor: listing.next_before.map(|b| B64.encode(format!("c1:{b}"))),
        }
    }
}

/// A list that is not paginated: `{"data": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub data: Vec<T>,
}

/// One server-sent event of a stream (`text/event-stream`), as a client parses it. The
/// document describes each event with this schema; heartbeats are `: heartbeat` comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct SseFrame {
    /// The event id (`evt_…`); resume after it with `?after=` or `Last-Event-ID`.
    pub id: Option<String>,
    /// The event type: `run_started`, `agent_text_delta`, …, `agent_finish` / `agent_error`.
    pub event: String,
    /// The event's JSON, as text.
    pub data: String,
}

/// The network policy of an environment, as sent and returned: `"none"`, `"open"` or
/// `{"allowlist": ["host", "*.host", "host:port"]}`. Documentation only; the domain type is
/// `steward_core::environment::Network`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum NetworkPolicy {
    Mode(NetworkMode),
    Allowlist(AllowlistPolicy),
}

/// `none`: no network; `open`: public addresses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    None,
    Open,
}

/// `http_fetch` may reach these hosts; the shell gets no network.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowlistPolicy {
    pub allowlist: Vec<String>,
}

/// Turns `limit` and `cursor` query parameters into a store page request.
pub fn page_request(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid("limit", format!("limit must be between 1 and {MAX_LIMIT}; got {limit}")));
    }
    let before = match cursor {
        None => None,
        Some(c) => {
            let bad =
                || ApiError::invalid("cursor", "this cursor is not one we issued; pass `next_cursor` from the previous page unchanged");
            let raw = B64.decode(c).map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let b = raw.strip_prefix("c1:").ok_or_else(bad)?;
            if b.is_empty() || b.len() > 64 || !b.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'_' || x == b'-') {
                return Err(bad());
            }
            Some(b.to_owned())
        }
    };
    Ok(PageRequest { limit, before })
}

/// RFC 3339 (UTC, milliseconds) for an epoch-milliseconds timestamp.
pub fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The response body of deletions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// Body of the `…/pause` routes of triggers and schedules; the body itself is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// In the future: the pause ends by itself then. RFC 3339, or a local time (`09:00` = its
    /// next occurrence, `2026-11-24T09:00`) in `time_zone`.
    pub resume_at: Option<String>,
    /// IANA zone of a local `resume_at` (default: the sandbox's `time_zone`).
    pub time_zone: Option<String>,
}

/// Parses an optional pause body: `None` pauses until resumed, else the future `resume_at` in
/// epoch ms. `what` (`trigger`, `schedule`) names the thing in the hint; a local `resume_at`
/// without `time_zone` is read in `sandbox_zone`.
pub fn pause_until(body: &[u8], now: i64, what: &str, sandbox_zone: &str) -> Result<Option<i64>, ApiError> {
    let body: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body must be {{\"resume_at\": \"<RFC 3339>\"}} or empty: {e}")))?
    };
    let Some(raw) = body.resume_at else {
        if body.time_zone.is_some() {
            return Err(ApiError::invalid("time_zone", "`time_zone` only qualifies a local `resume_at`; send one or drop it"));
        }
        return Ok(None);
    };
    let at = steward_core::schedule::resolve_wall_time(&raw, Some(body.time_zone.as_deref().unwrap_or(sandbox_zone)), now).map_err(
        |e| match e {
            WallTimeError::Time(m) => ApiError::invalid("resume_at", m),
            WallTimeError::TimeZone(m) => ApiError::invalid("time_zone", m),
        },
    )?;
    if at <= now {
        return Err(ApiError::invalid("resume_at", format!("is in the past; give a future time, or resume the {what} now with …/resume")));
    }
    Ok(Some(at))
}

/// Marks a response whose body holds a secret shown only once, so the idempotency layer
/// stores a refusal instead of the body.
#[derive(Debug, Clone)]
pub struct NoReplay(pub String);

/// A PATCH's read-modify-write against a compare-and-set in the store, retried on
/// `StoreError::Stale` by `steward_store::retry_on_stale` (the one retry loop): `write` applies
/// the patch to the row read (`first`, then `reload`'s) and writes it; its `Err` is a refusal
/// before the write. `refused` turns the write's other errors into the route's answer. Losing
/// every attempt is a 409 saying `what` "is being changed by others right now".
pub(crate) async fn update_with_retry<R, T, ReadFut, WriteFut>(
    what: impl std::fmt::Display,
    first: R,
    reload: impl FnMut() -> ReadFut,
    write: impl FnMut(R) -> WriteFut,
    refused: impl FnOnce(StoreError) -> ApiError,
) -> ApiResult<T>
where
    ReadFut: Future<Output = ApiResult<R>>,
    WriteFut: Future<Output = ApiResult<Result<T, StoreError>>>,
{
    match steward_store::retry_on_stale(first, reload, write).await? {
        Ok(done) => Ok(done),
        Err(StoreError::Stale(_)) => Err(ApiError::conflict(format!("{what} is being changed by others right now; retry"))),
        Err(e) => Err(refused(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let l = Listing { items: vec![1], next_before: Some("agt_01abc".to_owned()) };
        let p: Page<u32> = Page::from_listing(l, |x| x);
        let req = page_request(Some(5), p.next_cursor.as_deref()).unwrap();
        assert_eq!(req.before.as_deref(), Some("agt_01abc"));
        assert!(page_request(Some(0), None).is_err());
        assert!(page_request(Some(101), None).is_err());
        assert!(page_request(None, Some("not-a-cursor")).is_err());
        assert!(page_request(None, Some(&B64.encode("c1:x' OR 1=1"))).is_err());
    }

    /// The route modules this file declares.
    fn route_modules() -> Vec<&'static str> {
        include_str!("mod.rs").lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect()
    }

    /// The route modules other than `own` that `src` names through `prefix` (`routes::`, or the
    /// `super::` that reaches this parent): `prefix<name>` and `prefix{<name>, …}`.
    fn sibling_refs(src: &str, prefix: &str, own: &str, modules: &[&str]) -> Vec<String> {
        let ident = |s: &str| s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
        let mut found = Vec::new();
        for (at, _) in src.match_indices(prefix) {
            // `super::super::x` is matched by its own inner `super::` too; judge it once.
            if prefix == "super::" && src[..at].ends_with("super::") {
                continue;
            }
            let rest = &src[at + prefix.len()..];
            let names: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or("").split(',').map(ident).collect(),
                None => vec![ident(rest)],
            };
            found.extend(names.into_iter().filter(|n| n != own && modules.contains(&n.as_str())));
        }
        found
    }

    /// ARCHITECTURE "Invariants": no route module imports another. What routes share lives in
    /// this parent module or outside `routes/` (`views`, `access`, `extract`); a rule about the
    /// domain belongs in the core or the runtime.
    #[test]
    fn no_route_module_imports_another() {
        let modules = route_modules();
        assert!(modules.contains(&"sessions") && modules.contains(&"agents"), "{modules:?}");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
        let mut files = vec![];
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && path != root.join("mod.rs") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > modules.len(), "read {} files", files.len());
        let mut offences = vec![];
        for path in files {
            let rel = path.strip_prefix(&root).unwrap();
            let own = rel.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs").to_owned();
            // From `routes/x.rs`, `super::` is this parent; from `routes/x/y.rs` it is `x`.
            let up = if rel.components().count() == 1 { "super::".to_owned() } else { "super::super::".to_owned() };
            let src = std::fs::read_to_string(&path).unwrap();
            for prefix in ["routes::", up.as_str()] {
                for name in sibling_refs(&src, prefix, &own, &modules) {
                    offences.push(format!("{} names `{prefix}{name}`", rel.display()));
                }
            }
        }
        assert!(offences.is_empty(), "route modules import each other:\n{}", offences.join("\n"));
    }

    #[test]
    fn the_import_check_sees_paths_and_groups() {
        let m = ["agents", "sessions", "runs"];
        assert_eq!(sibling_refs("use crate::routes::sessions::load;", "routes::", "runs", &m), ["sessions"]);
        assert_eq!(sibling_refs("use crate::routes::{Page, agents, runs};", "routes::", "runs", &m), ["agents"]);
        assert_eq!(sibling_refs("x: crate::routes::agents::View", "routes::", "agents", &m), Vec::<String>::new());
        assert_eq!(sibling_refs("use super::sessions;", "super::", "runs", &m), ["sessions"]);
        assert_eq!(sibling_refs("use super::super::runs::X;", "super::super::", "agents", &m), ["runs"]);
        assert_eq!(sibling_refs("use crate::routes::{Deleted, ts};", "routes::", "runs", &m), Vec::<String>::new());
    }
}
