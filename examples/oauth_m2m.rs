//! OAuth machine to machine: a service principal's client id and secret, exchanged for access
//! tokens that the driver renews before they expire.
//!
//! ```text
//! cargo run --example oauth_m2m
//! ```
//!
//! With `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH`, `DATABRICKS_CLIENT_ID` and
//! `DATABRICKS_CLIENT_SECRET` set it authenticates to that workspace; otherwise it starts the
//! in-process mock warehouse, whose authorization server issues tokens valid for 3 seconds,
//! and runs statements for 8 seconds so that the renewals show.

mod common;

use std::time::{Duration, Instant};

use databricks_sql::auth::OAuthM2M;
use databricks_sql::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET};
use databricks_sql::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = common::start(&["DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"]);

    // Keep the mock alive for the whole run (it stops when dropped).
    let mut mock = None;
    let (builder, run_for) = if real {
        println!(
            "Authenticating to DATABRICKS_HOST as the service principal DATABRICKS_CLIENT_ID."
        );
        let id = std::env::var("DATABRICKS_CLIENT_ID")?;
        let secret = std::env::var("DATABRICKS_CLIENT_SECRET")?;
        let builder = ClientBuilder::from_env().oauth_m2m(OAuthM2M::new(id, secret));
        (builder, Duration::ZERO)
    } else {
        let m = MockWarehouse::builder()
            .oauth_token_lifetime(Duration::from_secs(3))
            .start()
            .await?;
        println!(
            "No DATABRICKS_* variables set: the embedded mock warehouse at {}:{} (tokens valid 3 s)",
            m.host(),
            m.port()
        );
        let builder = ClientBuilder::new()
            .host(m.host())
            .port(m.port())
            .http_path(m.http_path())
            .plain_http(true)
            .oauth_m2m(OAuthM2M::new(
                DEFAULT_OAUTH_CLIENT_ID,
                DEFAULT_OAUTH_CLIENT_SECRET,
            ));
        mock = Some(m);
        (builder, Duration::from_secs(8))
    };

    let client = builder.user_agent_entry("oauth_m2m example").build()?;
    let session = client.open_session().await?;
    let started = Instant::now();
    let mut statements = 0;
    loop {
        let mut op = session.execute_statement("SELECT 1").await?;
        op.fetch_all().await?;
        op.close().await?;
        statements += 1;
        if started.elapsed() >= run_for {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    session.close().await?;
    client.close().await?;
    println!(
        "{statements} statement(s) in {:.1} s, none refused.",
        started.elapsed().as_secs_f64()
    );
    if let Some(m) = mock {
        let counts = m.oauth_requests();
        println!(
            "The mock's authorization server: {} discovery request(s), {} token request(s) \
             (client credentials), {} refused.",
            counts.discovery, counts.client_credentials, counts.failed
        );
    }
    Ok(())
}
