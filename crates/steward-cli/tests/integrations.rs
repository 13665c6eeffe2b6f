//! `steward integration …` as a user meets it: a real `steward serve` whose Slack app (the
//! shipped file with its OAuth endpoints pointed at a fake authorization server) has client
//! credentials in the config file. The test plays the browser: it reads the authorize URL that
//! `steward integration connect` prints, follows it through the fake's automatic consent to the
//! server's callback, and checks what the waiting command then prints and how it exits.

#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use steward_test_support::fake_oauth::{FakeOAuth, FakeOAuthConfig, follow_authorize};
use steward_test_support::serve::{Served, bootstrap_account};
use support::{Run, TempDir, finish, hermetic, serve_in};

const BIN: &str = env!("CARGO_BIN_EXE_steward");
/// The server's public URL: what a reverse proxy in front of it would answer to. The test maps
/// it to the server's loopback address when it plays the browser coming back to the callback.
const PUBLIC_URL: &str = "https://steward.example.test";
const WAIT: Duration = Duration::from_secs(60);

/// The fake authorization server (on its own tokio runtime) and a `steward serve` using it,
/// with an account whose key the client commands use. The server is killed on drop (first).
struct World {
    _server: Served,
    rt: tokio::runtime::Runtime,
    fake: FakeOAuth,
    url: String,
    /// The server's data dir, removed after the server is killed.
    _data: TempDir,
    home: TempDir,
    key: String,
}

impl World {
    fn start() -> World {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let fake = rt.block_on(FakeOAuth::start(FakeOAuthConfig::default()));
        let data = TempDir::new("int-data");
        let home = TempDir::new("int-home");

        // The shipped Slack app, pointed at the fake (which insists on PKCE).
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../steward-core/catalog/slack.json");
        let mut slack: Value = serde_json::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
        slack["oauth"]["authorize_url"] = json!(fake.authorize_url());
        slack["oauth"]["token_url"] = json!(fake.token_url());
        slack["oauth"]["revoke_url"] = json!(fake.revoke_url());
        slack["oauth"]["pkce"] = json!(true);
        let apps = home.path().join("apps");
        std::fs::create_dir_all(&apps).unwrap();
        std::fs::write(apps.join("slack.json"), serde_json::to_string_pretty(&slack).unwrap()).unwrap();
        // A JSON string is a valid TOML basic string for these values.
        let c = fake.config();
        let toml = format!(
            "[integrations.slack]\nclient_id = {}\nclient_secret = {}\n",
            serde_json::to_string(&c.client_id).unwrap(),
            serde_json::to_string(&c.client_secret).unwrap()
        );
        let config = home.path().join("steward.toml");
        std::fs::write(&config, toml).unwrap();

        let server = serve_in(data.path(), home.path(), WAIT, |cmd| {
            cmd.args(["--public-url", PUBLIC_URL]).arg("--config").arg(&config).arg("--integrations-dir").arg(&apps);
        });

        let mut admin = Command::new(BIN);
        hermetic(&mut admin, home.path());
        let key = bootstrap_account(admin, "alice@example.com", Some(data.path()), None).api_key;
        World { url: server.url.clone(), _server: server, rt, fake, _data: data, home, key }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        hermetic(&mut cmd, self.home.path());
        cmd.args(args)
            .current_dir(self.home.path())
            .env("STEWARD_URL", &self.url)
            .env("STEWARD_API_KEY", &self.key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `steward …` with stdin closed, to the end.
    fn run(&self, args: &[&str]) -> Run {
        finish(self.command(args).spawn().expect("spawn steward"))
    }

    /// `steward …` still running, its stdout read line by line.
    fn start_command(&self, args: &[&str]) -> Live {
        let mut child = self.command(args).spawn().expect("spawn steward");
        let stdout = lines_of(child.stdout.take().unwrap());
        let mut pipe = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        });
        Live { child, stdout, seen: String::new(), stderr }
    }

    /// Plays the browser: opens the authorize URL at the fake (which consents at once) and
    /// follows its redirect to the server's callback. Returns the callback's status and body.
    fn authorize_in_browser(&self, authorize_url: &str) -> (u16, Value) {
        let location = self.rt.block_on(follow_authorize(authorize_url));
        let callback = format!("{PUBLIC_URL}/v1/integrations/callback?");
        assert!(location.starts_with(&callback), "the fake redirected to {location}, not to the server's callback");
        let local = location.replacen(PUBLIC_URL, &self.url, 1);
        self.rt.block_on(async {
            let res = reqwest::Client::new().get(&local).send().await.expect("GET the callback");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        })
    }
}

