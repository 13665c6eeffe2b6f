//! The management tools against a fake `Api` that records every call and answers canned JSON
//! per method and path: the catalog, the role filter, argument validation, name resolution,
//! partial-update bodies, path safety, trigger routing and what results carry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};
use steward_core::tenancy::Role;
use steward_manage::{Api, ApiFailure, MUTATING_TOOLS, READ_TOOLS, Toolkit, catalog};

type Call = (Method, String, Option<Value>);

#[derive(Debug, Default)]
struct FakeApi {
    answers: Mutex<HashMap<(String, String), Result<Value, ApiFailure>>>,
    calls: Mutex<Vec<Call>>,
}

impl FakeApi {
    fn answer(&self, method: Method, path: &str, value: Value) -> &Self {
        self.answers.lock().unwrap().insert((method.to_string(), path.to_owned()), Ok(value));
        self
    }

    fn fail(&self, method: Method, path: &str, failure: ApiFailure) -> &Self {
        self.answers.lock().unwrap().insert((method.to_string(), path.to_owned()), Err(failure));
        self
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Api for FakeApi {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ApiFailure> {
        self.calls.lock().unwrap().push((method.clone(), path.to_owned(), body));
        self.answers.lock().unwrap().get(&(method.to_string(), path.to_owned())).cloned().unwrap_or_else(|| {
            Err(ApiFailure { status: 404, kind: "not_found".into(), message: format!("no canned answer for {method} {path}"), param: None })
        })
    }
}

fn id(prefix: &str, n: u8) -> String {
    format!("{prefix}{n:0>26}")
}

fn kit(role: Role) -> (Arc<FakeApi>, Toolkit) {
    let api = Arc::new(FakeApi::default());
    (api.clone(), Toolkit::new(api, id("sbx_", 1), role))
}

/// `/v1/agents` lists one agent named `support`.
fn with_support(api: &FakeApi) -> String {
    let agent = id("agt_", 7);
    api.answer(
        Method::GET,
        "/v1/agents?limit=100",
        json!({"data": [{"id": agent, "name": "support"}, {"id": id("agt_", 8), "name": "triage"}], "next_cursor": null}),
    );
    agent
}

#[test]
fn catalog_is_28_tools_in_order_and_viewers_get_the_13_read_tools() {
    let expected: Vec<&str> = READ_TOOLS.iter().chain(MUTATING_TOOLS.iter()).copied().collect();
    for role in [Role::Owner, Role::Editor] {
        let tools = catalog(role);
        assert_eq!(tools.iter().map(|t| t.name).collect::<Vec<_>>(), expected);
        assert_eq!(tools.len(), 28);
        assert!(tools.iter().all(|t| t.mutating == MUTATING_TOOLS.contains(&t.name)));
    }
    let viewer = catalog(Role::Viewer);
    assert_eq!(viewer.iter().map(|t| t.name).collect::<Vec<_>>(), READ_TOOLS.to_vec());
    assert!(viewer.iter().all(|t| !t.mutating));
    let (_, toolkit) = kit(Role::Viewer);
    assert_eq!(toolkit.tools(), viewer);
}

#[test]
fn every_schema_compiles_is_closed_and_describes_its_arguments() {
    for t in catalog(Role::Owner) {
        let s = &t.input_schema;
        jsonschema::validator_for(s).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        assert_eq!(s["type"], "object", "{}", t.name);
        assert_eq!(s["additionalProperties"], false, "{}", t.name);
        let props = s["properties"].as_object().unwrap_or_else(|| panic!("{} has no properties", t.name));
        for r in s["required"].as_array().unwrap() {
            assert!(props.contains_key(r.as_str().unwrap()), "{}: required `{r}` is not a property", t.name);
        }
        for (name, p) in props {
            assert!(p["type"].is_string(), "{}.{name} has no type", t.name);
            assert!(p["description"].as_str().is_some_and(|d| !d.is_empty()), "{}.{name} has no description", t.name);
            assert!(!name.contains("sandbox"), "{} takes a sandbox argument", t.name);
        }
    }
    // Descriptions are precise: two to five sentences each.
    let wordy: Vec<String> = catalog(Role::Owner)
        .iter()
        .map(|t| (t.name, t.description.replace("e.g. ", "eg ").trim_end_matches('.').matches(". ").count() + 1))
        .filter(|(_, n)| !(2..=5).contains(n))
        .map(|(name, n)| format!("{name}: {n}"))
        .collect();
    assert!(wordy.is_empty(), "descriptions outside 2–5 sentences: {wordy:?}");
}

#[test]
fn destructive_operations_are_named_as_cli_commands() {
    let all: String = catalog(Role::Owner).iter().map(|t| t.description.clone()).collect();
    for cmd in [
        "steward agent delete",
        "steward source delete",
        "steward sandbox archive",
        "steward sandbox destroy",
        "steward trigger disconnect",
        "steward apikey revoke",
    ] {
        assert!(all.contains(cmd), "no description mentions `{cmd}`");
    }
}

#[tokio::test]
async fn unknown_tools_and_viewer_mutations_make_no_call() {
    let (api, toolkit) = kit(Role::Viewer);
    let e = toolkit.call("delete_agent", json!({"agent": "support"})).await.unwrap_err();
    assert!(e.contains("no tool `delete_agent`") && e.contains("list_agents") && !e.contains("create_agent"), "{e}");
    let e = toolkit.call("create_agent", json!({"name": "x", "provider_id": "anthropic", "model": "m"})).await.unwrap_err();
    assert!(e.contains("editor"), "{e}");
    assert!(api.calls().is_empty());
}

#[tokio::test]
async fn wrong_arguments_are_refused_before_any_call() {
    let (api, toolkit) = kit(Role::Editor);
    let e =
        toolkit.call("create_agent", json!({"name": "x", "provider_id": "anthropic", "model": "m", "max_turns": "5"})).await.unwrap_err();
    assert!(e.contains("`max_turns`") && e.contains("integer"), "{e}");
    let e = toolkit.call("create_agent", json!({"name": "x", "model": "m"})).await.unwrap_err();
    assert!(e.contains("missing required argument `provider_id`"), "{e}");
    let e = toolkit.call("list_agents", json!({"sandbox_id": id("sbx_", 2)})).await.unwrap_err();
    assert!(e.contains("unknown argument `sandbox_id`"), "{e}");
    let e = toolkit.call("update_agent_tools", json!({"agent": "support", "add": "search"})).await.unwrap_err();
    assert!(e.contains("`add`") && e.contains("array"), "{e}");
    let e = toolkit.call("get_source", json!({"source_id": id("agt_", 1)})).await.unwrap_err();
    assert!(e.contains("`source_id`") && e.contains("src_"), "{e}");
    let e = toolkit.call("list_runs", json!({"status": "done"})).await.unwrap_err();
    assert!(e.contains("`status`") && e.contains("`completed`"), "{e}");
    assert!(toolkit.call("list_agents", json!([1])).await.is_err());
    assert!(api.calls().is_empty(), "{:?}", api.calls());
}

#[tokio::test]
async fn hostile_ids_never_reach_a_path() {
    let (api, toolkit) = kit(Role::Owner);
    let cases = [
        ("get_agent", json!({"agent": "../x"})),
        ("get_agent", json!({"agent": "agt_x/../../"})),
        ("get_agent", json!({"agent": "support?archived=true"})),
        ("get_agent", json!({"agent": "Support"})),
        ("get_source", json!({"source_id": "src_../../v1/api_keys"})),
        ("get_run_trace", json!({"run_id": format!("{}/..", id("run_", 1))})),
        ("pause_trigger", json!({"trigger_id": "trg_%2e%2e"})),
        ("resume_trigger", json!({"agent": id("agt_", 1), "trigger_id": "../schedules"})),
        ("list_trigger_components", json!({"app": "slack/../../v1"})),
        ("start_integration_connect", json!({"app": "slack?x=1"})),
        ("update_agent_tool_sources", json!({"agent": "support", "add": ["src_../x"]})),
    ];
    for (tool, args) in cases {
        let e = toolkit.call(tool, args.clone()).await.unwrap_err();
        assert!(e.contains("invalid arguments"), "{tool} {args}: {e}");
    }
    assert!(api.calls().is_empty(), "{:?}", api.calls());
}

#[tokio::test]
async fn an_agent_name_is_resolved_before_the_patch() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = with_support(&api);
    api.answer(
        Method::PATCH,
        &format!("/v1/agents/{agent}"),
        json!({"id": agent, "name": "support", "version": 3, "system_prompt": "Be brief."}),
    );
    let out = toolkit.call("update_agent_prompt", json!({"agent": "support", "system_prompt": "Be brief."})).await.unwrap();
    let calls = api.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].0.clone(), calls[0].1.as_str()), (Method::GET, "/v1/agents?limit=100"));
    assert_eq!((calls[1].0.clone(), calls[1].1.clone()), (Method::PATCH, format!("/v1/agents/{agent}")));
    assert_eq!(calls[1].2, Some(json!({"system_prompt": "Be brief."})));
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["version"], 3);
    assert_eq!(out["changed"], json!(["system_prompt"]));
}

