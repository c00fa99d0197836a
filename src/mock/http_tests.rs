//! End-to-end tests of the mock's HTTP behaviour over real loopback connections: routing, auth,
//! fault injection, the telemetry endpoints, and shutdown.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

pub(super) struct Got {
    pub(super) status: StatusCode,
    pub(super) headers: http::HeaderMap,
    pub(super) body: Bytes,
}

/// Send one request to the mock; `token` None sends no Authorization header.
pub(super) async fn send(
    mock: &MockWarehouse,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Bytes>,
) -> std::result::Result<Got, hyper_util::client::legacy::Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{}{}", mock.base_url(), path))
        .header(header::USER_AGENT, "mock-tests/1.0");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let resp = client.request(req).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok(Got {
        status,
        headers,
        body,
    })
}

fn json_body(g: &Got) -> Value {
    serde_json::from_slice(&g.body).unwrap()
}

const FLAGS_PATH: &str = "/api/2.0/connector-service/feature-flags/RUST/0.1.0";

#[tokio::test]
async fn starts_on_an_ephemeral_loopback_port_with_documented_defaults() {
    let mock = MockWarehouse::start().await.unwrap();
    assert_eq!(mock.host(), "127.0.0.1");
    assert_ne!(mock.port(), 0);
    assert_eq!(mock.http_path(), DEFAULT_HTTP_PATH);
    assert_eq!(mock.token(), DEFAULT_TOKEN);
    assert_eq!(
        mock.url(),
        format!("http://127.0.0.1:{}/sql/1.0/warehouses/mock", mock.port())
    );
    let custom = MockWarehouse::builder()
        .token("t")
        .http_path("sql/protocolv1/o/1/abc")
        .start()
        .await
        .unwrap();
    assert_eq!(custom.http_path(), "/sql/protocolv1/o/1/abc");
    assert_eq!(custom.token(), "t");
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401() {
    let mock = MockWarehouse::start().await.unwrap();
    let path = mock.http_path().to_string();
    let wrong = send(&mock, Method::POST, &path, Some("nope"), "x")
        .await
        .unwrap();
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.body.is_empty());
    let missing = send(&mock, Method::POST, &path, None, "x").await.unwrap();
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let flags = send(&mock, Method::GET, FLAGS_PATH, Some("nope"), "")
        .await
        .unwrap();
    assert_eq!(flags.status, StatusCode::UNAUTHORIZED);
    let ext = send(&mock, Method::POST, "/telemetry-ext", None, "{}")
        .await
        .unwrap();
    assert_eq!(ext.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn other_paths_are_404_and_non_thrift_bodies_400() {
    let mock = MockWarehouse::start().await.unwrap();
    let token = mock.token().to_string();
    let other = send(
        &mock,
        Method::POST,
        "/sql/1.0/warehouses/other",
        Some(&token),
        "",
    )
    .await
    .unwrap();
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let path = mock.http_path().to_string();
    let get = send(&mock, Method::GET, &path, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let junk = send(&mock, Method::POST, &path, Some(&token), "hello")
        .await
        .unwrap();
    assert_eq!(junk.status, StatusCode::BAD_REQUEST);
    assert_eq!(mock.call_count(endpoint::UNKNOWN), 2);
    assert_eq!(mock.call_count(endpoint::MALFORMED_THRIFT), 1);
}

#[tokio::test]
async fn feature_flags_answer_configured_value_and_ttl_and_record_requests() {
    let mock = MockWarehouse::builder()
        .telemetry_enabled(true)
        .feature_flag_ttl_seconds(120)
        .start()
        .await
        .unwrap();
    let token = mock.token().to_string();
    let got = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        json_body(&got),
        json!({"flags": [{"name": TELEMETRY_FLAG_NAME, "value": "true"}], "ttl_seconds": 120})
    );

    mock.set_telemetry_enabled(false);
    mock.set_feature_flag_ttl_seconds(5);
    mock.set_feature_flag("other.flag", Some("x"));
    let got = json_body(
        &send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
            .await
            .unwrap(),
    );
    assert_eq!(got["ttl_seconds"], 5);
    assert_eq!(got["flags"].as_array().unwrap().len(), 2);
    assert!(got["flags"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": TELEMETRY_FLAG_NAME, "value": "false"})));

    mock.set_feature_flag(TELEMETRY_FLAG_NAME, None);
    mock.set_feature_flag("other.flag", None);
    let got = json_body(
        &send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
            .await
            .unwrap(),
    );
    assert_eq!(got["flags"], json!([]));

    let reqs = mock.feature_flag_requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].driver, "RUST");
    assert_eq!(reqs[0].version, "0.1.0");
    assert!(reqs[0].headers.iter().all(|(n, _)| n != "authorization"));
    assert_eq!(mock.call_count(endpoint::FEATURE_FLAGS), 3);
}

#[tokio::test]
async fn telemetry_endpoints_record_parsed_proto_logs() {
    let mock = MockWarehouse::start().await.unwrap();
    let token = mock.token().to_string();
    let log = json!({"workspace_id": 1, "entry": {"sql_driver_log": {"session_id": "s-1"}}});
    let body =
        json!({"uploadTime": 1, "items": [], "protoLogs": [log.to_string(), log.to_string()]});
    let got = send(
        &mock,
        Method::POST,
        "/telemetry-ext",
        Some(&token),
        body.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        json_body(&got),
        json!({"errors": [], "numSuccess": 2, "numProtoSuccess": 2})
    );
    let body = json!({"uploadTime": 2, "items": [], "protoLogs": [json!({"x": 1}).to_string()]});
    let got = send(
        &mock,
        Method::POST,
        "/telemetry-unauth",
        None,
        body.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(got.status, StatusCode::OK);

    let logs = mock.telemetry_logs();
    assert_eq!(logs, vec![log.clone(), log, json!({"x": 1})]);
    let reqs = mock.telemetry_requests();
    assert_eq!(reqs[0].endpoint, endpoint::TELEMETRY_EXT);
    assert!(reqs[0].had_authorization);
    assert_eq!(reqs[1].endpoint, endpoint::TELEMETRY_UNAUTH);
    assert!(!reqs[1].had_authorization);
    assert!(reqs[1]
        .headers
        .contains(&("user-agent".to_string(), "mock-tests/1.0".to_string())));
    assert_eq!(mock.call_count(endpoint::TELEMETRY_EXT), 1);
    assert_eq!(mock.call_count(endpoint::TELEMETRY_UNAUTH), 1);

    let bad = send(&mock, Method::POST, "/telemetry-unauth", None, "garbage")
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(mock.telemetry_requests().len(), 3);
}

#[tokio::test]
async fn status_fault_answers_the_status_with_retry_after_for_the_next_n_requests() {
    let mock = MockWarehouse::start().await.unwrap();
    let token = mock.token().to_string();
    mock.inject(
        Fault::http_status(503)
            .retry_after("2")
            .on(endpoint::FEATURE_FLAGS)
            .times(2),
    );
    assert_eq!(mock.pending_faults(), 2);
    for _ in 0..2 {
        let got = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
            .await
            .unwrap();
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(got.headers[header::RETRY_AFTER], "2");
    }
    let got = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(mock.call_count(endpoint::FEATURE_FLAGS), 3);
    assert_eq!(mock.pending_faults(), 0);
}

#[tokio::test(start_paused = true)]
async fn delay_fault_holds_the_reply_back() {
    let mock = MockWarehouse::start().await.unwrap();
    let token = mock.token().to_string();
    mock.inject(Fault::delay(Duration::from_secs(30)).on(endpoint::TELEMETRY_EXT));
    let started = tokio::time::Instant::now();
    let body = json!({"uploadTime": 1, "items": [], "protoLogs": []}).to_string();
    let got = send(&mock, Method::POST, "/telemetry-ext", Some(&token), body)
        .await
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn corrupt_body_fault_answers_200_with_garbage() {
    let mock = MockWarehouse::start().await.unwrap();
    let token = mock.token().to_string();
    mock.inject(Fault::corrupt_body().on(endpoint::FEATURE_FLAGS));
    let got = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&got.body).is_err());
    assert_eq!(&got.body[..], server::GARBAGE_BODY);
}

#[tokio::test]
async fn drop_connection_fault_closes_the_socket_without_a_reply() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.inject(Fault::drop_connection());
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", mock.port()))
        .await
        .unwrap();
    let req = format!(
        "GET {FLAGS_PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\n\r\n",
        mock.token()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let n = s.read_to_end(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "got a reply: {:?}", String::from_utf8_lossy(&buf));
    // The next request is answered normally.
    let token = mock.token().to_string();
    let got = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_closes_the_port_and_ends_every_task() {
    let mock = MockWarehouse::start().await.unwrap();
    let port = mock.port();
    // An idle keep-alive connection must not keep the server alive.
    let idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    mock.shutdown().await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    let mut idle = idle;
    let mut buf = [0u8; 1];
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0);
    // Shutting down twice is harmless.
    mock.shutdown().await;
}

#[tokio::test]
async fn no_task_outlives_shutdown_even_with_requests_in_flight() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let mock = MockWarehouse::start().await.unwrap();
    // One connection idle, one with a request held by a long delay.
    mock.inject(Fault::delay(Duration::from_secs(3600)));
    let _idle = tokio::net::TcpStream::connect(("127.0.0.1", mock.port()))
        .await
        .unwrap();
    let mut busy = tokio::net::TcpStream::connect(("127.0.0.1", mock.port()))
        .await
        .unwrap();
    busy.write_all(b"GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..400 {
        if mock.pending_faults() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        mock.pending_faults(),
        0,
        "the delayed request reached the mock"
    );
    assert!(tasks() > before);
    mock.shutdown().await;
    assert_eq!(tasks(), before);
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_server() {
    let mock = MockWarehouse::start().await.unwrap();
    let port = mock.port();
    let clone = mock.clone();
    drop(mock);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok());
    drop(clone);
    // Let the runtime run the aborted task's cleanup.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

#[test]
fn the_handle_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<MockWarehouse>();
}
