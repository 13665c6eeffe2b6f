//! How a tool talks to the REST API: calls whose failures become tool errors saying what the
//! tool was doing, path segments that are checked before they reach a URL, query strings that
//! are percent-encoded, paging through lists, and the two lookups several tools share (an
//! agent by name, a trigger or schedule by id). Also the shaping of results for a model:
//! compact JSON, projections, lists capped at 100 items.

use reqwest::Method;
use serde_json::{Map, Value, json};
use steward_core::ids::{self, shorten};

use crate::api::Api;

/// Longest list a result carries; longer ones are cut with a note.
pub(super) const MAX_ITEMS: usize = 100;
/// Pages read when a lookup walks a whole list (100 items each).
const MAX_PAGES: usize = 20;

/// The API, as the tools use it.
pub(super) struct Rest<'a> {
    api: &'a dyn Api,
}

impl<'a> Rest<'a> {
    pub(super) fn new(api: &'a dyn Api) -> Self {
        Self { api }
    }

    /// One call; a failure reads "could not <doing>: <the API's message> (<type>, param, HTTP status)".
    pub(super) async fn call(&self, method: Method, path: &str, body: Option<Value>, doing: &str) -> Result<Value, String> {
        self.api.call(method, path, body).await.map_err(|e| format!("could not {doing}: {e}"))
    }

    pub(super) async fn get(&self, path: &str, doing: &str) -> Result<Value, String> {
        self.call(Method::GET, path, None, doing).await
    }

    pub(super) async fn post(&self, path: &str, body: Value, doing: &str) -> Result<Value, String> {
        self.call(Method::POST, path, Some(body), doing).await
    }

    pub(super) async fn patch(&self, path: &str, body: Map<String, Value>, doing: &str) -> Result<Value, String> {
        self.call(Method::PATCH, path, Some(Value::Object(body)), doing).await
    }

    /// The items of a paginated list (`{data, next_cursor}`), following cursors until `max`
    /// items; the flag says whether more were left.
    pub(super) async fn list(&self, path: &str, max: usize, doing: &str) -> Result<(Vec<Value>, bool), String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page_path = match &cursor {
                None => format!("{path}{sep}limit=100"),
                Some(c) => format!("{path}{sep}limit=100&cursor={}", query_value(c)),
            };
            let page = self.get(&page_path, doing).await?;
            items.extend(page["data"].as_array().cloned().unwrap_or_default());
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                return Ok((items, false));
            }
            if items.len() >= max {
                break;
            }
        }
        Ok((items, cursor.is_some()))
    }

    /// The sandbox's live agents (every page).
    pub(super) async fn live_agents(&self) -> Result<Vec<Value>, String> {
        Ok(self.list("/v1/agents", MAX_PAGES * 100, "list the sandbox's agents").await?.0)
    }

    /// The id of `raw`, an agent id or the name of a live agent of the sandbox.
    pub(super) async fn agent_id(&self, raw: &str) -> Result<String, String> {
        if ids::check(raw, "agt_", "agent").is_ok() {
            return Ok(raw.to_owned());
        }
        if !is_slug(raw) {
            return Err(format!(
                "`{}` is neither an agent id (`agt_` and 26 lowercase letters or digits) nor an agent name (lowercase letters, digits, `-`, `_`)",
                shorten(raw)
            ));
        }
        let agents = self.live_agents().await?;
        if let Some(a) = agents.iter().find(|a| a["name"] == raw) {
            return Ok(a["id"].as_str().unwrap_or_default().to_owned());
        }
        let names: Vec<&str> = agents.iter().filter_map(|a| a["name"].as_str()).take(MAX_ITEMS).collect();
        if names.is_empty() {
            return Err(format!("there is no agent named `{raw}`: this sandbox has no agents yet (create one with create_agent)"));
        }
        Err(format!(
            "there is no agent named `{raw}` in this sandbox; the agents are: {}. Ask the user which one they mean.",
            names.join(", ")
        ))
    }

    /// Where trigger or schedule `id` lives: its agent (resolved from `agent` when given,
    /// else found by looking through the sandbox's live agents) and its kind.
    pub(super) async fn locate_trigger(&self, agent: Option<&str>, id: &str) -> Result<TriggerRef, String> {
        let kind = TriggerKind::of(id)?;
        if let Some(agent) = agent {
            return Ok(TriggerRef { agent_id: self.agent_id(agent).await?, kind, id: id.to_owned() });
        }
        for a in self.live_agents().await? {
            let agent_id = a["id"].as_str().unwrap_or_default().to_owned();
            let path = format!("/v1/agents/{}/{}", seg(&agent_id)?, kind.collection());
            let listed = self.get(&path, &format!("list the {} of agent {agent_id}", kind.collection())).await?;
            if listed["data"].as_array().is_some_and(|d| d.iter().any(|t| t["id"] == id)) {
                return Ok(TriggerRef { agent_id, kind, id: id.to_owned() });
            }
        }
        Err(format!("no live agent of this sandbox has a {} `{id}`; list them with list_triggers", kind.noun()))
    }
}

