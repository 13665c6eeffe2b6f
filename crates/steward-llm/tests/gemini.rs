//! The Gemini client against a fake Gemini API speaking the real wire format: streamed text and
//! function calls cut at awkward byte boundaries, the request body it sends, stop reasons,
//! error bodies, retries, broken and silent streams, and cancellation.

mod common;
mod gemini_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::{LIMIT, drain};
use futures::StreamExt;
use gemini_fake::{End, Fake, KEY, Reply};
use serde_json::{Value, json};
use steward_llm::{
    ApiKey, ClientConfig, EventStream, LlmError, Message, ModelClient, ModelRequest, Part, ProviderKind, RetryPolicy, Role, StopReason,
    StreamEvent, Timeouts, ToolSpec, Usage,
};

/// No test waits longer than this for anything.
const MODEL: &str = "gemini-2.5-flash";

fn client(fake: &Fake, idle: Duration) -> Arc<dyn ModelClient> {
    client_with_key(fake, idle, KEY)
}

fn client_with_key(fake: &Fake, idle: Duration, key: &str) -> Arc<dyn ModelClient> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeouts = Timeouts { connect: Duration::from_secs(2), response: Duration::from_secs(5), idle };
    let config = ClientConfig {
        kind: ProviderKind::Google,
        base_url: fake.base_url.clone(),
        api_key: Some(ApiKey::new(key)),
        timeouts,
        retry: RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(5) },
    };
    steward_llm::client(config, steward_llm::http_client(&timeouts))
}

fn request(text: &str) -> ModelRequest {
    ModelRequest {
        model: MODEL.into(),
        system: None,
        messages: vec![Message::user_text(text)],
        tools: vec![],
        max_output_tokens: 256,
        temperature: None,
    }
}

async fn start(client: &dyn ModelClient, request: &ModelRequest) -> Result<EventStream, LlmError> {
    tokio::time::timeout(LIMIT, client.stream(request)).await.expect("the call did not return in time")
}

async fn run(client: &dyn ModelClient, request: &ModelRequest) -> (Vec<StreamEvent>, Option<LlmError>) {
    drain(start(client, request).await.expect("the call was refused")).await
}

fn text_of(events: &[StreamEvent]) -> String {
    events.iter().filter_map(|e| if let StreamEvent::TextDelta(t) = e { Some(t.as_str()) } else { None }).collect()
}

fn without_usage(events: &[StreamEvent]) -> Vec<StreamEvent> {
    events.iter().filter(|e| !matches!(e, StreamEvent::Usage(_))).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Gemini's stream chunks, as the real API sends them

fn text_chunk(text: &str, prompt_tokens: u64) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]},
        "modelVersion": MODEL,
        "responseId": "mKqDaPq1Fr2vkdUP7a2XqQU"
    })
}

fn final_chunk(reason: &str, prompt: u64, candidates: u64, thoughts: u64) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": reason, "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + candidates + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
        },
        "modelVersion": MODEL,
        "responseId": "mKqDaPq1Fr2vkdUP7a2XqQU"
    })
}

/// An SSE body as Gemini frames it: `data: {json}` and a blank line, CRLF-separated.
fn frames(chunks: &[Value]) -> String {
    chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect()
}

/// `body` cut at these byte offsets (in any order).
fn cut(body: &str, cuts: impl IntoIterator<Item = usize>) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c > 0 && c < body.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let bytes = body.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        pieces.push(Bytes::copy_from_slice(&bytes[start..c]));
        start = c;
    }
    pieces
}

fn every(body: &str, n: usize) -> impl Iterator<Item = usize> {
    (n..body.len()).step_by(n)
}

/// The offset `into` bytes past the `nth` occurrence of `needle`.
fn inside(body: &str, needle: &str, nth: usize, into: usize) -> usize {
    body.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("no {nth}th {needle:?}")).0 + into
}

// ---------------------------------------------------------------------------------------------
// Streaming

