//! The client commands as a user meets them: each test starts the real `steward serve` on a
//! free port, bootstraps an account with `steward admin create-account`, and drives
//! `steward …` through a whole flow, checking what it prints and what the server then holds.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, TempDir, finish};

/// A server, an account's API key, and a project directory.
fn bootstrap() -> (Server, String, TempDir) {
    let server = Server::start();
    let key = server.create_account("alice@example.com").api_key;
    (server, key, TempDir::new("proj"))
}

#[test]
fn setup_binds_the_directory_and_agents_go_through_their_lifecycle() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());

    let setup = cli.run(&["setup", "--name", "proj", "--json"]).ok().json();
    let sandbox_id = setup["id"].as_str().unwrap().to_owned();
    let refs: Value = serde_json::from_str(&std::fs::read_to_string(proj.path().join(".steward/refs.json")).unwrap()).unwrap();
    assert_eq!(refs["sandbox_id"], sandbox_id.as_str());
    assert_eq!(refs["server"], server.url.as_str());
    let again = cli.run(&["setup"]).fails();
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    // Commands in a subdirectory find refs.json in the parent; without STEWARD_URL its server is used.
    std::fs::create_dir_all(proj.path().join("src")).unwrap();
    let sub = server.client(Some(&key), &proj.path().join("src")).without_url();
    let created = sub
        .run(&[
            "agent",
            "create",
            "--name",
            "support",
            "--model",
            "anthropic/claude-sonnet-4-6",
            "--description",
            "Answers support mail",
            "--system-prompt",
            "Be brief.",
            "--tool",
            "search_issues",
            "--max-turns",
            "5",
            "--meta",
            "team=ops",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(created["sandbox_id"], sandbox_id.as_str());
    assert_eq!(created["version"], 1);
    assert_eq!(created["model"]["provider_id"], "anthropic");
    assert_eq!(created["tools"][0], "search_issues");
    let id = created["id"].as_str().unwrap().to_owned();

    let listed = cli.run(&["agent", "list", "--json"]).ok().json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let table = cli.run(&["agent", "list"]).ok().stdout;
    assert!(table.contains("support") && table.contains(&id), "{table}");
    let by_name = cli.run(&["agent", "get", "support", "--json"]).ok().json();
    assert_eq!(by_name["id"], id.as_str());
    let shown = cli.run(&["agent", "get", &id]).ok().stdout;
    assert!(shown.contains("Answers support mail"), "{shown}");

    // Only the flags given change; the version goes up.
    let updated = cli.run(&["agent", "update", "support", "--description", "Drafts replies", "--temperature", "0.3", "--json"]).ok().json();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["description"], "Drafts replies");
    assert_eq!(updated["temperature"], 0.3);
    for same in ["name", "model", "system_prompt", "tools", "max_turns", "metadata", "max_output_tokens"] {
        assert_eq!(updated[same], created[same], "{same} changed");
    }
    let cleared = cli.run(&["agent", "update", &id, "--clear-temperature", "--json"]).ok().json();
    assert_eq!(cleared["version"], 3);
    assert!(cleared["temperature"].is_null());
    assert_eq!(cleared["description"], "Drafts replies");
    let nothing = cli.run(&["agent", "update", "support"]).fails();
    assert!(nothing.stderr.contains("nothing to update"), "{}", nothing.stderr);
    let versions = cli.run(&["agent", "versions", "support", "--json"]).ok().json();
    assert_eq!(versions["data"].as_array().unwrap().len(), 3);

    let paused = cli.run(&["agent", "pause", "support", "--json"]).ok().json();
    assert_eq!(paused["state"], "paused");
    let resumed = cli.run(&["agent", "resume", "support"]).ok().stdout;
    assert!(resumed.contains("is now active"), "{resumed}");
    assert_eq!(cli.run(&["agent", "stop", &id, "--json"]).ok().json()["state"], "stopped");

    let archived = cli.run(&["agent", "archive", "support", "--json"]).ok().json();
    assert!(archived["archived_at"].is_string());
    let live = cli.run(&["agent", "list", "--json"]).ok().json();
    assert!(live["data"].as_array().unwrap().is_empty());
    let gone = cli.run(&["agent", "list", "--archived", "--json"]).ok().json();
    assert_eq!(gone["data"][0]["id"], id.as_str());

    // An archived agent is still found by name, and deleted only with --yes.
    let deleted = cli.run(&["agent", "delete", "support", "--yes", "--json"]).ok().json();
    assert_eq!(deleted["deleted"], true);
    let missing = cli.run(&["agent", "get", &id]).fails();
    assert!(missing.stderr.contains("not found (HTTP 404)"), "{}", missing.stderr);
}

