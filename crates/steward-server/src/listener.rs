//! The server's listener: every accepted connection gets `TCP_NODELAY` (small SSE frames and JSON
//! answers leave at once) and an IO wrapper that gives hyper's own parse-error answers a §2 JSON
//! body.
//!
//! Why a wrapper on the socket: when hyper's HTTP/1 parser cannot read a request (a raw 0xFF byte
//! in the path, headers over its limit, a URI too long) it answers by itself — `400`, `431` or
//! `414` with `content-length: 0` — before any service or middleware runs, and it has no hook to
//! shape that answer. Those are the only bodiless 4xx answers this server writes (every other
//! error passes through `error::json_errors`), so a response head written whole with one of
//! those statuses and `content-length: 0` is rewritten, on its way out, into the same status with
//! a JSON error body. Hyper closes the connection after such an answer; the rewrite says
//! `connection: close`. The wrapper reports no vectored-write support, so hyper hands it each
//! response in one buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;

/// A TCP listener whose connections are [`JsonParseErrors`] streams with `TCP_NODELAY`.
#[derive(Debug)]
pub struct ApiListener(pub TcpListener);

impl axum::serve::Listener for ApiListener {
    type Io = JsonParseErrors<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        (JsonParseErrors::new(tcp), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose bodiless parse-error answers from hyper are rewritten as JSON errors.
#[derive(Debug)]
pub struct JsonParseErrors<IO> {
    io: IO,
    /// A rewritten answer being written: its bytes, how many are out, the length of the
    /// buffer it replaces (what the caller is told was written).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<IO> JsonParseErrors<IO> {
    pub fn new(io: IO) -> Self {
        Self { io, pending: None }
    }
}

/// What to say for each of hyper's own answers.
fn message(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        400 => {
            "the request could not be read as HTTP/1.1: its request line or a header holds bytes HTTP does not allow (a raw \
             non-ASCII byte in the path, a space in a header name); percent-encode the path as UTF-8 and send headers as visible ASCII"
        }
        431 => "the request's headers are too large; send fewer or shorter headers (large data belongs in the body)",
        414 => "the request's URI is too long; send large parameters in a JSON body instead of the query string",
        _ => return None,
    })
}

/// The JSON answer replacing `buf`, if `buf` is exactly one of hyper's bodiless parse-error
/// answers (a whole response head ending the buffer, with `content-length: 0`).
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let code: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let message = message(status)?;
    let head = std::str::from_utf8(buf).ok()?;
    let head = head.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    if headers.iter().any(|h| h.is_empty()) || !headers.iter().any(|h| h.eq_ignore_ascii_case("content-length: 0")) {
        return None;
    }
    let body = serde_json::to_vec(&ApiError::from_status(status, message).body()).ok()?;
    let mut out = format!("{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for h in headers {
        let name = h.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<IO: AsyncRead + Unpin> AsyncRead for JsonParseErrors<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(answer) => this.pending = Some((answer, 0, buf.len())),
                None => return Pin::new(&mut this.io).poll_write(cx, buf),
            }
        }
        let Some((answer, written, replaced)) = this.pending.as_mut() else { unreachable!("set above") };
        while *written < answer.len() {
            match Pin::new(&mut this.io).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let replaced = *replaced;
        this.pending = None;
        Poll::Ready(Ok(replaced))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_parse_errors_are_rewritten() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 11:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(hyper).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())) && head.contains("date: Thu"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["type"], "headers_too_large", "{v}");
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").is_some());
        // Anything else passes untouched: a body follows, another status, a JSON error, a part.
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}").is_none());
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
        assert!(rewrite(b"{\"HTTP/1.1 400\"}").is_none());
    }
}
