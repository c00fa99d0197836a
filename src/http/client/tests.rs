//! Tests of [`HyperTransport`] against servers on 127.0.0.1 that the tests control: a small hyper
//! server, raw TCP servers that misbehave, and a TLS server with a self-signed certificate.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;

/// What the test server saw of one request.
#[derive(Debug)]
struct Seen {
    method: Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A hyper HTTP/1.1 server on 127.0.0.1 that reports each request and answers with `reply`.
struct TestServer {
    port: u16,
    seen: mpsc::UnboundedReceiver<Seen>,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    async fn start(reply: fn() -> hyper::Response<Full<Bytes>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let _ = tx.send(Seen {
                            method: parts.method,
                            uri: parts.uri,
                            headers: parts.headers,
                            body,
                        });
                        Ok::<_, Infallible>(reply())
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        TestServer {
            port,
            seen,
            connections,
        }
    }

    fn url(&self, path_and_query: &str) -> http::Uri {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
            .parse()
            .unwrap()
    }
}

fn ok_reply() -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(200)
        .header("x-reply", "yes")
        .body(Full::new(Bytes::from_static(b"world")))
        .unwrap()
}

/// A raw TCP server on 127.0.0.1 that reads one request head, writes `reply` and closes the
/// connection, or keeps it open without answering when `reply` is `None`.
async fn raw_server(reply: Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut stream).await;
                match reply {
                    Some(bytes) => {
                        let _ = stream.write_all(bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    port
}

async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

fn transport() -> HyperTransport {
    HyperTransport::new(&HttpConfig::default()).unwrap()
}

fn get(url: http::Uri) -> HttpRequest {
    HttpRequest::new(Method::GET, url)
}

#[tokio::test]
async fn sends_method_headers_and_body_and_reads_the_response() {
    let mut server = TestServer::start(ok_reply).await;
    let config = HttpConfig {
        user_agent_entry: Some("tests/1.0".to_string()),
        ..HttpConfig::default()
    };
    let transport = HyperTransport::new(&config).unwrap();
    let mut request = HttpRequest::new(Method::POST, server.url("/sql/1.0/warehouses/abc?o=1"));
    request.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-thrift"),
    );
    request.headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer dapi-test"),
    );
    request.body = Bytes::from_static(b"hello");

    let response = transport.send(request).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers.get("x-reply").unwrap(), "yes");
    assert_eq!(response.body, Bytes::from_static(b"world"));

    let seen = server.seen.recv().await.unwrap();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "/sql/1.0/warehouses/abc?o=1");
    assert_eq!(
        seen.headers.get("content-type").unwrap(),
        "application/x-thrift"
    );
    assert_eq!(
        seen.headers.get("authorization").unwrap(),
        "Bearer dapi-test"
    );
    assert_eq!(seen.headers.get("content-length").unwrap(), "5");
    assert_eq!(
        seen.headers.get("user-agent").unwrap(),
        &format!(
            "databricks-sql-rust/{} (tests/1.0)",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(seen.body, Bytes::from_static(b"hello"));
}

#[tokio::test]
async fn user_agent_is_driver_name_and_version_without_entry() {
    let mut server = TestServer::start(ok_reply).await;
    transport().send(get(server.url("/"))).await.unwrap();
    let seen = server.seen.recv().await.unwrap();
    assert_eq!(
        seen.headers.get("user-agent").unwrap(),
        &format!("databricks-sql-rust/{}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn keeps_a_user_agent_the_request_already_has() {
    let mut server = TestServer::start(ok_reply).await;
    let mut request = get(server.url("/"));
    request.headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("other/2"),
    );
    transport().send(request).await.unwrap();
    let seen = server.seen.recv().await.unwrap();
    assert_eq!(seen.headers.get_all("user-agent").iter().count(), 1);
    assert_eq!(seen.headers.get("user-agent").unwrap(), "other/2");
}

#[tokio::test]
async fn any_http_status_is_a_response() {
    fn unavailable() -> hyper::Response<Full<Bytes>> {
        hyper::Response::builder()
            .status(503)
            .header("retry-after", "5")
            .body(Full::new(Bytes::from_static(b"busy")))
            .unwrap()
    }
    let server = TestServer::start(unavailable).await;
    let response = transport().send(get(server.url("/"))).await.unwrap();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers.get("retry-after").unwrap(), "5");
    assert_eq!(response.body, Bytes::from_static(b"busy"));
}

#[tokio::test]
async fn reuses_pooled_connections() {
    let server = TestServer::start(ok_reply).await;
    let transport = transport();
    for _ in 0..3 {
        transport.send(get(server.url("/"))).await.unwrap();
    }
    // A clone shares the pool.
    transport.clone().send(get(server.url("/"))).await.unwrap();
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_timeout_gives_timeout() {
    let port = raw_server(None).await;
    let url: http::Uri = format!("http://127.0.0.1:{port}/slow?token=secret")
        .parse()
        .unwrap();
    let mut request = get(url);
    request.timeout = Some(Duration::from_millis(200));
    let err = transport().send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let text = err.to_string();
    assert!(text.contains("200 ms"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn configured_request_timeout_applies_without_override() {
    let port = raw_server(None).await;
    let config = HttpConfig {
        request_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let transport = HyperTransport::new(&config).unwrap();
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let err = transport.send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn connection_refused_gives_connect_naming_the_host() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/sql?X-Amz-Signature=secret")
        .parse()
        .unwrap();
    let err = transport().send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(err.is_retryable());
    assert!(err.was_never_sent(), "refused: the request never left");
    let text = err.to_string();
    assert!(
        text.contains(&format!("could not connect to http://127.0.0.1:{port}/sql")),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("refused"),
        "names the root cause: {text}"
    );
    assert!(
        std::error::Error::source(&err).is_none(),
        "the message names the cause, so no source repeats it"
    );
    assert!(!text.contains("secret"), "{text}");
    assert!(!format!("{err:?}").contains("secret"));
}

#[tokio::test]
async fn server_closing_mid_body_gives_connect() {
    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a few bytes",
    ))
    .await;
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let err = transport().send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(err.to_string().contains("cut short"), "{err}");
}

#[tokio::test]
async fn server_closing_before_a_response_gives_connect() {
    let port = raw_server(Some(b"")).await;
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let err = transport().send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        !err.was_never_sent(),
        "the request was sent: it must not count as never sent"
    );
}

#[tokio::test]
async fn plain_http_to_a_non_loopback_host_is_a_config_error_without_traffic() {
    // Never contacted: the check happens before any DNS lookup or connection (a lookup of
    // `.invalid` would fail with Connect, not Config).
    // Only unresolvable `.invalid` names go to `send`: should the check ever regress, nothing
    // leaves the machine. IP literals are checked without any I/O below.
    for url in [
        "http://example.invalid/sql/1.0/warehouses/abc",
        "http://localhost.example.invalid/x",
    ] {
        let err = transport()
            .send(get(url.parse().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
        assert!(err.to_string().contains("https://"), "{err}");
    }
}

#[test]
fn ip_literals_outside_loopback_are_not_loopback() {
    for host in [
        "10.1.2.3",
        "2001:db8::1",
        "[2001:db8::1]",
        "192.168.0.1",
        "128.0.0.1",
    ] {
        assert!(!super::is_loopback_host(host), "{host}");
    }
    for host in ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"] {
        assert!(super::is_loopback_host(host), "{host}");
    }
}

#[tokio::test]
async fn other_schemes_are_a_config_error() {
    let err = transport()
        .send(get("ftp://example.invalid/x".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

fn small_limit() -> HyperTransport {
    let config = HttpConfig {
        max_response_bytes: 16,
        ..HttpConfig::default()
    };
    HyperTransport::new(&config).unwrap()
}

#[tokio::test]
async fn response_larger_than_max_response_bytes_is_a_protocol_error() {
    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n0123456789abcdefg",
    ))
    .await;
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let err = small_limit().send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("16 bytes"), "{err}");
}

#[tokio::test]
async fn chunked_response_larger_than_max_response_bytes_is_a_protocol_error() {
    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
    ))
    .await;
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let err = small_limit().send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn response_of_exactly_max_response_bytes_is_read() {
    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
    ))
    .await;
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let response = small_limit().send(get(url)).await.unwrap();
    assert_eq!(response.body.len(), 16);
}

// -- send_into: the body into the caller's buffer ------------------------------------------

#[tokio::test]
async fn send_into_reads_the_body_into_the_callers_buffer_and_reuses_its_memory() {
    let server = TestServer::start(ok_reply).await;
    let transport = transport();
    let mut body = Vec::with_capacity(4096);
    body.extend_from_slice(b"stale contents of an earlier file");
    let ptr = body.as_ptr();
    let response = transport
        .send_into(get(server.url("/file")), &mut body)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers.get("x-reply").unwrap(), "yes");
    assert!(response.body.is_empty(), "the body is in the buffer only");
    assert_eq!(body, b"world");
    assert_eq!(
        body.as_ptr(),
        ptr,
        "a large enough buffer is reused, not replaced"
    );
}

