//! `steward provider …` as a newcomer meets it: the real `steward serve`, an account from
//! `steward admin create-account`, and providers added with a key from the environment or
//! stdin. Every test checks through the REST API what the server then holds (a provider and
//! its key vault, or no vault at all after a failure) and that the key never reaches the
//! terminal.

#[allow(dead_code)]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use steward_test_support::fake_model::{FakeModel, Reply};
use support::{Run, Server, TempDir, finish, hermetic};

/// A provider key planted in the tests; it must never be printed.
const KEY: &str = "sk-ant-planted-4f1c9e07b2d8";

/// A server, an account's API key, and a project directory.
fn bootstrap() -> (Server, String, TempDir) {
    let server = Server::start();
    let key = server.create_account("alice@example.com").api_key;
    (server, key, TempDir::new("proj"))
}

/// `steward …` as `support::Client::run` runs it (stdin closed, no inherited `STEWARD_*`, a
/// home of the test's own), with one more environment variable: where `--api-key-env` looks.
fn run_with_env(server: &Server, key: &str, cwd: &Path, args: &[&str], var: (&str, &str)) -> Run {
    let home = server.home.path();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    hermetic(&mut cmd, home);
    cmd.env("STEWARD_URL", &server.url)
        .env("STEWARD_API_KEY", key)
        .env(var.0, var.1)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    finish(cmd.spawn().expect("spawn steward"))
}

/// The REST API in the key's own sandbox, to check what the CLI left behind.
fn rest(method: &str, server: &Server, key: &str, path: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("{}{path}", server.url);
        let res = reqwest::Client::new().request(method.parse().unwrap(), url).bearer_auth(key).send().await.expect("REST call");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
}

/// The names of the vaults in the key's own sandbox.
fn vault_names(server: &Server, key: &str) -> Vec<String> {
    let (status, page) = rest("GET", server, key, "/v1/vaults");
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_owned()).collect()
}

#[track_caller]
fn assert_key_not_shown(run: &Run) {
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY), "the key was printed: {run:#?}");
}

#[test]
fn a_key_from_the_environment_goes_into_a_new_vault_and_is_never_printed() {
    let (server, key, proj) = bootstrap();
    let add = ["provider", "add", "anthropic", "--kind", "anthropic", "--model", "claude-sonnet-4-6", "--api-key-env", "ANTHROPIC_API_KEY"];
    let run = run_with_env(&server, &key, proj.path(), &add, ("ANTHROPIC_API_KEY", KEY)).ok();
    assert_key_not_shown(&run);
    assert!(run.stdout.contains("anthropic") && run.stdout.contains("https://api.anthropic.com"), "{}", run.stdout);
    assert!(run.stderr.contains("anthropic-api-key") && run.stderr.contains("not shown again"), "{}", run.stderr);

    let (status, provider) = rest("GET", &server, &key, "/v1/providers/anthropic");
    assert_eq!(status, 200, "{provider}");
    assert_eq!(provider["provider"], "anthropic");
    assert_eq!(provider["models"], serde_json::json!(["claude-sonnet-4-6"]));
    let vault_id = provider["api_key_vault_id"].as_str().expect("a key vault").to_owned();
    assert!(run.stdout.contains(&vault_id), "the vault id is shown: {}", run.stdout);
    let (status, vault) = rest("GET", &server, &key, &format!("/v1/vaults/{vault_id}"));
    assert_eq!(status, 200, "{vault}");
    assert_eq!(vault["name"], "anthropic-api-key");

    // --json prints the created provider as the API answers it.
    let add = ["provider", "add", "openai", "--kind", "openai", "--model", "gpt-5", "--model", "gpt-5-mini", "--api-key-env", "OPENAI_KEY"];
    let json = run_with_env(&server, &key, proj.path(), &[&add[..], &["--json"][..]].concat(), ("OPENAI_KEY", KEY)).ok();
    assert_key_not_shown(&json);
    let created = json.json();
    assert_eq!(created["id"], "openai");
    assert_eq!(created["base_url"], "https://api.openai.com/v1");
    assert_eq!(created["models"], serde_json::json!(["gpt-5", "gpt-5-mini"]));
    assert!(created["api_key_vault_id"].as_str().unwrap().starts_with("vlt_"), "{created}");
    assert_eq!(vault_names(&server, &key).len(), 2);
}

