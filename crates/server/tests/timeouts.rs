//! The connection layer of `llama31 serve`: a client that sends its request head too slowly is
//! disconnected, and shutdown waits for the connections to finish.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use llama31_server::serve::{serve, ServeOptions};
use llama31_server::{app, AppState, ServerConfig};

/// Sends `head` a byte every 100 ms; returns how long the server kept the connection, or `None`
/// if it was still open after `limit`.
fn trickle(addr: std::net::SocketAddr, head: &[u8], limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    for b in head.iter().cycle() {
        if t0.elapsed() > limit {
            return None;
        }
        if s.write_all(&[*b]).is_err() {
            return Some(t0.elapsed());
        }
        match s.read(&mut buf) {
            Ok(_) => return Some(t0.elapsed()), // EOF, or an answer before the head was complete
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

#[test]
fn a_request_head_sent_too_slowly_is_cut_off_and_others_are_served() {
    let addr = common::serve_with(
        AppState::new(ServerConfig::default()),
        ServeOptions {
            header_read_timeout: Some(Duration::from_secs(1)),
            write_timeout: Some(Duration::from_secs(1)),
        },
    );
    // A header line that never ends, a byte every 100 ms.
    let slow = std::thread::spawn(move || {
        trickle(
            addr,
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Duration::from_secs(6),
        )
    });
    // Meanwhile other clients are answered at once (503: no model is loaded here).
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let r = common::get(addr, "/health");
    assert_eq!(r.status, 503);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let held = slow
        .join()
        .unwrap()
        .expect("the slow client was still connected after 6 s");
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(4),
        "the slow client was cut off after {held:?}, want about 1 s"
    );
    // The server still serves.
    assert_eq!(common::get(addr, "/health").status, 503);
}

#[test]
fn without_a_header_timeout_a_slow_head_is_waited_for() {
    let addr = common::serve_with(
        AppState::new(ServerConfig::default()),
        ServeOptions {
            header_read_timeout: None,
            write_timeout: None,
        },
    );
    let held = trickle(
        addr,
        b"GET /health HTTP/1.1\r\nX-Pad: aaaa",
        Duration::from_secs(2),
    );
    assert_eq!(held, None, "cut off after {held:?}");
}

#[test]
fn shutdown_stops_accepting_and_returns() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app(AppState::new(ServerConfig::default())),
            ServeOptions::default(),
            async {
                let _ = rx.await;
            },
        ));
        let r = tokio::task::spawn_blocking(move || common::get(addr, "/health"))
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve did not return after shutdown")
            .unwrap();
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "still accepting"
        );
    });
}
