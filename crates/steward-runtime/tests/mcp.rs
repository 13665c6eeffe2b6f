//! The MCP client pool against real servers: the reference servers from npm
//! (`@modelcontextprotocol/server-everything` over stdio and streamable HTTP,
//! `@modelcontextprotocol/server-filesystem`) and `mcp-server-time` from PyPI, all installed by
//! `scripts/test`; plus `tests/mcp_peers/fake_server.py`, a stdlib-only server that crashes,
//! hangs, floods and lists broken tools on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use steward_runtime::mcp::{McpError, McpPool, McpPoolConfig, McpTarget};
use steward_test_support::peers::{env as peer_env, everything_over_http, npm_bin};

const CALL: Duration = Duration::from_secs(30);

fn pool() -> McpPool {
    McpPool::new(config())
}

fn config() -> McpPoolConfig {
    McpPoolConfig {
        connect_timeout: Duration::from_secs(30),
        list_timeout: Duration::from_secs(30),
        max_output_bytes: 16 * 1024,
        idle_ttl: Duration::from_secs(600),
    }
}

fn args(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("arguments are an object")
}

fn stdio(command: &str, args: &[&str], env: &[(&str, &str)]) -> McpTarget {
    McpTarget::Stdio {
        command: command.to_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        cwd: None,
    }
}

/// The fake server, logging each start's pid to `pid_log`.
fn fake(flags: &[&str], pid_log: &Path) -> McpTarget {
    let python = std::env::var("STEWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_peers/fake_server.py");
    let mut argv = vec![script.to_string_lossy().into_owned()];
    argv.extend(flags.iter().map(|f| f.to_string()));
    McpTarget::Stdio {
        command: python,
        args: argv,
        env: BTreeMap::from([("FAKE_MCP_PID_LOG".to_owned(), pid_log.to_string_lossy().into_owned())]),
        cwd: None,
    }
}

fn pids(log: &Path) -> Vec<u32> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(|l| l.parse().unwrap()).collect()
}

/// Whether `pid` still exists (a zombie counts: it means nobody reaped it).
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded) for `pid` to be gone and reaped.
async fn wait_gone(pid: u32) {
    for _ in 0..100 {
        if !exists(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    panic!("process {pid} is still there after 10 s (stat: {stat})");
}

#[tokio::test]
async fn everything_server_over_stdio_lists_and_calls() {
    let Some(bin) = npm_bin("mcp-server-everything") else { return };
    let pool = pool();
    let target = stdio(&bin, &["stdio"], &[]);
    let listing = pool.list_tools("everything", &target).await.unwrap();
    let names: BTreeSet<_> = listing.tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains("echo") && names.contains("get-sum"), "tools: {names:?}");
    assert!(listing.rejected.is_empty(), "rejected: {:?}", listing.rejected);
    let echo = listing.tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.input_schema["type"], "object");
    assert!(!echo.description.is_empty());

    let out = pool.call_tool("everything", &target, "echo", args(json!({"message": "hello"})), CALL).await;
    assert_eq!(out.unwrap(), "Echo: hello");
    let sum = pool.call_tool("everything", &target, "get-sum", args(json!({"a": 2, "b": 3})), CALL).await.unwrap();
    assert!(sum.contains("is 5"), "{sum}");
    let image = pool.call_tool("everything", &target, "get-tiny-image", Map::new(), CALL).await.unwrap();
    assert!(image.contains("[image: image/png, "), "{image}");
    // Structured content that the server repeats as a JSON text block is shown once.
    let weather = pool.call_tool("everything", &target, "get-structured-content", args(json!({"location": "Chicago"})), CALL).await;
    let weather: Value = serde_json::from_str(&weather.unwrap()).expect("one JSON document");
    assert_eq!(weather["conditions"], "Light rain / drizzle");
    let missing = pool.call_tool("everything", &target, "no-such-tool", Map::new(), CALL).await.unwrap_err();
    assert!(missing.contains("no-such-tool"), "{missing}");
    pool.shutdown().await;
}