#[tokio::test]
async fn text_streams_in_deltas_across_awkward_chunk_boundaries() {
    let pieces = ["Héllo", ", wörld ", "🦀 crabs", " and ünïcode", "."];
    let mut chunks: Vec<Value> = pieces.iter().map(|p| text_chunk(p, 12)).collect();
    chunks.push(final_chunk("STOP", 12, 9, 19));
    let body = frames(&chunks);
    let mut cuts: Vec<usize> = every(&body, 37).collect();
    cuts.push(inside(&body, "data:", 1, 3)); // inside the `data:` of the second frame
    cuts.push(inside(&body, "🦀", 0, 2)); // inside the crab's four bytes
    cuts.push(inside(&body, "ö", 0, 1));
    cuts.push(inside(&body, "\r\n\r\n", 2, 2)); // between the CRLFs ending a frame
    cuts.push(inside(&body, "usageMetadata", 3, 5)); // inside a JSON key
    assert!(!body.is_char_boundary(inside(&body, "🦀", 0, 2)));
    let fake = Fake::start(vec![Reply::sse(cut(&body, cuts))]).await;
    let client = client(&fake, Duration::from_secs(5));

    let (events, error) = run(&*client, &request("Say hello")).await;

    assert_eq!(error, None);
    assert_eq!(text_of(&events), pieces.concat());
    let deltas = events.iter().filter(|e| matches!(e, StreamEvent::TextDelta(_))).count();
    assert_eq!(deltas, pieces.len(), "one delta per chunk: {events:?}");
    // Usage as first reported, then the final totals (thinking counts as output) just before the end.
    let usages: Vec<&StreamEvent> = events.iter().filter(|e| matches!(e, StreamEvent::Usage(_))).collect();
    assert_eq!(usages.first(), Some(&&StreamEvent::Usage(Usage { input_tokens: 12, output_tokens: 0 })));
    assert_eq!(events[events.len() - 2], StreamEvent::Usage(Usage { input_tokens: 12, output_tokens: 28 }));
    assert_eq!(events.last(), Some(&StreamEvent::Finish(StopReason::EndTurn)));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].uri, format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"));
    assert_eq!(requests[0].headers["x-goog-api-key"], KEY);
    assert_eq!(requests[0].headers.get("authorization"), None);
    assert_eq!(
        requests[0].body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}], "generationConfig": {"maxOutputTokens": 256}})
    );
}