#[tokio::test]
async fn an_unknown_agent_name_lists_the_existing_ones() {
    let (api, toolkit) = kit(Role::Editor);
    with_support(&api);
    let e = toolkit.call("get_agent", json!({"agent": "billing"})).await.unwrap_err();
    assert!(e.contains("no agent named `billing`") && e.contains("support, triage"), "{e}");
    assert_eq!(api.calls().len(), 1);
}

#[tokio::test]
async fn model_settings_send_only_what_was_mentioned() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = id("agt_", 3);
    api.answer(Method::PATCH, &format!("/v1/agents/{agent}"), json!({"id": agent, "name": "a", "version": 2, "max_turns": 40}));
    toolkit.call("update_agent_model_settings", json!({"agent": agent, "max_turns": 40})).await.unwrap();
    assert_eq!(api.calls(), vec![(Method::PATCH, format!("/v1/agents/{agent}"), Some(json!({"max_turns": 40})))]);

    // A model alone keeps the current provider.
    let (api, toolkit) = kit(Role::Editor);
    api.answer(Method::GET, &format!("/v1/agents/{agent}"), json!({"id": agent, "model": {"provider_id": "openai", "name": "gpt-4.1"}}));
    api.answer(Method::PATCH, &format!("/v1/agents/{agent}"), json!({"id": agent, "version": 3}));
    toolkit.call("update_agent_model_settings", json!({"agent": agent, "model": "gpt-5", "reset_temperature": true})).await.unwrap();
    let patch = api.calls().pop().unwrap();
    assert_eq!(patch.2, Some(json!({"model": {"provider_id": "openai", "name": "gpt-5"}, "temperature": null})));

    let (api, toolkit) = kit(Role::Editor);
    let e = toolkit.call("update_agent_model_settings", json!({"agent": agent, "provider_id": "anthropic"})).await.unwrap_err();
    assert!(e.contains("ask the user"), "{e}");
    assert!(api.calls().is_empty());
}

