//! What the clients' tests share: reading a model stream to its end, every wait bounded. Each
//! client's fake server (hostile chunking of its own wire format) stays next to its test.

use std::time::Duration;

use futures::StreamExt;
use steward_llm::{EventStream, LlmError, StreamEvent};

/// How long a call or the next item of a stream may take.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Every item of a stream up to its end, and the error that ended it, if any. Checks that
/// nothing follows an error.
pub async fn drain(mut stream: EventStream) -> (Vec<StreamEvent>, Option<LlmError>) {
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(LIMIT, stream.next()).await.expect("the stream hung") {
            None => return (events, None),
            Some(Ok(event)) => events.push(event),
            Some(Err(e)) => {
                let after = tokio::time::timeout(LIMIT, stream.next()).await.expect("the stream hung after an error");
                assert!(after.is_none(), "the stream went on after {e:?}: {after:?}");
                return (events, Some(e));
            }
        }
    }
}