#[tokio::test]
async fn interleaved_text_and_two_function_calls_and_the_request_round_trip() {
    let chunks = [
        text_chunk("Checking both", 80),
        json!({
            "candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "units": "metric"}}, "thoughtSignature": "CiQBVKhc7sXq0pFfz2Z3nb4N6tGmK1pA=="}], "role": "model"}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 12, "totalTokenCount": 92},
            "modelVersion": MODEL
        }),
        text_chunk(" cities… ", 80),
        json!({
            "candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo", "days": [1, 2], "note": "\"quoted\" ünïcode"}}}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 31, "totalTokenCount": 111},
            "modelVersion": MODEL
        }),
    ];
    let body = frames(&chunks);
    let fake = Fake::start(vec![Reply::sse(cut(&body, every(&body, 5)))]).await;
    let client = client(&fake, Duration::from_secs(5));
    let request = ModelRequest {
        model: MODEL.into(),
        system: Some("You are terse.".into()),
        messages: vec![
            Message::user_text("Weather in Lyon, and the time?"),
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text("Let me look.".into()),
                    Part::ToolCall { id: "call_0".into(), name: "get_weather".into(), arguments: json!({"city": "Lyon"}) },
                    Part::ToolCall { id: "call_1".into(), name: "get_time".into(), arguments: json!({}) },
                ],
            },
            Message {
                role: Role::User,
                parts: vec![
                    Part::ToolResult {
                        call_id: "call_0".into(),
                        name: "get_weather".into(),
                        content: "12°C, rain".into(),
                        is_error: false,
                    },
                    Part::ToolResult {
                        call_id: "call_1".into(),
                        name: "get_time".into(),
                        content: "clock unavailable".into(),
                        is_error: true,
                    },
                ],
            },
            Message { role: Role::Assistant, parts: vec![Part::Text("Lyon: 12°C and rain; no clock.".into())] },
            Message::user_text("Now Paris and Oslo."),
        ],
        tools: vec![
            ToolSpec {
                name: "get_weather".into(),
                description: "Current weather for a city.".into(),
                input_schema: json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "city": {"type": "string", "description": "City name"},
                        "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"},
                        "days": {"type": "array", "items": {"type": "integer"}, "maxItems": 7},
                        "source": {"type": ["string", "null"], "format": "uri"}
                    },
                    "required": ["city"]
                }),
            },
            ToolSpec {
                name: "get_time".into(),
                description: "The current time.".into(),
                input_schema: json!({"type": "object", "properties": {}}),
            },
        ],
        max_output_tokens: 1024,
        temperature: Some(0.5),
    };

    let (events, error) = run(&*client, &request).await;

    assert_eq!(error, None);
    assert_eq!(
        without_usage(&events),
        vec![
            StreamEvent::TextDelta("Checking both".into()),
            // Numbered on from the two calls already in the conversation.
            StreamEvent::ToolCall {
                id: "call_2".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris", "units": "metric"})
            },
            StreamEvent::TextDelta(" cities… ".into()),
            StreamEvent::ToolCall {
                id: "call_3".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Oslo", "days": [1, 2], "note": "\"quoted\" ünïcode"}),
            },
            StreamEvent::Finish(StopReason::ToolUse),
        ]
    );
    let last_usage = events.iter().rev().find(|e| matches!(e, StreamEvent::Usage(_)));
    assert_eq!(last_usage, Some(&StreamEvent::Usage(Usage { input_tokens: 80, output_tokens: 31 })));

    let sent = &fake.requests()[0].body;
    assert_eq!(
        sent,
        &json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Lyon, and the time?"}]},
                {"role": "model", "parts": [
                    {"text": "Let me look."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}, "thoughtSignature": "skip_thought_signature_validator"},
                    {"functionCall": {"name": "get_time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"content": "12°C, rain"}}},
                    {"functionResponse": {"name": "get_time", "response": {"error": "clock unavailable"}}}
                ]},
                {"role": "model", "parts": [{"text": "Lyon: 12°C and rain; no clock."}]},
                {"role": "user", "parts": [{"text": "Now Paris and Oslo."}]}
            ],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "tools": [{"functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string", "description": "City name"},
                            "units": {"type": "string", "enum": ["metric", "imperial"]},
                            "days": {"type": "array", "items": {"type": "integer"}, "maxItems": 7},
                            "source": {"type": "string", "nullable": true}
                        },
                        "required": ["city"]
                    }
                },
                {"name": "get_time", "description": "The current time."}
            ]}],
            "generationConfig": {"maxOutputTokens": 1024, "temperature": 0.5}
        })
    );
}

#[tokio::test]
async fn a_function_call_with_its_own_id_keeps_it() {
    let chunk = json!({
        "candidates": [{"content": {"parts": [{"functionCall": {"id": "fc-7f3a", "name": "get_time"}}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
    });
    let fake = Fake::start(vec![Reply::sse(vec![frames(&[chunk]).into()])]).await;
    let (events, error) = run(&*client(&fake, Duration::from_secs(5)), &request("time?")).await;
    assert_eq!(error, None);
    assert_eq!(
        without_usage(&events),
        vec![
            StreamEvent::ToolCall { id: "fc-7f3a".into(), name: "get_time".into(), arguments: json!({}) },
            StreamEvent::Finish(StopReason::ToolUse)
        ]
    );
}

#[tokio::test]
async fn stop_reasons_max_tokens_safety_and_a_blocked_prompt() {
    let blocked =
        json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}});
    let fake = Fake::start(vec![
        Reply::sse(vec![frames(&[text_chunk("Once upon a", 4), final_chunk("MAX_TOKENS", 4, 3, 0)]).into()]),
        Reply::sse(vec![frames(&[text_chunk("Well", 4), final_chunk("SAFETY", 4, 1, 0)]).into()]),
        Reply::sse(vec![frames(&[blocked]).into()]),
    ])
    .await;
    let client = client(&fake, Duration::from_secs(5));

    let (events, error) = run(&*client, &request("a long story")).await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events), "Once upon a");
    assert_eq!(events.last(), Some(&StreamEvent::Finish(StopReason::MaxTokens)));

    let (events, error) = run(&*client, &request("something unsafe")).await;
    assert_eq!(error, None);
    assert_eq!(events.last(), Some(&StreamEvent::Finish(StopReason::Other("SAFETY".into()))));

    let (events, error) = run(&*client, &request("something worse")).await;
    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            StreamEvent::Usage(Usage { input_tokens: 9, output_tokens: 0 }),
            StreamEvent::Finish(StopReason::Other("PROHIBITED_CONTENT".into()))
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Errors and retries

