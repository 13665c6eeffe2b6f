//! Fuzzes the served OpenAPI document of a real `steward serve` with schemathesis (PyPI,
//! installed by scripts/test into the peers' venv): every operation, with a real key, checking
//! that no answer is a 5xx and that every status, content type and body is the documented one.
//! Phases: examples, coverage, fuzzing and stateful (chains create → read → update → delete).
//!
//! Destructive operations (destroying or archiving a sandbox, removing a grant, revoking a key)
//! run in a second pass with an account of their own, so they cannot take the first pass's key
//! or sandbox away mid-run.
//!
//! Without `STEWARD_TEST_PYTHON` the test is skipped (with a note on stderr), unless
//! `STEWARD_REQUIRE_PEERS=1`, which scripts/test sets. A Python without schemathesis fails.

#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use steward_test_support::peers;
use steward_test_support::serve::wait_within;
use support::{Server, TempDir};

/// Bounds the whole run (both passes) so the suite stays well under 3 minutes on 2 cores.
const DEADLINE: Duration = Duration::from_secs(170);
const CHECKS: &str = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance";
const DESTRUCTIVE: &str = r"^/v1/sandboxes/\{id\}(/archive|/grants/\{account_id\})?$|^/v1/api_keys/\{id\}/revoke$";

/// One schemathesis pass; returns its JSON report.
fn pass(python: &str, server: &Server, key: &str, filter: [&str; 2], max_examples: u32, reports: &Path, deadline: Instant) -> Value {
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/schemathesis_hooks.py");
    let report = reports.join(format!("{}.json", filter[0].trim_start_matches("--")));
    let mut cmd = Command::new(python);
    cmd.args(["-m", "schemathesis.cli", "run", &format!("{}/v1/openapi.json", server.url)])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", CHECKS, "--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &max_examples.to_string(), "--workers", "2", "--seed", "14"])
        .args(["--generation-database", "none", "--no-color", "--request-timeout", "20"])
        .args(filter)
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", hooks)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start schemathesis");
    let out = wait_within(child, deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_else(|| panic!("schemathesis ran past the {DEADLINE:?} budget; lower --max-examples"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !text.contains("No module named schemathesis"),
        "schemathesis is not installed in {python}; run scripts/test, which installs scripts/test-peers.txt"
    );
    let summary = text.rfind("SUMMARY").map_or(text.as_str(), |i| &text[i..]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
        .unwrap_or_else(|e| panic!("schemathesis wrote no report ({e}):\n{text}"));
    assert!(out.status.success() && report["failures"].as_array().is_some_and(Vec::is_empty), "schemathesis found failures:\n{text}");
    assert!(report["errors"].as_array().is_some_and(Vec::is_empty), "schemathesis errored:\n{summary}");
    report
}

fn counts(report: &Value) -> (u64, u64) {
    (report["operations"]["tested"].as_u64().unwrap_or(0), report["test_cases"]["generated"].as_u64().unwrap_or(0))
}

#[test]
fn the_served_openapi_document_tells_the_truth() {
    let Some(python) = peers::python() else { return };
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let server = Server::start();
    let fuzz = server.create_account("fuzz@example.com");
    let destroy = server.create_account("destroy@example.com");
    let reports = TempDir::new("schemathesis");
    let main = pass(&python, &server, &fuzz.api_key, ["--exclude-path-regex", DESTRUCTIVE], 15, reports.path(), deadline);
    let destructive = pass(&python, &server, &destroy.api_key, ["--include-path-regex", DESTRUCTIVE], 15, reports.path(), deadline);
    let ((ops1, cases1), (ops2, cases2)) = (counts(&main), counts(&destructive));
    assert!(ops1 >= 130, "only {ops1} operations were fuzzed; is the document complete?");
    assert_eq!(ops2, 6, "the destructive pass should fuzz exactly the 6 destructive operations");
    eprintln!("schemathesis: {} operations, {} test cases, 0 failures in {:.0?}", ops1 + ops2, cases1 + cases2, started.elapsed());
}
