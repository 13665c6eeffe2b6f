//! Login codes over real SMTP: the server talks to `aiosmtpd` (a third-party SMTP server from
//! PyPI, installed by `scripts/test`) and the code that arrives there logs the user in.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_server::config::SmtpConfig;
use steward_test_support::peers;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn login_code_arrives_by_smtp() {
    let Some(py) = peers::python() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The Debugging handler prints every message it receives on stdout.
    let mut child = Command::new(&py)
        .args(["-u", "-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Debugging", "stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aiosmtpd");
    let stdout = child.stdout.take().unwrap();
    let _peer = Peer(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for the port to accept connections.
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "aiosmtpd did not start on port {port}");

    let s = TestServer::start_configured(Backend::Sqlite, |c| {
        c.smtp = Some(SmtpConfig { url: format!("smtp://127.0.0.1:{port}"), from: "steward@example.com".into() });
    })
    .await
    .unwrap();
    s.user("ada@example.com").await;
    let (st, v) = s.call(Method::POST, "/v1/auth/email/start", None, Some(json!({"email": "ada@example.com"}))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    let mut code = None;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if let Some(rest) = line.split("sign-in code is ").nth(1) {
            code = Some(rest.trim().to_owned());
            break;
        }
        seen.push(line);
    }
    let code = code.unwrap_or_else(|| panic!("no code arrived by SMTP; the peer printed: {seen:#?}"));
    assert!(seen.iter().any(|l| l.contains("To: ada@example.com")), "{seen:#?}");
    assert!(!s.data_dir.join("mail.log").exists(), "with SMTP configured nothing goes to mail.log");
    let (st, v) = s.call(Method::POST, "/v1/auth/email/verify", None, Some(json!({"email": "ada@example.com", "code": code}))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["token"].is_string());
}