#[tokio::test]
async fn send_into_sizes_a_small_buffer_from_content_length_and_reads_chunked_bodies() {
    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
    ))
    .await;
    let url: http::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let mut body = Vec::new();
    transport().send_into(get(url), &mut body).await.unwrap();
    assert_eq!(body, b"0123456789abcdef");
    assert_eq!(
        body.capacity(),
        16,
        "allocated once, at the announced length"
    );

    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    ))
    .await;
    let url: http::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
    transport().send_into(get(url), &mut body).await.unwrap();
    assert_eq!(body, b"abcdefg");
}

#[tokio::test]
async fn send_into_a_body_cut_short_is_connect_and_leaves_the_buffer_empty() {
    let port = raw_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a few bytes",
    ))
    .await;
    let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let mut body = b"old".to_vec();
    let err = transport()
        .send_into(get(url), &mut body)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(err.to_string().contains("cut short"), "{err}");
    assert!(body.is_empty());
}

#[tokio::test]
async fn send_into_enforces_max_response_bytes_with_and_without_content_length() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n0123456789abcdefg"[..],
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
           a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"[..],
    ] {
        let port = raw_server(Some(reply)).await;
        let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let mut body = Vec::new();
        let err = small_limit()
            .send_into(get(url), &mut body)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert!(err.to_string().contains("16 bytes"), "{err}");
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn a_request_cap_below_the_transport_limit_applies_to_that_request_only() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n0123456789ab"[..],
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
           6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n"[..],
    ] {
        let port = raw_server(Some(reply)).await;
        let url: http::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let mut capped = get(url.clone());
        capped.max_response_bytes = Some(8);
        let mut body = Vec::new();
        let err = transport()
            .send_into(capped.clone(), &mut body)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert!(err.to_string().contains("limit of 8 bytes"), "{err}");
        assert!(body.is_empty());
        let err = transport().send(capped).await.unwrap_err();
        assert!(err.to_string().contains("limit of 8 bytes"), "{err}");
        transport().send_into(get(url), &mut body).await.unwrap();
        assert_eq!(body, b"0123456789ab", "uncapped: read whole");
        // A cap above the transport's own limit does not raise it.
        let mut loose = get(format!("http://127.0.0.1:{port}/").parse().unwrap());
        loose.max_response_bytes = Some(1 << 20);
        let small = HyperTransport::new(&HttpConfig {
            max_response_bytes: 4,
            ..HttpConfig::default()
        })
        .unwrap();
        let err = small.send(loose).await.unwrap_err();
        assert!(err.to_string().contains("limit of 4 bytes"), "{err}");
    }
}

