//! The SSE stream (§4): frames with id/event/data, heartbeats, and exact resume after a
//! dropped connection — reassembled from many reconnects it equals the event log.

mod common;

use std::time::Duration;

use common::TestServer;
use common::fake_model::{FakeModel, Reply};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_test_support::sse::{self, SseDecoder};

/// One parsed SSE frame.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    id: String,
    event: String,
    data: Value,
}

/// Reads frames from a stream until `stop_after` frames, a terminal event, or 20 s.
async fn read_frames(res: reqwest::Response, stop_after: usize) -> Vec<Frame> {
    let mut body = res.bytes_stream();
    let mut decoder = SseDecoder::default();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while frames.len() < stop_after {
        let chunk = tokio::select! {
            c = body.next() => c,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let Some(Ok(chunk)) = chunk else { break };
        for frame in decoder.push(&chunk) {
            let data = frame.data.map(|d| serde_json::from_str::<Value>(&d).expect("data is JSON"));
            if let (Some(id), Some(event), Some(data)) = (frame.id, frame.event, data) {
                let terminal = ["agent_finish", "agent_error", "run_cancelled"].contains(&event.as_str());
                frames.push(Frame { id, event, data });
                if terminal || frames.len() >= stop_after {
                    return frames;
                }
            }
        }
    }
    frames
}

#[tokio::test]
async fn reconnecting_at_random_points_reassembles_the_log_exactly() {
    let fake = FakeModel::start(|_, _| Reply::Slow { n: 120, delay: Duration::from_millis(5) }).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "m", "talker").await;
    let (st, session) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "talk"}]})).await;
    assert_eq!(st, StatusCode::CREATED);
    let sid = session["id"].as_str().unwrap().to_owned();

    // Drop the connection after a pseudo-random number of frames each time, alternating
    // between `?after=` and `Last-Event-ID`, until the terminal event arrives.
    let mut seen: Vec<Frame> = Vec::new();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut reconnects = 0;
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let take = 1 + (seed % 9) as usize;
        let mut req = s.http.get(format!("{}/v1/sessions/{sid}/stream", s.url)).bearer_auth(&u.key);
        if let Some(last) = seen.last() {
            req = if reconnects % 2 == 0 {
                s.http.get(format!("{}/v1/sessions/{sid}/stream?after={}", s.url, last.id)).bearer_auth(&u.key)
            } else {
                req.header("Last-Event-ID", last.id.as_str())
            };
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let frames = read_frames(res, take).await;
        reconnects += 1;
        let done = frames.iter().any(|f| ["agent_finish", "agent_error", "run_cancelled"].contains(&f.event.as_str()));
        seen.extend(frames);
        if done {
            break;
        }
        assert!(reconnects < 500, "too many reconnects");
    }
    assert!(reconnects > 5, "the test should have reconnected many times, did {reconnects}");
    let (_, log) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
    let log: Vec<Frame> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Frame { id: e["id"].as_str().unwrap().into(), event: e["type"].as_str().unwrap().into(), data: e["data"].clone() })
        .collect();
    assert_eq!(seen, log, "the reassembled stream must equal the log: no gap, no duplicate");

    // After the run ended, resuming from the middle replays exactly the rest.
    let mid = &log[log.len() / 2];
    let res = s.http.get(format!("{}/v1/sessions/{sid}/stream?after={}", s.url, mid.id)).bearer_auth(&u.key).send().await.unwrap();
    let rest = read_frames(res, usize::MAX).await;
    assert_eq!(rest, log[log.len() / 2 + 1..].to_vec());
}

#[tokio::test]
async fn idle_streams_get_heartbeats_and_closing_does_not_cancel() {
    let fake = FakeModel::start(|_, _| Reply::Slow { n: 60, delay: Duration::from_millis(20) }).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "m", "talker").await;
    let (_, session) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "talk"}]})).await;
    let sid = session["id"].as_str().unwrap().to_owned();
    // Read two frames, then hang up: the run goes on.
    let res = s.http.get(format!("{}/v1/sessions/{sid}/stream", s.url)).bearer_auth(&u.key).send().await.unwrap();
    let frames = read_frames(res, 2).await;
    assert_eq!(frames[0].event, "run_started");
    let mut finished = false;
    for _ in 0..200 {
        let (_, ev) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
        if ev.as_array().unwrap().last().is_some_and(|e| e["type"] == "agent_finish") {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished, "closing a session stream must not cancel the run");
    // Now the session is idle: a stream after the last event gets only heartbeats.
    let (_, ev) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
    let last = ev.as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
    let res = s.http.get(format!("{}/v1/sessions/{sid}/stream?after={last}", s.url)).bearer_auth(&u.key).send().await.unwrap();
    let text = sse::read_until(res, Duration::from_secs(10), |t| t.contains(": heartbeat")).await;
    assert!(text.contains(": heartbeat"), "no heartbeat on an idle stream: {text:?}");
    assert!(!text.contains("data:"), "nothing but heartbeats after the last event: {text:?}");
}

#[tokio::test]
async fn a_resume_point_past_the_end_of_the_log_is_refused() {
    let fake = FakeModel::start(|_, _| Reply::Slow { n: 3, delay: Duration::from_millis(1) }).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "m", "talker").await;
    let (_, session) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "talk"}]})).await;
    let sid = session["id"].as_str().unwrap().to_owned();
    let mut log = Vec::new();
    for _ in 0..200 {
        let (_, ev) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
        log = ev.as_array().unwrap().clone();
        if log.last().is_some_and(|e| e["type"] == "agent_finish") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = log.last().expect("the run wrote events")["id"].as_str().unwrap().to_owned();
    // `evt_<session body>_<12-digit seq>`: one past the last event does not exist yet.
    let (prefix, seq) = last.rsplit_once('_').unwrap();
    let beyond = format!("{prefix}_{:012}", seq.parse::<u64>().unwrap() + 1);
    let (st, v) = s.get(&format!("/v1/sessions/{sid}/events?after={beyond}"), &u.key).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["param"], "after", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("past the end") && msg.contains(&last), "the message names the last event: {msg}");
    for (query, header) in [(format!("?after={beyond}"), None), (String::new(), Some(beyond.as_str()))] {
        let mut req = s.http.get(format!("{}/v1/sessions/{sid}/stream{query}", s.url)).bearer_auth(&u.key);
        if let Some(h) = header {
            req = req.header("last-event-id", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let v: Value = res.json().await.unwrap();
        let want = if header.is_some() { "Last-Event-ID" } else { "after" };
        assert_eq!(v["error"]["param"], want, "{v}");
    }
    // The last id itself is a valid resume point: nothing after it.
    let (st, v) = s.get(&format!("/v1/sessions/{sid}/events?after={last}"), &u.key).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!([]));
}
