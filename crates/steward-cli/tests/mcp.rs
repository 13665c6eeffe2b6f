//! The management tools as an MCP server (§5), met by a real third-party client: the official
//! Python MCP SDK (`support/mcp_client.py`, PyPI `mcp`, installed by scripts/test as a test peer)
//! starts `steward mcp` over stdio against a real `steward serve`, or talks to the streamable
//! HTTP endpoint `/v1/sandboxes/{id}/mcp`. What the tools did is checked through the REST API.
//!
//! Without `STEWARD_TEST_PYTHON` the client tests are skipped (with a note on stderr), unless
//! `STEWARD_REQUIRE_PEERS=1`, which scripts/test sets: then a missing peer fails them.

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use steward_test_support::management::{MUTATING_TOOLS, READ_TOOLS};
use steward_test_support::peers;
use support::{Server, TempDir, finish, hermetic};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_client.py")
}

/// One account's view of the world: its key and the sandbox `steward mcp` acts in.
struct Caller {
    key: String,
    sandbox: String,
}

/// Runs the Python client against `steward mcp` (stdio) for `caller`, with one `tools/call` per
/// `(name, args)`; returns the client's JSON report.
fn over_stdio(server: &Server, python: &str, caller: &Caller, lifecycle: &str, calls: &[(&str, Value)]) -> Value {
    let mut cmd = Command::new(python);
    hermetic(&mut cmd, server.home.path());
    cmd.arg(client_script()).args(["--lifecycle", lifecycle]);
    for (name, args) in calls {
        cmd.args(["--call", name, &args.to_string()]);
    }
    cmd.args(["--", BIN, "mcp"])
        .env("STEWARD_URL", &server.url)
        .env("STEWARD_API_KEY", &caller.key)
        .env("STEWARD_SANDBOX", &caller.sandbox);
    report(cmd)
}

/// Runs the Python client against the streamable HTTP endpoint with `key` as the bearer.
fn over_http(server: &Server, python: &str, url: &str, key: &str, calls: &[(&str, Value)]) -> Value {
    let mut cmd = Command::new(python);
    hermetic(&mut cmd, server.home.path());
    cmd.arg(client_script()).args(["--http", url, "--header", &format!("Authorization: Bearer {key}")]);
    for (name, args) in calls {
        cmd.args(["--call", name, &args.to_string()]);
    }
    report(cmd)
}

fn report(mut cmd: Command) -> Value {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = finish(cmd.spawn().expect("spawn the Python MCP client"));
    assert!(run.status.success(), "the MCP client failed: {run:#?}");
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("the MCP client printed no JSON ({e}): {run:#?}"))
}

fn tool_names(report: &Value) -> BTreeSet<String> {
    report["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn tool<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no tool {name}: {report}"))
}

/// A call's outcome from the report, in order.
fn call(report: &Value, i: usize) -> &Value {
    &report["calls"][i]
}

/// The REST API, acting in `sandbox`, for setting up and for checking what the tools did.
fn rest(method: &str, url: &str, key: &str, sandbox: &str, body: Option<Value>) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method.parse().unwrap(), url).bearer_auth(key).header("Steward-Sandbox", sandbox);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("REST call");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
}

/// A server; alice owns her default sandbox and shares it with carol (editor) and bob (viewer),
/// each with a key of their own.
struct World {
    server: Server,
    owner: Caller,
    editor: Caller,
    viewer: Caller,
}

fn world() -> World {
    let server = Server::start();
    let alice = server.create_account("alice@example.com");
    let (sandbox, owner_key) = (alice.sandbox_id, alice.api_key);
    let mut keys = Vec::new();
    for (email, role) in [("carol@example.com", "editor"), ("bob@example.com", "viewer")] {
        let account = server.create_account(email);
        let url = format!("{}/v1/sandboxes/{sandbox}/grants", server.url);
        let (status, body) = rest("POST", &url, &owner_key, &sandbox, Some(json!({"email": email, "role": role})));
        assert!(status < 300, "grant {role} to {email}: {status} {body}");
        keys.push(account.api_key);
    }
    let viewer = Caller { key: keys.pop().unwrap(), sandbox: sandbox.clone() };
    let editor = Caller { key: keys.pop().unwrap(), sandbox: sandbox.clone() };
    World { server, owner: Caller { key: owner_key, sandbox }, editor, viewer }
}

