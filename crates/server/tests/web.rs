//! The chat page at `/`: served with its assets, content types and security headers, without the
//! API key while the API itself still requires it. No model is needed (the state has none).

mod common;

use std::net::SocketAddr;

use common::{get, request};
use llama31_server::{AppState, ServerConfig};

const KEY: &str = "page-test-key";

fn server(api_key: Option<&str>) -> SocketAddr {
    common::serve(AppState::new(ServerConfig {
        api_key: api_key.map(str::to_string),
        ..ServerConfig::default()
    }))
}

#[test]
fn page_is_html_with_security_headers() {
    let addr = server(None);
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<title>llama31 chat</title>"));
    for asset in [
        "/web/app.js",
        "/web/markdown.js",
        "/web/highlight.js",
        "/web/style.css",
    ] {
        assert!(html.contains(asset), "page does not load {asset}");
    }
    // No inline script: the policy below would block it.
    assert!(!html.contains("<script>"), "inline script in the page");
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // Revalidation with the ETag: 304 and no body; a different tag gets the page again.
    let r = request(addr, "GET", "/", &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = request(addr, "GET", "/", &[("If-None-Match", "\"other\"")], b"");
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
}

#[test]
fn assets_have_their_content_types() {
    let addr = server(None);
    for (path, ty, needle) in [
        (
            "/web/app.js",
            "text/javascript; charset=utf-8",
            "/v1/chat/completions",
        ),
        (
            "/web/markdown.js",
            "text/javascript; charset=utf-8",
            "window.Markdown",
        ),
        (
            "/web/highlight.js",
            "text/javascript; charset=utf-8",
            "window.Highlight",
        ),
        (
            "/web/style.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/web/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        assert!(r.header("content-security-policy").is_some(), "{path}");
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    // Other paths stay OpenAI-shaped 404s; the page takes only GET (and HEAD).
    let r = get(addr, "/web/missing.js");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = request(addr, "POST", "/", &[], b"");
    assert_eq!(r.status, 405);
    let r = request(addr, "HEAD", "/", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn page_is_open_while_the_api_needs_the_key() {
    let addr = server(Some(KEY));
    for path in ["/", "/web/app.js", "/web/style.css", "/web/icon.svg"] {
        assert_eq!(get(addr, path).status, 200, "{path} needs no key");
    }
    let bearer = format!("Bearer {KEY}");
    for (method, path) in [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("GET", "/metrics"),
    ] {
        let r = request(addr, method, path, &[], b"{}");
        assert_eq!(r.status, 401, "{method} {path} without the key");
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
        let r = request(
            addr,
            method,
            path,
            &[("Authorization", "Bearer wrong")],
            b"{}",
        );
        assert_eq!(r.status, 401, "{method} {path} with a wrong key");
        // With the key the request gets past authentication (this state has no model yet).
        let r = request(addr, method, path, &[("Authorization", &bearer)], b"{}");
        assert_ne!(r.status, 401, "{method} {path} with the key");
    }
}
