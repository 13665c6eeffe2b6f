//! Reading a Steward event stream (§4) the way a client does: the SSE frames of a body, parsed
//! once here instead of by hand in every test. Only the subset of the SSE format the server
//! writes is meaningful (`id`, `event`, `data` fields and `:` comments), but lines are read as
//! the format says: one space after the colon is dropped, `data` lines are joined with `\n`.
//!
//! It asserts nothing: what a frame must hold is the test's to say.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// One frame: the fields of one block of lines ended by a blank line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseFrame {
    /// Its `id` field, when it had one.
    pub id: Option<String>,
    /// Its `event` field (the event type), when it had one.
    pub event: Option<String>,
    /// Its `data` lines, joined with `\n`; `None` when it had none.
    pub data: Option<String>,
    /// Whether it held a comment line (`: heartbeat`).
    pub comment: bool,
}

impl SseFrame {
    /// Its data as JSON; `None` when it had no data or the data is not JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(self.data.as_deref()?).ok()
    }
}

/// Every frame of `text`, the last one too when its closing blank line is missing; blocks with
/// no line at all are skipped.
pub fn parse_frames(text: &str) -> Vec<SseFrame> {
    text.split("\n\n").filter_map(parse_block).collect()
}

/// Frames from a body that arrives in chunks cut anywhere, even inside a UTF-8 character:
/// [`SseDecoder::push`] returns the frames a chunk completes and keeps the rest.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
}

impl SseDecoder {
    /// Adds `chunk` and returns, in order, the frames that are now complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        self.pending.extend_from_slice(chunk);
        let mut frames = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            frames.extend(parse_block(&String::from_utf8_lossy(&block[..end])));
        }
        frames
    }
}

fn parse_block(block: &str) -> Option<SseFrame> {
    let mut frame = SseFrame::default();
    let mut any = false;
    for line in block.lines().filter(|l| !l.is_empty()) {
        any = true;
        if line.starts_with(':') {
            frame.comment = true;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => frame.id = Some(value.to_owned()),
            "event" => frame.event = Some(value.to_owned()),
            "data" => match &mut frame.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => frame.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    any.then_some(frame)
}

/// Reads `res`'s body as text until `done` holds for all of it, the body ends (or fails), or
/// `timeout` passes; returns what arrived. Each chunk is decoded on its own, lossily.
pub async fn read_until(res: reqwest::Response, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let mut body = res.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&text) && tokio::time::Instant::now() < deadline {
        tokio::select! {
            c = body.next() => match c { Some(Ok(c)) => text.push_str(&String::from_utf8_lossy(&c)), _ => break },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "id: evt_1\nevent: run_started\ndata: {\"a\":1}\n\n: heartbeat\n\nevent: x\ndata: one\ndata: two\n\n";

    #[test]
    fn frames_comments_and_joined_data() {
        let frames = parse_frames(STREAM);
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!((frames[0].id.as_deref(), frames[0].event.as_deref()), (Some("evt_1"), Some("run_started")));
        assert_eq!(frames[0].json(), Some(serde_json::json!({"a": 1})));
        assert!(frames[1].comment && frames[1].event.is_none());
        assert_eq!(frames[2].data.as_deref(), Some("one\ntwo"));
        assert_eq!(frames[2].json(), None);
    }

    #[test]
    fn the_decoder_gives_the_same_frames_whatever_the_chunks() {
        let text = format!("{STREAM}id: evt_2\nevent: agent_text_delta\ndata: {{\"text\":\"héllo\"}}\n\n");
        let whole = parse_frames(&text);
        let bytes = text.as_bytes();
        for size in [1, 2, 3, 7, bytes.len()] {
            let mut decoder = SseDecoder::default();
            let got: Vec<SseFrame> = bytes.chunks(size).flat_map(|c| decoder.push(c)).collect();
            assert_eq!(got, whole, "chunks of {size}");
        }
    }

    #[test]
    fn an_unfinished_frame_waits_for_its_blank_line() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"id: evt_1\ndata: {}\n").is_empty());
        assert_eq!(decoder.push(b"\n").len(), 1);
    }
}