fn agents(w: &World) -> Vec<Value> {
    let (status, body) = rest("GET", &format!("{}/v1/agents?limit=100", w.server.url), &w.owner.key, &w.owner.sandbox, None);
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn add_provider(w: &World) {
    let body = json!({"id": "openai", "provider": "openai", "models": ["gpt-5"]});
    let (status, created) = rest("POST", &format!("{}/v1/providers", w.server.url), &w.owner.key, &w.owner.sandbox, Some(body));
    assert!(status < 300, "create the provider: {status} {created}");
}

#[test]
fn owners_and_editors_get_all_28_tools_and_create_agents_over_stdio() {
    let Some(python) = peers::python() else { return };
    let w = world();
    add_provider(&w);

    let create = json!({"name": "support", "provider_id": "openai", "model": "gpt-5", "system_prompt": "Be brief."});
    let owner = over_stdio(&w.server, &python, &w.owner, "initialize", &[("create_agent", create), ("list_agents", json!({}))]);
    assert_eq!(owner["server_name"], "steward");
    let instructions = owner["instructions"].as_str().unwrap();
    assert!(instructions.contains(&w.owner.sandbox) && instructions.contains("CLI"), "{instructions}");
    let all: BTreeSet<String> = names(&READ_TOOLS).union(&names(&MUTATING_TOOLS)).cloned().collect();
    assert_eq!(tool_names(&owner), all);
    assert_eq!(owner["tools"].as_array().unwrap().len(), 28);
    assert_eq!(tool(&owner, "list_agents")["annotations"]["readOnlyHint"], true);
    assert_eq!(tool(&owner, "create_agent")["annotations"]["destructiveHint"], false);
    assert_eq!(tool(&owner, "create_agent")["annotations"]["readOnlyHint"], false);
    assert_eq!(tool(&owner, "create_agent")["input_schema_type"], "object");

    let created = call(&owner, 0);
    assert_eq!(created["is_error"], false, "{created}");
    let listed = call(&owner, 1);
    assert_eq!(listed["is_error"], false, "{listed}");
    assert!(listed["text"].as_str().unwrap().contains("support"), "{listed}");
    let agents = agents(&w);
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents[0]["name"], "support");
    assert_eq!(agents[0]["model"]["provider_id"], "openai");
    assert_eq!(agents[0]["system_prompt"], "Be brief.");

    // An editor gets the same catalog and may make reversible changes; the modern
    // (`server/discover`) lifecycle works as well as the `initialize` handshake.
    let create = json!({"name": "triage", "provider_id": "openai", "model": "gpt-5"});
    let editor = over_stdio(&w.server, &python, &w.editor, "discover", &[("create_agent", create)]);
    assert_eq!(tool_names(&editor), all);
    assert_eq!(call(&editor, 0)["is_error"], false, "{editor}");
    let mut names: Vec<String> = self::agents(&w).iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["support", "triage"]);
}