#[tokio::test]
async fn a_400_error_body_gives_googles_message_without_retrying() {
    let message = "* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n";
    let fake = Fake::start(vec![Reply::error(400, "INVALID_ARGUMENT", message), Reply::error(500, "INTERNAL", "not reached")]).await;
    let err = start(&*client(&fake, Duration::from_secs(5)), &request("hi")).await.err().expect("an error");
    assert_eq!(err, LlmError::Http { status: 400, message: message.into() });
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_401_and_a_wrong_key_are_not_retried() {
    let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.";
    let fake = Fake::start(vec![Reply::error(401, "UNAUTHENTICATED", message), Reply::error(500, "INTERNAL", "not reached")]).await;
    let err = start(&*client(&fake, Duration::from_secs(5)), &request("hi")).await.err().expect("an error");
    assert_eq!(err, LlmError::Http { status: 401, message: message.into() });
    assert_eq!(err.kind(), "provider_auth");
    assert_eq!(fake.requests().len(), 1);

    // The fake's own key check, as the real API answers a bad key.
    let fake = Fake::start(vec![]).await;
    let client = client_with_key(&fake, Duration::from_secs(5), "AIza-wrong");
    assert!(!format!("{client:?}").contains("AIza-wrong"), "the key leaks through Debug: {client:?}");
    let err = start(&*client, &request("hi")).await.err().expect("an error");
    assert_eq!(err, LlmError::Http { status: 400, message: "API key not valid. Please pass a valid API key.".into() });
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_wait() {
    let limited = Reply::Plain {
        status: 429,
        content_type: "application/json; charset=UTF-8",
        headers: vec![("retry-after", "1".into())],
        body: json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}})
            .to_string(),
    };
    let ok = Reply::sse(vec![frames(&[text_chunk("fine", 3), final_chunk("STOP", 3, 1, 0)]).into()]);
    let fake = Fake::start(vec![limited, ok]).await;
    let began = Instant::now();
    let (events, error) = run(&*client(&fake, Duration::from_secs(5)), &request("hi")).await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events), "fine");
    assert_eq!(fake.requests().len(), 2);
    assert!(began.elapsed() >= Duration::from_millis(900), "retried after {:?}", began.elapsed());
}

#[tokio::test]
async fn a_429_with_googles_retry_info_waits_the_retry_delay() {
    let limited = Reply::Plain {
        status: 429,
        content_type: "application/json; charset=UTF-8",
        headers: vec![],
        body: json!({"error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.4s"}
            ]
        }})
        .to_string(),
    };
    let ok = Reply::sse(vec![frames(&[text_chunk("fine", 3), final_chunk("STOP", 3, 1, 0)]).into()]);
    let fake = Fake::start(vec![limited, ok]).await;
    let began = Instant::now();
    let (events, error) = run(&*client(&fake, Duration::from_secs(5)), &request("hi")).await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events), "fine");
    assert_eq!(fake.requests().len(), 2);
    // The backoff alone would be at most 10 ms.
    assert!(began.elapsed() >= Duration::from_millis(380), "retried after {:?}", began.elapsed());
}

#[tokio::test]
async fn a_503_twice_then_success() {
    let overloaded = || Reply::error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    let ok = Reply::sse(vec![frames(&[text_chunk("third time", 3), final_chunk("STOP", 3, 2, 0)]).into()]);
    let fake = Fake::start(vec![overloaded(), overloaded(), ok]).await;
    let (events, error) = run(&*client(&fake, Duration::from_secs(5)), &request("hi")).await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events), "third time");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn exhausted_retries_give_the_last_error() {
    let fake = Fake::start(vec![
        Reply::error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        Reply::error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        Reply::error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ),
        Reply::error(503, "UNAVAILABLE", "not reached"),
    ])
    .await;
    let err = start(&*client(&fake, Duration::from_secs(5)), &request("hi")).await.err().expect("an error");
    assert!(matches!(&err, LlmError::Http { status: 500, message } if message.starts_with("An internal error has occurred")), "{err:?}");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn an_error_inside_the_stream_ends_it_as_an_http_error() {
    let error = json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}});
    let fake = Fake::start(vec![Reply::sse(vec![frames(&[text_chunk("partial", 3), error]).into()])]).await;
    let (events, error) = run(&*client(&fake, Duration::from_secs(5)), &request("hi")).await;
    assert_eq!(text_of(&events), "partial");
    assert_eq!(error, Some(LlmError::Http { status: 503, message: "The model is overloaded. Please try again later.".into() }));
}

