//! No OAuth secret, token, authorization code or PKCE verifier shows in anything the driver
//! logs (`tracing` at trace level), in its errors or in its telemetry. Its own test binary:
//! the log capture is the process's global subscriber.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::oauth::{
    builder, forge_state, m2m, play_browser, select_one, temp_cache, u2m, Recording,
};
use databricks_sql::auth::OAuthM2M;
use databricks_sql::mock::{
    endpoint, Fault, MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET,
};
use databricks_sql::telemetry::TelemetryConfiguration;
use databricks_sql::ErrorKind;

/// Every `tracing` event at any level, formatted with its fields.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_token_or_verifier_shows_in_logs_errors_or_telemetry() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(30))
        .telemetry_enabled(true)
        .start()
        .await
        .expect("mock");
    let transport = Recording::new(None);
    let mut telemetry = TelemetryConfiguration::default();
    telemetry.force_enabled = true;
    let mut errors = Vec::new();

    // M2M, with a revoked token on the way, and a wrong secret.
    let client = builder(&mock)
        .transport(transport.clone())
        .telemetry(telemetry.clone())
        .oauth_m2m(m2m())
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    mock.revoke_oauth_access_tokens();
    select_one(&session).await;
    let failing = session
        .execute_statement("SELECT * FROM no_such_table")
        .await
        .expect_err("no such table");
    errors.push(failing);
    session.close().await.expect("close");
    client.close().await.expect("close");
    let wrong = builder(&mock)
        .transport(transport.clone())
        .oauth_m2m(OAuthM2M::new(DEFAULT_OAUTH_CLIENT_ID, "wrong-secret-value"))
        .build()
        .expect("client");
    errors.push(wrong.open_session().await.expect_err("wrong secret"));

    // U2M: a login; a second client renewing through the cache file (30 s tokens are within
    // the renewal margin); a third whose refresh is refused, so it logs in; a fourth whose
    // refresh meets a server error; and a login that only gets a forged redirect.
    let cache = temp_cache("tokens.json");
    let u2m_client = |telemetry: Option<TelemetryConfiguration>| {
        let mut b = builder(&mock)
            .transport(transport.clone())
            .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)));
        if let Some(t) = telemetry {
            b = b.telemetry(t);
        }
        b.build().expect("client")
    };
    let client = u2m_client(Some(telemetry));
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    session.close().await.expect("close");
    client.close().await.expect("close");
    let before = mock.oauth_requests();
    let renewing = u2m_client(None);
    let session = renewing.open_session().await.expect("renewed session");
    select_one(&session).await;
    session.close().await.expect("close");
    let counts = mock.oauth_requests();
    assert_eq!(counts.authorize, before.authorize, "no login: {counts:?}");
    assert_eq!(counts.refresh_token, before.refresh_token + 1, "{counts:?}");

    mock.revoke_oauth_refresh_tokens();
    let refused = u2m_client(None);
    let session = refused.open_session().await.expect("session after a login");
    select_one(&session).await;
    session.close().await.expect("close");
    let after = mock.oauth_requests();
    assert_eq!(after.refresh_token, counts.refresh_token + 1, "{after:?}");
    assert_eq!(
        after.failed,
        counts.failed + 1,
        "the refresh was refused: {after:?}"
    );
    assert_eq!(
        after.authorize,
        counts.authorize + 1,
        "then a login: {after:?}"
    );

    mock.inject(Fault::http_status(503).on(endpoint::OAUTH_TOKEN).times(5));
    let unlucky = u2m_client(None);
    let err = unlucky
        .open_session()
        .await
        .expect_err("the token endpoint fails");
    assert_eq!(err.kind(), ErrorKind::Http, "{err}");
    errors.push(err);
    mock.clear_faults();

    let forged = builder(&mock)
        .transport(transport.clone())
        .oauth_u2m(
            u2m(&temp_cache("other.json"))
                .login_timeout(Duration::from_secs(1))
                .on_login_url(common::oauth::Browser::default().play(&[forge_state])),
        )
        .build()
        .expect("client");
    let err = forged.open_session().await.expect_err("forged state");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    errors.push(err);
    assert_eq!(errors.len(), 4, "every expected error happened");

    let mut secrets = transport.secrets();
    secrets.push(DEFAULT_OAUTH_CLIENT_SECRET.to_string());
    secrets.push("wrong-secret-value".to_string());
    assert!(
        secrets.len() > 6,
        "tokens, codes and verifiers were seen: {}",
        secrets.len()
    );
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("access token obtained"),
        "trace output was captured"
    );
    let texts: Vec<String> = errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .collect();
    let telemetry: Vec<String> = mock
        .telemetry_requests()
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert!(!telemetry.is_empty(), "telemetry was exported");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret in the logs");
        for text in &texts {
            assert!(
                !text.contains(secret.as_str()),
                "a secret in an error: {text}"
            );
        }
        for body in &telemetry {
            assert!(!body.contains(secret.as_str()), "a secret in telemetry");
        }
    }
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
}