#[test]
fn deleting_an_agent_without_yes_on_closed_stdin_refuses_and_changes_nothing() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    cli.run(&["agent", "create", "--name", "keeper", "--model", "openai/gpt-5"]).ok();

    let refused = cli.run(&["agent", "delete", "keeper"]).fails();
    assert!(refused.stderr.contains("keeper"), "shows what would go: {}", refused.stderr);
    assert!(refused.stderr.contains("version 1"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let still = cli.run(&["agent", "get", "keeper", "--json"]).ok().json();
    assert_eq!(still["version"], 1);
    assert!(still["archived_at"].is_null());
}

#[test]
fn api_keys_are_created_listed_and_revoked() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());

    let created = cli.run(&["apikey", "create", "--name", "ci"]).ok();
    assert!(created.stdout.contains("stw_"), "{}", created.stdout);
    assert!(created.stderr.contains("only this once"), "{}", created.stderr);
    let ci = cli.run(&["apikey", "create", "--name", "ci2", "--json"]).ok().json();
    let ci_key = ci["secret"].as_str().unwrap().to_owned();
    let ci_id = ci["id"].as_str().unwrap().to_owned();

    cli.run(&["agent", "create", "--name", "bot", "--model", "anthropic/claude-haiku-4-5"]).ok();
    let invoke = cli.run(&["apikey", "create", "--name", "widget", "--kind", "agent_invoke", "--agent", "bot", "--json"]).ok().json();
    assert_eq!(invoke["kind"], "agent_invoke");
    assert!(invoke["agent_id"].as_str().unwrap().starts_with("agt_"));

    let listed = cli.run(&["apikey", "list", "--json"]).ok().json();
    let names: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    for n in ["ci", "ci2", "widget", "admin create-account"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(!listed.to_string().contains(&ci_key), "a listing never shows a secret");

    let refused = cli.run(&["apikey", "revoke", &ci_id]).fails();
    assert!(refused.stderr.contains("ci2") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    server.client(Some(&ci_key), proj.path()).run(&["whoami"]).ok();

    let revoked = cli.run(&["apikey", "revoke", &ci_id, "--yes", "--json"]).ok().json();
    assert!(revoked["revoked_at"].is_string());
    let locked_out = server.client(Some(&ci_key), proj.path()).run(&["whoami"]).fails();
    assert!(locked_out.stderr.contains("revoked") && locked_out.stderr.contains("HTTP 401"), "{}", locked_out.stderr);
}

#[test]
fn grants_are_added_listed_and_removed() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    let sandbox = cli.run(&["setup", "--json"]).ok().json();

    let grant = cli.run(&["grant", "add", "--email", "bob@example.com", "--role", "viewer", "--json"]).ok().json();
    assert_eq!(grant["sandbox_id"], sandbox["id"]);
    assert_eq!(grant["role"], "viewer");
    let bob = grant["account_id"].as_str().unwrap().to_owned();
    let table = cli.run(&["grant", "list"]).ok().stdout;
    assert!(table.contains("bob@example.com") && table.contains("viewer"), "{table}");

    let refused = cli.run(&["grant", "remove", &bob]).fails();
    assert!(refused.stderr.contains("bob@example.com") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    cli.run(&["grant", "remove", &bob, "--yes"]).ok();
    let listed = cli.run(&["grant", "list", "--json"]).ok().json();
    assert!(!listed.to_string().contains("bob@example.com"), "{listed}");

    // Without refs.json the key's home sandbox is used.
    let elsewhere = TempDir::new("elsewhere");
    let home = server.client(Some(&key), elsewhere.path());
    home.run(&["grant", "add", "--email", "carol@example.com", "--role", "editor"]).ok();
    let listed = home.run(&["grant", "list", "--json"]).ok().json();
    assert!(listed.to_string().contains("carol@example.com"), "{listed}");
}

#[test]
fn sandboxes_are_listed_archived_and_destroyed() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    let made = cli.run(&["setup", "--name", "scratch", "--json"]).ok().json();
    let id = made["id"].as_str().unwrap().to_owned();
    cli.run(&["agent", "create", "--name", "a1", "--model", "openai/gpt-5"]).ok();

    let table = cli.run(&["sandbox", "list"]).ok().stdout;
    assert!(table.contains("scratch") && table.contains("default") && table.contains("owner"), "{table}");

    // The current sandbox's time zone (local times such as a pause until 09:00 are read in it).
    let zoned = cli.run(&["sandbox", "update", "--time-zone", "Europe/Berlin"]).ok().stdout;
    assert!(zoned.contains("Europe/Berlin") && zoned.contains(&id), "{zoned}");
    let bad_zone = cli.run(&["sandbox", "update", "--time-zone", "Berlin"]).fails();
    assert!(bad_zone.stderr.contains("IANA"), "{}", bad_zone.stderr);
    assert!(cli.run(&["sandbox", "update"]).fails().stderr.contains("nothing to update"));

    let refused = cli.run(&["sandbox", "destroy", &id]).fails();
    assert!(
        refused.stderr.contains("scratch") && refused.stderr.contains("1 agent,") && refused.stderr.contains("0 API keys"),
        "{}",
        refused.stderr
    );
    assert_eq!(cli.run(&["agent", "list", "--json"]).ok().json()["data"].as_array().unwrap().len(), 1);

    cli.run(&["sandbox", "archive", &id, "--yes"]).ok();
    let archived = cli.run(&["sandbox", "list", "--archived", "--json"]).ok().json();
    assert_eq!(archived["data"][0]["id"], id.as_str());
    let read_only = cli.run(&["agent", "create", "--name", "a2", "--model", "openai/gpt-5"]).fails();
    assert!(read_only.stderr.contains("archived"), "{}", read_only.stderr);

    cli.run(&["sandbox", "destroy", &id, "--yes"]).ok();
    let all = cli.run(&["sandbox", "list", "--json"]).ok().json().to_string()
        + &cli.run(&["sandbox", "list", "--archived", "--json"]).ok().json().to_string();
    assert!(!all.contains(&id), "{all}");
    let bad = cli.run(&["sandbox", "destroy", "scratch"]).fails();
    assert!(bad.stderr.contains("sbx_"), "{}", bad.stderr);
}

