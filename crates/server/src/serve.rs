//! The accept loop: HTTP/1.1 connections served with a header-read timeout (a client that sends
//! its request head too slowly is disconnected), a write timeout (a client that stops reading is
//! disconnected once a write has waited that long: its streaming body is dropped, which cancels
//! its engine request), and graceful shutdown (connections finish the request in flight, then
//! close).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Sleep;

/// Timeouts of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Time a client has to send a whole request head (request line and headers); `None`: no
    /// limit. Also bounds how long an idle keep-alive connection waits for its next request.
    pub header_read_timeout: Option<Duration>,
    /// Time one write to a client may stay blocked (the client reads nothing) before the
    /// connection is closed; `None`: no limit.
    pub write_timeout: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(30)),
            write_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets every
/// connection finish its request in flight and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `done_rx`; `done_tx.closed()` is their end.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout);
            let conn = builder.serve_connection(
                TokioIo::new(WriteTimeout::new(stream, options.write_timeout)),
                service,
            );
            let mut conn = std::pin::pin!(conn);
            let stopping = tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection ended: {e}");
                    }
                    false
                }
                r = stop.wait_for(|&s| s) => r.is_ok(),
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                if let Err(e) = conn.await {
                    tracing::debug!("connection ended: {e}");
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// An I/O stream whose writes and flushes fail with `TimedOut` once they have been pending for
/// the timeout without progress.
pub struct WriteTimeout<T> {
    inner: T,
    timeout: Option<Duration>,
    pending: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteTimeout<T> {
    pub fn new(inner: T, timeout: Option<Duration>) -> Self {
        Self {
            inner,
            timeout,
            pending: None,
        }
    }

    /// `Pending` becomes an error once the write has waited `timeout`; progress resets the timer.
    fn watch<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match (&r, self.timeout) {
            (Poll::Pending, Some(t)) => {
                let sleep = self
                    .pending
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.pending = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {t:?}"),
                    )));
                }
                Poll::Pending
            }
            (Poll::Pending, None) => Poll::Pending,
            _ => {
                self.pending = None;
                r
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_nobody_reads_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut w = WriteTimeout::new(a, Some(Duration::from_millis(100)));
        let t0 = std::time::Instant::now();
        let mut written = 0;
        let err = loop {
            match w.write(&[0u8; 16]).await {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "no timeout");
        };
        assert_eq!(written, 64);
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_is_never_cut_off() {
        let (a, mut b) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut sink)
                .await
                .map(|_| sink.len())
        });
        let mut w = WriteTimeout::new(a, Some(Duration::from_millis(100)));
        for _ in 0..200 {
            w.write_all(&[1u8; 32]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap().unwrap(), 6400);
    }
}
