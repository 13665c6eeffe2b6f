//! The Anthropic client against a fake Messages API speaking the real wire format
//! (`anthropic_fake`): streaming across awkward chunk boundaries, tool calls, stop reasons,
//! error bodies, retries, broken and silent streams, and cancellation.

mod anthropic_fake;

use std::time::{Duration, Instant};

use anthropic_fake::{End, Fake, Reply};
use anthropic_fake::{
    block_stop, error_event, json_delta, message_delta, message_start, message_stop, ping, text_answer, text_delta, text_start, tool_start,
};
use futures::StreamExt;
use serde_json::{Value, json};
use steward_llm::anthropic::Anthropic;
use steward_llm::{
    ApiKey, ClientConfig, EventStream, LlmError, Message, ModelClient, ModelRequest, Part, ProviderKind, RetryPolicy, Role, StopReason,
    StreamEvent, Timeouts, ToolSpec, Usage,
};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

fn timeouts() -> Timeouts {
    Timeouts { connect: Duration::from_secs(5), response: Duration::from_secs(10), idle: Duration::from_secs(10) }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(5) }
}

fn client_with(fake: &Fake, timeouts: Timeouts, retry: RetryPolicy) -> Anthropic {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ClientConfig {
        kind: ProviderKind::Anthropic,
        base_url: fake.base_url.clone(),
        api_key: Some(ApiKey::new(anthropic_fake::API_KEY)),
        timeouts,
        retry,
    };
    Anthropic::new(config, steward_llm::http_client(&timeouts))
}

fn client(fake: &Fake) -> Anthropic {
    client_with(fake, timeouts(), fast_retries())
}

fn request(text: &str) -> ModelRequest {
    ModelRequest {
        model: "claude-sonnet-4-5".into(),
        system: None,
        messages: vec![Message::user_text(text)],
        tools: vec![],
        max_output_tokens: 256,
        temperature: None,
    }
}

async fn start(client: &Anthropic, request: &ModelRequest) -> Result<EventStream, LlmError> {
    timeout(LIMIT, client.stream(request)).await.expect("the call answers within 30 s")
}

/// Every item of the stream up to its end.
async fn collect(mut stream: EventStream) -> Vec<Result<StreamEvent, LlmError>> {
    timeout(LIMIT, async {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item);
        }
        items
    })
    .await
    .expect("the stream ends within 30 s")
}

/// The items of a stream that must succeed.
async fn events(stream: EventStream) -> Vec<StreamEvent> {
    collect(stream).await.into_iter().collect::<Result<_, _>>().expect("no error in the stream")
}

fn text_of(events: &[StreamEvent]) -> String {
    events.iter().filter_map(|e| if let StreamEvent::TextDelta(t) = e { Some(t.as_str()) } else { None }).collect()
}

/// The error that ended a stream, checking it came last.
fn final_error(items: &[Result<StreamEvent, LlmError>]) -> LlmError {
    let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "exactly one error: {items:?}");
    items.last().unwrap().clone().expect_err("the error is the last item")
}

#[tokio::test]
async fn text_streams_in_many_deltas_across_awkward_chunk_boundaries() {
    let pieces = ["Bonjour", ", ", "héllo wörld", " — ", "日本語", " and ", "🎉", "!", " {\"not\": \"json\"}"];
    let transcript = text_answer(&pieces, "end_turn");
    // Cuts inside a 3-byte and a 4-byte character, inside a `data:` field name and inside a
    // JSON object, on top of a cut every 7 bytes.
    let cuts = [
        transcript.find('日').unwrap() + 1,
        transcript.find('🎉').unwrap() + 2,
        transcript.find("data:").unwrap() + 2,
        transcript.find("text_delta").unwrap() + 4,
    ];
    let fake = Fake::start(vec![Reply::chunked(&transcript, 7, &cuts, End::Complete)]).await;

    let got = events(start(&client(&fake), &request("hi")).await.unwrap()).await;

    let deltas = got.iter().filter(|e| matches!(e, StreamEvent::TextDelta(_))).count();
    assert_eq!(deltas, pieces.len(), "one TextDelta per text_delta event: {got:?}");
    assert_eq!(text_of(&got), pieces.concat());
    assert_eq!(got.first(), Some(&StreamEvent::Usage(Usage { input_tokens: 25, output_tokens: 1 })));
    assert_eq!(
        got[got.len() - 2],
        StreamEvent::Usage(Usage { input_tokens: 25, output_tokens: 15 }),
        "the final usage comes before Finish"
    );
    assert_eq!(got.last(), Some(&StreamEvent::Finish(StopReason::EndTurn)));
    assert_eq!(fake.requests().len(), 1);
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Current weather in a city.".into(),
        input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}),
    }
}