#[test]
fn login_with_an_emailed_code_then_whoami_uses_the_stored_session() {
    let (server, _key, proj) = bootstrap();
    let cli = server.client(None, proj.path());
    let code_in_log = |since: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = server.mail_log();
            let code = log
                .lines()
                .skip(since)
                .filter(|l| l.contains("to=alice@example.com"))
                .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("code=")).map(str::to_owned));
            if let Some(c) = code {
                return c;
            }
            assert!(Instant::now() < deadline, "no code in mail.log: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Typed at the prompt (stdin is a pipe here, so a line is read).
    let mut child = cli.spawn(&["login", "--email", "alice@example.com"], Stdio::piped());
    let code = code_in_log(0);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let run = finish(child).ok();
    assert!(run.stderr.contains("mail.log"), "{}", run.stderr);
    assert!(run.stdout.contains("signed in as alice@example.com"), "{}", run.stdout);
    cli.run(&["logout"]).ok();

    // With --code: a code sent by an earlier attempt (that one ended at the closed stdin).
    let lines = server.mail_log().lines().count();
    let first = cli.run(&["login", "--email", "alice@example.com"]).fails();
    assert!(first.stderr.contains("--code"), "{}", first.stderr);
    let code = code_in_log(lines);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let bad = cli.run(&["login", "--email", "alice@example.com", "--code", wrong]).fails();
    assert!(bad.stderr.contains("wrong") && bad.stderr.contains("HTTP 401"), "{}", bad.stderr);
    cli.run(&["login", "--email", "alice@example.com", "--code", &code]).ok();

    let creds = server.home.path().join("steward-config/credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    assert_eq!(stored["server"], server.url.as_str());
    assert_eq!(stored["email"], "alice@example.com");

    // The stored login names the server, so no STEWARD_URL is needed.
    let me = server.client(None, proj.path()).without_url().run(&["whoami", "--json"]).ok().json();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["credential"], "session");
    let table = cli.run(&["sandbox", "list"]).ok().stdout;
    assert!(table.contains("default"), "{table}");

    // The token is never sent to another server, and an expired one is refused locally.
    let other = cli.run(&["whoami", "--server", "http://127.0.0.1:9"]).fails();
    assert!(other.stderr.contains("signed in to"), "{}", other.stderr);
    let mut expired = stored.clone();
    expired["expires_at"] = "2001-01-01T00:00:00Z".into();
    std::fs::write(&creds, expired.to_string()).unwrap();
    let old = cli.run(&["whoami"]).fails();
    assert!(old.stderr.contains("session expired; run `steward login`"), "{}", old.stderr);

    cli.run(&["logout"]).ok();
    assert!(!creds.exists());
    let out = cli.run(&["whoami"]).fails();
    assert!(out.stderr.contains("not signed in"), "{}", out.stderr);
}

