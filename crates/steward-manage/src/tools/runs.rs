//! Runs and tool resolution (§4, §6): `list_runs`, `get_run_trace`, `list_agent_tools`. The
//! trace is reduced to what answers "why is my agent not using its tools?": per source
//! connected or the error, offered and kept tools, allowlist entries that matched nothing,
//! the final catalog, failing tool calls — and `findings` that say it in words.

use serde_json::{Value, json};

use super::rest::{MAX_ITEMS, Rest, capped, done, excerpt, pick, query_value, seg};
use super::schema::{self, Args};

pub(super) fn definition(name: &str) -> Option<(&'static str, Value)> {
    Some(match name {
        "list_runs" => (
            "List recent runs, newest first, optionally of one agent, with one status, or since a time: status, stop reason, \
             error, token usage, creation time, duration and the start of the input. Start here when an agent seems quiet or \
             broken; then read one run with get_run_trace. Report status in one short paragraph.",
            schema::object(
                json!({
                    "agent": schema::agent("Only runs of this agent: its id (`agt_…`) or its name."),
                    "status": schema::one_of(&["queued", "running", "completed", "failed", "cancelled"], "Only runs with this status."),
                    "since": schema::string("Only runs created at or after this RFC 3339 time, e.g. `2026-11-20T00:00:00Z`."),
                    "limit": schema::integer("How many runs (default 20).", 1, 100),
                }),
                &[],
            ),
        ),
        "get_run_trace" => (
            "Read what one run did: the tool resolution (per source: connected or its error, tools offered and kept; allowlist \
             names that matched no tool; the final tool catalog given to the model), every tool call with its error, model-call \
             errors, and `findings` naming the likely problem (a failing source, a stale allowlist entry, a missing tool). Use it \
             to diagnose an agent that is not using its tools, then fix it with update_agent_tools / update_agent_tool_sources / \
             update_source.",
            schema::object(json!({"run_id": schema::id("run_", "The run (`run_…`), from list_runs.")}), &["run_id"]),
        ),
        "list_agent_tools" => (
            "Resolve an agent's tools now, exactly as its next run would (a dry run: connects its sources, applies its \
             allowlist): the tools it would get, the per-source trace (connected or error, offered, kept), allowlist entries \
             that match nothing, and findings. Use it before and after changing an agent's tools or sources.",
            schema::object(json!({"agent": schema::agent("The agent: its id (`agt_…`) or its name.")}), &["agent"]),
        ),
        _ => return None,
    })
}

/// A run for a model.
fn run_view(r: &Value) -> Value {
    let mut v = pick(r, &["id", "agent_id", "session_id", "status", "stop_reason", "error", "usage", "created_at", "duration_ms"]);
    if !r["input"].is_null() {
        v["input"] = json!(excerpt(&r["input"].to_string(), 200));
    }
    v
}

pub(super) async fn list_runs(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let mut query = vec![format!("limit={}", args.u64("limit").unwrap_or(20))];
    if let Some(agent) = args.str("agent") {
        query.push(format!("agent_id={}", query_value(&rest.agent_id(agent).await?)));
    }
    for k in ["status", "since"] {
        if let Some(v) = args.str(k) {
            query.push(format!("{k}={}", query_value(v)));
        }
    }
    let page = rest.get(&format!("/v1/runs?{}", query.join("&")), "list runs").await?;
    let runs: Vec<Value> = page["data"].as_array().map(|a| a.iter().map(run_view).collect()).unwrap_or_default();
    let mut out = json!({"runs": runs});
    if page["next_cursor"].is_string() {
        out["note"] = json!("there are older runs; narrow with `since`, `status` or `agent`, or raise `limit` (max 100)");
    }
    done(out)
}