#[tokio::test]
async fn send_into_times_out_and_names_no_query_string() {
    let port = raw_server(None).await;
    let url = format!("http://127.0.0.1:{port}/file?sig=secret")
        .parse()
        .unwrap();
    let mut request = get(url);
    request.timeout = Some(Duration::from_millis(100));
    let mut body = Vec::new();
    let err = transport().send_into(request, &mut body).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(!format!("{err:?}").contains("secret"));
}

/// A TLS server on 127.0.0.1 with a fresh self-signed certificate for `127.0.0.1`, answering
/// `ok_reply`. Returns its port and the certificate.
async fn tls_server() -> (u16, rustls::pki_types::CertificateDer<'static>) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
                    Ok::<_, Infallible>(ok_reply())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, cert)
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_is_a_connect_timeout() {
    // Accepts TCP connections and never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let config = HttpConfig {
        connect_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let url = format!("https://127.0.0.1:{port}/").parse().unwrap();
    let err = HyperTransport::new(&config)
        .unwrap()
        .send(get(url))
        .await
        .unwrap_err();
    // The connect timeout fired (the request timeout of 900 s would say "no complete
    // response" and take 15 minutes).
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert!(err.was_never_sent());
}

#[tokio::test]
async fn tls_server_with_self_signed_certificate_is_rejected() {
    let (port, _) = tls_server().await;
    let url = format!("https://127.0.0.1:{port}/").parse().unwrap();
    let err = transport().send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        !err.was_never_sent(),
        "a certificate failure will not heal: not a reason to resend ExecuteStatement"
    );
    let text = err.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[tokio::test]