/// Webhook and integration triggers (`trg_…`) or schedules (`sch_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TriggerKind {
    Trigger,
    Schedule,
}

impl TriggerKind {
    /// The kind of a trigger id, by its prefix (checked whole).
    pub(super) fn of(id: &str) -> Result<Self, String> {
        if id.starts_with("sch_") {
            ids::check(id, "sch_", "trigger_id").map_err(|e| e.message)?;
            Ok(TriggerKind::Schedule)
        } else {
            ids::check(id, "trg_", "trigger_id").map_err(|e| format!("{} (or a schedule id, `sch_…`)", e.message))?;
            Ok(TriggerKind::Trigger)
        }
    }

    /// The path segment of the collection under the agent.
    pub(super) fn collection(self) -> &'static str {
        match self {
            TriggerKind::Trigger => "triggers",
            TriggerKind::Schedule => "schedules",
        }
    }

    pub(super) fn noun(self) -> &'static str {
        match self {
            TriggerKind::Trigger => "trigger",
            TriggerKind::Schedule => "schedule",
        }
    }
}

/// A located trigger or schedule.
#[derive(Debug, Clone)]
pub(super) struct TriggerRef {
    pub(super) agent_id: String,
    pub(super) kind: TriggerKind,
    pub(super) id: String,
}

impl TriggerRef {
    /// `/v1/agents/{agent}/{triggers|schedules}/{id}`.
    pub(super) fn path(&self) -> Result<String, String> {
        Ok(format!("/v1/agents/{}/{}/{}", seg(&self.agent_id)?, self.kind.collection(), seg(&self.id)?))
    }
}

/// A path segment, refused unless it is made of ASCII letters, digits, `-` and `_` (every id,
/// slug and app id is). Nothing else — `/`, `.`, `?`, `%` — can then reach a URL's path.
pub(super) fn seg(raw: &str) -> Result<&str, String> {
    let ok = !raw.is_empty() && raw.len() <= 100 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(raw) } else { Err(format!("`{}` cannot be part of a request path: it is not an id or a name", shorten(raw))) }
}

/// A query-string value, percent-encoded (everything but unreserved characters).
pub(super) fn query_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A name as the platform allows it (§3: lowercase letters, digits, `-`, `_`, ≤ 63).
pub(super) fn is_slug(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 63
        && raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The result text: compact JSON.
pub(super) fn done(v: Value) -> Result<String, String> {
    serde_json::to_string(&v).map_err(|e| format!("could not encode the result: {e}"))
}

/// Keeps the listed keys of an object, dropping absent and null ones.
pub(super) fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k).filter(|x| !x.is_null()) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

/// `{key: items}` with at most `MAX_ITEMS` items, and a `note` when some were left out
/// (`more`: the API had further pages).
pub(super) fn listing(key: &str, mut items: Vec<Value>, more: bool) -> Value {
    let total = items.len();
    items.truncate(MAX_ITEMS);
    let shown = items.len();
    let mut out = json!({ key: items });
    if more {
        out["note"] =
            json!(format!("showing the first {shown}; there are more. Narrow the request (e.g. by agent or status) to see others."));
    } else if total > shown {
        out["note"] = json!(format!("showing {shown} of {total}; narrow the request to see the others."));
    }
    out
}

/// A long text cut to `max` characters, marked.
pub(super) fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}… [cut; {} characters in all]", text.chars().count())
}

/// A list of strings capped at `MAX_ITEMS`, with the count of the rest as a last entry.
pub(super) fn capped(v: &Value) -> Value {
    match v.as_array() {
        Some(a) if a.len() > MAX_ITEMS => {
            let mut out: Vec<Value> = a[..MAX_ITEMS].to_vec();
            out.push(json!(format!("… and {} more", a.len() - MAX_ITEMS)));
            Value::Array(out)
        }
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segments_reach_a_path() {
        assert_eq!(seg("agt_01jd0000000000000000000000"), Ok("agt_01jd0000000000000000000000"));
        assert_eq!(seg("slack"), Ok("slack"));
        for bad in ["", "..", ".", "a/b", "agt_x/../../", "a?b", "a%2e", "a#b", "a b", "ä", &"a".repeat(101)] {
            assert!(seg(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("2026-11-20T00:00:00+01:00"), "2026-11-20T00%3A00%3A00%2B01%3A00");
        assert_eq!(query_value("a&b=c/d?e#f"), "a%26b%3Dc%2Fd%3Fe%23f");
        assert_eq!(query_value("YzE6YWd0XzAx-_"), "YzE6YWd0XzAx-_");
    }

    #[test]
    fn long_lists_are_cut_with_a_note() {
        let items: Vec<Value> = (0..150).map(|i| json!(i)).collect();
        let out = listing("runs", items, false);
        assert_eq!(out["runs"].as_array().map(Vec::len), Some(MAX_ITEMS));
        assert_eq!(out["note"], "showing 100 of 150; narrow the request to see the others.");
        assert!(listing("runs", vec![json!(1)], false).get("note").is_none());
        assert!(listing("runs", vec![json!(1)], true)["note"].as_str().unwrap().contains("there are more"));
    }
}
