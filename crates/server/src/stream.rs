//! Server-sent events: a task writes `data: {json}` chunks into a bounded channel that the
//! response body drains. When the client goes away the body is dropped, the channel closes, the
//! task stops and drops its [`Running`] — which cancels the engine requests (also while a prompt
//! is still being prefilled: the task waits on the channel's closing too). A client that stops
//! reading counts as gone once a chunk has waited `stall` for room in the full channel: its
//! engine request is cancelled and its slot freed instead of being held for as long as it hangs.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use serde_json::Value;
use tokio::sync::mpsc;

use llama31_engine::Event;

use crate::run::Running;
use crate::AppState;

/// The writing end of an SSE body.
pub struct SseSender {
    tx: mpsc::Sender<Bytes>,
    stall: Option<Duration>,
}

impl SseSender {
    /// Sends one `data:` event; `false` when the client is gone, or has read nothing for the
    /// stall timeout while the channel was full.
    pub async fn send(&self, v: &Value) -> bool {
        let s = format!("data: {v}\n\n");
        self.send_bytes(Bytes::from(s)).await
    }

    /// Sends `data: [DONE]`.
    pub async fn done(&self) {
        self.send_bytes(Bytes::from_static(b"data: [DONE]\n\n"))
            .await;
    }

    async fn send_bytes(&self, b: Bytes) -> bool {
        let Some(stall) = self.stall else {
            return self.tx.send(b).await.is_ok();
        };
        match self.tx.send_timeout(b, stall).await {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::info!(
                    "streaming client read nothing for {stall:?}: cancelling its request"
                );
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }

    /// The next engine event, or `None` as soon as the client is gone.
    pub async fn next_or_closed(
        &self,
        running: &mut Running,
        state: &AppState,
    ) -> Option<(usize, Event)> {
        tokio::select! {
            _ = self.tx.closed() => None,
            item = running.next(state) => item,
        }
    }
}

/// A streaming response and the sender that feeds it; a reader stalled for `stall` counts as
/// gone (`None`: never).
pub fn sse_channel(stall: Option<Duration>) -> (SseSender, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let resp = Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()));
    (SseSender { tx, stall }, resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_reader_that_never_reads_counts_as_gone_after_the_stall_timeout() {
        let (tx, resp) = sse_channel(Some(Duration::from_millis(100)));
        let t0 = std::time::Instant::now();
        let mut sent = 0;
        while tx.send(&json!({"n": sent})).await {
            sent += 1;
            assert!(
                sent <= 64,
                "more chunks than the channel holds were accepted"
            );
        }
        assert_eq!(sent, 64);
        assert!(t0.elapsed() >= Duration::from_millis(100));
        drop(resp);
    }

    #[tokio::test]
    async fn without_a_stall_timeout_a_full_channel_waits() {
        let (tx, _resp) = sse_channel(None);
        for i in 0..64 {
            assert!(tx.send(&json!({"n": i})).await);
        }
        let blocked =
            tokio::time::timeout(Duration::from_millis(200), tx.send(&json!({"n": 64}))).await;
        assert!(blocked.is_err(), "a send into a full channel returned");
    }
}
