//! OAuth against the mock warehouse's authorization server: machine to machine (client
//! credentials), user to machine (a browser login played by the test), renewal, and the 401
//! retry. (That no secret shows anywhere: `oauth_secrets.rs`.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::oauth::{builder, m2m, play_browser, select_one, temp_cache, u2m, Recording};
use databricks_sql::auth::OAuthM2M;
use databricks_sql::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID};
use databricks_sql::ErrorKind;

#[tokio::test]
async fn m2m_finds_the_token_endpoint_and_runs_a_query() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    select_one(&session).await;
    let counts = mock.oauth_requests();
    assert_eq!(counts.discovery, 1);
    assert_eq!(counts.client_credentials, 1, "one token serves every call");
    session.close().await.expect("close");
    client.close().await.expect("close");
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire_without_a_failed_call() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(2))
        .start()
        .await
        .expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = client.open_session().await.expect("session");
    let until = Instant::now() + Duration::from_secs(6);
    let mut statements = 0;
    while Instant::now() < until {
        select_one(&session).await;
        statements += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = mock.oauth_requests();
    assert!(
        counts.client_credentials >= 3,
        "{statements} statements over 6 s with 2 s tokens: {counts:?}"
    );
    assert_eq!(counts.failed, 0);
    let calls = mock
        .requests()
        .iter()
        .filter(|r| r.path == mock.http_path())
        .count();
    assert!(calls > statements, "every call reached the warehouse");
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_statements_at_expiry_ask_for_one_token() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(2))
        .start()
        .await
        .expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = Arc::new(client.open_session().await.expect("session"));
    assert_eq!(mock.oauth_requests().client_credentials, 1);
    // Past the renewal point (a quarter of the lifetime before expiry).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { select_one(&session).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("statement");
    }
    assert_eq!(
        mock.oauth_requests().client_credentials,
        2,
        "one renewal for all 50"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_quoting_the_token_endpoint() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock)
        .oauth_m2m(OAuthM2M::new(
            DEFAULT_OAUTH_CLIENT_ID,
            "not-the-right-secret",
        ))
        .build()
        .expect("client");
    let err = client.open_session().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth);
    let text = err.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("/oidc/v1/token"), "{text}");
    for shown in [text, format!("{err:?}")] {
        assert!(!shown.contains("not-the-right-secret"), "{shown}");
    }
    assert_eq!(mock.oauth_requests().failed, 1);
}

#[tokio::test]
async fn a_401_to_a_revoked_oauth_token_is_retried_once_with_a_fresh_token() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    mock.revoke_oauth_access_tokens();
    select_one(&session).await;
    assert_eq!(mock.oauth_requests().client_credentials, 2);
}

#[tokio::test]
async fn a_401_to_a_personal_access_token_is_not_retried() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock).token("dapi-wrong").build().expect("client");
    let err = client.open_session().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth);
    let opens = mock
        .requests()
        .iter()
        .filter(|r| r.path == mock.http_path())
        .count();
    assert_eq!(opens, 1, "a refused PAT is sent once");
}

#[tokio::test]
async fn u2m_logs_in_once_then_reuses_its_cached_tokens_without_a_browser() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(30))
        .start()
        .await
        .expect("mock");
    let cache = temp_cache("tokens.json");
    let first = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let session = first
        .open_session()
        .await
        .expect("session after a browser login");
    select_one(&session).await;
    session.close().await.expect("close");
    assert_eq!(mock.oauth_requests().authorization_code, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache)
            .expect("cache file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token cache is private");
    }

    // The cached access token has less than a minute left: the refresh token renews it.
    let second = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(|_| panic!("no browser the second time")))
        .build()
        .expect("client");
    let session = second.open_session().await.expect("session from the cache");
    select_one(&session).await;
    let counts = mock.oauth_requests();
    assert_eq!(counts.authorize, 1, "no second login");
    assert_eq!(counts.refresh_token, 1);
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
}

#[tokio::test]
async fn a_redirect_with_another_state_fails_the_login() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let client = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l.replace("state=", "state=forged"))))
        .build()
        .expect("client");
    let err = client.open_session().await.expect_err("forged state");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(err.to_string().contains("state"), "{err}");
    assert_eq!(mock.oauth_requests().authorization_code, 0);
}

#[tokio::test]
async fn a_tampered_pkce_verifier_is_refused_by_the_token_endpoint() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let transport = Recording::new(Some(|body| {
        body.replace("code_verifier=", "code_verifier=x")
    }));
    let client = builder(&mock)
        .transport(transport)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let err = client.open_session().await.expect_err("wrong verifier");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(err.to_string().contains("invalid_grant"), "{err}");
}
