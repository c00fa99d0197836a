//! No OAuth secret, token, authorization code or PKCE verifier shows in anything the driver
//! logs (`tracing` at trace level), in its errors or in its telemetry. Its own test binary:
//! the log capture is the process's global subscriber.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::oauth::{builder, m2m, play_browser, select_one, temp_cache, u2m, Recording};
use databricks_sql::auth::OAuthM2M;
use databricks_sql::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET};
use databricks_sql::telemetry::TelemetryConfiguration;

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
        .await;
    if let Err(e) = failing {
        errors.push(e);
    }
    session.close().await.expect("close");
    client.close().await.expect("close");
    let wrong = builder(&mock)
        .transport(transport.clone())
        .oauth_m2m(OAuthM2M::new(DEFAULT_OAUTH_CLIENT_ID, "wrong-secret-value"))
        .build()
        .expect("client");
    errors.push(wrong.open_session().await.expect_err("wrong secret"));

    // U2M: a login, then a forged redirect.
    let cache = temp_cache("tokens.json");
    let client = builder(&mock)
        .transport(transport.clone())
        .telemetry(telemetry)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    session.close().await.expect("close");
    client.close().await.expect("close");
    let forged = builder(&mock)
        .transport(transport.clone())
        .oauth_u2m(
            u2m(&temp_cache("other.json"))
                .on_login_url(play_browser(|l| l.replace("state=", "state=x"))),
        )
        .build()
        .expect("client");
    errors.push(forged.open_session().await.expect_err("forged state"));

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
