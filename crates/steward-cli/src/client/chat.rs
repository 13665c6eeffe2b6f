//! `steward chat` (§5): talk to the Concierge of the current sandbox over
//! `POST /v1/sandboxes/{id}/concierge/chat`, interactively or one turn with `-m`.
//!
//! The reply is an event stream rendered as it arrives: text deltas as they come, each tool
//! call and result on a line of its own. Rendering is a pure step (`Transcript::frame`) so it
//! is tested without a terminal or a server. Dropping the connection cancels the run on the
//! server (§5), which is what Ctrl-C during a reply does; this module never retries a turn.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use steward_core::session::{event_type, stop_reason};

use super::context::Context;
use super::http::{Api, id};
use super::output::short;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Send this one message, print the reply and exit (no prompt).
    #[arg(short, long, value_name = "TEXT")]
    message: Option<String>,
    /// Continue an earlier conversation (the ses_… id printed after a turn).
    #[arg(long, value_name = "SESSION_ID")]
    session: Option<String>,
}

/// A reply that sends nothing at all (not even a heartbeat) for this long is given up on.
const IDLE: Duration = Duration::from_secs(300);
/// Tool arguments and results are cut to these many characters on screen.
const ARGS_WIDTH: usize = 100;
const RESULT_WIDTH: usize = 80;
const ERROR_WIDTH: usize = 300;

pub async fn run(ctx: &Context, args: ChatArgs) -> anyhow::Result<()> {
    let session = match &args.session {
        Some(s) => Some(id(s, "ses_", "pass the session id printed after an earlier `steward chat` turn")?.to_owned()),
        None => None,
    };
    let api = ctx.api()?;
    let sandbox = ctx.sandbox_or_home(&api).await?;
    let client = ChatClient::new(ctx, &sandbox)?;
    let mut view = View { json: ctx.out.json, transcript: Transcript::new(std::io::stdout().is_terminal()) };
    match args.message {
        Some(message) => one_turn(&client, &message, session, &mut view).await,
        None => interactive(&client, &sandbox, session, &mut view).await,
    }
}

/// `-m`: one turn; the exit status says whether the run finished.
async fn one_turn(client: &ChatClient, message: &str, session: Option<String>, view: &mut View) -> anyhow::Result<()> {
    match client.turn(message, session.as_deref(), view).await? {
        Outcome::Finished { session_id: Some(s) } => {
            eprintln!("session: {s} (continue with --session {s})");
            Ok(())
        }
        Outcome::Finished { session_id: None } => Ok(()),
        Outcome::Failed { message } => bail!("{message}"),
    }
}

