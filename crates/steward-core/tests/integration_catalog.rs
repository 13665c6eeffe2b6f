//! The integration catalog as the server meets it: the shipped apps, an operator's directory of
//! app files, and inbound requests checked against fixtures that
//! `scripts/gen-integration-fixtures.py` signed independently of this crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use steward_core::integration::{
    App, AppTools, Catalog, CatalogError, HttpAuth, InboundVerification, ValueSource, header_in, verify_inbound,
};

fn no_headers(_: &str) -> Option<String> {
    None
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("steward-integration-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn shipped_catalog_validates_and_has_the_required_apps_and_components() {
    let catalog = Catalog::shipped();
    let ids: Vec<&str> = catalog.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["discord", "github", "google", "linear", "slack", "telegram"]);
    for app in catalog.iter() {
        app.validate().unwrap_or_else(|e| panic!("{e}"));
        // A round trip through the file format loses nothing.
        let again: App = serde_json::from_value(serde_json::to_value(app).unwrap()).unwrap();
        assert_eq!(&again, app);
    }
    for id in [
        "slack.app_mention",
        "slack.message",
        "github.issue_opened",
        "github.pull_request_opened",
        "github.issue_comment_created",
        "linear.issue_created",
        "google.calendar_event_changed",
        "discord.application_command",
        "telegram.message",
    ] {
        let (app, component) = catalog.component(id).unwrap_or_else(|| panic!("{id} is missing"));
        assert_eq!(component.id, id);
        assert!(id.starts_with(&format!("{}.", app.id)));
    }
    assert!(catalog.component("slack.nope").is_none());
    assert!(catalog.component("nope.app_mention").is_none());
    assert!(catalog.component("slack").is_none());

    // Telegram has no OAuth (a bot token is supplied instead); every other app does.
    for app in catalog.iter() {
        assert_eq!(app.oauth.is_none(), app.id == "telegram", "{}", app.id);
        assert!(app.webhook.is_some(), "{} has no webhook verification", app.id);
    }
    let slack = catalog.get("slack").unwrap().oauth.as_ref().unwrap();
    assert_eq!(slack.token_url, "https://slack.com/api/oauth.v2.access");
    assert!(slack.scope_param().contains("app_mentions:read,channels:history"));
    let google = catalog.get("google").unwrap().oauth.as_ref().unwrap();
    assert_eq!(google.extra_authorize_params.get("access_type").map(String::as_str), Some("offline"));
    assert_eq!(google.extra_authorize_params.get("prompt").map(String::as_str), Some("consent"));
    assert!(matches!(&catalog.get("github").unwrap().tools, AppTools::Mcp { url } if url == "https://api.githubcopilot.com/mcp/"));
    assert!(matches!(&catalog.get("telegram").unwrap().tools, AppTools::Http { auth: HttpAuth::Url, .. }));
}