#[tokio::test]
async fn tool_allowlist_edits_merge_with_the_current_list() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = id("agt_", 4);
    api.answer(Method::GET, &format!("/v1/agents/{agent}"), json!({"id": agent, "tools": ["search", "read_issue", "comment"]}));
    api.answer(Method::PATCH, &format!("/v1/agents/{agent}"), json!({"id": agent, "version": 5, "tools": ["search", "comment", "label"]}));
    let out = toolkit
        .call("update_agent_tools", json!({"agent": agent, "remove": ["read_issue", "nope"], "add": ["label", "search"]}))
        .await
        .unwrap();
    let patch = api.calls().pop().unwrap();
    assert_eq!(patch.2, Some(json!({"tools": ["search", "comment", "label"]})));
    assert!(out.contains("`nope` was not in the list") && out.contains("`search` was already in the list"), "{out}");

    // Editing an empty allowlist ("every tool") would silently restrict the agent: refused.
    let (api, toolkit) = kit(Role::Editor);
    api.answer(Method::GET, &format!("/v1/agents/{agent}"), json!({"id": agent, "tools": []}));
    let e = toolkit.call("update_agent_tools", json!({"agent": agent, "add": ["search"]})).await.unwrap_err();
    assert!(e.contains("every tool"), "{e}");
    assert_eq!(api.calls().len(), 1);

    let (_, toolkit) = kit(Role::Editor);
    let e = toolkit.call("update_agent_tools", json!({"agent": agent, "tools": ["a"], "add": ["b"]})).await.unwrap_err();
    assert!(e.contains("not both"), "{e}");
}

#[tokio::test]
async fn tool_source_edits_merge_too() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = id("agt_", 4);
    let (a, b) = (id("src_", 1), id("src_", 2));
    api.answer(Method::GET, &format!("/v1/agents/{agent}"), json!({"id": agent, "tool_sources": [a]}));
    api.answer(Method::PATCH, &format!("/v1/agents/{agent}"), json!({"id": agent, "version": 2, "tool_sources": [b]}));
    toolkit.call("update_agent_tool_sources", json!({"agent": agent, "remove": [a], "add": [b]})).await.unwrap();
    assert_eq!(api.calls().pop().unwrap().2, Some(json!({"tool_sources": [b]})));
}