#[test]
fn a_key_from_stdin_is_stored_trimmed_and_reaches_the_model_through_the_concierge() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = rt.block_on(FakeModel::start(|_, _| Reply::Text("Hello from the fake model.".into())));
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());

    let add = [
        "provider",
        "add",
        "anthropic",
        "--kind",
        "anthropic",
        "--base-url",
        model.url.as_str(),
        "--model",
        "claude-test",
        "--api-key-stdin",
    ];
    let mut child = cli.spawn(&add, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "  {KEY}  ").unwrap();
    drop(stdin);
    let run = finish(child).ok();
    assert_key_not_shown(&run);
    let (_, provider) = rest("GET", &server, &key, "/v1/providers/anthropic");
    assert!(provider["api_key_vault_id"].as_str().unwrap().starts_with("vlt_"), "{provider}");
    assert_eq!(provider["base_url"], model.url.as_str());

    // The newcomer's next step works: the Concierge runs on it, with exactly the key piped in.
    let chat = cli.run(&["chat", "-m", "hello"]).ok();
    assert!(chat.stdout.contains("Hello from the fake model."), "{chat:#?}");
    let headers = model.headers();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0]["x-api-key"], KEY);

    // Nothing on stdin is an error, and no vault is made for it.
    let empty = cli.run(&["provider", "add", "other", "--kind", "openai", "--model", "gpt-5", "--api-key-stdin"]).fails();
    assert!(empty.stderr.contains("--api-key-stdin read no key"), "{}", empty.stderr);
    assert_eq!(vault_names(&server, &key), ["anthropic-api-key"]);
}

#[test]
fn providers_are_listed_and_shown_as_tables_and_json() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    let empty = cli.run(&["provider", "list"]).ok();
    assert!(empty.stdout.contains("no model providers") && empty.stdout.contains("steward provider add"), "{}", empty.stdout);

    let local = ["provider", "add", "local", "--kind", "openai_compatible", "--base-url", "http://127.0.0.1:8000/v1/", "--model", "llama"];
    let added = cli.run(&local).ok();
    assert!(added.stdout.contains("openai_compatible") && added.stdout.contains("http://127.0.0.1:8000/v1"), "{}", added.stdout);
    let add = ["provider", "add", "gemini", "--kind", "google", "--model", "gemini-2.5-pro", "--api-key-env", "GEMINI_API_KEY"];
    run_with_env(&server, &key, proj.path(), &add, ("GEMINI_API_KEY", KEY)).ok();

    let table = cli.run(&["provider", "list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    for column in ["ID", "KIND", "BASE URL", "MODELS", "KEY VAULT"] {
        assert!(header.contains(column), "{table}");
    }
    let gemini = table.lines().find(|l| l.starts_with("gemini")).unwrap_or_else(|| panic!("{table}"));
    assert!(gemini.contains("google") && gemini.contains("gemini-2.5-pro") && gemini.contains("vlt_"), "{table}");
    let local_row = table.lines().find(|l| l.starts_with("local")).unwrap_or_else(|| panic!("{table}"));
    assert!(local_row.contains("http://127.0.0.1:8000/v1") && local_row.trim_end().ends_with('-'), "no key vault: {table}");

    let listed = cli.run(&["provider", "list", "--json"]).ok().json();
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gemini", "local"]);
    assert!(listed["next_cursor"].is_null());

    let shown = cli.run(&["provider", "get", "gemini"]).ok().stdout;
    assert!(shown.contains("key vault") && shown.contains("generativelanguage.googleapis.com"), "{shown}");
    let got = cli.run(&["provider", "get", "local", "--json"]).ok().json();
    assert_eq!(got["base_url"], "http://127.0.0.1:8000/v1");
    assert!(got["api_key_vault_id"].is_null());

    let missing = cli.run(&["provider", "get", "nobody"]).fails();
    assert!(missing.stderr.contains("not found (HTTP 404)"), "{}", missing.stderr);
    let bad = cli.run(&["provider", "get", "../v1/me"]).fails();
    assert!(bad.stderr.contains("not a valid slug") && bad.stderr.contains("steward provider list"), "{}", bad.stderr);
}

