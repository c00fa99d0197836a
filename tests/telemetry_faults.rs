//! Telemetry never changes a query: with the telemetry endpoint or the feature-flag endpoint
//! failing in every way (HTTP 500, 401, 429, a garbage body, hanging past the export timeout,
//! connections dropped or refused), every query returns exactly what it returns with telemetry
//! off, no error reaches the caller, telemetry logs nothing above debug, and `client.close()`
//! returns within the close timeout plus 500 ms.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use databricks_sql::http::{HttpConfig, HttpRequest, HttpResponse, HttpTransport, HyperTransport};
use databricks_sql::mock::{endpoint, Fault, MockWarehouse};
use databricks_sql::telemetry::{TelemetryClientProvider, TelemetryConfiguration};
use databricks_sql::{DBSQLClient, ErrorKind};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use common::count_and_sum_ids;

const CLOSE_TIMEOUT: Duration = Duration::from_millis(800);

/// Telemetry that exports often, gives up fast, and closes within [`CLOSE_TIMEOUT`].
fn telemetry() -> TelemetryConfiguration {
    let mut t = TelemetryConfiguration::default();
    t.flush_interval = Duration::from_millis(30);
    t.export_timeout = Duration::from_millis(300);
    t.min_backoff = Duration::from_millis(5);
    t.max_backoff = Duration::from_millis(20);
    t.close_timeout = CLOSE_TIMEOUT;
    t
}

/// What the workload got back: everything a caller sees.
#[derive(Debug, PartialEq)]
struct Outcome {
    select_one: usize,
    range: (usize, i64),
    cloudfetch: (usize, i64),
    failure: (ErrorKind, Option<String>),
    catalogs: usize,
    dml: Option<i64>,
}

/// Runs a mixed workload: inline, CloudFetch, a failing statement, a metadata call, DML.
async fn workload(client: &DBSQLClient) -> Outcome {
    let session = client.open_session().await.expect("session opens");
    let mut op = session
        .execute_statement("SELECT 1")
        .await
        .expect("SELECT 1");
    let select_one = op.fetch_all().await.expect("reads").len();
    op.close().await.expect("closes");
    let mut op = session
        .execute_statement("SELECT * FROM range(500)")
        .await
        .expect("range");
    let range = count_and_sum_ids(&op.fetch_all().await.expect("reads"));
    op.close().await.expect("closes");
    let mut op = session
        .execute_statement("SELECT * FROM range(40000)")
        .await
        .expect("CloudFetch");
    let cloudfetch = count_and_sum_ids(&op.fetch_all().await.expect("reads"));
    assert!(op.cloudfetch_summary().is_some(), "a CloudFetch result");
    drop(op);
    let failure = match session
        .execute_statement("SELECT * FROM no_such_table")
        .await
    {
        Ok(mut op) => op.fetch_all().await.expect_err("fails"),
        Err(e) => e,
    };
    let mut op = session.catalogs().await.expect("catalogs");
    let catalogs = op
        .fetch_all()
        .await
        .expect("reads")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    op.close().await.expect("closes");
    let mut op = session
        .execute_statement("INSERT INTO t VALUES (1), (2)")
        .await
        .expect("DML");
    op.fetch_all().await.expect("reads");
    let dml = op.rows_affected();
    op.close().await.expect("closes");
    session.close().await.expect("session closes");
    Outcome {
        select_one,
        range,
        cloudfetch,
        failure: (failure.kind(), failure.sql_state().map(str::to_string)),
        catalogs,
        dml,
    }
}

/// Records telemetry's log events above debug.
#[derive(Clone, Default)]
struct LoudTelemetry(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for LoudTelemetry {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target().starts_with("databricks_sql::telemetry")
            && *meta.level() < tracing::Level::DEBUG
        {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", meta.level(), meta.target()));
        }
    }
}

fn watch_logs() -> (LoudTelemetry, DefaultGuard) {
    let loud = LoudTelemetry::default();
    let subscriber = tracing_subscriber::registry().with(loud.clone());
    (loud, tracing::subscriber::set_default(subscriber))
}

/// A mock for the fault cases: CloudFetch above 1,000 rows, telemetry flag on.
async fn mock() -> MockWarehouse {
    MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(10_000)
        .telemetry_enabled(true)
        .start()
        .await
        .expect("mock starts")
}

/// Runs the workload with telemetry off, then with telemetry on while `fault` is injected (or
/// `transport` is used), and checks that nothing differs and that closing is bounded.
async fn check(case: &str, fault: Option<Fault>, transport: Option<Arc<Refusing>>) {
    let mock = mock().await;
    let off = mock
        .client_builder()
        .telemetry_enabled(false)
        .build()
        .unwrap();
    let expected = workload(&off).await;
    off.close().await.unwrap();
    assert_eq!(expected.failure.0, ErrorKind::Server);

    let injected = fault.is_some();
    if let Some(fault) = fault {
        mock.inject(fault.times(10_000));
    }
    let (loud, _guard) = watch_logs();
    let provider = TelemetryClientProvider::new();
    let mut builder = mock
        .client_builder()
        .telemetry(telemetry())
        .telemetry_provider(provider.clone());
    if let Some(t) = &transport {
        builder = builder.transport(t.clone());
    }
    let client = builder.build().unwrap();
    let got = workload(&client).await;
    // Give the exporter time to meet the fault at least once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    client
        .close()
        .await
        .expect("close never fails because of telemetry");
    let took = started.elapsed();
    assert_eq!(got, expected, "{case}: the queries' results changed");
    assert!(
        took <= CLOSE_TIMEOUT + Duration::from_millis(500),
        "{case}: close took {took:?}"
    );
    assert_eq!(provider.client_count(), 0, "{case}");
    if injected {
        assert!(
            mock.pending_faults() < 10_000,
            "{case}: the fault was never met"
        );
    }
    let loud = loud.0.lock().unwrap().clone();
    assert!(
        loud.is_empty(),
        "{case}: telemetry logged above debug: {loud:?}"
    );
}