pub(super) async fn get_run_trace(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = args.str("run_id").unwrap_or_default();
    let t = rest.get(&format!("/v1/runs/{}/trace", seg(id)?), &format!("get the trace of run {id}")).await?;
    let (run, trace) = (&t["run"], &t["trace"]);
    let calls: Vec<&Value> = trace["tool_calls"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let tool_calls: Vec<Value> = calls
        .iter()
        .take(MAX_ITEMS)
        .map(|c| {
            let mut v = pick(c, &["name", "duration_ms"]);
            v["arguments"] = json!(excerpt(&c["arguments"].to_string(), 300));
            match c["error"].as_str() {
                Some(e) => v["error"] = json!(excerpt(e, 500)),
                None => v["ok"] = json!(true),
            }
            v
        })
        .collect();
    let model_calls = trace["model_calls"].as_array().map(Vec::as_slice).unwrap_or_default();
    let model_errors: Vec<Value> = model_calls.iter().filter_map(|m| m["error"].as_str()).map(|e| json!(excerpt(e, 500))).collect();
    let resolution = &trace["tool_resolution"];
    let mut findings = resolution_findings(resolution);
    findings.extend(run_findings(run, &calls, resolution));
    let mut out = json!({
        "run": run_view(run),
        "model": trace["model"],
        "agent_version": trace["agent_version"],
        "tool_resolution": resolution_view(resolution),
        "tool_calls": tool_calls,
        "model_calls": {"count": model_calls.len(), "errors": model_errors},
        "findings": findings,
    });
    if calls.len() > MAX_ITEMS {
        out["note"] = json!(format!("showing the first {MAX_ITEMS} of {} tool calls", calls.len()));
    }
    done(out)
}

pub(super) async fn list_agent_tools(rest: &Rest<'_>, args: &Args) -> Result<String, String> {
    let id = rest.agent_id(args.str("agent").unwrap_or_default()).await?;
    let r = rest.get(&format!("/v1/agents/{}/tools", seg(&id)?), &format!("resolve the tools of agent {id}")).await?;
    let tools: Vec<Value> = r["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(MAX_ITEMS)
                .map(|t| json!({"name": t["name"], "description": excerpt(t["description"].as_str().unwrap_or_default(), 160)}))
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({
        "agent_id": id,
        "tools": tools,
        "tool_resolution": resolution_view(&r["trace"]),
        "findings": resolution_findings(&r["trace"]),
    });
    if r["tools"].as_array().is_some_and(|a| a.len() > MAX_ITEMS) {
        out["note"] = json!(format!("showing {MAX_ITEMS} of {} tools", r["tools"].as_array().map_or(0, Vec::len)));
    }
    done(out)
}

/// The resolution trace for a model: per source, then the allowlist misses and the catalog.
fn resolution_view(r: &Value) -> Value {
    let sources: Vec<Value> = r["sources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let mut v = pick(s, &["source_id", "name", "kind", "connected", "error", "rejected", "duration_ms"]);
                    for k in ["offered", "kept"] {
                        if !s[k].is_null() {
                            v[k] = capped(&s[k]);
                        }
                    }
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    let catalog: Vec<Value> = r["catalog"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let (name, source, tool) =
                        (c["name"].as_str().unwrap_or(""), c["source"].as_str().unwrap_or(""), c["tool"].as_str().unwrap_or(""));
                    if name == tool { json!(format!("{name} (from {source})")) } else { json!(format!("{name} (= {source}/{tool})")) }
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"sources": sources, "unmatched_allowlist": r["unmatched_allowlist"], "catalog": capped(&Value::Array(catalog))})
}

/// What a resolution trace says is wrong, in words.
fn resolution_findings(r: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let sources = r["sources"].as_array().map(Vec::as_slice).unwrap_or_default();
    for s in sources {
        let label = match s["source_id"].as_str() {
            Some(id) => format!("source `{}` ({id})", s["name"].as_str().unwrap_or(id)),
            None => format!("source `{}`", s["name"].as_str().unwrap_or("?")),
        };
        if s["connected"] == false {
            let error = excerpt(s["error"].as_str().unwrap_or("unknown error"), 300);
            out.push(format!("{label} failed, so none of its tools were offered: {error}"));
        } else if s["kind"] != "platform" {
            let offered = s["offered"].as_array().map_or(0, Vec::len);
            let kept = s["kept"].as_array().map_or(0, Vec::len);
            if offered == 0 {
                out.push(format!("{label} connected but offers no tools"));
            } else if kept == 0 {
                out.push(format!("{label} offers {offered} tools but the allowlist keeps none of them"));
            }
        }
    }
    if let Some(unmatched) = r["unmatched_allowlist"].as_array().filter(|u| !u.is_empty()) {
        let names: Vec<&str> = unmatched.iter().filter_map(Value::as_str).collect();
        out.push(format!(
            "allowlist entries that match no offered tool (stale or misspelled, or their source failed): {}; fix with \
             update_agent_tools (remove them, or use a name a source offers)",
            names.join(", ")
        ));
    }
    let from_sources = r["catalog"].as_array().is_some_and(|c| c.iter().any(|e| e["source"] != "platform"));
    if sources.iter().all(|s| s["kind"] == "platform") {
        out.push(
            "the agent has no tool sources: it only gets the platform's built-in tools; add one with update_agent_tool_sources".into(),
        );
    } else if !from_sources {
        out.push("the model got no tools from the agent's sources".into());
    }
    out
}

/// What a run's tool calls and outcome say.
fn run_findings(run: &Value, calls: &[&Value], resolution: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = run["error"].as_object() {
        let (kind, message) =
            (e.get("type").and_then(Value::as_str).unwrap_or("error"), e.get("message").and_then(Value::as_str).unwrap_or(""));
        out.push(format!("the run failed ({kind}): {}", excerpt(message, 300)));
    }
    let mut failed: Vec<(String, usize, String)> = Vec::new();
    for c in calls {
        if let (Some(name), Some(e)) = (c["name"].as_str(), c["error"].as_str()) {
            match failed.iter_mut().find(|f| f.0 == name) {
                Some(f) => f.1 += 1,
                None => failed.push((name.to_owned(), 1, excerpt(e, 300))),
            }
        }
    }
    for (name, n, first) in failed {
        out.push(format!("tool `{name}` failed {n} time(s); first error: {first}"));
    }
    let catalog_len = resolution["catalog"].as_array().map_or(0, Vec::len);
    if calls.is_empty() && catalog_len > 0 && run["status"] == "completed" {
        out.push(format!("the model called none of the {catalog_len} tools it had; if it should have, say so in its system prompt"));
    }
    if run["stop_reason"] == "max_turns" {
        out.push("the run stopped at max_turns; raise it with update_agent_model_settings if the work needs more round trips".into());
    }
    out
}
