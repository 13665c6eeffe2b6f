//! The OpenAI Chat Completions client against a fake server speaking the real wire format:
//! streamed text and tool calls cut at awkward byte boundaries, the request it sends, stop
//! reasons, error statuses and retries, broken, garbled and silent streams, and cancellation.

mod common;
mod openai_fake;

use std::time::{Duration, Instant};

use common::{LIMIT, drain};
use futures::StreamExt;
use openai_fake::{End, Fake, Reply, chunk, cut_at, cut_every, sse_body, usage_chunk};
use serde_json::{Value, json};
use steward_llm::{
    ApiKey, ClientConfig, EventStream, LlmError, Message, ModelClient, ModelRequest, Part, ProviderKind, RetryPolicy, Role, StopReason,
    StreamEvent, Timeouts, ToolSpec, Usage,
};

const KEY: &str = "sk-test-9f8e7d6c";

fn config(fake: &Fake, kind: ProviderKind, key: Option<&str>) -> ClientConfig {
    ClientConfig {
        kind,
        base_url: fake.base_url.clone(),
        api_key: key.map(ApiKey::new),
        timeouts: Timeouts { connect: Duration::from_secs(5), response: Duration::from_secs(10), idle: Duration::from_secs(5) },
        retry: RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(5) },
    }
}

fn client(config: ClientConfig) -> std::sync::Arc<dyn ModelClient> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = steward_llm::http_client(&config.timeouts);
    steward_llm::client(config, http)
}

fn hello_request() -> ModelRequest {
    ModelRequest {
        model: "gpt-4o-mini".into(),
        system: None,
        messages: vec![Message::user_text("Say hello")],
        tools: vec![],
        max_output_tokens: 256,
        temperature: None,
    }
}

async fn start_stream(client: &dyn ModelClient, request: &ModelRequest) -> Result<EventStream, LlmError> {
    tokio::time::timeout(LIMIT, client.stream(request)).await.expect("the call was not accepted or refused in time")
}

async fn run(client: &dyn ModelClient, request: &ModelRequest) -> (Vec<StreamEvent>, Option<LlmError>) {
    match start_stream(client, request).await {
        Ok(stream) => drain(stream).await,
        Err(e) => (vec![], Some(e)),
    }
}

fn text_stream(texts: &[&str], finish: &str) -> String {
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": "", "refusal": null}), None)];
    chunks.extend(texts.iter().map(|t| chunk(json!({"content": t}), None)));
    chunks.push(chunk(json!({}), Some(finish)));
    chunks.push(usage_chunk(9, texts.len() as u64));
    sse_body(&chunks, true)
}

#[tokio::test]
async fn text_arrives_in_deltas_across_awkward_chunk_boundaries() {
    let texts = ["Hel", "lo", ", wö", "rld", " 🦀", " — ", "ça ", "va", "?", " Bye", "."];
    let body = text_stream(&texts, "stop");
    let nth = |needle: &str, n: usize| body.match_indices(needle).nth(n).unwrap().0;
    let cuts = vec![
        nth("🦀", 0) + 2,           // inside a 4-byte character
        nth("ö", 0) + 1,            // inside a 2-byte character
        nth("data:", 3) + 2,        // inside `data:`
        nth("\"choices\"", 5) + 4,  // inside a JSON key
        nth("\"content\"", 7) + 11, // inside a JSON string
        nth("\n\n", 8) + 1,         // between the two newlines ending a frame
        nth("prompt_tokens", 0),    // inside the usage chunk
        nth("[DONE]", 0) + 3,       // inside the terminal marker
    ];
    let fake = Fake::start(Some(KEY), vec![Reply::sse(cut_at(&body, cuts))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &hello_request()).await;

    assert_eq!(error, None);
    let mut expected: Vec<StreamEvent> = texts.iter().map(|t| StreamEvent::TextDelta((*t).into())).collect();
    expected.push(StreamEvent::Usage(Usage { input_tokens: 9, output_tokens: texts.len() as u64 }));
    expected.push(StreamEvent::Finish(StopReason::EndTurn));
    assert_eq!(events, expected);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let headers = &requests[0].headers;
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["accept"], "text/event-stream");
    assert_eq!(
        requests[0].body,
        json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hello"}],
            "max_completion_tokens": 256,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

fn tool_round_trip_request() -> ModelRequest {
    let weather_schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]});
    let time_schema = json!({"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]});
    ModelRequest {
        model: "gpt-4.1".into(),
        system: Some("You are a travel assistant.".into()),
        messages: vec![
            Message::user_text("Weather in Paris and time in Tokyo?"),
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text("Let me look.".into()),
                    Part::ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: json!({"city": "Paris"}) },
                ],
            },
            Message {
                role: Role::User,
                parts: vec![Part::ToolResult {
                    call_id: "call_1".into(),
                    name: "get_weather".into(),
                    content: "upstream timed out".into(),
                    is_error: true,
                }],
            },
            Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall {
                    id: "call_2".into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Paris", "unit": "c"}),
                }],
            },
            Message {
                role: Role::User,
                parts: vec![
                    Part::ToolResult {
                        call_id: "call_2".into(),
                        name: "get_weather".into(),
                        content: "18°C, clear".into(),
                        is_error: false,
                    },
                    Part::Text("And Tokyo's time, please.".into()),
                ],
            },
        ],
        tools: vec![
            ToolSpec { name: "get_weather".into(), description: "Current weather of a city.".into(), input_schema: weather_schema },
            ToolSpec { name: "get_time".into(), description: "Local time in a time zone.".into(), input_schema: time_schema },
        ],
        max_output_tokens: 1024,
        temperature: Some(0.25),
    }
}