fn on_export(fault: Fault) -> Option<Fault> {
    Some(fault.on(endpoint::TELEMETRY_EXT))
}

fn on_flag(fault: Fault) -> Option<Fault> {
    Some(fault.on(endpoint::FEATURE_FLAGS))
}

#[tokio::test]
async fn export_answering_500_changes_nothing() {
    check("export 500", on_export(Fault::http_status(500)), None).await;
}

#[tokio::test]
async fn export_answering_401_changes_nothing() {
    check("export 401", on_export(Fault::http_status(401)), None).await;
}

#[tokio::test]
async fn export_answering_429_changes_nothing() {
    let fault = Fault::http_status(429).retry_after("1");
    check("export 429", on_export(fault), None).await;
}

#[tokio::test]
async fn export_answering_garbage_changes_nothing() {
    check("export garbage", on_export(Fault::corrupt_body()), None).await;
}

#[tokio::test]
async fn export_hanging_past_its_timeout_changes_nothing() {
    let fault = Fault::delay(Duration::from_secs(30));
    check("export hangs", on_export(fault), None).await;
}

#[tokio::test]
async fn export_dropping_connections_changes_nothing() {
    check("export drops", on_export(Fault::drop_connection()), None).await;
}

#[tokio::test]
async fn export_refusing_connections_changes_nothing() {
    check(
        "export refused",
        None,
        Some(refusing(&["/telemetry"]).await),
    )
    .await;
}

#[tokio::test]
async fn flag_answering_500_changes_nothing() {
    check("flag 500", on_flag(Fault::http_status(500)), None).await;
}

#[tokio::test]
async fn flag_answering_401_changes_nothing() {
    check("flag 401", on_flag(Fault::http_status(401)), None).await;
}

#[tokio::test]
async fn flag_answering_429_changes_nothing() {
    check("flag 429", on_flag(Fault::http_status(429)), None).await;
}

#[tokio::test]
async fn flag_answering_garbage_changes_nothing() {
    check("flag garbage", on_flag(Fault::corrupt_body()), None).await;
}

#[tokio::test]
async fn flag_hanging_past_its_timeout_changes_nothing() {
    let fault = Fault::delay(Duration::from_secs(30));
    check("flag hangs", on_flag(fault), None).await;
}

#[tokio::test]
async fn flag_dropping_connections_changes_nothing() {
    check("flag drops", on_flag(Fault::drop_connection()), None).await;
}

#[tokio::test]
async fn flag_refusing_connections_changes_nothing() {
    let transport = refusing(&["/api/2.0/connector-service/feature-flags"]).await;
    check("flag refused", None, Some(transport)).await;
}

#[tokio::test]
async fn a_flag_that_fails_means_no_export_at_all() {
    let mock = mock().await;
    mock.inject(
        Fault::http_status(500)
            .on(endpoint::FEATURE_FLAGS)
            .times(100),
    );
    let client = mock
        .client_builder()
        .telemetry(telemetry())
        .telemetry_provider(TelemetryClientProvider::new())
        .build()
        .unwrap();
    workload(&client).await;
    client.close().await.unwrap();
    assert!(mock.pending_faults() < 100, "the flag was asked for");
    assert!(mock.telemetry_requests().is_empty());
}

/// A transport whose requests to paths starting with one of `prefixes` go to a loopback port
/// nobody listens on (connection refused); everything else goes to the real transport.
async fn refusing(prefixes: &'static [&'static str]) -> Arc<Refusing> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = listener.local_addr().unwrap().port();
    drop(listener);
    Arc::new(Refusing {
        inner: HyperTransport::new(&HttpConfig::default()).unwrap(),
        prefixes,
        closed_port,
        refused: AtomicUsize::new(0),
    })
}

#[derive(Debug)]
struct Refusing {
    inner: HyperTransport,
    prefixes: &'static [&'static str],
    closed_port: u16,
    refused: AtomicUsize,
}

impl Drop for Refusing {
    fn drop(&mut self) {
        // Every refusing case must have been met by telemetry at least once.
        if !std::thread::panicking() {
            assert!(
                self.refused.load(Ordering::Relaxed) > 0,
                "no request was refused"
            );
        }
    }
}

#[async_trait]
impl HttpTransport for Refusing {
    async fn send(&self, mut request: HttpRequest) -> databricks_sql::Result<HttpResponse> {
        let path = request.url.path().to_string();
        if self.prefixes.iter().any(|p| path.starts_with(p)) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            request.url = format!("http://127.0.0.1:{}{path}", self.closed_port)
                .parse()
                .unwrap();
        }
        self.inner.send(request).await
    }
}
