//! Server-sent events: a task writes `data: {json}` chunks into a bounded channel that the
//! response body drains. When the client goes away the body is dropped, the channel closes, the
//! task stops and drops its [`Running`] — which cancels the engine requests (also while a prompt
//! is still being prefilled: the task waits on the channel's closing too).

use std::convert::Infallible;

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
}

impl SseSender {
    /// Sends one `data:` event; `false` when the client is gone.
    pub async fn send(&self, v: &Value) -> bool {
        let s = format!("data: {v}\n\n");
        self.tx.send(Bytes::from(s)).await.is_ok()
    }

    /// Sends `data: [DONE]`.
    pub async fn done(&self) {
        let _ = self.tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
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

/// A streaming response and the sender that feeds it.
pub fn sse_channel() -> (SseSender, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let resp = Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()));
    (SseSender { tx }, resp)
}