/// The prompt loop. Errors of one turn are shown and the conversation goes on.
async fn interactive(client: &ChatClient, sandbox: &str, mut session: Option<String>, view: &mut View) -> anyhow::Result<()> {
    let at_terminal = std::io::stdin().is_terminal();
    let style = Style(at_terminal && std::io::stderr().is_terminal());
    if at_terminal {
        eprintln!("{}", style.dim(&format!("Concierge of {sandbox} · /new starts over · /exit quits · Ctrl-C stops a reply")));
    }
    let mut lines = stdin_lines();
    loop {
        if at_terminal {
            eprint!("{}", style.bold("you> "));
            std::io::stderr().flush()?;
        }
        // Once a Ctrl-C handler exists the signal no longer ends the process, so the prompt listens too.
        let line = tokio::select! {
            l = lines.recv() => l,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else {
            if at_terminal {
                eprintln!();
            }
            return Ok(());
        };
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => return Ok(()),
            "/new" => {
                session = None;
                eprintln!("{}", style.dim("(new conversation)"));
                continue;
            }
            cmd if cmd.starts_with('/') => {
                eprintln!("unknown command {cmd}: /new starts a new conversation, /exit quits");
                continue;
            }
            _ => {}
        }
        let result = tokio::select! {
            r = client.turn(&line, session.as_deref(), view) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        match result {
            Some(Ok(Outcome::Finished { session_id })) => session = session_id.or(session),
            Some(Ok(Outcome::Failed { message })) => eprintln!("{}", style.red(&format!("error: {message}"))),
            Some(Err(e)) => eprintln!("{}", style.red(&format!("error: {e:#}"))),
            None => {
                view.end_line()?;
                eprintln!("{}", style.dim("(interrupted; the server cancels the run)"));
            }
        }
    }
}

/// Lines of stdin, read on a thread of their own: a blocking read cannot be cancelled, and the
/// async runtime would wait for it at exit.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The streaming endpoint, through `http::Api::post_stream` (no overall timeout: a reply may
/// stream for long; each frame has an idle limit instead).
struct ChatClient {
    api: Api,
    server: String,
    path: String,
}

impl ChatClient {
    fn new(ctx: &Context, sandbox: &str) -> anyhow::Result<ChatClient> {
        let sandbox = id(sandbox, "sbx_", "see `steward sandbox list`")?;
        Ok(ChatClient { api: ctx.api()?, server: ctx.server.clone(), path: format!("/v1/sandboxes/{sandbox}/concierge/chat") })
    }

    /// Sends one message and shows the reply until its terminal frame.
    async fn turn(&self, message: &str, session: Option<&str>, view: &mut View) -> anyhow::Result<Outcome> {
        let mut body = json!({ "message": message });
        if let Some(s) = session {
            body["session_id"] = json!(s);
        }
        let res = self.api.post_stream(&self.path, &body).await?;
        let mut frames = res.bytes_stream().eventsource();
        loop {
            let next = tokio::time::timeout(IDLE, frames.next()).await.map_err(|_| {
                anyhow::anyhow!("the server at {} sent nothing for {} s; the reply was abandoned", self.server, IDLE.as_secs())
            })?;
            let frame = match next {
                Some(Ok(f)) => f,
                Some(Err(e)) => return Err(anyhow::anyhow!("the reply stream broke: {e}")),
                None => bail!("the server ended the reply before the run finished; try again"),
            };
            let data: Value = serde_json::from_str(&frame.data).unwrap_or(Value::String(frame.data));
            if let Some(outcome) = view.show(&frame.event, &frame.id, &data)? {
                return Ok(outcome);
            }
        }
    }
}

/// How a turn ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// `agent_finish`: the session to continue with.
    Finished { session_id: Option<String> },
    /// `agent_error` or `run_cancelled`.
    Failed { message: String },
}

/// Where frames go: rendered text on stdout, or one JSON line per frame with `--json`.
struct View {
    json: bool,
    transcript: Transcript,
}

impl View {
    fn show(&mut self, event: &str, id: &str, data: &Value) -> anyhow::Result<Option<Outcome>> {
        let (text, outcome) = self.transcript.frame(event, data);
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", json_line(event, id, data))?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
        Ok(outcome)
    }

    /// Ends a reply cut short, so what follows starts on a fresh line.
    fn end_line(&mut self) -> anyhow::Result<()> {
        if !self.json && std::mem::take(&mut self.transcript.mid_line) {
            println!();
        }
        Ok(())
    }
}

/// One frame as a line of `--json` output.
fn json_line(event: &str, id: &str, data: &Value) -> String {
    let mut line = json!({ "event": event, "data": data });
    if !id.is_empty() {
        line["id"] = json!(id);
    }
    line.to_string()
}

/// Terminal styles, used only when the output is a terminal.
#[derive(Debug, Clone, Copy)]
struct Style(bool);

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.0 { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }

    fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }

    fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }

    fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
}

/// The rendering of a reply. It remembers only whether the last text left the cursor mid-line,
/// so a tool line or the end of a turn starts on a line of its own.
#[derive(Debug)]
struct Transcript {
    style: Style,
    mid_line: bool,
}

impl Transcript {
    fn new(styled: bool) -> Transcript {
        Transcript { style: Style(styled), mid_line: false }
    }

