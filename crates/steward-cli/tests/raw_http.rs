//! Errors as a client meets them on the wire, sent as raw bytes over a TCP socket so no HTTP
//! client can normalise the request: every error the application answers is §2 JSON, whether
//! it came from our handlers, an axum extractor, the body limit, rmcp on the MCP route, or
//! hyper's HTTP/1 parser itself (which answers before any service sees the request; the
//! listener gives those answers their JSON body, `steward_server::listener`).

#[allow(dead_code)]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::Server;

/// One answer: status, lower-cased head, body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    #[track_caller]
    fn json_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "head: {}\nbody: {}", self.head, String::from_utf8_lossy(&self.body));
        assert!(self.head.contains("content-type: application/json"), "not JSON: {}", self.head);
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body));
        assert!(v["error"]["type"].is_string() && v["error"]["message"].is_string(), "not the §2 shape: {v}");
        v
    }
}

/// Writes `request` as is and reads the answer until the server closes.
fn send(server: &Server, request: &[u8]) -> Answer {
    let addr = server.url.strip_prefix("http://").unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before the whole request is written (e.g. a 413).
    let _ = tcp.write_all(request);
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no response head: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap();
    Answer { status, head, body: raw[end + 4..].to_vec() }
}

fn get(path: &[u8], key: &str) -> Vec<u8> {
    let mut r = b"GET ".to_vec();
    r.extend_from_slice(path);
    r.extend_from_slice(format!(" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n").as_bytes());
    r
}

fn post(path: &str, key: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn library_refusals_are_json_errors() {
    let server = Server::start();
    let acct = server.create_account("wire@example.com");
    let (key, sandbox) = (acct.api_key.as_str(), acct.sandbox_id.as_str());

    // A path segment that percent-decodes to invalid UTF-8 (axum's Path extractor).
    let v = send(&server, &get(b"/v1/agents/%FF", key)).json_error(400);
    assert!(v["error"]["message"].as_str().unwrap().contains("percent-encode"), "{v}");

    // The public webhook route reads its body raw; over the 1 MiB limit it is still JSON.
    let big = vec![b'x'; 1024 * 1024 + 10];
    let v = send(&server, &post("/v1/webhooks/triggers/trg_01abc", "", "application/json", &big)).json_error(413);
    assert_eq!(v["error"]["type"], "payload_too_large", "{v}");

    // rmcp answers a non-JSON MCP message with 415 by itself.
    let v = send(&server, &post(&format!("/v1/sandboxes/{sandbox}/mcp"), key, "text/plain", b"hello")).json_error(415);
    assert_eq!(v["error"]["type"], "unsupported_media_type", "{v}");

    // Unknown routes and methods.
    send(&server, &get(b"/v1/nothing-here", key)).json_error(404);
    let v = send(&server, &post("/v1/me", key, "application/json", b"{}")).json_error(405);
    assert_eq!(v["error"]["type"], "method_not_allowed", "{v}");
}

/// hyper's HTTP/1 parser answers these itself, before any service (and so any middleware) runs,
/// with an empty body; the listener rewrites those answers into §2 JSON.
#[test]
fn parser_refusals_are_json_too() {
    let server = Server::start();
    let key = &server.create_account("parser@example.com").api_key;

    let v = send(&server, &get(b"/v1/agents/\xFF", key)).json_error(400);
    assert!(v["error"]["message"].as_str().unwrap().contains("percent-encode"), "a raw 0xFF byte in the path: {v}");

    let mut many = b"GET /v1/me HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..120 {
        many.extend_from_slice(format!("X-Filler-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let v = send(&server, &many).json_error(431);
    assert_eq!(v["error"]["type"], "headers_too_large", "more headers than hyper's limit: {v}");

    // One header larger than hyper's read buffer.
    let mut huge = b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Huge: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 512 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let v = send(&server, &huge).json_error(431);
    assert_eq!(v["error"]["type"], "headers_too_large", "a header over hyper's buffer: {v}");

    // The connection still serves ordinary answers: the rewrite touches nothing else.
    let a = send(&server, &get(b"/v1/me", key));
    assert_eq!(a.status, 200, "{}", a.head);
    let me: Value = serde_json::from_slice(&a.body).unwrap();
    assert!(me.is_object(), "{me}");
}