#[tokio::test]
async fn pause_dispatches_on_the_id_prefix() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = id("agt_", 5);
    let (trg, sch) = (id("trg_", 1), id("sch_", 1));
    api.answer(Method::POST, &format!("/v1/agents/{agent}/triggers/{trg}/pause"), json!({"id": trg, "state": "paused"}));
    api.answer(
        Method::POST,
        &format!("/v1/agents/{agent}/schedules/{sch}/pause"),
        json!({"id": sch, "state": "paused", "resume_at": "2026-11-24T08:00:00.000Z"}),
    );
    toolkit.call("pause_trigger", json!({"agent": agent, "trigger_id": trg})).await.unwrap();
    toolkit
        .call("pause_trigger", json!({"agent": agent, "trigger_id": sch, "resume_at": "09:00", "time_zone": "Europe/Berlin"}))
        .await
        .unwrap();
    let calls = api.calls();
    assert_eq!(calls[0], (Method::POST, format!("/v1/agents/{agent}/triggers/{trg}/pause"), Some(json!({}))));
    assert_eq!(
        calls[1],
        (
            Method::POST,
            format!("/v1/agents/{agent}/schedules/{sch}/pause"),
            Some(json!({"resume_at": "09:00", "time_zone": "Europe/Berlin"}))
        )
    );
}

#[tokio::test]
async fn a_trigger_id_alone_is_found_through_the_agents() {
    let (api, toolkit) = kit(Role::Editor);
    let support = with_support(&api);
    let triage = id("agt_", 8);
    let sch = id("sch_", 9);
    api.answer(Method::GET, &format!("/v1/agents/{support}/schedules"), json!({"data": []}));
    api.answer(Method::GET, &format!("/v1/agents/{triage}/schedules"), json!({"data": [{"id": sch}]}));
    api.answer(Method::POST, &format!("/v1/agents/{triage}/schedules/{sch}/resume"), json!({"id": sch, "state": "active"}));
    let out = toolkit.call("resume_trigger", json!({"trigger_id": sch})).await.unwrap();
    assert!(out.contains(&triage), "{out}");
    assert_eq!(api.calls().last().unwrap().2, None);
}

#[tokio::test]
async fn minted_keys_carry_the_secret_once_with_what_they_may_do() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = with_support(&api);
    let key = id("key_", 1);
    for kind in ["agent_invoke", "agent_delegate"] {
        api.answer(
            Method::POST,
            "/v1/api_keys",
            json!({"id": key, "name": "support-x", "kind": kind, "agent_id": agent, "prefix": "stw_abc", "secret": "stw_SECRETVALUE"}),
        );
        let tool = if kind == "agent_invoke" { "mint_agent_invoke_key" } else { "mint_agent_delegate_key" };
        let out = toolkit.call(tool, json!({"agent": "support"})).await.unwrap();
        let body = api.calls().pop().unwrap().2.unwrap();
        assert_eq!(
            body,
            json!({"name": if kind == "agent_invoke" { "support-invoke" } else { "support-delegate" }, "kind": kind, "agent_id": agent})
        );
        assert_eq!(out.matches("stw_SECRETVALUE").count(), 1, "{out}");
        assert!(out.contains("cannot be shown again") && out.contains(&format!("steward apikey revoke {key}")), "{out}");
        if kind == "agent_invoke" {
            assert!(out.contains("start sessions with, message, and read the sessions of this one agent"), "{out}");
        } else {
            assert!(out.contains("end_user") && out.contains("never see each other's sessions"), "{out}");
        }
    }
}

#[tokio::test]
async fn api_failures_say_what_the_tool_was_doing() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = id("agt_", 6);
    api.fail(
        Method::PATCH,
        &format!("/v1/agents/{agent}"),
        ApiFailure {
            status: 400,
            kind: "invalid_request".into(),
            message: "max_turns is out of range".into(),
            param: Some("max_turns".into()),
        },
    );
    let e = toolkit.call("update_agent_model_settings", json!({"agent": agent, "max_turns": 1000})).await.unwrap_err();
    assert_eq!(e, format!("could not update agent {agent}: max_turns is out of range (invalid_request, param `max_turns`, HTTP 400)"));
}