async fn tls_server_with_a_trusted_certificate_is_accepted() {
    // The control for the test above: the same server works once its certificate is trusted,
    // so the rejection there is the certificate check and nothing else.
    let (port, cert) = tls_server().await;
    let config = HttpConfig {
        extra_root_certificates: vec![crate::http::Pem::from_bytes(crate::mock::pem_encode(
            "CERTIFICATE",
            &cert,
        ))],
        ..HttpConfig::default()
    };
    let transport = HyperTransport::new(&config).unwrap();
    let url = format!("https://127.0.0.1:{port}/").parse().unwrap();
    let response = transport.send(get(url)).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, Bytes::from_static(b"world"));
}

#[tokio::test]
async fn tls_server_with_any_certificate_is_accepted_with_verification_off() {
    let (port, _) = tls_server().await;
    let config = HttpConfig {
        danger_accept_invalid_certificates: true,
        ..HttpConfig::default()
    };
    let transport = HyperTransport::new(&config).unwrap();
    let url = format!("https://127.0.0.1:{port}/").parse().unwrap();
    let response = transport.send(get(url)).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
}

#[test]
fn loopback_hosts() {
    for host in [
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "localhost",
        "LocalHost",
        "localhost.",
    ] {
        assert!(is_loopback_host(host), "{host}");
    }
    for host in [
        "example.invalid",
        "10.0.0.1",
        "0.0.0.0",
        "[::]",
        "128.0.0.1",
        "localhost.example.com",
        "mylocalhost",
        "",
        "[::1",
    ] {
        assert!(!is_loopback_host(host), "{host}");
    }
}

#[test]
fn a_timed_out_io_error_in_the_chain_is_a_connect_timeout() {
    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("tcp connect error")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let timed_out = Wrapper(std::io::Error::new(std::io::ErrorKind::TimedOut, "elapsed"));
    assert!(has_timed_out_io(&timed_out));
    assert_eq!(root_cause(&timed_out), " (elapsed)");
    let refused = Wrapper(std::io::ErrorKind::ConnectionRefused.into());
    assert!(!has_timed_out_io(&refused));
}

