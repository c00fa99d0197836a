//! End-to-end tests of the mock's OAuth server over real loopback connections: discovery, the
//! authorization and token endpoints, and OAuth access tokens on the authenticated routes.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::http_tests::{send, Got};
use super::*;

const REDIRECT: &str = "http://localhost:8020/callback";
const FLAGS_PATH: &str = "/api/2.0/connector-service/feature-flags/RUST/0.1.0";

/// Send one request with exactly these headers.
async fn request(
    mock: &MockWarehouse,
    method: Method,
    path_and_query: &str,
    headers: &[(header::HeaderName, String)],
    body: impl Into<Bytes>,
) -> Got {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req =
        Request::builder()
            .method(method)
            .uri(format!("{}{}", mock.base_url(), path_and_query));
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `POST /oidc/v1/token` with a form body, and HTTP Basic client authentication when given
/// (the id and secret form-urlencoded, then base64, as RFC 6749 section 2.3.1 asks).
async fn token_request(
    mock: &MockWarehouse,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Got {
    let basic = basic.map(|(id, secret)| {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let secret: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        format!("{id}:{secret}")
    });
    token_request_with_basic(mock, pairs, basic.as_deref()).await
}

/// `POST /oidc/v1/token` with a form body and `Authorization: Basic <base64 of credentials>`
/// when given, `credentials` taken as they are.
async fn token_request_with_basic(
    mock: &MockWarehouse,
    pairs: &[(&str, &str)],
    credentials: Option<&str>,
) -> Got {
    let mut headers = vec![(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some(credentials) = credentials {
        let encoded = STANDARD.encode(credentials);
        headers.push((header::AUTHORIZATION, format!("Basic {encoded}")));
    }
    request(mock, Method::POST, "/oidc/v1/token", &headers, form(pairs)).await
}

fn json_body(g: &Got) -> Value {
    serde_json::from_slice(&g.body).unwrap()
}

/// The S256 code challenge of `verifier`.
fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters_0123456789~";

/// `GET /oidc/v1/authorize` with these parameters.
async fn authorize(mock: &MockWarehouse, pairs: &[(&str, &str)]) -> Got {
    let query = form(pairs);
    request(
        mock,
        Method::GET,
        &format!("/oidc/v1/authorize?{query}"),
        &[],
        "",
    )
    .await
}

/// A valid authorization request for `databricks-cli` with [`VERIFIER`]'s challenge; returns
/// the code from the redirect.
async fn authorization_code_for(mock: &MockWarehouse, redirect_uri: &str) -> String {
    let challenge = challenge_of(VERIFIER);
    let got = authorize(
        mock,
        &[
            ("response_type", "code"),
            ("client_id", DEFAULT_OAUTH_U2M_CLIENT_ID),
            ("redirect_uri", redirect_uri),
            ("scope", "all-apis offline_access"),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FOUND);
    let location = url::Url::parse(got.headers[header::LOCATION].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

async fn exchange(mock: &MockWarehouse, code: &str, redirect_uri: &str, verifier: &str) -> Got {
    token_request(
        mock,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", DEFAULT_OAUTH_U2M_CLIENT_ID),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

async fn m2m_token(mock: &MockWarehouse) -> String {
    let got = token_request(
        mock,
        &[("grant_type", "client_credentials")],
        Some((DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET)),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    json_body(&got)["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The status of a non-Thrift POST to the Thrift endpoint with `token`: 400 once past
/// authentication, 401 when the token is refused.
async fn thrift_status(mock: &MockWarehouse, token: &str) -> StatusCode {
    let path = mock.http_path().to_string();
    send(mock, Method::POST, &path, Some(token), "not thrift")
        .await
        .unwrap()
        .status
}

fn assert_invalid_grant(got: &Got) {
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_body(got)["error"], "invalid_grant");
    assert!(json_body(got)["error_description"].is_string());
}

#[tokio::test]
async fn discovery_describes_the_oidc_endpoints_under_the_base_url() {
    let mock = MockWarehouse::start().await.unwrap();
    let got = send(
        &mock,
        Method::GET,
        "/oidc/.well-known/oauth-authorization-server",
        None,
        "",
    )
    .await
    .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::CONTENT_TYPE], "application/json");
    let base = mock.base_url();
    assert_eq!(
        json_body(&got),
        json!({
            "issuer": format!("{base}/oidc"),
            "authorization_endpoint": format!("{base}/oidc/v1/authorize"),
            "token_endpoint": format!("{base}/oidc/v1/token"),
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
        })
    );
    assert_eq!(mock.oauth_requests().discovery, 1);
    assert_eq!(mock.call_count(endpoint::OAUTH_DISCOVERY), 1);
}

#[tokio::test]
async fn client_credentials_with_basic_auth_issue_an_hour_long_bearer_token() {
    let mock = MockWarehouse::start().await.unwrap();
    let got = token_request(
        &mock,
        &[("grant_type", "client_credentials")],
        Some((DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET)),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::CACHE_CONTROL], "no-store");
    let body = json_body(&got);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 43, "{token}");
    assert_ne!(token, mock.token());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "all-apis");
    assert!(body.get("refresh_token").is_none());
    // Each request gets a new token.
    assert_ne!(m2m_token(&mock).await, token);
}

#[tokio::test]
async fn client_credentials_with_the_secret_in_the_body_for_a_registered_client() {
    let mock = MockWarehouse::builder()
        .oauth_client("sp-1", "s3cret")
        .start()
        .await
        .unwrap();
    let got = token_request(
        &mock,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "sp-1"),
            ("client_secret", "s3cret"),
            ("scope", "sql"),
        ],
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(json_body(&got)["scope"], "sql");
    // The default client stays registered.
    m2m_token(&mock).await;
    assert_eq!(mock.oauth_requests().client_credentials, 2);
}

#[tokio::test]
async fn client_credentials_with_a_wrong_secret_or_client_get_401_invalid_client() {
    let mock = MockWarehouse::start().await.unwrap();
    let expected =
        json!({"error": "invalid_client", "error_description": "Client authentication failed"});
    let cc = [("grant_type", "client_credentials")];
    for basic in [
        (DEFAULT_OAUTH_CLIENT_ID, "wrong"),
        ("nobody", DEFAULT_OAUTH_CLIENT_SECRET),
    ] {
        let got = token_request(&mock, &cc, Some(basic)).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED);
        assert_eq!(json_body(&got), expected);
    }
    let post = token_request(
        &mock,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_OAUTH_CLIENT_ID),
            ("client_secret", "wrong"),
        ],
        None,
    )
    .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    let anonymous = token_request(&mock, &cc, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let malformed = request(
        &mock,
        Method::POST,
        "/oidc/v1/token",
        &[
            (
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded".to_string(),
            ),
            (header::AUTHORIZATION, "Basic %%%".to_string()),
        ],
        form(&cc),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::UNAUTHORIZED);
    m2m_token(&mock).await;
    assert_eq!(
        mock.oauth_requests(),
        OAuthRequestCounts {
            client_credentials: 6,
            failed: 5,
            ..Default::default()
        }
    );
    assert_eq!(mock.call_count(endpoint::OAUTH_TOKEN), 6);
}

#[tokio::test]
async fn http_basic_credentials_are_form_decoded_after_base64() {
    let (id, secret) = ("id with space", "a+b%:c&d");
    let mock = MockWarehouse::builder()
        .oauth_client(id, secret)
        .start()
        .await
        .unwrap();
    let cc = [("grant_type", "client_credentials")];
    let got = token_request(&mock, &cc, Some((id, secret))).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(json_body(&got)["access_token"].is_string());
    // The same credentials without the form encoding are other ones: `+` is a space.
    let raw = token_request_with_basic(&mock, &cc, Some(&format!("{id}:{secret}"))).await;
    assert_eq!(raw.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(&raw)["error"], "invalid_client");
    assert_eq!(mock.oauth_requests().failed, 1);
}

#[tokio::test]
async fn revoked_refresh_tokens_are_invalid_grant_while_new_ones_work() {
    let mock = MockWarehouse::start().await.unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let first = json_body(&exchange(&mock, &code, REDIRECT, VERIFIER).await);
    let refresh = |token: String| {
        let mock = mock.clone();
        async move {
            token_request(
                &mock,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", DEFAULT_OAUTH_U2M_CLIENT_ID),
                ],
                None,
            )
            .await
        }
    };
    let old = first["refresh_token"].as_str().unwrap().to_string();
    mock.revoke_oauth_refresh_tokens();
    assert_invalid_grant(&refresh(old).await);
    // The access token stays valid.
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(thrift_status(&mock, access).await, StatusCode::BAD_REQUEST);
    let code = authorization_code_for(&mock, REDIRECT).await;
    let second = json_body(&exchange(&mock, &code, REDIRECT, VERIFIER).await);
    let new = second["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh(new).await.status, StatusCode::OK);
}

#[tokio::test]
async fn token_requests_that_are_not_form_encoded_or_of_unknown_grant_are_refused() {
    let mock = MockWarehouse::start().await.unwrap();
    let unknown = token_request(&mock, &[("grant_type", "password")], None).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_body(&unknown),
        json!({"error": "unsupported_grant_type"})
    );
    let missing = token_request(&mock, &[], None).await;
    assert_eq!(json_body(&missing)["error"], "invalid_request");
    let repeated = token_request(
        &mock,
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
        None,
    )
    .await;
    assert_eq!(json_body(&repeated)["error"], "invalid_request");
    let json_body_sent = request(
        &mock,
        Method::POST,
        "/oidc/v1/token",
        &[(header::CONTENT_TYPE, "application/json".to_string())],
        r#"{"grant_type":"client_credentials"}"#,
    )
    .await;
    assert_eq!(json_body_sent.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_body(&json_body_sent)["error"], "invalid_request");
    let get = request(&mock, Method::GET, "/oidc/v1/token", &[], "").await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mock.oauth_requests().failed, 4);
}

#[tokio::test]
async fn authorize_redirects_to_the_loopback_uri_with_a_code_and_the_state() {
    let mock = MockWarehouse::start().await.unwrap();
    let challenge = challenge_of(VERIFIER);
    let state = "a b&c=d/é";
    let got = authorize(
        &mock,
        &[
            ("response_type", "code"),
            ("client_id", DEFAULT_OAUTH_U2M_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:8020/cb?from=cli"),
            ("scope", "all-apis offline_access"),
            ("state", state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FOUND);
    let location = got.headers[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:8020/cb?from=cli&code="),
        "{location}"
    );
    let url = url::Url::parse(location).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 3);
    assert_eq!(pairs[0], ("from".to_string(), "cli".to_string()));
    assert_eq!(pairs[1].0, "code");
    assert!(pairs[1].1.len() >= 43);
    assert_eq!(pairs[2], ("state".to_string(), state.to_string()));
    assert_eq!(mock.oauth_requests().authorize, 1);
    // The query (challenge, state) is not recorded.
    let recorded = mock.requests();
    assert_eq!(recorded[0].path, "/oidc/v1/authorize");
    assert_eq!(recorded[0].name, endpoint::OAUTH_AUTHORIZE);
}

#[tokio::test]
async fn authorize_refuses_invalid_requests_with_400_and_no_redirect() {
    let mock = MockWarehouse::builder()
        .oauth_u2m_client("my-app")
        .start()
        .await
        .unwrap();
    let challenge = challenge_of(VERIFIER);
    let valid = [
        ("response_type", "code"),
        ("client_id", "my-app"),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    assert_eq!(authorize(&mock, &valid).await.status, StatusCode::FOUND);
    let replace = |name: &'static str, value: Option<&'static str>| {
        let mut pairs: Vec<(&str, &str)> = valid.iter().copied().filter(|p| p.0 != name).collect();
        if let Some(v) = value {
            pairs.push((name, v));
        }
        pairs
    };
    let cases = [
        replace("redirect_uri", Some("https://evil.example.com/cb")),
        replace("redirect_uri", Some("http://localhost/cb")),
        replace("redirect_uri", None),
        replace("client_id", Some(DEFAULT_OAUTH_CLIENT_ID)),
        replace("client_id", None),
        replace("response_type", Some("token")),
        replace("code_challenge_method", Some("plain")),
        replace("code_challenge_method", None),
        replace("code_challenge", None),
        replace("code_challenge", Some("not-a-sha256")),
        replace("state", None),
        replace("state", Some("")),
    ];
    for pairs in &cases {
        let got = authorize(&mock, pairs).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(got.headers.get(header::LOCATION).is_none());
        assert_eq!(json_body(&got)["error"], "invalid_request", "{pairs:?}");
    }
    assert_eq!(mock.oauth_requests().authorize, 1 + cases.len());
    let post = request(&mock, Method::POST, "/oidc/v1/authorize", &[], "").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn authorization_code_with_the_right_verifier_gives_access_and_refresh_tokens() {
    let mock = MockWarehouse::start().await.unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let got = exchange(&mock, &code, REDIRECT, VERIFIER).await;
    assert_eq!(got.status, StatusCode::OK);
    let body = json_body(&got);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "all-apis offline_access");
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(access.len() >= 43 && refresh.len() >= 43);
    assert_ne!(access, refresh);
    assert_eq!(thrift_status(&mock, access).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        mock.oauth_requests(),
        OAuthRequestCounts {
            authorize: 1,
            authorization_code: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn authorization_code_with_a_wrong_verifier_is_invalid_grant() {
    let mock = MockWarehouse::start().await.unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let wrong = VERIFIER.replace('a', "b");
    assert_invalid_grant(&exchange(&mock, &code, REDIRECT, &wrong).await);
    // The challenge itself is no verifier.
    let code = authorization_code_for(&mock, REDIRECT).await;
    let challenge = challenge_of(VERIFIER);
    assert_invalid_grant(&exchange(&mock, &code, REDIRECT, &challenge).await);
    assert_eq!(mock.oauth_requests().failed, 2);
}

#[tokio::test]
async fn an_authorization_code_is_single_use() {
    let mock = MockWarehouse::start().await.unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let first = exchange(&mock, &code, REDIRECT, VERIFIER).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_invalid_grant(&exchange(&mock, &code, REDIRECT, VERIFIER).await);
    assert_invalid_grant(&exchange(&mock, "made-up", REDIRECT, VERIFIER).await);
}

#[tokio::test]
async fn authorization_code_with_another_redirect_uri_or_client_is_invalid_grant() {
    let mock = MockWarehouse::builder()
        .oauth_u2m_client("other-app")
        .start()
        .await
        .unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let other = "http://localhost:8021/callback";
    assert_invalid_grant(&exchange(&mock, &code, other, VERIFIER).await);
    let code = authorization_code_for(&mock, REDIRECT).await;
    let got = token_request(
        &mock,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "other-app"),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_invalid_grant(&got);
    assert_eq!(
        mock.oauth_requests(),
        OAuthRequestCounts {
            authorize: 2,
            authorization_code: 2,
            failed: 2,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn refresh_token_grant_issues_new_tokens_and_keeps_the_old_refresh_token() {
    let mock = MockWarehouse::start().await.unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let first = json_body(&exchange(&mock, &code, REDIRECT, VERIFIER).await);
    let refresh = first["refresh_token"].as_str().unwrap();
    let refresh_with = |token: String, client: &'static str| {
        let mock = mock.clone();
        async move {
            token_request(
                &mock,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", client),
                ],
                None,
            )
            .await
        }
    };
    let got = refresh_with(refresh.to_string(), DEFAULT_OAUTH_U2M_CLIENT_ID).await;
    assert_eq!(got.status, StatusCode::OK);
    let second = json_body(&got);
    assert_eq!(second["scope"], first["scope"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let new_refresh = second["refresh_token"].as_str().unwrap().to_string();
    // Both refresh tokens work.
    for token in [refresh.to_string(), new_refresh] {
        let got = refresh_with(token, DEFAULT_OAUTH_U2M_CLIENT_ID).await;
        assert_eq!(got.status, StatusCode::OK);
    }
    assert_invalid_grant(&refresh_with(refresh.to_string(), "another-client").await);
    assert_invalid_grant(&refresh_with("unknown".to_string(), DEFAULT_OAUTH_U2M_CLIENT_ID).await);
    assert_eq!(
        mock.oauth_requests(),
        OAuthRequestCounts {
            authorize: 1,
            authorization_code: 1,
            refresh_token: 5,
            failed: 2,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn an_oauth_access_token_opens_a_session_like_the_static_token() {
    let mock = MockWarehouse::start().await.unwrap();
    let token = m2m_token(&mock).await;
    let client = mock.client_builder().token(&token).build().unwrap();
    let session = client.open_session().await.unwrap();
    assert_eq!(mock.open_sessions(), 1);
    session.close().await.unwrap();
    client.close().await.unwrap();
    let flags = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(flags.status, StatusCode::OK);
    let body = json!({"uploadTime": 1, "items": [], "protoLogs": []}).to_string();
    let ext = send(&mock, Method::POST, "/telemetry-ext", Some(&token), body)
        .await
        .unwrap();
    assert_eq!(ext.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_oauth_access_token_gets_401() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let got = token_request(
        &mock,
        &[("grant_type", "client_credentials")],
        Some((DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET)),
    )
    .await;
    let body = json_body(&got);
    // Announced as one second, the shortest `expires_in`.
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(thrift_status(&mock, &token).await, StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(thrift_status(&mock, &token).await, StatusCode::UNAUTHORIZED);
    let flags = send(&mock, Method::GET, FLAGS_PATH, Some(&token), "")
        .await
        .unwrap();
    assert_eq!(flags.status, StatusCode::UNAUTHORIZED);
    assert_eq!(flags.headers[header::WWW_AUTHENTICATE], "Bearer");
    // A fresh token works.
    let fresh = m2m_token(&mock).await;
    assert_eq!(thrift_status(&mock, &fresh).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn revoked_oauth_access_tokens_get_401_while_the_static_token_keeps_working() {
    let mock = MockWarehouse::start().await.unwrap();
    let code = authorization_code_for(&mock, REDIRECT).await;
    let u2m = json_body(&exchange(&mock, &code, REDIRECT, VERIFIER).await);
    let m2m = m2m_token(&mock).await;
    let u2m_access = u2m["access_token"].as_str().unwrap();
    assert_eq!(
        thrift_status(&mock, u2m_access).await,
        StatusCode::BAD_REQUEST
    );
    mock.revoke_oauth_access_tokens();
    assert_eq!(thrift_status(&mock, &m2m).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        thrift_status(&mock, u2m_access).await,
        StatusCode::UNAUTHORIZED
    );
    let pat = mock.token().to_string();
    assert_eq!(thrift_status(&mock, &pat).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        thrift_status(&mock, "not-a-token").await,
        StatusCode::UNAUTHORIZED
    );
    // The refresh token survives revocation and its new access token is accepted.
    let got = token_request(
        &mock,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", u2m["refresh_token"].as_str().unwrap()),
            ("client_id", DEFAULT_OAUTH_U2M_CLIENT_ID),
        ],
        None,
    )
    .await;
    let fresh = json_body(&got)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(thrift_status(&mock, &fresh).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn set_oauth_token_lifetime_applies_to_tokens_issued_afterwards() {
    let mock = MockWarehouse::start().await.unwrap();
    let before = m2m_token(&mock).await;
    mock.set_oauth_token_lifetime(Duration::from_secs(120));
    let got = token_request(
        &mock,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_OAUTH_CLIENT_ID),
            ("client_secret", DEFAULT_OAUTH_CLIENT_SECRET),
        ],
        None,
    )
    .await;
    assert_eq!(json_body(&got)["expires_in"], 120);
    mock.set_oauth_token_lifetime(Duration::ZERO);
    let expired_at_once = m2m_token(&mock).await;
    assert_eq!(
        thrift_status(&mock, &expired_at_once).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(thrift_status(&mock, &before).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_fault_on_the_token_endpoint_is_counted_as_a_call_only() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.inject(
        Fault::http_status(503)
            .retry_after("1")
            .on(endpoint::OAUTH_TOKEN),
    );
    let got = token_request(
        &mock,
        &[("grant_type", "client_credentials")],
        Some((DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET)),
    )
    .await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    m2m_token(&mock).await;
    assert_eq!(mock.call_count(endpoint::OAUTH_TOKEN), 2);
    assert_eq!(mock.oauth_requests().client_credentials, 1);
}

#[tokio::test]
async fn no_secret_is_recorded_with_the_requests() {
    let mock = MockWarehouse::start().await.unwrap();
    m2m_token(&mock).await;
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/oidc/v1/token");
    assert!(recorded[0]
        .headers
        .iter()
        .all(|(n, v)| n != "authorization" && !v.contains(DEFAULT_OAUTH_CLIENT_SECRET)));
}