/// A pipe's lines on a channel, read on a thread of their own.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `steward …` command.
struct Live {
    child: Child,
    stdout: mpsc::Receiver<String>,
    seen: String,
    stderr: thread::JoinHandle<String>,
}

impl Live {
    /// The next line of stdout.
    fn line(&mut self) -> String {
        let line = self.stdout.recv_timeout(WAIT).unwrap_or_else(|e| panic!("no line on stdout ({e}); so far: {}", self.seen));
        self.seen.push_str(&line);
        self.seen.push('\n');
        line
    }

    /// Waits (bounded) for the command to end.
    fn finish(mut self) -> Run {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the command ran longer than {WAIT:?}; stdout so far: {}", self.seen);
            }
            thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        Run { status, stdout: self.seen, stderr: self.stderr.join().unwrap() }
    }
}

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().unwrap_or_else(|| panic!("not a list: {v}"))
}

fn slack(list: &Value) -> &Value {
    data(list).iter().find(|a| a["id"] == "slack").unwrap_or_else(|| panic!("no slack in {list}"))
}

#[test]
fn connect_waits_for_the_browser_then_accounts_publish_and_revoke() {
    let w = World::start();

    let catalog = w.run(&["integration", "list", "--json"]).ok().json();
    let app = slack(&catalog);
    assert_eq!(app["connect"], "oauth");
    assert_eq!(app["configured"], true);
    assert_eq!(app["accounts"], json!([]));
    let table = w.run(&["integration", "list"]).ok().stdout;
    assert!(table.contains("slack") && table.contains("github"), "{table}");
    let shown = w.run(&["integration", "show", "slack"]).ok().stdout;
    assert!(shown.contains("slack.app_mention") && shown.contains("post_message"), "{shown}");

    // The URL comes alone on its own line; the command then waits until the callback lands.
    let mut connect = w.start_command(&["integration", "connect", "slack"]);
    let url = connect.line();
    assert!(url.starts_with(&w.fake.authorize_url()), "{url}");
    let (status, body) = w.authorize_in_browser(&url);
    assert_eq!(status, 200, "{body}");
    let cac = body["connected_account"]["id"].as_str().unwrap().to_owned();
    assert!(cac.starts_with("cac_"), "{body}");
    let done = connect.finish().ok();
    assert!(done.stdout.contains(&format!("connected slack account Slack ({cac})")), "{done:#?}");
    assert!(done.stderr.contains("open this URL in a browser"), "{}", done.stderr);

    let accounts = w.run(&["integration", "accounts", "--json"]).ok().json();
    assert_eq!(data(&accounts).len(), 1, "{accounts}");
    assert_eq!(data(&accounts)[0]["id"], cac.as_str());
    assert_eq!(data(&accounts)[0]["status"], "active");
    let table = w.run(&["integration", "accounts", "--app", "slack"]).ok().stdout;
    assert!(table.contains(&cac) && table.contains("active"), "{table}");
    assert_eq!(slack(&w.run(&["integration", "list", "--json"]).ok().json())["accounts"][0]["id"], cac.as_str());

    // Publications: an agent named by its name serves a channel of the account.
    w.run(&["agent", "create", "--name", "bot", "--model", "anthropic/claude-haiku-4-5"]).ok();
    let publish = ["integration", "publish", "slack", "--account", &cac, "--agent", "bot", "--target", "C0123456789", "--json"];
    let p = w.run(&publish).ok().json();
    let pub_id = p["id"].as_str().unwrap().to_owned();
    assert!(pub_id.starts_with("pub_") && p["agent_id"].as_str().unwrap().starts_with("agt_"), "{p}");
    let listed = w.run(&["integration", "publications", "slack", "--json"]).ok().json();
    assert_eq!(data(&listed)[0]["target"], "C0123456789");
    let refused = w.run(&["integration", "unpublish", "slack", &pub_id]).fails();
    assert!(refused.stderr.contains("C0123456789") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(data(&w.run(&["integration", "publications", "slack", "--json"]).ok().json()).len(), 1);
    let removed = w.run(&["integration", "unpublish", "slack", &pub_id, "--yes"]).ok().stdout;
    assert!(removed.contains(&format!("removed publication {pub_id}")), "{removed}");
    assert!(data(&w.run(&["integration", "publications", "slack", "--json"]).ok().json()).is_empty());

    // Revoking shows what goes (the account and its publications) and asks first.
    let p = w.run(&publish).ok().json();
    let refused = w.run(&["integration", "revoke", &cac]).fails();
    for shown in ["slack", "Slack", "1 publication", p["id"].as_str().unwrap(), "--yes"] {
        assert!(refused.stderr.contains(shown), "`{shown}` missing: {}", refused.stderr);
    }
    assert_eq!(data(&w.run(&["integration", "accounts", "--json"]).ok().json()).len(), 1, "a refused revoke changes nothing");
    let revoked = w.run(&["integration", "revoke", &cac, "--yes", "--json"]).ok().json();
    assert_eq!(revoked["deleted"], true, "{revoked}");
    assert!(w.fake.revocations() >= 1, "the tokens are revoked at the app");
    assert!(data(&w.run(&["integration", "accounts", "--json"]).ok().json()).is_empty());
    assert!(data(&w.run(&["integration", "publications", "slack", "--json"]).ok().json()).is_empty());
}

#[test]
fn unknown_and_unconfigured_apps_fail_with_what_to_do() {
    let w = World::start();

    let unknown = w.run(&["integration", "connect", "nosuch"]).fails();
    assert!(unknown.stderr.contains("no app `nosuch`") && unknown.stderr.contains("slack"), "{}", unknown.stderr);
    assert!(unknown.stdout.is_empty(), "no URL for an unknown app: {}", unknown.stdout);
    let typo = w.run(&["integration", "show", "Slack/../x"]).fails();
    assert!(typo.stderr.contains("not an app id"), "{}", typo.stderr);

    // GitHub is shipped, but this server has no client credentials for it.
    let unconfigured = w.run(&["integration", "connect", "github"]).fails();
    assert!(unconfigured.stderr.contains("[integrations.github]"), "{}", unconfigured.stderr);
    assert!(unconfigured.stderr.contains("HTTP 422"), "{}", unconfigured.stderr);
}

#[test]
fn a_connect_nobody_completes_times_out_and_a_refused_one_fails() {
    let w = World::start();

    let started = Instant::now();
    let timed_out = w.run(&["integration", "connect", "slack", "--timeout", "2"]).fails();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(timed_out.stdout.starts_with(&w.fake.authorize_url()), "{}", timed_out.stdout);
    assert!(timed_out.stderr.contains("timed out after 2 s"), "{}", timed_out.stderr);
    assert!(timed_out.stderr.contains("steward integration connect slack"), "says how to retry: {}", timed_out.stderr);

    // The user refuses consent: the connect fails and the command says why.
    w.fake.set_deny_consent(true);
    let mut connect = w.start_command(&["integration", "connect", "slack"]);
    let url = connect.line();
    let (status, body) = w.authorize_in_browser(&url);
    assert_eq!(status, 422, "{body}");
    let failed = connect.finish().fails();
    assert!(failed.stderr.contains("connecting slack failed") && failed.stderr.contains("access_denied"), "{}", failed.stderr);
    w.fake.set_deny_consent(false);

    // --no-wait --json: the started connect for scripts, which complete it later.
    let started = w.run(&["integration", "connect", "slack", "--no-wait", "--json"]).ok();
    let connect = started.json();
    assert!(connect["connect_id"].as_str().unwrap().starts_with("con_"), "{connect}");
    assert_eq!(connect["redirect_uri"], format!("{PUBLIC_URL}/v1/integrations/callback"));
    assert!(started.stderr.contains("open this URL in a browser"), "{}", started.stderr);
    let (status, body) = w.authorize_in_browser(connect["authorize_url"].as_str().unwrap());
    assert_eq!(status, 200, "{body}");
    let accounts = w.run(&["integration", "accounts", "--app", "slack", "--json"]).ok().json();
    assert_eq!(data(&accounts).len(), 1, "{accounts}");
}