#[test]
fn errors_show_the_server_message_and_what_to_do() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());

    let bad = cli.run(&["agent", "create", "--name", "Bad Name", "--model", "openai/gpt-5"]).fails();
    assert!(bad.stderr.starts_with("error: name: "), "{}", bad.stderr);
    assert!(bad.stderr.contains("(HTTP 400)"), "{}", bad.stderr);
    let model = cli.run(&["agent", "create", "--name", "x", "--model", "gpt-5"]).fails();
    assert!(model.stderr.contains("PROVIDER/MODEL"), "{}", model.stderr);
    let unknown = cli.run(&["agent", "get", "nobody"]).fails();
    assert!(unknown.stderr.contains("no agent named `nobody`"), "{}", unknown.stderr);

    let nowhere = TempDir::new("nowhere");
    let down = server.client(Some(&key), nowhere.path()).run(&["agent", "list", "--server", "http://127.0.0.1:9"]).fails();
    assert!(down.stderr.contains("cannot reach the Steward server at http://127.0.0.1:9"), "{}", down.stderr);

    let anonymous = server.client(None, proj.path()).run(&["agent", "list"]).fails();
    assert!(anonymous.stderr.contains("not signed in"), "{}", anonymous.stderr);
    let stranger = cli.run(&["agent", "list", "--sandbox", "sbx_00000000000000000000000000"]).fails();
    assert!(stranger.stderr.contains("not found (HTTP 404)"), "{}", stranger.stderr);
    // The server confirms the chosen sandbox is the missing thing, so the hint says where it came from…
    assert!(stranger.stderr.contains("was chosen by --sandbox / STEWARD_SANDBOX"), "{}", stranger.stderr);
    // …and a 404 about something else in a sandbox that exists gets no such hint.
    let home = cli.run(&["whoami", "--json"]).ok().json();
    let sandbox = home["key"]["sandbox_id"].as_str().expect("an account key has a home sandbox").to_owned();
    let missing = cli.run(&["agent", "get", "agt_00000000000000000000000000", "--sandbox", &sandbox]).fails();
    assert!(missing.stderr.contains("not found (HTTP 404)") && !missing.stderr.contains("hint: sandbox"), "{}", missing.stderr);
}