#[tokio::test]
async fn interleaved_text_and_two_tool_calls_and_the_request_shape() {
    let call = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [call]}), None)
    };
    let chunks = vec![
        chunk(json!({"role": "assistant", "content": null, "refusal": null}), None),
        chunk(json!({"content": "Checking "}), None),
        call(0, Some("call_a"), Some("get_weather"), ""),
        call(0, None, None, "{\"ci"),
        chunk(json!({"content": "both"}), None),
        call(1, Some("call_b"), Some("get_time"), "{\"tz\": \"Asia/"),
        call(0, None, None, "ty\": \"Pa"),
        call(1, None, None, "Tokyo\"}"),
        call(0, None, None, "ris\", \"unit\": \"c\"}"),
        chunk(json!({"content": " cities."}), None),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(321, 45),
    ];
    let body = sse_body(&chunks, true);
    let fake = Fake::start(Some(KEY), vec![Reply::sse(cut_every(&body, 7))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &tool_round_trip_request()).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            StreamEvent::TextDelta("Checking ".into()),
            StreamEvent::TextDelta("both".into()),
            StreamEvent::TextDelta(" cities.".into()),
            StreamEvent::ToolCall { id: "call_a".into(), name: "get_weather".into(), arguments: json!({"city": "Paris", "unit": "c"}) },
            StreamEvent::ToolCall { id: "call_b".into(), name: "get_time".into(), arguments: json!({"tz": "Asia/Tokyo"}) },
            StreamEvent::Usage(Usage { input_tokens: 321, output_tokens: 45 }),
            StreamEvent::Finish(StopReason::ToolUse),
        ]
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(
        *body,
        json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "You are a travel assistant."},
                {"role": "user", "content": "Weather in Paris and time in Tokyo?"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ERROR: upstream timed out"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_2", "content": "18°C, clear"},
                {"role": "user", "content": "And Tokyo's time, please."}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city.", "parameters": tool_round_trip_request().tools[0].input_schema}},
                {"type": "function", "function": {"name": "get_time", "description": "Local time in a time zone.", "parameters": tool_round_trip_request().tools[1].input_schema}}
            ],
            "max_completion_tokens": 1024,
            "temperature": 0.25,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
    // The arguments go as JSON strings that parse back to what the model sent.
    let args: Value = serde_json::from_str(body["messages"][4]["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
}

#[tokio::test]
async fn tool_arguments_that_are_empty_or_invalid() {
    let chunks = vec![
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_y", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"rust"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ];
    let fake = Fake::start(Some(KEY), vec![Reply::sse(cut_every(&sse_body(&chunks, true), 11))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &hello_request()).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            StreamEvent::ToolCall { id: "call_x".into(), name: "now".into(), arguments: json!({}) },
            StreamEvent::ToolCall { id: "call_y".into(), name: "search".into(), arguments: Value::String("{\"q\": \"rust".into()) },
            StreamEvent::Finish(StopReason::ToolUse),
        ]
    );
}

#[tokio::test]
async fn compatible_server_without_key_usage_or_done() {
    // Like some local servers: whole tool calls without `index`, `stop` after them, no usage
    // and no `[DONE]` before the body ends.
    let tool_chunks = vec![
        chunk(json!({"role": "assistant", "content": "Sure."}), None),
        chunk(json!({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\"/\"}"}}]}), None),
        chunk(
            json!({"tool_calls": [{"id": "c2", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\"/tmp\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("stop")),
    ];
    let text_chunks = vec![chunk(json!({"content": "Done."}), None), chunk(json!({}), Some("stop"))];
    let replies = vec![Reply::sse(cut_every(&sse_body(&tool_chunks, false), 13)), Reply::sse(cut_every(&sse_body(&text_chunks, false), 5))];
    let fake = Fake::start(None, replies).await;
    let client = client(config(&fake, ProviderKind::OpenAiCompatible, None));

    let (events, error) = run(client.as_ref(), &hello_request()).await;
    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            StreamEvent::TextDelta("Sure.".into()),
            StreamEvent::ToolCall { id: "c1".into(), name: "ls".into(), arguments: json!({"path": "/"}) },
            StreamEvent::ToolCall { id: "c2".into(), name: "ls".into(), arguments: json!({"path": "/tmp"}) },
            StreamEvent::Finish(StopReason::ToolUse),
        ]
    );

    let (events, error) = run(client.as_ref(), &hello_request()).await;
    assert_eq!(error, None);
    assert_eq!(events, vec![StreamEvent::TextDelta("Done.".into()), StreamEvent::Finish(StopReason::EndTurn)]);

    for request in fake.requests() {
        assert!(request.headers.get("authorization").is_none(), "no key, no header");
        assert_eq!(request.body["max_tokens"], json!(256));
        assert!(request.body.get("max_completion_tokens").is_none());
    }
}

#[tokio::test]
async fn max_tokens_and_other_stop_reasons() {
    let replies = vec![
        Reply::sse(cut_every(&text_stream(&["Once upon a"], "length"), 17)),
        Reply::sse(cut_every(&text_stream(&["I can"], "content_filter"), 17)),
    ];
    let fake = Fake::start(Some(KEY), replies).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &hello_request()).await;
    assert_eq!(error, None);
    assert_eq!(events.last(), Some(&StreamEvent::Finish(StopReason::MaxTokens)));
    assert_eq!(events[0], StreamEvent::TextDelta("Once upon a".into()));

    let (events, error) = run(client.as_ref(), &hello_request()).await;
    assert_eq!(error, None);
    assert_eq!(events.last(), Some(&StreamEvent::Finish(StopReason::Other("content_filter".into()))));
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let message = "Invalid value for 'temperature': expected a number between 0 and 2.";
    let fake = Fake::start(Some(KEY), vec![Reply::error(400, message), Reply::sse(cut_every(&text_stream(&["x"], "stop"), 50))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &hello_request()).await;

    assert!(events.is_empty());
    assert_eq!(error, Some(LlmError::Http { status: 400, message: message.into() }));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn wrong_key_is_not_retried_and_never_shown() {
    let fake = Fake::start(Some(KEY), vec![]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some("sk-wrong-1234")));

    let (_, error) = run(client.as_ref(), &hello_request()).await;

    let Some(LlmError::Http { status: 401, message }) = error else { panic!("expected a 401, got {error:?}") };
    assert!(message.starts_with("Incorrect API key provided"), "{message}");
    assert_eq!(fake.requests().len(), 1);
    assert!(!format!("{client:?}").contains("sk-wrong-1234"), "the key leaked into Debug: {client:?}");
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let limited = Reply::Plain {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
            .to_string(),
    };
    let fake = Fake::start(Some(KEY), vec![limited, Reply::sse(cut_every(&text_stream(&["ok"], "stop"), 40))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let started = Instant::now();
    let (events, error) = run(client.as_ref(), &hello_request()).await;

    assert_eq!(error, None);
    assert_eq!(events.last(), Some(&StreamEvent::Finish(StopReason::EndTurn)));
    assert_eq!(fake.requests().len(), 2);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(10), "waited {waited:?}");
}

#[tokio::test]
async fn unavailable_twice_then_success() {
    let replies =
        vec![Reply::error(503, "overloaded"), Reply::error(503, "overloaded"), Reply::sse(cut_every(&text_stream(&["hi"], "stop"), 40))];
    let fake = Fake::start(Some(KEY), replies).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &hello_request()).await;

    assert_eq!(error, None);
    assert_eq!(events[0], StreamEvent::TextDelta("hi".into()));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn exhausted_retries_return_the_last_error() {
    let replies = vec![Reply::error(500, "first failure"), Reply::error(502, "second failure"), Reply::error(503, "third failure")];
    let fake = Fake::start(Some(KEY), replies).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (_, error) = run(client.as_ref(), &hello_request()).await;

    assert_eq!(error, Some(LlmError::Http { status: 503, message: "third failure".into() }));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let html = Reply::Plain {
        status: 200,
        headers: vec![("content-type", "text/html; charset=utf-8".into())],
        body: "<!DOCTYPE html><html><body>Welcome to nginx!</body></html>".into(),
    };
    let ignored_stream =
        Reply::Plain { status: 200, headers: vec![], body: json!({"object": "chat.completion", "choices": []}).to_string() };
    let good = chunk(json!({"content": "fine"}), None);
    let bad_json = format!("data: {good}\n\ndata: {{\"choices\": [{{\"index\": 0, \"delta\": {{\"content\": \"x\"\n\ndata: [DONE]\n\n");
    let bad_shape = format!("data: {good}\n\ndata: {{\"choices\": \"nope\"}}\n\ndata: [DONE]\n\n");
    let fake =
        Fake::start(Some(KEY), vec![html, ignored_stream, Reply::sse(cut_every(&bad_json, 9)), Reply::sse(cut_every(&bad_shape, 9))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    for expected_events in [0, 0, 1, 1] {
        let (events, error) = run(client.as_ref(), &hello_request()).await;
        assert!(matches!(error, Some(LlmError::Protocol(_))), "{error:?}");
        assert_eq!(events.len(), expected_events, "{events:?}");
    }
    assert_eq!(fake.requests().len(), 4, "no retries");
}

#[tokio::test]
async fn in_stream_error_ends_the_stream() {
    let error = json!({"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}});
    let body = sse_body(&[chunk(json!({"content": "Partial"}), None), error], false);
    let fake = Fake::start(Some(KEY), vec![Reply::sse(cut_every(&body, 20))]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let (events, error) = run(client.as_ref(), &hello_request()).await;

    assert_eq!(events, vec![StreamEvent::TextDelta("Partial".into())]);
    let Some(LlmError::Http { message, .. }) = error else { panic!("expected an HTTP error, got {error:?}") };
    assert!(message.starts_with("The server had an error"), "{message}");
}

#[tokio::test]
async fn dropped_connection_or_early_end_is_interrupted() {
    let body = sse_body(&[chunk(json!({"content": "one"}), None), chunk(json!({"content": " two"}), None)], false);
    let replies = vec![
        Reply::Sse { chunks: cut_every(&body, 25), gap: Duration::from_millis(2), end: End::Abort },
        Reply::Sse { chunks: cut_every(&body, 25), gap: Duration::from_millis(2), end: End::Close },
    ];
    let fake = Fake::start(Some(KEY), replies).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    for _ in 0..2 {
        let (events, error) = run(client.as_ref(), &hello_request()).await;
        assert_eq!(events, vec![StreamEvent::TextDelta("one".into()), StreamEvent::TextDelta(" two".into())]);
        assert!(matches!(error, Some(LlmError::Interrupted(_))), "{error:?}");
    }
}

#[tokio::test]
async fn silent_stream_times_out() {
    let body = sse_body(&[chunk(json!({"content": "thinking"}), None)], false);
    let fake =
        Fake::start(Some(KEY), vec![Reply::Sse { chunks: cut_every(&body, 30), gap: Duration::from_millis(2), end: End::Hang }]).await;
    let mut config = config(&fake, ProviderKind::OpenAi, Some(KEY));
    config.timeouts.idle = Duration::from_millis(300);
    let client = client(config);

    let stream = start_stream(client.as_ref(), &hello_request()).await.unwrap();
    let started = Instant::now();
    let (events, error) = drain(stream).await;

    assert_eq!(events, vec![StreamEvent::TextDelta("thinking".into())]);
    assert!(matches!(error, Some(LlmError::Timeout(_))), "{error:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let texts: Vec<String> = (0..400).map(|i| format!("word{i} ")).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let body = text_stream(&texts, "stop");
    let chunks = cut_every(&body, 200);
    let fake = Fake::start(Some(KEY), vec![Reply::Sse { chunks, gap: Duration::from_millis(20), end: End::Close }]).await;
    let client = client(config(&fake, ProviderKind::OpenAi, Some(KEY)));

    let mut stream = start_stream(client.as_ref(), &hello_request()).await.unwrap();
    let first = tokio::time::timeout(LIMIT, stream.next()).await.unwrap();
    assert_eq!(first, Some(Ok(StreamEvent::TextDelta("word0 ".into()))));
    drop(stream);

    tokio::time::timeout(Duration::from_secs(5), fake.cut_off()).await.expect("the server still streams to a dropped client");
}
