//! The server's log output. Every line any crate logs — ours, or a third party's such as the MCP
//! client's, which writes a peer's answer verbatim at ERROR level — is scrubbed of every secret
//! the process has handled (the [`SecretRegistry`] the vault cipher fills) before it is written.
//! This module owns the only log writer `steward serve` installs; it never formats a secret.

use std::io::Write;

use steward_core::redact::SecretRegistry;
use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] that scrubs each log line of the registry's secrets before handing it to
/// `inner` (stderr in production, a capture in tests).
#[derive(Debug, Clone)]
pub struct RedactingWriter<M> {
    registry: SecretRegistry,
    inner: M,
}

impl<M> RedactingWriter<M> {
    pub fn new(registry: SecretRegistry, inner: M) -> Self {
        Self { registry, inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = RedactedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine { registry: self.registry.clone(), buf: Vec::new(), out: Some(self.inner.make_writer()) }
    }
}

/// One log event: collected whole, so a secret split across two `write` calls is still one
/// match, then scrubbed and written when the formatter drops it at the end of the event.
pub struct RedactedLine<W: Write> {
    registry: SecretRegistry,
    buf: Vec<u8>,
    out: Option<W>,
}

impl<W: Write> Write for RedactedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactedLine<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(mut out) = self.out.take() {
            let redactor = self.registry.redactor();
            let _ = out.write_all(&redactor.redact_bytes(&self.buf));
            let _ = out.flush();
        }
    }
}

/// Installs the process's subscriber: `filter` (tracing's `EnvFilter` syntax), every line
/// scrubbed of `registry`'s secrets, written to stderr. A no-op if one is installed already.
pub fn init(filter: tracing_subscriber::EnvFilter, registry: SecretRegistry) {
    let writer = RedactingWriter::new(registry, std::io::stderr);
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_scrubbed_even_when_written_in_pieces() {
        let registry = SecretRegistry::new();
        let sink = Sink::default();
        let sink2 = sink.clone();
        let writer = RedactingWriter::new(registry.clone(), move || sink2.clone());
        registry.register("Bearer-tok-123456");
        {
            let mut line = writer.make_writer();
            line.write_all(b"HTTP 401 Bearer-tok-").unwrap();
            line.write_all(b"123456 denied\n").unwrap();
        }
        assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), "HTTP 401 [redacted] denied\n");
    }
}