#[test]
fn a_viewer_gets_the_13_read_tools_and_cannot_change_anything() {
    let Some(python) = peers::python() else { return };
    let w = world();
    add_provider(&w);

    let create = json!({"name": "sneaky", "provider_id": "openai", "model": "gpt-5"});
    let viewer = over_stdio(
        &w.server,
        &python,
        &w.viewer,
        "initialize",
        &[("list_agents", json!({})), ("create_agent", create.clone()), ("delete_agent", json!({"agent": "x"}))],
    );
    assert_eq!(tool_names(&viewer), names(&READ_TOOLS));
    assert!(viewer["tools"].as_array().unwrap().iter().all(|t| t["annotations"]["readOnlyHint"] == true), "{viewer}");
    assert!(viewer["instructions"].as_str().unwrap().contains("viewer"), "{viewer}");

    let listed = call(&viewer, 0);
    assert_eq!(listed["is_error"], false, "list_agents works for a viewer: {listed}");
    // Naming a mutating tool the catalog did not offer is refused by the server, as a tool error
    // that says why; a name that is no tool at all is a protocol error.
    let refused = call(&viewer, 1);
    assert_eq!(refused["is_error"], true, "{refused}");
    let why = refused["text"].as_str().unwrap();
    assert!(why.contains("create_agent") && why.contains("viewer"), "{why}");
    let unknown = call(&viewer, 2);
    assert!(unknown["protocol_error"]["message"].as_str().unwrap().contains("delete_agent"), "{unknown}");
    assert!(agents(&w).is_empty(), "a viewer's create_agent created nothing");

    // The same key over the REST API is refused too: the catalog is not the only wall.
    let body = json!({"name": "sneaky", "model": {"provider_id": "openai", "name": "gpt-5"}});
    let (status, _) = rest("POST", &format!("{}/v1/agents", w.server.url), &w.viewer.key, &w.viewer.sandbox, Some(body));
    assert_eq!(status, 403);
}

#[test]
fn steward_mcp_without_a_credential_or_a_usable_sandbox_fails_before_serving() {
    let server = Server::start();
    let key = &server.create_account("alice@example.com").api_key;
    let dir = TempDir::new("mcp");

    let run = server.client(None, dir.path()).run(&["mcp"]).fails();
    assert!(run.stderr.contains("not signed in"), "{run:#?}");
    assert!(run.stdout.is_empty(), "nothing but MCP frames on stdout: {run:#?}");

    let run = server.client(Some(key), dir.path()).run(&["mcp", "--sandbox", "sbx_01arz3ndektsv4rrffq69g5fav"]).fails();
    assert!(run.stderr.contains("not found"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");

    let run = server.client(Some(key), dir.path()).run(&["mcp", "--sandbox", "nonsense"]).fails();
    assert!(run.stderr.contains("sbx_"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
}

#[test]
fn the_streamable_http_endpoint_serves_the_same_tools_with_the_same_role_filter() {
    let Some(python) = peers::python() else { return };
    let w = world();
    let url = format!("{}/v1/sandboxes/{}/mcp", w.server.url, w.owner.sandbox);
    add_provider(&w);

    let create = json!({"name": "support", "provider_id": "openai", "model": "gpt-5"});
    let owner = over_http(&w.server, &python, &url, &w.owner.key, &[("create_agent", create.clone())]);
    assert_eq!(owner["server_name"], "steward");
    assert_eq!(tool_names(&owner), names(&READ_TOOLS).union(&names(&MUTATING_TOOLS)).cloned().collect());
    assert_eq!(call(&owner, 0)["is_error"], false, "{owner}");
    assert_eq!(agents(&w).len(), 1);

    let create = json!({"name": "sneaky", "provider_id": "openai", "model": "gpt-5"});
    let viewer = over_http(&w.server, &python, &url, &w.viewer.key, &[("list_agents", json!({})), ("create_agent", create)]);
    assert_eq!(tool_names(&viewer), names(&READ_TOOLS));
    assert_eq!(call(&viewer, 0)["is_error"], false, "{viewer}");
    assert_eq!(call(&viewer, 1)["is_error"], true, "{viewer}");
    assert_eq!(agents(&w).len(), 1, "the viewer's create_agent created nothing");

    // Every POST is authenticated on its own: no credential, no MCP.
    let (status, _) =
        rest("POST", &url, "stw_not_a_key", &w.owner.sandbox, Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
    assert_eq!(status, 401);
}