#[test]
fn invalid_config_is_rejected_when_building() {
    let config = HttpConfig {
        user_agent_entry: Some("bad\nentry".to_string()),
        ..HttpConfig::default()
    };
    assert_eq!(
        HyperTransport::new(&config).unwrap_err().kind(),
        ErrorKind::Config
    );
}

#[test]
fn transport_is_cheap_to_clone_send_and_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<HyperTransport>();
    let _: Arc<dyn HttpTransport> = Arc::new(transport());
}

// -- proxies ------------------------------------------------------------------------------

use crate::http::{Proxy, ProxyConfig};
use crate::mock::TestProxy;

fn through(proxy: Proxy) -> HttpConfig {
    HttpConfig {
        proxy: ProxyConfig::Explicit(proxy),
        ..HttpConfig::default()
    }
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel_with_end_to_end_tls() {
    let (port, cert) = tls_server().await;
    let proxy = TestProxy::start().await.unwrap();
    let config = HttpConfig {
        extra_root_certificates: vec![crate::http::Pem::from_bytes(crate::mock::pem_encode(
            "CERTIFICATE",
            &cert,
        ))],
        ..through(Proxy::new(&proxy.url()).unwrap())
    };
    let transport = HyperTransport::new(&config).unwrap();
    let url: http::Uri = format!("https://127.0.0.1:{port}/x?sig=1").parse().unwrap();
    assert!(transport.uses_proxy(&url));
    for _ in 0..2 {
        let response = transport.send(get(url.clone())).await.unwrap();
        assert_eq!(response.body, Bytes::from_static(b"world"));
    }
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "one tunnel, reused: {requests:?}");
    assert_eq!(requests[0].method, "CONNECT");
    assert_eq!(requests[0].target, format!("127.0.0.1:{port}"));
    assert_eq!(requests[0].path, None);
}

#[tokio::test]
async fn plain_http_is_forwarded_in_absolute_form_with_the_proxy_credentials() {
    let mut server = TestServer::start(ok_reply).await;
    let proxy = TestProxy::builder()
        .basic_auth("alice", "s3cret")
        .start()
        .await
        .unwrap();
    let transport = HyperTransport::new(&through(
        Proxy::new(&proxy.url())
            .unwrap()
            .basic_auth("alice", "s3cret"),
    ))
    .unwrap();
    let response = transport.send(get(server.url("/a/b?q=1"))).await.unwrap();
    assert_eq!(response.body, Bytes::from_static(b"world"));
    let seen = server.seen.recv().await.unwrap();
    assert_eq!(seen.uri, "/a/b?q=1");
    assert!(
        seen.headers.get("proxy-authorization").is_none(),
        "the proxy keeps its credentials"
    );
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, format!("127.0.0.1:{}", server.port));
    assert_eq!(requests[0].path.as_deref(), Some("/a/b"));
    assert!(!requests[0].refused);
}