#[test]
fn bad_input_and_failed_creations_leave_no_vault_behind() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    let env = ("PROVIDER_KEY", KEY);
    let with_key = |args: &[&str]| run_with_env(&server, &key, proj.path(), &[args, &["--api-key-env", "PROVIDER_KEY"][..]].concat(), env);

    let kind = with_key(&["provider", "add", "p", "--kind", "bedrock", "--model", "m"]).fails();
    assert!(kind.stderr.contains("invalid value 'bedrock'") && kind.stderr.contains("openai_compatible"), "{}", kind.stderr);
    let no_model = with_key(&["provider", "add", "p", "--kind", "openai"]).fails();
    assert!(no_model.stderr.contains("--model"), "{}", no_model.stderr);
    let unset = cli.run(&["provider", "add", "p", "--kind", "openai", "--model", "m", "--api-key-env", "NO_SUCH_KEY_VAR"]).fails();
    assert!(unset.stderr.contains("NO_SUCH_KEY_VAR is not set"), "{}", unset.stderr);
    let empty = run_with_env(
        &server,
        &key,
        proj.path(),
        &["provider", "add", "p", "--kind", "openai", "--model", "m", "--api-key-env", "E"],
        ("E", ""),
    )
    .fails();
    assert!(empty.stderr.contains("E is empty"), "{}", empty.stderr);
    // The key typed where the variable's name belongs is refused without repeating it.
    let pasted = cli.run(&["provider", "add", "p", "--kind", "openai", "--model", "m", "--api-key-env", KEY]).fails();
    assert!(pasted.stderr.contains("not the key itself"), "{}", pasted.stderr);
    let ftp = with_key(&["provider", "add", "p", "--kind", "openai_compatible", "--base-url", "ftp://x", "--model", "m"]).fails();
    assert!(ftp.stderr.contains("--base-url") && ftp.stderr.contains("http"), "{}", ftp.stderr);
    let no_url = with_key(&["provider", "add", "p", "--kind", "openai_compatible", "--model", "m"]).fails();
    assert!(no_url.stderr.contains("--base-url"), "{}", no_url.stderr);
    let bad_id = with_key(&["provider", "add", "Bad Id", "--kind", "openai", "--model", "m"]).fails();
    assert!(bad_id.stderr.contains("not a valid slug"), "{}", bad_id.stderr);
    let long_id = "p".repeat(60);
    let long = with_key(&["provider", "add", long_id.as_str(), "--kind", "openai", "--model", "m"]).fails();
    assert!(long.stderr.contains("--vault"), "{}", long.stderr);
    let both = with_key(&["provider", "add", "p", "--kind", "openai", "--model", "m", "--api-key-stdin"]).fails();
    assert!(both.stderr.contains("cannot be used with"), "{}", both.stderr);
    for run in [&kind, &no_model, &unset, &empty, &pasted, &ftp, &no_url, &bad_id, &long, &both] {
        assert_key_not_shown(run);
        assert!(run.stdout.is_empty(), "{run:#?}");
    }
    assert!(vault_names(&server, &key).is_empty());

    // The server refuses the provider after the vault was made (the id is taken): the vault goes again.
    cli.run(&["provider", "add", "dup", "--kind", "openai_compatible", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]).ok();
    let taken = with_key(&["provider", "add", "dup", "--kind", "openai", "--model", "gpt-5"]).fails();
    assert_key_not_shown(&taken);
    assert!(taken.stderr.contains("already exists") && taken.stderr.contains("(HTTP 409)"), "{}", taken.stderr);
    assert!(taken.stderr.contains("deleted again; nothing was added"), "{}", taken.stderr);
    assert!(vault_names(&server, &key).is_empty());
    let (_, dup) = rest("GET", &server, &key, "/v1/providers/dup");
    assert_eq!(dup["provider"], "openai_compatible", "the existing provider is untouched: {dup}");
}