#[tokio::test]
async fn everything_server_over_streamable_http_lists_and_calls() {
    let Some(server) = everything_over_http().await else { return };
    // `McpPool::new` installs the process-wide rustls provider rmcp's HTTP client needs.
    let port = server.port;

    let pool = pool();
    let headers = BTreeMap::from([("X-Steward-Test".to_owned(), "header value".to_owned())]);
    let target = McpTarget::Http { url: format!("http://127.0.0.1:{port}/mcp"), headers };
    let listing = pool.list_tools("http", &target).await.unwrap();
    assert!(listing.tools.iter().any(|t| t.name == "echo"), "{listing:?}");
    let calls = (0..4).map(|i| pool.call_tool("http", &target, "echo", args(json!({"message": format!("over http {i}")})), CALL));
    for (i, out) in futures::future::join_all(calls).await.into_iter().enumerate() {
        assert_eq!(out.unwrap(), format!("Echo: over http {i}"));
    }
    let again = pool.list_tools("http", &target).await.unwrap();
    assert!(Arc::ptr_eq(&listing, &again), "the second listing came from the cache");
    pool.shutdown().await;

    let nobody = McpTarget::Http { url: format!("http://127.0.0.1:{}/mcp", free_port()), headers: BTreeMap::new() };
    let err = McpPool::new(config()).list_tools("nobody", &nobody).await.unwrap_err();
    assert!(matches!(err, McpError::Connect(_)), "{err:?}");
    assert!(err.to_string().contains("could not connect to the MCP server at http://127.0.0.1:"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn time_server_tells_the_time_in_a_zone() {
    let Some(python) = peer_env("STEWARD_TEST_PYTHON", "mcp-server-time from PyPI") else { return };
    let pool = pool();
    let target = stdio(&python, &["-m", "mcp_server_time", "--local-timezone", "UTC"], &[]);
    let listing = pool.list_tools("time", &target).await.unwrap();
    assert!(listing.tools.iter().any(|t| t.name == "get_current_time"), "{listing:?}");
    let out = pool.call_tool("time", &target, "get_current_time", args(json!({"timezone": "Asia/Tokyo"})), CALL).await.unwrap();
    let parsed: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"));
    assert_eq!(parsed["timezone"], "Asia/Tokyo", "{out}");
    assert!(parsed["datetime"].as_str().is_some_and(|d| d.ends_with("+09:00")), "{out}");
    pool.shutdown().await;
}

#[tokio::test]
async fn filesystem_server_reads_a_file() {
    let Some(bin) = npm_bin("mcp-server-filesystem") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("note.txt"), "hello from the filesystem server\n").unwrap();
    let pool = pool();
    let target = stdio(&bin, &[root.to_str().unwrap()], &[]);
    let listing = pool.list_tools("fs", &target).await.unwrap();
    assert!(listing.tools.iter().any(|t| t.name == "read_text_file"), "{listing:?}");
    let path = root.join("note.txt").to_string_lossy().into_owned();
    let out = pool.call_tool("fs", &target, "read_text_file", args(json!({ "path": path })), CALL).await.unwrap();
    assert!(out.contains("hello from the filesystem server"), "{out}");
    let outside = pool.call_tool("fs", &target, "read_text_file", args(json!({"path": "/etc/hostname"})), CALL).await.unwrap_err();
    assert!(outside.to_lowercase().contains("denied") || outside.contains("outside"), "{outside}");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_child_sees_only_its_own_env_plus_path_home_lang() {
    let Some(bin) = npm_bin("mcp-server-everything") else { return };
    let pool = pool();
    let target = stdio(&bin, &["stdio"], &[("STEWARD_MCP_GIVEN", "given value")]);
    let out = pool.call_tool("env", &target, "get-env", Map::new(), CALL).await.unwrap();
    let env: BTreeMap<String, String> = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"));
    assert_eq!(env.get("STEWARD_MCP_GIVEN").map(String::as_str), Some("given value"));
    assert_eq!(env.get("PATH"), std::env::var("PATH").ok().as_ref());
    let allowed = ["PATH", "HOME", "LANG", "STEWARD_MCP_GIVEN"];
    let extra: Vec<_> = env.keys().filter(|k| !allowed.contains(&k.as_str())).collect();
    assert!(extra.is_empty(), "the child saw variables it was not given: {extra:?}");
    // Set in this process (npm_bin read it): a STEWARD_* setting must not reach the child.
    assert!(!env.contains_key("STEWARD_TEST_NPM_BIN"));
    pool.shutdown().await;
}

#[tokio::test]
async fn one_process_serves_racing_and_concurrent_callers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = pool();
    let target = fake(&[], &log);
    // Eight callers race to connect a fresh key; then two more listings and eight calls that
    // each take 1 s and must overlap.
    let racers = (0..8).map(|_| pool.list_tools("fake", &target));
    for listing in futures::future::join_all(racers).await {
        assert!(listing.unwrap().tools.iter().any(|t| t.name == "sleep"));
    }
    let first = pool.list_tools("fake", &target).await.unwrap();
    let second = pool.list_tools("fake", &target).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "the listing is cached");
    let started = Instant::now();
    let calls = (0..8).map(|_| pool.call_tool("fake", &target, "sleep", args(json!({"seconds": 1})), CALL));
    for out in futures::future::join_all(calls).await {
        assert_eq!(out.unwrap(), "slept");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "calls ran one after another: {:?}", started.elapsed());
    assert_eq!(pids(&log).len(), 1, "one process for every caller");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_killed_child_is_replaced_on_next_use() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = pool();
    let target = fake(&[], &log);
    pool.list_tools("fake", &target).await.unwrap();
    let old = pids(&log)[0];
    let killed = Command::new("kill").args(["-9", &old.to_string()]).status().unwrap();
    assert!(killed.success());
    // Reaped at once, not left a zombie until the pool is next used.
    wait_gone(old).await;
    // The first use after the kill may fail (if the pool has not noticed yet) or reconnect.
    let _ = pool.call_tool("fake", &target, "echo", args(json!({"message": "after kill"})), CALL).await;
    let out = pool.call_tool("fake", &target, "echo", args(json!({"message": "again"})), CALL).await;
    assert_eq!(out.unwrap(), "echo: again");
    let all = pids(&log);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_ne!(all[1], old);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crash_mid_call_is_reported_and_the_pool_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = pool();
    let target = fake(&[], &log);
    let err = pool.call_tool("fake", &target, "crash", Map::new(), CALL).await.unwrap_err();
    assert!(err.contains("stopped (exit status: 3) while running the tool `crash`"), "{err}");
    assert!(err.ends_with("fake server: crashing on purpose"), "the stderr tail is quoted: {err}");
    wait_gone(pids(&log)[0]).await;
    let out = pool.call_tool("fake", &target, "echo", args(json!({"message": "back"})), CALL).await;
    assert_eq!(out.unwrap(), "echo: back");
    assert_eq!(pids(&log).len(), 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_server_that_never_answers_initialize_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = McpPool::new(McpPoolConfig { connect_timeout: Duration::from_millis(1500), ..config() });
    let started = Instant::now();
    let err = pool.list_tools("silent", &fake(&["--silent"], &log)).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, McpError::Timeout(_)), "{err:?}");
    assert!(err.to_string().contains("did not answer the MCP handshake within 1.5 s"), "{err}");
    // connect_timeout, then at most CLOSE_GRACE (2 s) to stop the child.
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(6), "{took:?}");
    wait_gone(pids(&log)[0]).await;
    let call = pool.call_tool("silent", &fake(&["--silent"], &log), "echo", Map::new(), CALL).await.unwrap_err();
    assert!(call.contains("did not answer the MCP handshake"), "{call}");
}