#[tokio::test]
async fn a_proxy_wanting_credentials_is_an_auth_error_without_the_password() {
    let (port, _) = tls_server().await;
    let proxy = TestProxy::builder()
        .basic_auth("alice", "s3cret")
        .start()
        .await
        .unwrap();
    let url: http::Uri = format!("https://127.0.0.1:{port}/").parse().unwrap();
    let authority = proxy.local_addr().to_string();

    let none = HyperTransport::new(&through(Proxy::new(&proxy.url()).unwrap())).unwrap();
    let err = none.send(get(url.clone())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(&format!("the proxy {authority} requires authentication")),
        "{text}"
    );

    let wrong = Proxy::new(&proxy.url())
        .unwrap()
        .basic_auth("alice", "hunter2-wrong");
    let err = HyperTransport::new(&through(wrong))
        .unwrap()
        .send(get(url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains(&format!("the proxy {authority} refused the credentials")),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("aHVudGVy"), "{shown}");
    assert_eq!(proxy.requests().iter().filter(|r| r.refused).count(), 2);
}

#[tokio::test]
async fn a_proxy_refusing_the_tunnel_is_a_connect_error_naming_it_and_the_status() {
    // The proxy answers 502: nothing listens on the target port.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap().port();
    drop(listener);
    let proxy = TestProxy::start().await.unwrap();
    let transport = HyperTransport::new(&through(Proxy::new(&proxy.url()).unwrap())).unwrap();
    let url = format!("https://127.0.0.1:{closed}/").parse().unwrap();
    let err = transport.send(get(url)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.was_never_sent());
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "the proxy {} refused a tunnel to 127.0.0.1:{closed}: HTTP 502",
            proxy.local_addr()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_connect_error_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let transport = HyperTransport::new(&through(
        Proxy::new(&format!("http://127.0.0.1:{port}")).unwrap(),
    ))
    .unwrap();
    let err = transport
        .send(get("https://adb-1.example.invalid/sql".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.was_never_sent());
    assert!(
        err.to_string()
            .contains(&format!("the proxy 127.0.0.1:{port} could not be reached")),
        "{err}"
    );
}

#[tokio::test]
async fn the_connect_timeout_covers_the_connect_exchange_with_the_proxy() {
    // A proxy that accepts connections and never answers CONNECT.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let config = HttpConfig {
        connect_timeout: Duration::from_millis(200),
        ..through(Proxy::new(&format!("http://127.0.0.1:{port}")).unwrap())
    };
    let err = HyperTransport::new(&config)
        .unwrap()
        .send(get("https://adb-1.example.invalid/".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("through the proxy 127.0.0.1:{port} within 200 ms")),
        "{err}"
    );
}

#[tokio::test]
async fn environment_proxies_apply_to_remote_hosts_and_skip_loopback_ones() {
    let (tls_port, _) = tls_server().await;
    let proxy = TestProxy::builder()
        .resolve(
            "warehouse.example.invalid",
            std::net::SocketAddr::from(([127, 0, 0, 1], tls_port)),
        )
        .start()
        .await
        .unwrap();
    let mut server = TestServer::start(ok_reply).await;
    let vars = [
        ("HTTPS_PROXY", proxy.url()),
        ("HTTP_PROXY", proxy.url()),
        ("NO_PROXY", "bypassed.example.invalid".to_string()),
    ];
    let env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let config = HttpConfig {
        danger_accept_invalid_certificates: true,
        ..HttpConfig::default()
    };
    let transport = HyperTransport::with_env(&config, env).unwrap();
    let remote: http::Uri = format!("https://warehouse.example.invalid:{tls_port}/")
        .parse()
        .unwrap();
    assert!(transport.uses_proxy(&remote));
    assert!(!transport.uses_proxy(&"https://bypassed.example.invalid/".parse().unwrap()));
    let response = transport.send(get(remote)).await.unwrap();
    assert_eq!(response.body, Bytes::from_static(b"world"));
    // Loopback: straight to the server.
    transport.send(get(server.url("/direct"))).await.unwrap();
    assert_eq!(server.seen.recv().await.unwrap().uri, "/direct");
    assert_eq!(
        proxy.targets(),
        vec![format!("warehouse.example.invalid:{tls_port}")]
    );
}

/// The lines a subscriber at level INFO writes while `f` runs on this thread.
fn logged_while(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = captured.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn turning_verification_off_is_logged_once_at_warn_when_the_transport_is_built() {
    let config = HttpConfig {
        danger_accept_invalid_certificates: true,
        ..HttpConfig::default()
    };
    let logged = logged_while(|| {
        let transport = HyperTransport::new(&config).unwrap();
        let _clone = transport.clone();
    });
    assert_eq!(logged.matches("WARN").count(), 1, "{logged}");
    assert!(
        logged.contains("danger_accept_invalid_certificates"),
        "{logged}"
    );
    let quiet = logged_while(|| {
        HyperTransport::new(&HttpConfig::default()).unwrap();
    });
    assert!(!quiet.contains("WARN"), "{quiet}");
}
