//! OAuth against the mock warehouse's authorization server: machine to machine (client
//! credentials), user to machine (a browser login played by the test), renewal, and the 401
//! retry. (That no secret shows anywhere: `oauth_secrets.rs`.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::oauth::{
    builder, forge_state, m2m, play_browser, select_one, temp_cache, u2m, Browser, Recording,
};
use databricks_sql::auth::OAuthM2M;
use databricks_sql::mock::{endpoint, Fault, MockWarehouse, DEFAULT_OAUTH_CLIENT_ID};
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
    assert_eq!(
        mock.unauthorized_requests(),
        0,
        "tokens were renewed before they expired: no call was refused"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_statements_at_expiry_ask_for_one_token() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(4))
        .start()
        .await
        .expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = Arc::new(client.open_session().await.expect("session"));
    assert_eq!(mock.oauth_requests().client_credentials, 1);
    // Past the renewal point (a quarter of the lifetime before expiry: 3 s); the renewed
    // token's own renewal point is 3 s later, far beyond the statements.
    tokio::time::sleep(Duration::from_millis(3100)).await;
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
    assert_eq!(mock.unauthorized_requests(), 0);
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
async fn a_forged_redirect_gets_400_and_the_genuine_one_still_logs_in() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let browser = Browser::default();
    let client = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(browser.play(&[forge_state, |l| l])))
        .build()
        .expect("client");
    let session = client
        .open_session()
        .await
        .expect("logged in by the genuine redirect");
    select_one(&session).await;
    assert_eq!(browser.statuses().await, [vec![400, 200]]);
    assert_eq!(mock.oauth_requests().authorization_code, 1);
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
}

#[tokio::test]
async fn a_login_that_gets_only_a_forged_redirect_ends_at_the_login_timeout() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let browser = Browser::default();
    let client = builder(&mock)
        .oauth_u2m(
            u2m(&cache)
                .login_timeout(Duration::from_secs(1))
                .on_login_url(browser.play(&[forge_state])),
        )
        .build()
        .expect("client");
    let started = Instant::now();
    let err = client
        .open_session()
        .await
        .expect_err("no genuine redirect");
    assert_eq!(err.kind(), ErrorKind::Auth);
    let text = err.to_string();
    assert!(text.contains("timed out") && text.contains("1 s"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(browser.statuses().await, [vec![400]]);
    assert_eq!(mock.oauth_requests().authorization_code, 0);
}

#[tokio::test]
async fn m2m_credentials_with_reserved_characters_work_over_http_basic() {
    let (id, secret) = ("id with space", "a+b%:c&d");
    let mock = MockWarehouse::builder()
        .oauth_client(id, secret)
        .start()
        .await
        .expect("mock");
    let client = builder(&mock)
        .oauth_m2m(OAuthM2M::new(id, secret))
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    let counts = mock.oauth_requests();
    assert_eq!((counts.client_credentials, counts.failed), (1, 0));
}

#[tokio::test]
async fn a_refresh_that_fails_with_a_server_error_is_returned_without_a_browser_login() {
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
    first.open_session().await.expect("session after a login");

    // The cached access token has less than the margin left: the next client refreshes.
    let logins = Arc::new(AtomicUsize::new(0));
    let counted = logins.clone();
    let second = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        }))
        .build()
        .expect("client");
    mock.inject(Fault::http_status(503).on(endpoint::OAUTH_TOKEN).times(10));
    let err = second.open_session().await.expect_err("no token");
    assert_eq!(err.kind(), ErrorKind::Http, "{err}");
    assert_eq!(err.http_status(), Some(503));
    assert!(err.to_string().contains("/oidc/v1/token"), "{err}");
    assert_eq!(logins.load(Ordering::SeqCst), 0, "no browser login");

    mock.clear_faults();
    let session = second
        .open_session()
        .await
        .expect("refreshed once the server is back");
    select_one(&session).await;
    assert_eq!(logins.load(Ordering::SeqCst), 0);
    let counts = mock.oauth_requests();
    assert_eq!(
        (counts.authorize, counts.refresh_token),
        (1, 1),
        "{counts:?}"
    );
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
}

#[tokio::test]
async fn a_refresh_token_rotated_by_another_client_is_taken_from_the_cache_file() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let first = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let first_session = first.open_session().await.expect("session after a login");
    select_one(&first_session).await;
    mock.revoke_oauth_refresh_tokens();
    mock.revoke_oauth_access_tokens();

    // The second client takes the cached access token, which is refused; it is not taken
    // again from the file: the cached refresh token is refused too, so the second client logs
    // in and writes new tokens to the cache file.
    let browser = Browser::default();
    let second = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(browser.play(&[|l| l])))
        .build()
        .expect("client");
    let second_session = second.open_session().await.expect("session after a login");
    select_one(&second_session).await;
    assert_eq!(browser.statuses().await, [vec![200]]);
    assert_eq!(mock.oauth_requests().authorize, 2);

    // The first client's refresh token is refused; the one in the cache file is not.
    select_one(&first_session).await;
    let counts = mock.oauth_requests();
    assert_eq!(counts.authorize, 2, "no third login: {counts:?}");
    assert_eq!((counts.refresh_token, counts.failed), (3, 2), "{counts:?}");
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
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