// ---------------------------------------------------------------------------------------------
// Broken responses

#[tokio::test]
async fn garbage_bodies_are_protocol_errors() {
    let html = Reply::Plain {
        status: 200,
        content_type: "text/html",
        headers: vec![],
        body: "<html><body><h1>502 Bad Gateway</h1></body></html>\n".into(),
    };
    let truncated_json = Reply::sse(vec!["data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hel\r\n\r\n".into()]);
    let not_json = Reply::sse(vec![format!("{}data: this is not json\r\n\r\n", frames(&[text_chunk("ok so far", 2)])).into()]);
    let not_an_object = Reply::sse(vec!["data: [1, 2, 3]\r\n\r\n".into()]);
    let fake = Fake::start(vec![html, truncated_json, not_json, not_an_object]).await;
    let client = client(&fake, Duration::from_secs(5));

    for expected_text in ["", "", "ok so far", ""] {
        let began = Instant::now();
        let (events, error) = run(&*client, &request("hi")).await;
        assert!(matches!(error, Some(LlmError::Protocol(_))), "{events:?} then {error:?}");
        assert_eq!(text_of(&events), expected_text);
        assert!(began.elapsed() < Duration::from_secs(3), "took {:?}", began.elapsed());
    }
}

#[tokio::test]
async fn a_connection_broken_mid_stream_is_interrupted() {
    let body = frames(&[text_chunk("Hello", 3), text_chunk(" there", 3)]);
    let broken = Reply::Sse { chunks: cut(&body, every(&body, 50)), gap: Duration::from_millis(2), end: End::Abort };
    // Ends cleanly, but without a finish reason.
    let short = Reply::sse(cut(&body, every(&body, 50)));
    let fake = Fake::start(vec![broken, short]).await;
    let client = client(&fake, Duration::from_secs(5));

    for _ in 0..2 {
        let (events, error) = run(&*client, &request("hi")).await;
        assert_eq!(text_of(&events), "Hello there");
        assert!(matches!(error, Some(LlmError::Interrupted(_))), "{error:?}");
    }
}

#[tokio::test]
async fn a_silent_stream_times_out_after_the_idle_limit() {
    let silent = Reply::Sse { chunks: vec![frames(&[text_chunk("Hel", 3)]).into()], gap: Duration::ZERO, end: End::Hang };
    let fake = Fake::start(vec![silent]).await;
    let began = Instant::now();
    let (events, error) = run(&*client(&fake, Duration::from_millis(300)), &request("hi")).await;
    assert_eq!(text_of(&events), "Hel");
    assert!(matches!(error, Some(LlmError::Timeout(_))), "{error:?}");
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(3), "timed out after {took:?}");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let mut chunks = vec![frames(&[text_chunk("first", 3)])];
    chunks.extend((0..1000).map(|i| frames(&[text_chunk(&format!(" more {i}"), 3)])));
    let endless = Reply::Sse { chunks: chunks.into_iter().map(Bytes::from).collect(), gap: Duration::from_millis(20), end: End::Close };
    let fake = Fake::start(vec![endless]).await;
    let mut stream = start(&*client(&fake, Duration::from_secs(5)), &request("hi")).await.expect("the call was refused");
    loop {
        match tokio::time::timeout(LIMIT, stream.next()).await.expect("the stream hung") {
            Some(Ok(StreamEvent::TextDelta(text))) => {
                assert_eq!(text, "first");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), fake.cut_off())
        .await
        .expect("the fake still streams 5 s after the client dropped the stream");
}
