//! Tool sources, environments, the workspace API and tool resolution (§6, §7) through the real
//! server: CRUD and bad input, the files API against path attacks, the resolution trace, and
//! runs where a fake model (Anthropic wire format on loopback) calls built-in tools and tools of
//! real third-party MCP servers (installed by `scripts/test`).

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{TestServer, error_message, error_param};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_test_support::peers::npm_bin_dir as npm_bin;

async fn source(s: &TestServer, key: &str, body: Value) -> String {
    let (st, v) = s.post("/v1/sources", key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn agent_with(s: &TestServer, key: &str, name: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "model": {"provider_id": "anthropic", "name": "claude-test"}, "max_turns": 6});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, a) = s.post("/v1/agents", key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

async fn run_to_end(s: &TestServer, key: &str, agent: &str, text: &str) -> (Vec<Value>, Value) {
    let (st, v) = s.post("/v1/sessions", key, json!({"agent_id": agent, "input": [{"role": "user", "content": text}]})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let sid = v["id"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let (_, events) = s.get(&format!("/v1/sessions/{sid}/events"), key).await;
        let events = events.as_array().unwrap().clone();
        if let Some(last) = events.iter().find(|e| ["agent_finish", "agent_error", "run_cancelled"].contains(&e["type"].as_str().unwrap()))
        {
            let run = last["run_id"].as_str().unwrap();
            let (_, trace) = s.get(&format!("/v1/runs/{run}/trace"), key).await;
            return (events, trace);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run did not end in time");
}

fn tool_results(events: &[Value]) -> Vec<Value> {
    events.iter().filter(|e| e["type"] == "agent_tool_result").map(|e| e["data"].clone()).collect()
}

#[tokio::test]
async fn sources_and_environments_crud_roles_and_bad_input() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let editor = s.member("ed@example.com", &u.sandbox_id, steward_core::tenancy::Role::Editor).await;
    let viewer = s.member("vi@example.com", &u.sandbox_id, steward_core::tenancy::Role::Viewer).await;
    let stranger = s.user("eve@example.com").await;

    // Built-in and HTTP sources: editor; stdio: owner only (it starts a program on the host).
    let files = source(&s, &editor.key, json!({"name": "files", "kind": "builtin", "toolset": "workspace"})).await;
    let stdio =
        json!({"name": "everything", "kind": "mcp_stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]});
    let (st, v) = s.post("/v1/sources", &editor.key, stdio.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(error_message(&v).contains("owner"), "{v}");
    let (st, _) = s.post("/v1/sources", &viewer.key, json!({"name": "x", "kind": "builtin", "toolset": "shell"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let everything = source(&s, &u.key, stdio).await;

    // Bad input: clear errors naming the field, nothing stored.
    for (body, param) in [
        (json!({"name": "a", "kind": "mcp_stdio"}), "command"),
        (json!({"name": "a", "kind": "mcp_http", "url": "file:///etc/passwd"}), "url"),
        (json!({"name": "a", "kind": "builtin", "toolset": "teleport"}), "toolset"),
        (json!({"name": "A B", "kind": "builtin", "toolset": "shell"}), "name"),
        (json!({"name": "files", "kind": "builtin", "toolset": "shell"}), "name"),
        (
            json!({"name": "a", "kind": "mcp_http", "url": "https://h/mcp", "headers": {"Authorization": {"vault_id": "vlt_01hzzzzzzzzzzzzzzzzzzzzzzz"}}}),
            "env",
        ),
        (json!({"name": "a", "kind": "builtin", "toolset": "shell", "sandbox_id": 42}), "sandbox_id"),
    ] {
        let (st, v) = s.post("/v1/sources", &u.key, body.clone()).await;
        assert!(st == StatusCode::BAD_REQUEST || st == StatusCode::CONFLICT, "{body} → {st} {v}");
        error_message(&v);
        if st == StatusCode::BAD_REQUEST {
            assert_eq!(error_param(&v).as_deref(), Some(param), "{body} → {v}");
        }
    }
    // A vault of another sandbox cannot be referenced.
    let (_, foreign) = s.post("/v1/vaults", &stranger.key, json!({"name": "tok", "secret": "foreign-secret-value"})).await;
    let (st, v) = s
        .post(
            "/v1/sources",
            &u.key,
            json!({"name": "gh", "kind": "mcp_http", "url": "https://h/mcp", "headers": {"Authorization": {"vault_id": foreign["id"]}}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (_, list) = s.get("/v1/sources", &u.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");

    // Strangers see 404s; PATCH is partial; delete is owner-only.
    let (st, _) = s.get(&format!("/v1/sources/{files}"), &stranger.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = s.patch(&format!("/v1/sources/{files}"), &editor.key, json!({"description": "agent files"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["description"].as_str(), v["toolset"].as_str()), (Some("agent files"), Some("workspace")));
    let (st, v) = s.patch(&format!("/v1/sources/{files}"), &editor.key, json!({"kind": "mcp_http"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("url")), "{v}");
    let (st, _) = s.call(Method::DELETE, &format!("/v1/sources/{everything}"), Some(&editor.key), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.call(Method::DELETE, &format!("/v1/sources/{everything}"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK);

    // Environments: templates, create from a template, 409 while referenced.
    let (st, t) = s.get("/v1/environments/templates", &viewer.key).await;
    assert_eq!(st, StatusCode::OK);
    assert!(t.as_array().unwrap().iter().any(|t| t["id"] == "python"), "{t}");
    let (st, env) = s
        .post("/v1/environments", &editor.key, json!({"name": "py", "template": "python", "network": {"allowlist": ["api.github.com"]}}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{env}");
    assert_eq!(env["limits"]["memory_mb"], 1024);
    assert_eq!(env["network"], json!({"allowlist": ["api.github.com"]}));
    for (body, param) in [
        (json!({"name": "x", "template": "nope"}), "template"),
        (json!({"name": "x", "limits": {"memory_mb": 999999}}), "limits.memory_mb"),
        (json!({"name": "x", "network": {"allowlist": ["http://x/"]}}), "network.allowlist[0]"),
    ] {
        let (st, v) = s.post("/v1/environments", &u.key, body.clone()).await;
        assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some(param)), "{body} → {v}");
    }
    let env_id = env["id"].as_str().unwrap();
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    s.fake_provider(&u.key, &fake.url, "claude-test").await;
    let agent = agent_with(&s, &u.key, "worker", json!({"environment_id": env_id, "tool_sources": [files]})).await;
    let (st, v) = s.call(Method::DELETE, &format!("/v1/environments/{env_id}"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(error_message(&v).contains(&agent), "{v}");
    // Agents may only name sources and environments of their own sandbox.
    let (_, other_env) = s.post("/v1/environments", &stranger.key, json!({"name": "theirs"})).await;
    let (st, v) = s.patch(&format!("/v1/agents/{agent}"), &u.key, json!({"environment_id": other_env["id"]})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("environment_id")), "{v}");
    let (st, v) = s.patch(&format!("/v1/agents/{agent}"), &u.key, json!({"tool_sources": [everything]})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("tool_sources[0]")), "{v}");
    let (st, _) = s.patch(&format!("/v1/agents/{agent}"), &u.key, json!({"environment_id": null})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.call(Method::DELETE, &format!("/v1/environments/{env_id}"), Some(&editor.key), None).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn files_api_confines_every_path_to_the_workspace() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let viewer = s.member("vi@example.com", &u.sandbox_id, steward_core::tenancy::Role::Viewer).await;
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    s.fake_provider(&u.key, &fake.url, "claude-test").await;
    let agent = agent_with(&s, &u.key, "writer", json!({})).await;
    let base = format!("{}/v1/agents/{agent}/files", s.url);
    let http = reqwest::Client::new();

    let with_path = |url: &str, path: &str| reqwest::Url::parse_with_params(url, &[("path", path)]).unwrap();
    let put = |path: &str, body: &'static str| http.put(with_path(&format!("{base}/content"), path)).bearer_auth(&u.key).body(body).send();
    let res = put("notes/today.md", "# hello").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let res = http.get(with_path(&format!("{base}/content"), "notes/today.md")).bearer_auth(&viewer.key).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "# hello");
    let (st, list) = s.get(&format!("/v1/agents/{agent}/files?path=notes"), &viewer.key).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["path"], "notes/today.md");
    assert_eq!(list["data"][0]["kind"], "file");
    // A viewer cannot write.
    let res = http.put(with_path(&format!("{base}/content"), "x")).bearer_auth(&viewer.key).body("x").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // A symlink pointing out of the workspace (planted on the host side).
    let ws = s.data_dir.join("workspaces").join(u.sandbox_id.as_str()).join(&agent);
    std::os::unix::fs::symlink("/etc", ws.join("etc-link")).unwrap();
    let long = "a/".repeat(700);
    for path in ["../../../etc/passwd", "/etc/passwd", "notes/../../x", "etc-link/passwd", "a\0b", long.as_str()] {
        for (method, url) in
            [(Method::GET, format!("{base}/content")), (Method::PUT, format!("{base}/content")), (Method::GET, base.clone())]
        {
            let res = http.request(method.clone(), with_path(&url, path)).bearer_auth(&u.key).body("pwned").send().await.unwrap();
            let st = res.status();
            let v: Value = res.json().await.unwrap();
            assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {path:?} → {v}");
            assert_eq!(error_param(&v).as_deref(), Some("path"), "{v}");
            assert!(!error_message(&v).contains('\0'));
        }
    }
    assert!(!std::path::Path::new("/etc/pwned").exists());
    let (st, v) = s.post(&format!("/v1/agents/{agent}/files/move"), &u.key, json!({"from": "notes/today.md", "to": "../escaped.md"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = s.call(Method::DELETE, &format!("/v1/agents/{agent}/files?path=.."), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    // Move, delete, not found.
    let (st, v) =
        s.post(&format!("/v1/agents/{agent}/files/move"), &u.key, json!({"from": "notes/today.md", "to": "archive/day1.md"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.call(Method::DELETE, &format!("/v1/agents/{agent}/files?path=notes"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.call(Method::DELETE, &format!("/v1/agents/{agent}/files?path=archive"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, _) = s.call(Method::DELETE, &format!("/v1/agents/{agent}/files?path=archive&recursive=true"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.get(&format!("/v1/agents/{agent}/files/content?path=archive/day1.md"), &u.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // Another tenant's agent is a 404.
    let eve = s.user("eve@example.com").await;
    let (st, _) = s.get(&format!("/v1/agents/{agent}/files"), &eve.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_run_writes_a_file_and_reads_it_back_through_the_sandboxed_shell() {
    let fake = FakeModel::start(|req, i| match i {
        0 => {
            let names: Vec<&str> = req["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["current_time", "write_file", "shell"], "{req}");
            Reply::Tool { id: "t1".into(), name: "write_file".into(), input: json!({"path": "hello.txt", "content": "hi from the agent"}) }
        }
        1 => Reply::Tool { id: "t2".into(), name: "shell".into(), input: json!({"command": "cat hello.txt; cat /etc/shadow; env"}) },
        _ => Reply::Text("done".into()),
    })
    .await;
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    s.fake_provider(&u.key, &fake.url, "claude-test").await;
    let files = source(&s, &u.key, json!({"name": "files", "kind": "builtin", "toolset": "workspace"})).await;
    let shell = source(&s, &u.key, json!({"name": "sh", "kind": "builtin", "toolset": "shell"})).await;
    let agent = agent_with(
        &s,
        &u.key,
        "builder",
        json!({"tool_sources": [files, shell], "tools": ["current_time", "write_file", "shell", "files__nothing"]}),
    )
    .await;

    let (events, trace) = run_to_end(&s, &u.key, &agent, "write and read").await;
    assert_eq!(events.last().unwrap()["type"], "agent_finish", "{events:?}");
    let results = tool_results(&events);
    assert_eq!(results[0]["error"], Value::Null, "{results:?}");
    let shell_out: Value = serde_json::from_str(results[1]["result"].as_str().unwrap()).unwrap();
    assert!(shell_out["stdout"].as_str().unwrap().starts_with("hi from the agent"), "{shell_out}");
    // The server's own environment (cargo sets CARGO_* for this test process) does not leak in.
    assert!(!shell_out.to_string().contains("CARGO_"), "{shell_out}");
    assert!(!shell_out["stdout"].as_str().unwrap().contains("root:"), "{shell_out}");
    // The trace: per source offered/kept, the allowlist name that matched nothing.
    let r = &trace["trace"]["tool_resolution"];
    let srcs = r["sources"].as_array().unwrap();
    assert_eq!(srcs[1]["name"], "files");
    assert_eq!(srcs[1]["offered"], json!(["list_files", "read_file", "write_file", "edit_file"]));
    assert_eq!(srcs[1]["kept"], json!(["write_file"]));
    assert_eq!(srcs[2]["kept"], json!(["shell"]));
    assert_eq!(r["unmatched_allowlist"], json!(["files__nothing"]));
    // The file is in the workspace, visible through the API.
    let (_, content) = s.get(&format!("/v1/agents/{agent}/files/content?path=hello.txt"), &u.key).await;
    assert_eq!(content, Value::String("hi from the agent".into()));
}

#[tokio::test]
async fn runs_call_real_mcp_servers_and_the_trace_reports_failures_and_collisions() {
    let Some(bin) = npm_bin() else { return };
    let everything = format!("{bin}/mcp-server-everything");
    let fake = FakeModel::start(|req, i| {
        let names: Vec<String> = req["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
        match i {
            0 => {
                assert!(names.contains(&"one__echo".to_string()) && names.contains(&"two__echo".to_string()), "{names:?}");
                Reply::Tool { id: "t1".into(), name: "one__echo".into(), input: json!({"message": "hello over stdio"}) }
            }
            // The server's own tool that prints its environment, which holds a vault secret.
            1 => Reply::Tool { id: "t2".into(), name: "one__get-env".into(), input: json!({}) },
            _ => Reply::Text("done".into()),
        }
    })
    .await;
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    s.fake_provider(&u.key, &fake.url, "claude-test").await;
    let (_, vault) = s.post("/v1/vaults", &u.key, json!({"name": "token", "secret": "stdio-secret-token-5678"})).await;
    let one = source(
        &s,
        &u.key,
        json!({"name": "one", "kind": "mcp_stdio", "command": everything, "args": ["stdio"], "env": {"MY_TOKEN": {"vault_id": vault["id"]}}}),
    )
    .await;
    let two = source(&s, &u.key, json!({"name": "two", "kind": "mcp_stdio", "command": everything, "args": ["stdio"]})).await;
    let broken =
        source(&s, &u.key, json!({"name": "broken", "kind": "mcp_stdio", "command": "/nonexistent/mcp-server", "timeout_seconds": 5}))
            .await;
    let agent = agent_with(&s, &u.key, "echoer", json!({"tool_sources": [one, two, broken]})).await;

    // The dry resolution shows what a run would get.
    let (st, tools) = s.get(&format!("/v1/agents/{agent}/tools"), &u.key).await;
    assert_eq!(st, StatusCode::OK, "{tools}");
    let catalog = tools["trace"]["catalog"].as_array().unwrap();
    assert!(catalog.iter().any(|e| e["name"] == "one__echo" && e["source"] == "one" && e["tool"] == "echo"), "{catalog:?}");
    let srcs = tools["trace"]["sources"].as_array().unwrap();
    let b = srcs.iter().find(|x| x["name"] == "broken").unwrap();
    assert_eq!(b["connected"], false);
    assert!(b["error"].as_str().unwrap().contains("nonexistent"), "{b}");

    let (events, trace) = run_to_end(&s, &u.key, &agent, "echo please").await;
    assert_eq!(events.last().unwrap()["type"], "agent_finish", "{events:?}");
    let results = tool_results(&events);
    assert!(results[0]["result"].as_str().unwrap().contains("hello over stdio"), "{results:?}");
    // The child got the secret, and the platform redacted it from what the model and the log see.
    let env = results[1]["result"].as_str().unwrap();
    assert!(env.contains("MY_TOKEN") && env.contains("[redacted]"), "{env}");
    assert!(!serde_json::to_string(&events).unwrap().contains("stdio-secret-token-5678"));
    assert!(!fake.requests().iter().any(|r| r.to_string().contains("stdio-secret-token-5678")));
    let r = &trace["trace"]["tool_resolution"];
    assert_eq!(r["sources"].as_array().unwrap().len(), 4, "{r}");
}

/// Kills the HTTP MCP server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_run_uses_an_mcp_server_over_streamable_http_with_a_vault_header_and_a_pypi_server_over_stdio() {
    let Some(bin) = npm_bin() else { return };
    let python = std::env::var("STEWARD_TEST_PYTHON").expect("scripts/test sets STEWARD_TEST_PYTHON");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Child(
        std::process::Command::new(format!("{bin}/mcp-server-everything"))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for i in 0.. {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(i < 300, "the HTTP MCP server did not listen on {port} within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fake = FakeModel::start(|req, i| match i {
        0 => {
            let names: Vec<&str> = req["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["echo", "get_current_time"], "{req}");
            Reply::Tool { id: "t1".into(), name: "echo".into(), input: json!({"message": "over http"}) }
        }
        1 => Reply::Tool { id: "t2".into(), name: "get_current_time".into(), input: json!({"timezone": "Asia/Tokyo"}) },
        _ => Reply::Text("done".into()),
    })
    .await;
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    s.fake_provider(&u.key, &fake.url, "claude-test").await;
    let (_, vault) = s.post("/v1/vaults", &u.key, json!({"name": "mcp-token", "secret": "mcp-secret-token-1234"})).await;
    let http = source(
        &s,
        &u.key,
        json!({"name": "everything", "kind": "mcp_http", "url": format!("http://127.0.0.1:{port}/mcp"),
               "headers": {"Authorization": {"vault_id": vault["id"], "prefix": "Bearer "}}}),
    )
    .await;
    let time = source(
        &s,
        &u.key,
        json!({"name": "time", "kind": "mcp_stdio", "command": python, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}),
    )
    .await;
    let agent = agent_with(&s, &u.key, "clock", json!({"tool_sources": [http, time], "tools": ["echo", "get_current_time"]})).await;
    let (events, trace) = run_to_end(&s, &u.key, &agent, "echo and time").await;
    assert_eq!(events.last().unwrap()["type"], "agent_finish", "{events:?}");
    let results = tool_results(&events);
    assert_eq!(results[0]["result"], "Echo: over http", "{results:?}");
    let now: Value = serde_json::from_str(results[1]["result"].as_str().unwrap()).unwrap();
    assert!(now["datetime"].as_str().unwrap().ends_with("+09:00"), "{now}");
    let srcs = trace["trace"]["tool_resolution"]["sources"].as_array().unwrap();
    assert_eq!(srcs[1]["connected"], true, "{srcs:?}");
    assert_eq!(srcs[1]["kept"], json!(["echo"]));
    assert_eq!(srcs[2]["kept"], json!(["get_current_time"]));
    assert!(srcs[1]["offered"].as_array().unwrap().len() > 5, "{srcs:?}");
    // The vault secret never shows in the events or the trace.
    assert!(!serde_json::to_string(&events).unwrap().contains("mcp-secret-token-1234"));
    assert!(!trace.to_string().contains("mcp-secret-token-1234"));
}