#[test]
fn each_example_matches_its_own_component_and_no_other_of_its_app() {
    let catalog = Catalog::shipped();
    let mut checked = 0;
    for app in catalog.iter() {
        for c in &app.trigger_components {
            let header = |name: &str| header_in(&c.example_headers, name);
            assert!(c.matches(&header, &c.example), "{}'s example does not match it", c.id);
            let matched: Vec<&str> = app.matching_components(&header, &c.example).map(|m| m.id.as_str()).collect();
            assert_eq!(matched, [c.id.as_str()], "{}'s example matches other components", c.id);
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} components");
}

#[test]
fn components_look_at_the_right_fields() {
    let catalog = Catalog::shipped();
    let (_, mention) = catalog.component("slack.app_mention").unwrap();
    let (_, message) = catalog.component("slack.message").unwrap();
    let event = |outer: &str, inner: &str| json!({"type": outer, "event": {"type": inner}});
    assert!(mention.matches(&no_headers, &event("event_callback", "app_mention")));
    assert!(!mention.matches(&no_headers, &event("url_verification", "app_mention")));
    assert!(!mention.matches(&no_headers, &json!({"type": "event_callback"})));
    assert!(message.matches(&no_headers, &event("event_callback", "message")));
    assert!(!message.matches(&no_headers, &event("event_callback", "app_mention")));

    let (_, issue) = catalog.component("github.issue_opened").unwrap();
    let (_, pr) = catalog.component("github.pull_request_opened").unwrap();
    let issues = headers(&[("x-github-event", "issues")]);
    let pulls = headers(&[("X-GitHub-Event", "pull_request")]);
    let opened = json!({"action": "opened"});
    assert!(issue.matches(&|n: &str| header_in(&issues, n), &opened));
    assert!(!issue.matches(&|n: &str| header_in(&issues, n), &json!({"action": "closed"})));
    assert!(!issue.matches(&|n: &str| header_in(&pulls, n), &opened));
    assert!(!issue.matches(&no_headers, &opened), "the event header is required");
    assert!(pr.matches(&|n: &str| header_in(&pulls, n), &opened));

    let (_, linear) = catalog.component("linear.issue_created").unwrap();
    assert!(linear.matches(&no_headers, &json!({"type": "Issue", "action": "create"})));
    assert!(!linear.matches(&no_headers, &json!({"type": "Issue", "action": "update"})));

    // Numbers compare as their JSON text; presence conditions reject null.
    let (_, command) = catalog.component("discord.application_command").unwrap();
    assert!(command.matches(&no_headers, &json!({"type": 2})));
    assert!(!command.matches(&no_headers, &json!({"type": "2x"})));
    let (_, telegram) = catalog.component("telegram.message").unwrap();
    assert!(telegram.matches(&no_headers, &json!({"update_id": 1, "message": {"text": "hi"}})));
    assert!(!telegram.matches(&no_headers, &json!({"update_id": 1, "message": null})));
    assert!(!telegram.matches(&no_headers, &json!({"update_id": 1, "edited_message": {}})));
}

#[test]
fn delivery_ids_come_from_the_documented_place() {
    let catalog = Catalog::shipped();
    let example = |id: &str| catalog.component(id).unwrap().1.example.clone();
    let app = |id: &str| catalog.get(id).unwrap();

    assert_eq!(app("slack").delivery_id(&no_headers, &example("slack.app_mention")).as_deref(), Some("Ev0LAN670R"));
    let gh = headers(&[("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]);
    assert_eq!(
        app("github").delivery_id(&|n: &str| header_in(&gh, n), &example("github.issue_opened")).as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(app("github").delivery_id(&no_headers, &example("github.issue_opened")), None);
    let lin = headers(&[("Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72")]);
    assert_eq!(
        app("linear").delivery_id(&|n: &str| header_in(&lin, n), &example("linear.issue_created")).as_deref(),
        Some("234d1a4e-b617-4388-90fe-adc3633d6b72")
    );
    // Linear's body holds `webhookId`, which names the webhook, not the delivery: never a delivery id.
    assert_eq!(app("linear").delivery_id(&no_headers, &example("linear.issue_created")), None);
    assert_eq!(app("discord").delivery_id(&no_headers, &example("discord.application_command")).as_deref(), Some("1234567890123456789"));
    assert_eq!(app("telegram").delivery_id(&no_headers, &json!({"update_id": 10000})).as_deref(), Some("10000"));
    assert_eq!(app("telegram").delivery_id(&no_headers, &json!({"update_id": ""})), None);
    assert_eq!(app("google").delivery_id(&no_headers, &Value::Null), None);
}

#[test]
fn handshakes_are_answered_by_scheme() {
    let catalog = Catalog::shipped();
    let slack = catalog.get("slack").unwrap();
    let discord = catalog.get("discord").unwrap();
    let challenge = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    assert_eq!(slack.challenge_response(&challenge), Some(json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})));
    assert_eq!(slack.challenge_response(&catalog.component("slack.app_mention").unwrap().1.example), None);
    assert_eq!(slack.challenge_response(&json!({"type": "url_verification"})), None, "no challenge, nothing to echo");
    assert_eq!(discord.challenge_response(&json!({"type": 1})), Some(json!({"type": 1})));
    assert_eq!(discord.challenge_response(&json!({"type": 2, "id": "1"})), None);
    assert_eq!(discord.challenge_response(&challenge), None);
    assert_eq!(catalog.get("github").unwrap().challenge_response(&json!({"type": 1})), None);
    assert_eq!(catalog.get("github").unwrap().challenge_response(&challenge), None);
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    app: String,
    case: String,
    secret: String,
    headers: BTreeMap<String, String>,
    body: String,
    now_ms: i64,
    expect: String,
}

#[test]
fn inbound_requests_verify_as_the_vendors_sign_them() {
    let catalog = Catalog::shipped();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/integrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut outcomes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for path in &files {
        let f: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let app = catalog.get(&f.app).unwrap_or_else(|| panic!("{}: no app `{}`", path.display(), f.app));
        let scheme = app.webhook.as_ref().unwrap();
        let got = verify_inbound(scheme, &f.secret, &|n: &str| header_in(&f.headers, n), f.body.as_bytes(), f.now_ms);
        let counts = outcomes.entry(f.app.clone()).or_default();
        let ok = match (&got, f.expect.as_str()) {
            (Ok(()), "ok") => {
                counts.0 += 1;
                true
            }
            (Err(e), want) if want != "ok" => {
                counts.1 += 1;
                e.contains(want)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{}/{}: expected {:?}, got {got:?}", f.app, f.case, f.expect));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every app is covered by accepted and refused requests, so an emptied directory cannot pass.
    for app in catalog.iter() {
        let (accepted, refused) = outcomes.get(&app.id).copied().unwrap_or_default();
        assert!(accepted >= 1 && refused >= 3, "{}: {accepted} accepted and {refused} refused fixtures", app.id);
    }
    assert!(files.len() >= 40, "only {} fixtures", files.len());
}

#[test]
fn verification_refuses_an_empty_secret_and_malformed_headers() {
    let catalog = Catalog::shipped();
    let h = headers(&[("X-Hub-Signature-256", "sha256=zz"), ("X-Telegram-Bot-Api-Secret-Token", "")]);
    let header = |n: &str| header_in(&h, n);
    let github = catalog.get("github").unwrap().webhook.as_ref().unwrap();
    let err = verify_inbound(github, "", &header, b"{}", 0).unwrap_err();
    assert!(err.contains("no secret is configured") && err.contains("GitHub webhook secret"), "{err}");
    assert!(verify_inbound(github, "s", &header, b"{}", 0).unwrap_err().contains("sha256=<hex"));
    // An empty token header is the same as none, even against an empty-looking secret.
    let telegram = catalog.get("telegram").unwrap().webhook.as_ref().unwrap();
    assert!(verify_inbound(telegram, "t", &header, b"{}", 0).unwrap_err().contains("is missing"));
    // A timestamp that is not a number, and one so far off that subtracting it overflows.
    let slack = InboundVerification::SlackV0 { tolerance_secs: 300 };
    for ts in ["soon", "-9223372036854775808"] {
        let h = headers(&[("X-Slack-Signature", "v0=00"), ("X-Slack-Request-Timestamp", ts)]);
        let err = verify_inbound(&slack, "s", &|n: &str| header_in(&h, n), b"", 1_764_000_000_000).unwrap_err();
        assert!(err.contains("X-Slack-Request-Timestamp"), "{err}");
    }
}

const ACME: &str = r#"{
  "id": "acme",
  "display_name": "Acme Tickets",
  "oauth": { "authorize_url": "https://acme.test/oauth/authorize", "token_url": "https://acme.test/oauth/token", "scopes": [] },
  "tools": { "kind": "http", "base_url": "https://api.acme.test/v2", "tools": [
    { "name": "get_ticket", "description": "Fetch a ticket", "method": "GET", "path": "/tickets/{ticket_id}",
      "input_schema": { "type": "object", "properties": { "ticket_id": { "type": "string" } }, "required": ["ticket_id"] } }
  ] },
  "webhook": { "kind": "header_token", "header": "X-Acme-Token" },
  "delivery_id": ["header:X-Acme-Delivery", "/id"],
  "trigger_components": [
    { "id": "acme.ticket_created", "display_name": "Ticket created", "matches": [{ "source": "/event", "equals": "ticket.created" }],
      "payload_schema": { "type": "object" }, "example": { "event": "ticket.created", "id": 7 } }
  ]
}"#;

const FAKE_SLACK: &str = r#"
id = "slack"
display_name = "Slack (local fake)"
delivery_id = ["/event_id"]

[oauth]
authorize_url = "http://127.0.0.1:39101/oauth/v2/authorize"
token_url = "http://127.0.0.1:39101/api/oauth.v2.access"
scopes = ["search:read.public", "chat:write"]
scope_separator = ","
token_path = "/authed_user/access_token"
extra_authorize_params = { user_scope = "search:read.public,chat:write" }

[tools]
kind = "mcp"
url = "http://127.0.0.1:39101/mcp"

[webhook]
kind = "slack_v0"

[[trigger_components]]
id = "slack.app_mention"
display_name = "Bot mentioned"
matches = [{ source = "/event/type", equals = "app_mention" }]
payload_schema = { type = "object" }
example = { event = { type = "app_mention" } }
"#;

#[test]
fn an_operator_directory_replaces_and_adds_apps() {
    let dir = TempDir::new("override");
    dir.write("slack.toml", FAKE_SLACK);
    dir.write("acme.json", ACME);
    dir.write("README.md", "not an app");
    dir.write(".acme.json.swp", "not JSON");
    std::fs::create_dir(dir.0.join("nested.json")).unwrap();

    let catalog = Catalog::shipped().with_dir(&dir.0).unwrap();
    let ids: Vec<&str> = catalog.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["acme", "discord", "github", "google", "linear", "slack", "telegram"]);

    // Slack is replaced entirely: its URLs point at the fake, and shipped-only components are gone.
    let slack = catalog.get("slack").unwrap();
    assert_eq!(slack.display_name, "Slack (local fake)");
    let oauth = slack.oauth.as_ref().unwrap();
    assert_eq!(oauth.token_url, "http://127.0.0.1:39101/api/oauth.v2.access");
    assert_eq!(oauth.token_path.as_deref(), Some("/authed_user/access_token"));
    assert!(oauth.pkce, "pkce defaults to true");
    assert_eq!(oauth.scope_param(), "search:read.public,chat:write");
    assert_eq!(slack.tools, AppTools::Mcp { url: "http://127.0.0.1:39101/mcp".into() });
    assert_eq!(slack.webhook, Some(InboundVerification::SlackV0 { tolerance_secs: 300 }), "the window defaults to 300 s");
    assert!(catalog.component("slack.app_mention").is_some());
    assert!(catalog.component("slack.message").is_none());
    assert_eq!(catalog.get("github"), Catalog::shipped().get("github"));

    let acme = catalog.get("acme").unwrap();
    assert_eq!(acme.delivery_id, [ValueSource::Header("X-Acme-Delivery".into()), ValueSource::Pointer("/id".into())]);
    assert_eq!(acme.delivery_id(&no_headers, &json!({"id": 7})).as_deref(), Some("7"));
    let (_, created) = catalog.component("acme.ticket_created").unwrap();
    assert!(created.matches(&no_headers, &json!({"event": "ticket.created"})));
    let AppTools::Http { tools, .. } = &acme.tools else { panic!("acme has http tools") };
    let args = json!({"ticket_id": "a/b c"});
    assert_eq!(tools[0].fill_path(args.as_object().unwrap()).unwrap(), "/tickets/a%2Fb%20c");
    assert_eq!(tools[0].fill_path(&serde_json::Map::new()).unwrap_err(), "argument `ticket_id` is required");
    assert_eq!(tools[0].path_params(), ["ticket_id"]);

    // An empty directory changes nothing; a missing one is an error naming it.
    let empty = TempDir::new("empty");
    assert_eq!(Catalog::shipped().with_dir(&empty.0).unwrap(), Catalog::shipped());
    let err = Catalog::shipped().with_dir(&dir.0.join("absent")).unwrap_err();
    assert!(matches!(err, CatalogError::Read { .. }) && err.to_string().contains("absent"), "{err}");
}

/// Loads `text` as `name` in an otherwise empty operator directory; returns the error text.
fn load_error(name: &str, text: &str) -> String {
    let dir = TempDir::new(&format!("bad-{name}"));
    let path = dir.write(name, text);
    let err = Catalog::default().with_dir(&dir.0).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "the error does not name the file: {shown}");
    shown
}

fn acme_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(ACME).unwrap();
    edit(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn a_bad_operator_file_names_the_file_and_the_field() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "missing token_url",
            acme_with(|v| drop(v["oauth"].as_object_mut().unwrap().remove("token_url"))),
            &["oauth.token_url", "app `acme`", "missing"],
        ),
        ("ftp URL", acme_with(|v| v["oauth"]["token_url"] = json!("ftp://acme.test/token")), &["oauth.token_url", "app `acme`", "http(s)"]),
        (
            "unknown tools kind",
            acme_with(|v| v["tools"] = json!({"kind": "grpc", "url": "https://x.test"})),
            &["tools", "unknown variant `grpc`"],
        ),
        ("unknown webhook kind", acme_with(|v| v["webhook"] = json!({"kind": "stripe_v1"})), &["webhook", "unknown variant `stripe_v1`"]),
        ("unknown field", acme_with(|v| v["oauth"]["client_secret"] = json!("x")), &["oauth", "unknown field `client_secret`"]),
        (
            "malformed value source",
            acme_with(|v| v["delivery_id"] = json!(["event.id"])),
            &["delivery_id[0]", "`event.id`", "JSON pointer"],
        ),
        ("header source without name", acme_with(|v| v["delivery_id"] = json!(["header:"])), &["delivery_id[0]", "valid HTTP header"]),
        (
            "component without prefix",
            acme_with(|v| v["trigger_components"][0]["id"] = json!("ticket_created")),
            &["trigger_components[0].id", "must start with the app's id, `acme.`"],
        ),
        (
            "duplicate component",
            acme_with(|v| {
                let c = v["trigger_components"][0].clone();
                v["trigger_components"].as_array_mut().unwrap().push(c);
            }),
            &["trigger_components[1].id", "`acme.ticket_created` is defined twice"],
        ),
        (
            "example not matching",
            acme_with(|v| v["trigger_components"][0]["example"] = json!({"event": "ticket.closed"})),
            &["trigger_components[0].example", "does not meet"],
        ),
        ("bad app id", acme_with(|v| v["id"] = json!("Acme Corp")), &["id", "not a valid app id"]),
        (
            "components without webhook",
            acme_with(|v| drop(v.as_object_mut().unwrap().remove("webhook"))),
            &["webhook", "must be authenticated"],
        ),
        (
            "placeholder not in schema",
            acme_with(|v| v["tools"]["tools"][0]["path"] = json!("/tickets/{id}")),
            &["tools.tools[0].input_schema", "`{id}`"],
        ),
        (
            "token placeholder with bearer",
            acme_with(|v| v["tools"]["base_url"] = json!("https://api.acme.test/bot{token}")),
            &["tools.base_url", "`auth: url`"],
        ),
        (
            "reserved authorize param",
            acme_with(|v| v["oauth"]["extra_authorize_params"] = json!({"redirect_uri": "https://evil.test/"})),
            &["oauth.extra_authorize_params.redirect_uri", "set by the connect flow"],
        ),
        (
            "tolerance zero",
            acme_with(|v| v["webhook"] = json!({"kind": "slack_v0", "tolerance_secs": 0})),
            &["webhook.tolerance_secs", "out of range"],
        ),
        ("syntax error", "{\"id\": \"acme\",\n  \"display_name\": }".to_string(), &["file", "not valid JSON", "line 2"]),
    ];
    for (what, text, wanted) in cases {
        let shown = load_error("acme.json", &text);
        for w in wanted {
            assert!(shown.contains(w), "{what}: `{w}` is not in: {shown}");
        }
    }

    let shown =
        load_error("acme.toml", "id = \"acme\"\ndisplay_name = \"Acme\"\ntools = { kind = \"mcp\", url = \"gopher://acme.test/\" }\n");
    assert!(shown.contains("tools.url") && shown.contains("http(s)"), "{shown}");
    let shown = load_error("acme.toml", "id = \"acme\"\n\ndisplay_name = \n");
    assert!(shown.contains("not valid TOML (line 3)"), "{shown}");

    // Two operator files defining one app: which one wins would be an accident, so neither does.
    let dir = TempDir::new("duplicate");
    dir.write("a.json", ACME);
    dir.write("b.json", ACME);
    let err = Catalog::shipped().with_dir(&dir.0).unwrap_err();
    assert!(matches!(&err, CatalogError::Duplicate { id, .. } if id == "acme"), "{err}");
    assert!(err.to_string().contains("a.json") && err.to_string().contains("b.json"), "{err}");
}

#[test]
fn value_sources_parse_and_print_back() {
    for raw in ["header:X-GitHub-Delivery", "/event_id", "/a~1b/c~0d", "/"] {
        assert_eq!(ValueSource::parse(raw).unwrap().to_string(), raw);
    }
    assert_eq!(ValueSource::parse("/a~1b").unwrap().read(&no_headers, &json!({"a/b": true})).as_deref(), Some("true"));
    for bad in ["", "event_id", "header:", "header:Bad Header", "/a~2", "/a~", "Header:X"] {
        assert!(ValueSource::parse(bad).is_err(), "{bad:?} parsed");
    }
}