#[tokio::test]
async fn a_server_that_never_lists_its_tools_times_out_but_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = McpPool::new(McpPoolConfig { list_timeout: Duration::from_secs(1), ..config() });
    let target = fake(&["--mute-list"], &log);
    let started = Instant::now();
    let err = pool.list_tools("mute", &target).await.unwrap_err();
    assert!(matches!(err, McpError::Timeout(_)), "{err:?}");
    assert!(err.to_string().ends_with("did not list its tools within 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let out = pool.call_tool("mute", &target, "echo", args(json!({"message": "calls still work"})), CALL).await;
    assert_eq!(out.unwrap(), "echo: calls still work");
    assert_eq!(pids(&log).len(), 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_100_mib_result_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool();
    let target = fake(&[], &dir.path().join("pids"));
    let before = proc_status_kib("VmHWM:");
    let out = pool.call_tool("fake", &target, "huge", args(json!({"mib": 100})), Duration::from_secs(300)).await.unwrap();
    eprintln!(
        "test process memory around the 100 MiB result: peak {before} -> {} KiB, resident now {} KiB",
        proc_status_kib("VmHWM:"),
        proc_status_kib("VmRSS:")
    );
    assert!(out.len() <= config().max_output_bytes, "{} bytes", out.len());
    assert!(out.starts_with("xxxx"));
    assert!(
        out.ends_with(&format!("[output truncated: {} bytes in all, cut to fit 16384 bytes]", 100 << 20)),
        "{}",
        &out[out.len() - 120..]
    );
    let next = pool.call_tool("fake", &target, "echo", args(json!({"message": "still here"})), CALL).await;
    assert_eq!(next.unwrap(), "echo: still here");
    pool.shutdown().await;
}

/// A memory figure of this process from /proc (e.g. "VmHWM:", the peak resident size).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn tools_with_invalid_schemas_are_rejected_and_the_rest_work() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool();
    let target = fake(&["--bad-schemas"], &dir.path().join("pids"));
    let listing = pool.list_tools("bad", &target).await.unwrap();
    let rejected: BTreeMap<_, _> = listing.rejected.iter().cloned().collect();
    assert_eq!(
        rejected.keys().map(String::as_str).collect::<Vec<_>>(),
        ["array_schema", "bad_properties", "string_schema", "untyped_schema"]
    );
    assert!(rejected["string_schema"].starts_with("input schema is not a JSON object schema"), "{rejected:?}");
    assert!(rejected["array_schema"].contains("\"array\""), "{rejected:?}");
    assert!(rejected["bad_properties"].contains("`properties`"), "{rejected:?}");
    assert!(listing.tools.iter().any(|t| t.name == "echo"));
    assert!(!listing.tools.iter().any(|t| rejected.contains_key(&t.name)));
    let out = pool.call_tool("bad", &target, "echo", args(json!({"message": "valid"})), CALL).await;
    assert_eq!(out.unwrap(), "echo: valid");
    pool.shutdown().await;
}

#[tokio::test]
async fn tool_errors_structured_results_and_timeouts_keep_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = pool();
    let target = fake(&[], &log);
    let err = pool.call_tool("fake", &target, "fail", Map::new(), CALL).await.unwrap_err();
    assert_eq!(err, "the fake tool failed on purpose");
    let structured = pool.call_tool("fake", &target, "structured", Map::new(), CALL).await;
    assert_eq!(structured.unwrap(), r#"{"answer":42}"#);
    let slow = pool.call_tool("fake", &target, "sleep", args(json!({"seconds": 5})), Duration::from_millis(300)).await.unwrap_err();
    assert!(slow.contains("did not finish within 300 ms"), "{slow}");
    let out = pool.call_tool("fake", &target, "echo", args(json!({"message": "ok"})), CALL).await;
    assert_eq!(out.unwrap(), "echo: ok");
    assert_eq!(pids(&log).len(), 1, "neither a tool error nor a timeout restarts the server");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_list_changed_notification_refreshes_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool();
    let target = fake(&[], &dir.path().join("pids"));
    let before = pool.list_tools("fake", &target).await.unwrap();
    assert!(!before.tools.iter().any(|t| t.name == "late"));
    pool.call_tool("fake", &target, "add_tool", args(json!({"name": "late"})), CALL).await.unwrap();
    let mut found = false;
    for _ in 0..50 {
        if pool.list_tools("fake", &target).await.unwrap().tools.iter().any(|t| t.name == "late") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the new tool shows up after tools/list_changed");
    pool.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_reopened_on_use() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = McpPool::new(McpPoolConfig { idle_ttl: Duration::from_millis(500), ..config() });
    let target = fake(&[], &log);
    pool.list_tools("fake", &target).await.unwrap();
    let first = pids(&log)[0];
    wait_gone(first).await;
    pool.list_tools("fake", &target).await.unwrap();
    assert_eq!(pids(&log).len(), 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_changed_target_replaces_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = pool();
    let old = fake(&[], &log);
    pool.list_tools("source", &old).await.unwrap();
    let McpTarget::Stdio { command, args: argv, mut env, cwd } = old else { unreachable!() };
    env.insert("SETTING".into(), "new".into());
    let new = McpTarget::Stdio { command, args: argv, env, cwd };
    let out = pool.call_tool("source", &new, "env", Map::new(), CALL).await.unwrap();
    let env: BTreeMap<String, String> = serde_json::from_str(&out).unwrap();
    assert_eq!(env.get("SETTING").map(String::as_str), Some("new"));
    let all = pids(&log);
    assert_eq!(all.len(), 2);
    wait_gone(all[0]).await;
    pool.shutdown().await;
}

#[tokio::test]
async fn shutdown_kills_children_and_refuses_further_use() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pids");
    let pool = pool();
    let target = fake(&[], &log);
    pool.list_tools("a", &target).await.unwrap();
    pool.list_tools("b", &target).await.unwrap();
    pool.shutdown().await;
    for pid in pids(&log) {
        assert!(!exists(pid), "process {pid} survived shutdown");
    }
    assert!(matches!(pool.list_tools("a", &target).await, Err(McpError::ShutDown)));
}

#[tokio::test]
async fn a_missing_command_is_a_readable_connect_error() {
    let pool = pool();
    let err = pool.list_tools("missing", &stdio("steward-no-such-command", &[], &[])).await.unwrap_err();
    assert!(matches!(err, McpError::Connect(_)), "{err:?}");
    assert!(err.to_string().starts_with("could not start `steward-no-such-command`: No such file or directory"), "{err}");
    let bad_url = McpTarget::Http { url: "ftp://example.test/mcp".into(), headers: BTreeMap::new() };
    assert!(matches!(pool.list_tools("ftp", &bad_url).await, Err(McpError::Config(_))));
}

#[test]
fn debug_of_a_target_shows_keys_but_no_secrets() {
    let stdio = McpTarget::Stdio {
        command: "npx".into(),
        args: vec!["-y".into(), "server".into()],
        env: BTreeMap::from([("API_TOKEN".into(), "hunter2-secret".into())]),
        cwd: Some(PathBuf::from("/srv")),
    };
    let http = McpTarget::Http {
        url: "https://mcp.example.test/mcp".into(),
        headers: BTreeMap::from([("Authorization".into(), "Bearer s3cr3t-token".into())]),
    };
    let shown = format!("{stdio:?} {http:?} {stdio:#?}");
    assert!(shown.contains("API_TOKEN") && shown.contains("Authorization") && shown.contains("npx"), "{shown}");
    assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t"), "{shown}");
}

/// The pool is shared across the runtime's tasks, so its futures must be `Send`.
#[test]
fn the_pool_and_its_futures_can_move_between_threads() {
    fn send<T: Send + Sync + 'static>(_: &T) {}
    fn send_future<F: std::future::Future + Send>(_: F) {}
    let pool = pool();
    send(&pool);
    let target = stdio("true", &[], &[]);
    send_future(pool.list_tools("k", &target));
    send_future(pool.call_tool("k", &target, "t", Map::new(), CALL));
    send_future(pool.shutdown());
}

/// An HTTP MCP server that answers the handshake with 401 and a `WWW-Authenticate` challenge is
/// `McpError::Unauthorized` — its own variant, so callers (an integration source telling the user
/// to reconnect the account) decide by type, not by the message.
#[tokio::test]
async fn an_http_server_demanding_authorization_is_unauthorized() {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new()
        .fallback(|| async { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"mcp\"")], "no token") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let target = McpTarget::Http { url: format!("http://127.0.0.1:{port}/mcp"), headers: BTreeMap::new() };
    let pool = pool();
    let err = pool.list_tools("locked", &target).await.unwrap_err();
    assert!(matches!(err, McpError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("set its Authorization header on the source"), "{err}");
    pool.shutdown().await;
    server.abort();
}