/// A conversation that went through one tool round trip (one result failed), with
/// consecutive user messages for the client to merge.
fn round_trip_request() -> ModelRequest {
    let call = |id: &str, city: &str| Part::ToolCall { id: id.into(), name: "get_weather".into(), arguments: json!({"city": city}) };
    let result = |id: &str, content: &str, is_error| Part::ToolResult {
        call_id: id.into(),
        name: "get_weather".into(),
        content: content.into(),
        is_error,
    };
    ModelRequest {
        model: "claude-sonnet-4-5".into(),
        system: Some("You are a weather bot.".into()),
        messages: vec![
            Message::user_text("Weather in Paris and Tokyo?"),
            Message {
                role: Role::Assistant,
                parts: vec![Part::Text("Checking both.".into()), call("toolu_01", "Paris"), call("toolu_02", "Tokyo")],
            },
            Message { role: Role::User, parts: vec![result("toolu_01", "18°C, sunny", false)] },
            Message { role: Role::User, parts: vec![result("toolu_02", "upstream timed out", true)] },
            Message::user_text("Try Tokyo again, and Oslo."),
        ],
        tools: vec![weather_tool()],
        max_output_tokens: 1024,
        temperature: Some(0.25),
    }
}

#[tokio::test]
async fn interleaved_text_and_tool_calls_and_the_request_wire_format() {
    let mut t = message_start(40, 100) + &text_start(0) + &text_delta(0, "Let me ") + &tool_start(1, "toolu_03", "get_weather");
    t += &json_delta(1, "");
    t += &tool_start(2, "toolu_04", "get_weather");
    for (index, part) in [
        (1, "{\"ci"),
        (2, "{\"city\": \"O"),
        (0, "check "),
        (1, "ty\": \"Tok"),
        (2, "slo\", \"unit\""),
        (1, "yo\"}"),
        (0, "again."),
        (2, ": \"c\"}"),
    ] {
        t += &if index == 0 { text_delta(0, part) } else { json_delta(index, part) };
    }
    t += &ping();
    t += &(block_stop(2) + &block_stop(0) + &block_stop(1) + &message_delta("tool_use", 61) + &message_stop());
    let fake = Fake::start(vec![Reply::chunked(&t, 5, &[], End::Complete)]).await;

    let got = events(start(&client(&fake), &round_trip_request()).await.unwrap()).await;

    let calls: Vec<_> = got.iter().filter(|e| matches!(e, StreamEvent::ToolCall { .. })).cloned().collect();
    assert_eq!(
        calls,
        vec![
            StreamEvent::ToolCall { id: "toolu_04".into(), name: "get_weather".into(), arguments: json!({"city": "Oslo", "unit": "c"}) },
            StreamEvent::ToolCall { id: "toolu_03".into(), name: "get_weather".into(), arguments: json!({"city": "Tokyo"}) },
        ],
        "in the order their blocks stopped"
    );
    assert_eq!(text_of(&got), "Let me check again.");
    // Cached prompt tokens count as input.
    assert_eq!(got[0], StreamEvent::Usage(Usage { input_tokens: 140, output_tokens: 1 }));
    assert_eq!(
        got[got.len() - 2..],
        [StreamEvent::Usage(Usage { input_tokens: 140, output_tokens: 61 }), StreamEvent::Finish(StopReason::ToolUse)]
    );

    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0].headers;
    assert_eq!(headers["x-api-key"], anthropic_fake::API_KEY);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("authorization").is_none(), "the key goes in x-api-key only");
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a weather bot.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Tokyo?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Tokyo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C, sunny", "is_error": false},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "upstream timed out", "is_error": true},
                {"type": "text", "text": "Try Tokyo again, and Oslo."},
            ]},
        ],
        "tools": [{"name": "get_weather", "description": "Current weather in a city.", "input_schema": weather_tool().input_schema}],
        "temperature": 0.25,
        "stream": true,
    });
    assert_eq!(seen[0].body, expected);
}