#[tokio::test]
async fn triggers_are_listed_with_a_quiet_judgement() {
    let (api, toolkit) = kit(Role::Viewer);
    let agent = id("agt_", 7);
    let recent = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let old = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    api.answer(Method::GET, &format!("/v1/agents/{agent}/triggers"), json!({"data": [
        {"id": id("trg_", 1), "name": "mentions", "component": "slack.app_mention", "account_id": id("cac_", 1), "state": "active", "fire_count": 12, "last_fired_at": recent, "secret_never": "x"},
        {"id": id("trg_", 2), "name": "hook", "url": "/v1/webhooks/triggers/x", "state": "paused", "fire_count": 0, "last_fired_at": null},
    ]}));
    api.answer(Method::GET, &format!("/v1/agents/{agent}/schedules"), json!({"data": [
        {"id": id("sch_", 1), "name": "daily", "cron": "0 9 * * *", "timezone": "Europe/Berlin", "state": "active", "fire_count": 3, "last_fired_at": old},
    ]}));
    let out: Value = serde_json::from_str(&toolkit.call("list_triggers", json!({"agent": agent})).await.unwrap()).unwrap();
    let t = &out["agents"][0]["triggers"];
    assert_eq!((t[0]["kind"].as_str(), t[0]["quiet"].as_bool()), (Some("integration"), Some(false)));
    assert!(t[0].get("secret_never").is_none());
    assert_eq!((t[1]["kind"].as_str(), t[1]["quiet_reason"].as_str()), (Some("webhook"), Some("never fired")));
    assert_eq!((t[2]["kind"].as_str(), t[2]["quiet"].as_bool()), (Some("schedule"), Some(true)));
    assert!(t[2]["quiet_reason"].as_str().unwrap().starts_with("last fired 30 days ago"));
}

#[tokio::test]
async fn a_webhook_trigger_surfaces_its_secret_and_url_once() {
    let (api, toolkit) = kit(Role::Editor);
    let agent = id("agt_", 2);
    let trg = id("trg_", 3);
    api.answer(
        Method::POST,
        &format!("/v1/agents/{agent}/triggers"),
        json!({
            "id": trg, "name": "deploys", "state": "active", "url": format!("/v1/webhooks/triggers/{trg}"),
            "verification": "steward_v1", "fire_count": 0, "secret": "whsec_ONCE",
        }),
    );
    let out = toolkit.call("create_trigger", json!({"agent": agent, "kind": "webhook", "name": "deploys"})).await.unwrap();
    assert_eq!(api.calls()[0].2, Some(json!({"name": "deploys"})));
    assert_eq!(out.matches("whsec_ONCE").count(), 1);
    assert!(out.contains(&format!("/v1/webhooks/triggers/{trg}")) && out.contains("shown only this once"), "{out}");

    let e = toolkit
        .call("create_trigger", json!({"agent": agent, "kind": "schedule", "name": "x", "component": "slack.app_mention"}))
        .await
        .unwrap_err();
    assert!(e.contains("`component` does not apply"), "{e}");
    let e = toolkit.call("create_trigger", json!({"agent": agent, "kind": "schedule", "name": "x"})).await.unwrap_err();
    assert!(e.contains("needs `cron`"), "{e}");
    assert_eq!(api.calls().len(), 1);
}

#[tokio::test]
async fn list_runs_encodes_its_query_and_traces_name_the_problem() {
    let (api, toolkit) = kit(Role::Viewer);
    api.answer(
        Method::GET,
        "/v1/runs?limit=5&status=failed&since=2026-11-20T00%3A00%3A00%2B01%3A00",
        json!({"data": [], "next_cursor": null}),
    );
    toolkit.call("list_runs", json!({"status": "failed", "since": "2026-11-20T00:00:00+01:00", "limit": 5})).await.unwrap();

    let run = id("run_", 1);
    api.answer(Method::GET, &format!("/v1/runs/{run}/trace"), json!({
        "run": {"id": run, "status": "completed", "stop_reason": "end_turn"},
        "trace": {
            "tool_resolution": {
                "sources": [
                    {"source_id": null, "name": "platform", "kind": "platform", "connected": true, "offered": ["current_time"], "kept": []},
                    {"source_id": id("src_", 1), "name": "github", "kind": "mcp_http", "connected": false, "error": "connection refused", "offered": [], "kept": []},
                ],
                "unmatched_allowlist": ["search_issues"],
                "catalog": [],
            },
            "tool_calls": [], "model_calls": [{"turn": 1, "error": null}],
        },
    }));
    let out: Value = serde_json::from_str(&toolkit.call("get_run_trace", json!({"run_id": run})).await.unwrap()).unwrap();
    let findings = out["findings"].to_string();
    assert!(findings.contains("`github`") && findings.contains("connection refused"), "{findings}");
    assert!(findings.contains("search_issues") && findings.contains("update_agent_tools"), "{findings}");
    assert_eq!(out["tool_resolution"]["unmatched_allowlist"], json!(["search_issues"]));
}