    /// The text one frame adds to stdout, and the outcome when the frame ends the turn.
    /// Unknown events (and `run_started`, `usage`) add nothing.
    fn frame(&mut self, event: &str, data: &Value) -> (String, Option<Outcome>) {
        match event {
            event_type::TEXT_DELTA => {
                let text = data["text"].as_str().unwrap_or_default();
                if !text.is_empty() {
                    self.mid_line = !text.ends_with('\n');
                }
                (text.to_owned(), None)
            }
            event_type::TOOL_CALL => {
                let name = data["name"].as_str().unwrap_or("?");
                let args = match &data["arguments"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                (self.line(&format!("  → {name} {}", short(&args, ARGS_WIDTH))), None)
            }
            event_type::TOOL_RESULT => {
                let name = data["name"].as_str().unwrap_or("?");
                let line = match &data["error"] {
                    Value::Null => match excerpt(&data["result"]) {
                        Some(e) => format!("  ← {name}: ok — {e}"),
                        None => format!("  ← {name}: ok"),
                    },
                    err => format!("  ← {name}: error: {}", short(err.as_str().unwrap_or(&err.to_string()), ERROR_WIDTH)),
                };
                (self.line(&line), None)
            }
            event_type::FINISH => {
                let mut text = self.end();
                let reason = data["stop_reason"].as_str().unwrap_or(stop_reason::END_TURN);
                if reason != stop_reason::END_TURN {
                    text += &self.style.dim(&format!("(stopped: {reason})"));
                    text.push('\n');
                }
                (text, Some(Outcome::Finished { session_id: data["session_id"].as_str().map(str::to_owned) }))
            }
            event_type::ERROR => {
                let message = data["message"].as_str().map(str::to_owned).unwrap_or_else(|| format!("the run failed: {data}"));
                (self.end(), Some(Outcome::Failed { message }))
            }
            event_type::CANCELLED => {
                let why = data["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
                (self.end(), Some(Outcome::Failed { message: format!("the run was cancelled{why}") }))
            }
            _ => (String::new(), None),
        }
    }

    /// A dim line of its own.
    fn line(&mut self, s: &str) -> String {
        let mut text = self.end();
        text += &self.style.dim(s);
        text.push('\n');
        text
    }

    /// A newline if the cursor is mid-line.
    fn end(&mut self) -> String {
        if std::mem::take(&mut self.mid_line) { "\n".into() } else { String::new() }
    }
}

/// A tool result on one short line; `None` when there is nothing to show.
fn excerpt(result: &Value) -> Option<String> {
    let s = match result {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let s = short(&s, RESULT_WIDTH);
    (s != "-").then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders frames in order, unstyled: (stdout, the last outcome).
    fn render(frames: &[(&str, Value)]) -> (String, Option<Outcome>) {
        let mut t = Transcript::new(false);
        let mut out = String::new();
        let mut last = None;
        for (event, data) in frames {
            let (text, outcome) = t.frame(event, data);
            out += &text;
            last = outcome.or(last);
        }
        (out, last)
    }

    #[test]
    fn text_streams_inline_and_tool_lines_start_on_their_own() {
        let (out, outcome) = render(&[
            ("run_started", json!({"run_id": "run_1"})),
            ("agent_text_delta", json!({"text": "Let me "})),
            ("agent_text_delta", json!({"text": "check."})),
            ("agent_tool_call", json!({"call_id": "c1", "name": "list_sandboxes", "arguments": {}})),
            ("agent_tool_result", json!({"call_id": "c1", "name": "list_sandboxes", "result": "[{\"id\": \"sbx_1\"}]", "error": null})),
            ("agent_text_delta", json!({"text": "You have one."})),
            ("agent_finish", json!({"stop_reason": "end_turn", "session_id": "ses_1", "usage": {}, "run_id": "run_1"})),
        ]);
        assert_eq!(out, "Let me check.\n  → list_sandboxes {}\n  ← list_sandboxes: ok — [{\"id\": \"sbx_1\"}]\nYou have one.\n");
        assert_eq!(outcome, Some(Outcome::Finished { session_id: Some("ses_1".into()) }));
    }

    #[test]
    fn long_arguments_and_results_are_cut_and_errors_are_shown() {
        let big = json!({"name": "support", "system_prompt": "x".repeat(500)});
        let (out, _) = render(&[
            ("agent_tool_call", json!({"call_id": "c", "name": "create_agent", "arguments": big})),
            ("agent_tool_result", json!({"call_id": "c", "name": "create_agent", "result": "y".repeat(500), "error": null})),
            ("agent_tool_result", json!({"call_id": "d", "name": "get_agent", "result": null, "error": "agent nope\nnot found"})),
            ("agent_tool_result", json!({"call_id": "e", "name": "pause_trigger", "result": "", "error": null})),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("  → create_agent {\"name\":\"support\",\"system_prompt\":\"xxx"), "{}", lines[0]);
        assert!(lines[0].ends_with('…') && lines[0].chars().count() == "  → create_agent ".chars().count() + ARGS_WIDTH, "{}", lines[0]);
        assert!(lines[1].starts_with("  ← create_agent: ok — yyy") && lines[1].ends_with('…'), "{}", lines[1]);
        assert!(lines[1].chars().count() < 110, "{}", lines[1]);
        assert_eq!(lines[2], "  ← get_agent: error: agent nope not found");
        assert_eq!(lines[3], "  ← pause_trigger: ok");
    }

    #[test]
    fn errors_and_cancellations_end_the_turn_as_failures() {
        let (out, outcome) = render(&[
            ("agent_text_delta", json!({"text": "Working"})),
            ("agent_error", json!({"message": "no model provider is configured", "type": "configuration", "run_id": "run_1"})),
        ]);
        assert_eq!(out, "Working\n");
        assert_eq!(outcome, Some(Outcome::Failed { message: "no model provider is configured".into() }));
        let (_, outcome) = render(&[("run_cancelled", json!({"reason": "client disconnected"}))]);
        assert_eq!(outcome, Some(Outcome::Failed { message: "the run was cancelled: client disconnected".into() }));
    }

    #[test]
    fn an_unusual_stop_reason_is_noted_and_unknown_frames_are_ignored() {
        let (out, outcome) = render(&[
            ("usage", json!({"input_tokens": 3})),
            ("something_new", json!({"text": "ignored"})),
            ("agent_text_delta", json!({"text": "done\n"})),
            ("agent_finish", json!({"stop_reason": "max_turns", "session_id": "ses_2"})),
        ]);
        assert_eq!(out, "done\n(stopped: max_turns)\n");
        assert_eq!(outcome, Some(Outcome::Finished { session_id: Some("ses_2".into()) }));
    }

    #[test]
    fn styles_appear_only_when_asked_for() {
        let mut t = Transcript::new(true);
        let (out, _) = t.frame("agent_tool_call", &json!({"name": "list_agents", "arguments": {"limit": 5}}));
        assert_eq!(out, "\x1b[2m  → list_agents {\"limit\":5}\x1b[0m\n");
        let (text, _) = t.frame("agent_text_delta", &json!({"text": "plain"}));
        assert_eq!(text, "plain", "the model's text is never styled");
    }

    #[test]
    fn json_mode_prints_one_line_per_frame() {
        let line: Value = serde_json::from_str(&json_line("run_started", "", &json!({"run_id": "run_1"}))).unwrap();
        assert_eq!(line, json!({"event": "run_started", "data": {"run_id": "run_1"}}));
        let line: Value = serde_json::from_str(&json_line("agent_text_delta", "evt_1", &json!({"text": "hi"}))).unwrap();
        assert_eq!(line, json!({"event": "agent_text_delta", "id": "evt_1", "data": {"text": "hi"}}));
    }
}