#[tokio::test]
async fn tool_results_go_before_text_and_empty_text_is_dropped_when_messages_merge() {
    let fake = Fake::start(vec![Reply::sse(&text_answer(&["ok"], "end_turn"))]).await;
    let mut req = request("Look it up.");
    req.messages.push(Message {
        role: Role::Assistant,
        parts: vec![
            Part::Text(String::new()),
            Part::ToolCall { id: "toolu_01".into(), name: "search".into(), arguments: Value::String("{oops".into()) },
        ],
    });
    req.messages.push(Message::user_text("(the tool said:)"));
    req.messages.push(Message {
        role: Role::User,
        parts: vec![Part::ToolResult {
            call_id: "toolu_01".into(),
            name: "search".into(),
            content: "bad arguments".into(),
            is_error: true,
        }],
    });

    events(start(&client(&fake), &req).await.unwrap()).await;

    let body = &fake.requests()[0].body;
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "toolu_01", "name": "search", "input": {}}]),
        "raw arguments are sent as {{}}"
    );
    assert_eq!(
        body["messages"][2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "bad arguments", "is_error": true},
            {"type": "text", "text": "(the tool said:)"},
        ])
    );
}

#[tokio::test]
async fn a_part_in_the_wrong_role_is_refused_before_sending() {
    let fake = Fake::start(vec![]).await;
    let mut req = request("hi");
    req.messages[0].parts.push(Part::ToolCall { id: "toolu_01".into(), name: "search".into(), arguments: json!({}) });
    let err = start(&client(&fake), &req).await.err().expect("refused");
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
    assert_eq!(fake.requests().len(), 0);
}

#[tokio::test]
async fn invalid_tool_arguments_are_kept_raw_and_missing_ones_are_an_empty_object() {
    let t = message_start(10, 0)
        + &tool_start(0, "toolu_a", "search")
        + &json_delta(0, "{\"query\": \"unterminated")
        + &block_stop(0)
        + &tool_start(1, "toolu_b", "list_files")
        + &block_stop(1)
        + &message_delta("tool_use", 30)
        + &message_stop();
    let fake = Fake::start(vec![Reply::sse(&t)]).await;

    let got = events(start(&client(&fake), &request("go")).await.unwrap()).await;

    let calls: Vec<_> = got.iter().filter(|e| matches!(e, StreamEvent::ToolCall { .. })).cloned().collect();
    assert_eq!(
        calls,
        vec![
            StreamEvent::ToolCall {
                id: "toolu_a".into(),
                name: "search".into(),
                arguments: Value::String("{\"query\": \"unterminated".into())
            },
            StreamEvent::ToolCall { id: "toolu_b".into(), name: "list_files".into(), arguments: json!({}) },
        ]
    );
}

#[tokio::test]
async fn max_tokens_stop_reason_and_optional_fields_omitted() {
    let fake = Fake::start(vec![Reply::sse(&text_answer(&["It was a dark and"], "max_tokens"))]).await;

    let got = events(start(&client(&fake), &request("Write a novel.")).await.unwrap()).await;

    assert_eq!(got.last(), Some(&StreamEvent::Finish(StopReason::MaxTokens)));
    let body = &fake.requests()[0].body;
    for absent in ["system", "tools", "temperature"] {
        assert!(body.get(absent).is_none(), "{absent} is omitted when unset: {body}");
    }
    assert_eq!(body["max_tokens"], 256);
}