#[test]
fn deleting_a_provider_asks_first_and_keeps_its_key_for_a_re_add() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    let add = ["provider", "add", "anthropic", "--kind", "anthropic", "--model", "claude-sonnet-4-6", "--api-key-env", "K"];
    run_with_env(&server, &key, proj.path(), &add, ("K", KEY)).ok();
    let (_, provider) = rest("GET", &server, &key, "/v1/providers/anthropic");
    let vault_id = provider["api_key_vault_id"].as_str().unwrap().to_owned();

    let refused = cli.run(&["provider", "delete", "anthropic"]).fails();
    assert!(refused.stderr.contains("claude-sonnet-4-6") && refused.stderr.contains(&vault_id), "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(rest("GET", &server, &key, "/v1/providers/anthropic").0, 200, "nothing changed");

    let deleted = cli.run(&["provider", "delete", "anthropic", "--yes", "--json"]).ok().json();
    assert_eq!(deleted["deleted"], true);
    assert_eq!(rest("GET", &server, &key, "/v1/providers/anthropic").0, 404);
    assert_eq!(vault_names(&server, &key), ["anthropic-api-key"], "the key vault is kept");
    let again = cli.run(&["provider", "delete", "anthropic", "--yes"]).fails();
    assert!(again.stderr.contains("not found (HTTP 404)"), "{}", again.stderr);

    // Adding it again with a new key: the vault name is taken, and the message names the vault to reuse.
    let readd = run_with_env(&server, &key, proj.path(), &add, ("K", KEY)).fails();
    assert_key_not_shown(&readd);
    assert!(readd.stderr.contains(&format!("--vault {vault_id}")), "{}", readd.stderr);
    let back = cli
        .run(&["provider", "add", "anthropic", "--kind", "anthropic", "--model", "claude-sonnet-4-6", "--vault", &vault_id, "--json"])
        .ok();
    assert_eq!(back.json()["api_key_vault_id"], vault_id.as_str());
    assert_eq!(vault_names(&server, &key), ["anthropic-api-key"]);
}

#[test]
fn an_editor_is_told_which_vault_was_left_when_it_cannot_be_deleted_again() {
    let server = Server::start();
    let alice = server.create_account("alice@example.com");
    let (key, sandbox) = (alice.api_key.as_str(), alice.sandbox_id.as_str());
    let proj = TempDir::new("proj");
    let cli = server.client(Some(key), proj.path());
    let bob = server.create_account("bob@example.com").api_key;
    cli.run(&["grant", "add", "--email", "bob@example.com", "--role", "editor"]).ok();
    cli.run(&["provider", "add", "dup", "--kind", "openai", "--model", "gpt-5"]).ok();

    // Bob may create vaults and providers here, but only an owner may delete a vault.
    let add = ["provider", "add", "dup", "--kind", "openai", "--model", "gpt-5", "--api-key-env", "K", "--sandbox", sandbox];
    let run = run_with_env(&server, &bob, proj.path(), &add, ("K", KEY)).fails();
    assert_key_not_shown(&run);
    assert!(run.stderr.contains("already exists") && run.stderr.contains("could not be deleted again"), "{}", run.stderr);
    let (_, vaults) = rest("GET", &server, key, "/v1/vaults");
    let left = vaults["data"][0]["id"].as_str().unwrap();
    assert!(run.stderr.contains(&format!("--vault {left}")), "{}", run.stderr);
}