#[test]
fn agents_can_be_created_and_updated_from_files() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    let agent = r#"{"name": "from-file", "model": {"provider_id": "anthropic", "name": "claude-sonnet-4-6"}, "max_turns": 7}"#;
    std::fs::write(proj.path().join("agent.json"), agent).unwrap();
    std::fs::write(proj.path().join("prompt.md"), "You triage issues.\n").unwrap();

    let created = cli.run(&["agent", "create", "--file", "agent.json", "--json"]).ok().json();
    assert_eq!(created["max_turns"], 7);
    let updated = cli.run(&["agent", "update", "from-file", "--system-prompt-file", "prompt.md", "--json"]).ok().json();
    assert_eq!(updated["system_prompt"], "You triage issues.\n");
    assert_eq!(updated["version"], 2);
    std::fs::write(proj.path().join("patch.json"), r#"{"max_turns": 0}"#).unwrap();
    let bad = cli.run(&["agent", "update", "from-file", "--file", "patch.json"]).fails();
    assert!(bad.stderr.contains("max_turns") && bad.stderr.contains("(HTTP 400)"), "{}", bad.stderr);
}

#[test]
fn tool_sources_are_added_listed_attached_and_deleted() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());

    let shell = cli.run(&["source", "add", "--name", "sh", "--toolset", "shell", "--json"]).ok().json();
    let shell_id = shell["id"].as_str().unwrap().to_owned();
    let mcp = cli
        .run(&[
            "source",
            "add",
            "--name",
            "everything",
            "--command",
            "npx",
            "--arg",
            "-y",
            "--arg",
            "@modelcontextprotocol/server-everything",
            "--env",
            "TZ=UTC",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(mcp["args"], serde_json::json!(["-y", "@modelcontextprotocol/server-everything"]));
    assert_eq!(mcp["env"], serde_json::json!({"TZ": "UTC"}));
    let bad = cli.run(&["source", "add", "--name", "x", "--url", "ftp://nope"]).fails();
    assert!(bad.stderr.contains("url") && bad.stderr.contains("http"), "{}", bad.stderr);
    let none = cli.run(&["source", "add", "--name", "x"]).fails();
    assert!(none.stderr.contains("--toolset, --command or --url"), "{}", none.stderr);

    let listed = cli.run(&["source", "list"]).ok();
    assert!(listed.stdout.contains("sh") && listed.stdout.contains("npx"), "{}", listed.stdout);
    cli.run(&["agent", "create", "--name", "bot", "--model", "anthropic/claude-haiku-4-5", "--tool-source", &shell_id]).ok();

    let refused = cli.run(&["source", "delete", &shell_id]).fails();
    assert!(refused.stderr.contains("lose its tools") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    cli.run(&["source", "delete", &shell_id, "--yes"]).ok();
    let listed = cli.run(&["source", "list", "--json"]).ok().json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn triggers_and_schedules_are_managed_from_the_cli() {
    let (server, key, proj) = bootstrap();
    let cli = server.client(Some(&key), proj.path());
    cli.run(&["agent", "create", "--name", "bot", "--model", "anthropic/claude-haiku-4-5"]).ok();

    let created = cli.run(&["trigger", "create", "bot", "--name", "github"]).ok();
    assert!(created.stdout.contains("whsec_") && created.stdout.contains("/v1/webhooks/triggers/trg_"), "{}", created.stdout);
    assert!(created.stderr.contains("only this once"), "{}", created.stderr);
    let listed = cli.run(&["trigger", "list", "bot", "--json"]).ok().json();
    let tid = listed["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(!listed.to_string().contains("whsec_"), "a listing never shows the secret");
    let paused = cli.run(&["trigger", "pause", "bot", &tid, "--json"]).ok().json();
    assert_eq!(paused["state"], "paused");
    cli.run(&["trigger", "resume", "bot", &tid]).ok();
    let refused = cli.run(&["trigger", "disconnect", "bot", &tid]).fails();
    assert!(refused.stderr.contains("stops working") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    cli.run(&["trigger", "disconnect", "bot", &tid, "--yes"]).ok();
    assert_eq!(cli.run(&["trigger", "list", "bot", "--json"]).ok().json()["data"], serde_json::json!([]));

    let bad = cli.run(&["schedule", "create", "bot", "--name", "r", "--cron", "* 25 * * *"]).fails();
    assert!(bad.stderr.contains("hour"), "{}", bad.stderr);
    let s = cli
        .run(&["schedule", "create", "bot", "--name", "report", "--cron", "0 9 * * MON-FRI", "--timezone", "Europe/Berlin", "--json"])
        .ok()
        .json();
    let sid = s["id"].as_str().unwrap().to_owned();
    assert!(s["next_fire_at"].is_string(), "{s}");
    let listed = cli.run(&["schedule", "list", "bot"]).ok();
    assert!(listed.stdout.contains("MON-FRI") && listed.stdout.contains("Europe/Berlin"), "{}", listed.stdout);
    let paused = cli.run(&["schedule", "pause", "bot", &sid, "--json"]).ok().json();
    assert_eq!(paused["state"], "paused");
    let history = cli.run(&["schedule", "history", "bot", &sid]).ok();
    assert!(history.stdout.contains("no executions yet"), "{}", history.stdout);
}

#[test]
fn channel_bots_and_links_are_managed_from_the_command_line() {
    // Configuring a Slack bot checks its token with auth.test: a fake Web API answers it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slack = rt.block_on(steward_test_support::fake_slack::FakeSlack::start());
    let server = Server::start_with(|cmd| {
        cmd.args(["--slack-api-url", &slack.url]);
    });
    let key = server.create_account("alice@example.com").api_key;
    let proj = TempDir::new("proj");
    let token = steward_test_support::fake_slack::TOKEN;
    let cli = server.client(Some(&key), proj.path()).with_var("SLACK_TOKEN", token).with_var("SLACK_SIGNING", "cli-signing-secret");
    cli.run(&["setup", "--name", "proj"]).ok();
    cli.run(&["agent", "create", "--name", "helper", "--model", "anthropic/claude-haiku-4-5"]).ok();

    let missing = cli.run(&["channel", "bot", "set", "slack", "--secret-env", "bot_token=SLACK_TOKEN"]).fails();
    assert!(missing.stderr.contains("signing_secret"), "{}", missing.stderr);
    let set = cli
        .run(&["channel", "bot", "set", "slack", "--secret-env", "bot_token=SLACK_TOKEN", "--secret-env", "signing_secret=SLACK_SIGNING"])
        .ok();
    assert!(set.stdout.contains("bot_token, signing_secret"), "{}", set.stdout);
    let shown = cli.run(&["channel", "bot", "show", "slack", "--json"]).ok();
    assert_eq!(shown.json()["configured"], true);
    assert!(!shown.stdout.contains(token) && !shown.stdout.contains("cli-signing-secret"), "{}", shown.stdout);
    assert_eq!(slack.calls("auth.test").len(), 1);

    let link = cli.run(&["channel", "link", "helper", "telegram"]).ok();
    assert!(link.stdout.contains("/link "), "{}", link.stdout);
    assert!(link.stderr.contains("no telegram bot"), "{}", link.stderr);
    let status = cli.run(&["channel", "status", "helper", "telegram", "--json"]).ok().json();
    assert_eq!(status["status"], "pending");
    let listed = cli.run(&["channel", "list", "helper"]).ok();
    assert!(listed.stdout.contains("no linked chats"), "{}", listed.stdout);
    let refused = cli.run(&["channel", "unlink", "helper", "telegram"]).fails();
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let none = cli.run(&["channel", "unlink", "helper", "telegram", "--yes"]).fails();
    assert!(none.stderr.contains("has no telegram link") && none.stderr.contains("HTTP 404"), "{}", none.stderr);
    cli.run(&["channel", "bot", "delete", "slack"]).ok();
    let gone = cli.run(&["channel", "bot", "show", "slack"]).ok();
    assert!(gone.stdout.contains("no slack bot"), "{}", gone.stdout);
}