#[tokio::test]
async fn other_stop_reasons_are_kept_verbatim() {
    let fake =
        Fake::start(vec![Reply::sse(&text_answer(&["1, 2, 3"], "stop_sequence")), Reply::sse(&text_answer(&["I can't"], "refusal"))]).await;
    let client = client(&fake);
    for expected in ["stop_sequence", "refusal"] {
        let got = events(start(&client, &request("count")).await.unwrap()).await;
        assert_eq!(got.last(), Some(&StreamEvent::Finish(StopReason::Other(expected.into()))));
    }
}

#[tokio::test]
async fn http_400_returns_the_provider_message_without_retry() {
    let fake =
        Fake::start(vec![Reply::error(400, "invalid_request_error", "max_tokens: 999999 > 64000, which is the maximum allowed")]).await;

    let err = start(&client(&fake), &request("hi")).await.err().expect("an error");

    assert_eq!(err, LlmError::Http { status: 400, message: "max_tokens: 999999 > 64000, which is the maximum allowed".into() });
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn http_401_is_not_retried() {
    let fake = Fake::start(vec![]).await;
    let timeouts = timeouts();
    let config = ClientConfig {
        kind: ProviderKind::Anthropic,
        base_url: format!("{}/", fake.base_url),
        api_key: Some(ApiKey::new("sk-ant-wrong")),
        timeouts,
        retry: fast_retries(),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Anthropic::new(config, steward_llm::http_client(&timeouts));

    let err = start(&client, &request("hi")).await.err().expect("an error");

    assert_eq!(err, LlmError::Http { status: 401, message: "fake: invalid x-api-key".into() });
    assert_eq!(err.kind(), "provider_auth");
    assert_eq!(fake.requests().len(), 1);
    assert!(!format!("{client:?}").contains("sk-ant-wrong"), "Debug never shows the key");
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let mut limited = Reply::error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit");
    if let Reply::Status { headers, .. } = &mut limited {
        headers.push(("retry-after", "1".into()));
    }
    let fake = Fake::start(vec![limited, Reply::sse(&text_answer(&["ok"], "end_turn"))]).await;
    let began = Instant::now();

    let got = events(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert_eq!(text_of(&got), "ok");
    assert_eq!(fake.requests().len(), 2);
    assert!(began.elapsed() >= Duration::from_millis(900), "waited {:?}, retry-after asked for 1 s", began.elapsed());
}

#[tokio::test]
async fn overloaded_twice_then_success() {
    let fake = Fake::start(vec![
        Reply::error(529, "overloaded_error", "Overloaded"),
        Reply::error(529, "overloaded_error", "Overloaded"),
        Reply::sse(&text_answer(&["finally"], "end_turn")),
    ])
    .await;

    let got = events(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert_eq!(text_of(&got), "finally");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn exhausted_retries_return_the_last_error() {
    let fake = Fake::start(vec![
        Reply::error(529, "overloaded_error", "Overloaded (1)"),
        Reply::error(503, "api_error", "Service unavailable (2)"),
        Reply::error(529, "overloaded_error", "Overloaded (3)"),
        Reply::sse(&text_answer(&["too late"], "end_turn")),
    ])
    .await;

    let err = start(&client(&fake), &request("hi")).await.err().expect("an error");

    assert_eq!(err, LlmError::Http { status: 529, message: "Overloaded (3)".into() });
    assert_eq!(fake.requests().len(), 3, "max_attempts is 3");
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_the_stream_with_an_http_error() {
    let t = message_start(10, 0)
        + &text_start(0)
        + &text_delta(0, "Partial")
        + &error_event("overloaded_error", "Overloaded")
        + &message_stop();
    let fake = Fake::start(vec![Reply::chunked(&t, 64, &[], End::Complete)]).await;

    let items = collect(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert_eq!(items[1], Ok(StreamEvent::TextDelta("Partial".into())));
    assert_eq!(final_error(&items), LlmError::Http { status: 529, message: "Overloaded".into() });
    assert_eq!(fake.requests().len(), 1, "a started stream is never retried");
}

#[tokio::test]
async fn invalid_json_in_a_data_line_is_a_protocol_error() {
    let t = message_start(10, 0)
        + &text_start(0)
        + "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\n\n";
    let fake = Fake::start(vec![Reply::chunked(&t, 16, &[], End::Hang)]).await;

    let items = collect(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert!(matches!(final_error(&items), LlmError::Protocol(_)), "{items:?}");
}

#[tokio::test]
async fn a_body_that_is_not_an_event_stream_is_a_protocol_error() {
    let fake = Fake::start(vec![Reply::sse("<html><body>502 Bad Gateway</body></html>\n")]).await;

    let items = collect(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert!(matches!(final_error(&items), LlmError::Protocol(_)), "{items:?}");
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_interrupted() {
    let t = message_start(10, 0) + &text_start(0) + &text_delta(0, "Half an ans");
    let fake = Fake::start(vec![Reply::chunked(&t, 50, &[], End::Abort)]).await;

    let items = collect(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert!(items.contains(&Ok(StreamEvent::TextDelta("Half an ans".into()))), "{items:?}");
    assert!(matches!(final_error(&items), LlmError::Interrupted(_)), "{items:?}");
}

#[tokio::test]
async fn a_body_that_ends_without_message_stop_is_interrupted() {
    let t = message_start(10, 0) + &text_start(0) + &text_delta(0, "Half") + &block_stop(0) + &message_delta("end_turn", 3);
    let fake = Fake::start(vec![Reply::sse(&t)]).await;

    let items = collect(start(&client(&fake), &request("hi")).await.unwrap()).await;

    assert!(matches!(final_error(&items), LlmError::Interrupted(_)), "{items:?}");
    assert!(!items.iter().any(|i| matches!(i, Ok(StreamEvent::Finish(_)))), "no Finish without message_stop");
}

#[tokio::test]
async fn silence_beyond_the_idle_timeout_is_a_timeout() {
    let t = message_start(10, 0) + &text_start(0) + &text_delta(0, "Thinking");
    let fake = Fake::start(vec![Reply::chunked(&t, 1000, &[], End::Hang)]).await;
    let idle = Timeouts { idle: Duration::from_millis(300), ..timeouts() };
    let mut stream = start(&client_with(&fake, idle, fast_retries()), &request("hi")).await.unwrap();

    let mut items = Vec::new();
    let mut last_data = Instant::now();
    while let Some(item) = timeout(LIMIT, stream.next()).await.expect("the stream yields within 30 s") {
        if item.is_ok() {
            last_data = Instant::now();
        }
        items.push(item);
    }

    assert!(matches!(final_error(&items), LlmError::Timeout(_)), "{items:?}");
    let silent = last_data.elapsed();
    assert!(silent >= Duration::from_millis(250) && silent < Duration::from_secs(5), "timed out after {silent:?} of silence");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let t = message_start(10, 0) + &text_start(0) + &text_delta(0, "First");
    let fake = Fake::start(vec![Reply::chunked(&t, 1000, &[], End::PingForever)]).await;
    let mut stream = start(&client(&fake), &request("hi")).await.unwrap();

    let first_delta = timeout(LIMIT, async {
        loop {
            match stream.next().await {
                Some(Ok(StreamEvent::TextDelta(text))) => return text,
                Some(Ok(_)) => {}
                other => panic!("expected a delta, got {other:?}"),
            }
        }
    })
    .await
    .expect("a delta within 30 s");
    assert_eq!(first_delta, "First");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.bodies_dropped(), 0, "the connection is alive while the stream is held");

    drop(stream);

    timeout(Duration::from_secs(5), fake.body_dropped()).await.expect("the server sees the connection close within 5 s");
}
