//! CloudFetch end to end, through the public API against the mock warehouse: large results come
//! back as links to Arrow IPC files, which the driver downloads, checks and delivers in row
//! order; injected faults either heal with the exact same rows or fail with an error of the
//! right kind; cancelling stops the downloads; the token never reaches a file link; memory stays
//! within the byte budget.

mod common;

use std::time::Duration;

use databricks_sql::arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use databricks_sql::arrow::array::{RecordBatch, TimestampMicrosecondArray};
use databricks_sql::http::HttpConfig;
use databricks_sql::mock::{
    endpoint, Fault, MockWarehouse, MockWarehouseBuilder, CLOUDFETCH_HEADER,
};
use databricks_sql::{
    ClientConfig, CloudFetchConfig, CloudFetchSummary, DBSQLClient, ErrorKind, ExecuteOptions,
    Operation, Session,
};

/// Small files, so that a result of a few hundred thousand rows has ten of them.
const ROWS_PER_FILE: u64 = 20_000;

/// A mock that answers with CloudFetch above 1,000 rows, in files of `ROWS_PER_FILE` rows and
/// pages of 4 links.
fn small_files() -> MockWarehouseBuilder {
    MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(ROWS_PER_FILE)
        .cloudfetch_links_per_page(4)
}

/// Pipeline settings for tests: short backoffs and timeouts, so that healing takes milliseconds.
fn fast_config() -> CloudFetchConfig {
    let mut c = CloudFetchConfig::default();
    c.retry_min_backoff = Duration::from_millis(5);
    c.retry_max_backoff = Duration::from_millis(20);
    c.download_timeout = Duration::from_secs(5);
    c
}

fn client_with(mock: &MockWarehouse, config: CloudFetchConfig) -> DBSQLClient {
    mock.client_builder()
        .cloud_fetch(true)
        .cloud_fetch_config(config)
        .build()
        .expect("client builds")
}

/// Runs `sql`, reads every batch, and returns them with the pipeline's summary.
async fn run(
    client: &DBSQLClient,
    sql: &str,
    options: ExecuteOptions,
) -> databricks_sql::Result<(Vec<RecordBatch>, Option<CloudFetchSummary>)> {
    let session = client.open_session().await?;
    let mut op = session.execute_statement_with(sql, options).await?;
    let result = op.fetch_all().await;
    let summary = op.cloudfetch_summary();
    op.close().await?;
    session.close().await?;
    Ok((result?, summary))
}

/// Every row is there once, in order: the id of row `i` is `i`. Returns the row count.
fn assert_ids_in_order(batches: &[RecordBatch], n: i64) {
    let (rows, sum) = common::count_and_sum_ids(batches);
    assert_eq!(rows as i64, n, "row count");
    assert_eq!(sum, n * (n - 1) / 2, "sum of ids");
    let mut position = 0i64;
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        for id in ids.values().iter() {
            assert_eq!(*id, position, "id at row {position}");
            position += 1;
        }
    }
}

/// The other columns of `mock.rows` follow their rules too (checked on every 997th row).
fn assert_mock_rows_values(batches: &[RecordBatch]) {
    for b in batches {
        let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let name = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let amount = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        let ts = b
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let flag = b.column(4).as_any().downcast_ref::<BooleanArray>().unwrap();
        for row in (0..b.num_rows()).step_by(997) {
            let i = id.value(row);
            assert_eq!(name.is_null(row), i % 7 == 3, "name null at id {i}");
            if i % 7 != 3 {
                assert_eq!(name.value(row), format!("name-{i}"));
            }
            assert_eq!(amount.value(row), i as f64 * 0.25);
            assert_eq!(ts.value(row), i * 1_000_000);
            assert_eq!(flag.value(row), i % 2 == 0);
        }
    }
}

/// GETs of CloudFetch files in all.
fn file_gets(mock: &MockWarehouse) -> usize {
    mock.call_count(endpoint::CLOUDFETCH_FILE)
}

// -- exact rows ----------------------------------------------------------------------------

async fn mock_rows_two_million(lz4: bool) {
    let mock = MockWarehouse::start().await.unwrap();
    let client = client_with(&mock, fast_config());
    let (batches, summary) = run(
        &client,
        "SELECT * FROM mock.rows(2000000)",
        ExecuteOptions::new().lz4(lz4),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, 2_000_000);
    assert_mock_rows_values(&batches);
    let summary = summary.expect("the result came through CloudFetch");
    assert_eq!(summary.chunks_decoded, 20, "20 files of 100,000 rows");
    assert_eq!(summary.rows_decoded, 2_000_000);
    assert_eq!((summary.retries, summary.link_refreshes), (0, 0));
    // Each file fetched once; links in pages of 10: the direct results and one FetchResults.
    assert_eq!(mock.cloudfetch_get_counts().len(), 20);
    assert!(mock.cloudfetch_get_counts().values().all(|&n| n == 1));
    assert_eq!(mock.call_count("FetchResults"), 1);
    let statement = &mock.statements()[0];
    assert!(statement.can_download_result);
    assert_eq!(statement.can_decompress_lz4, lz4);
}

#[tokio::test]
async fn mock_rows_two_million_through_cloudfetch_with_lz4() {
    mock_rows_two_million(true).await;
}

#[tokio::test]
async fn mock_rows_two_million_through_cloudfetch_without_lz4() {
    mock_rows_two_million(false).await;
}

async fn range_with_partial_last_file(lz4: bool) {
    let mock = MockWarehouse::builder()
        .cloudfetch_links_per_page(3)
        .start()
        .await
        .unwrap();
    let client = client_with(&mock, fast_config());
    let n = 1_000_003;
    let (batches, summary) = run(
        &client,
        &format!("SELECT * FROM range({n})"),
        ExecuteOptions::new().lz4(lz4),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, n);
    let summary = summary.expect("the result came through CloudFetch");
    assert_eq!(
        summary.chunks_decoded, 11,
        "ten full files and one of 3 rows"
    );
    assert_eq!(summary.rows_decoded, n as u64);
    // Pages of 3 links: direct results, then FetchResults at rows 300,000, 600,000, 900,000.
    assert_eq!(mock.call_count("FetchResults"), 3);
    assert_eq!(file_gets(&mock), 11);
}

#[tokio::test]
async fn range_with_a_partial_last_file_through_cloudfetch_with_lz4() {
    range_with_partial_last_file(true).await;
}

#[tokio::test]
async fn range_with_a_partial_last_file_through_cloudfetch_without_lz4() {
    range_with_partial_last_file(false).await;
}

#[tokio::test]
async fn links_are_paged_without_direct_results_too() {
    let mock = small_files().start().await.unwrap();
    let client = client_with(&mock, fast_config());
    let (batches, summary) = run(
        &client,
        "SELECT * FROM range(200000)",
        ExecuteOptions::new().direct_results(false),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, 200_000);
    assert_eq!(summary.unwrap().chunks_decoded, 10);
    // 10 files in pages of 4: three FetchResults.
    assert_eq!(mock.call_count("FetchResults"), 3);
}

#[tokio::test]
async fn cloudfetch_is_on_by_default() {
    let mock = small_files().start().await.unwrap();
    let client = mock.client_builder().build().unwrap();
    let (batches, summary) = run(&client, "SELECT * FROM range(50000)", ExecuteOptions::new())
        .await
        .unwrap();
    assert_ids_in_order(&batches, 50_000);
    assert!(mock.statements()[0].can_download_result);
    assert_eq!(summary.expect("CloudFetch was used").chunks_decoded, 3);
}

#[tokio::test]
async fn results_at_or_below_the_threshold_stay_inline() {
    let mock = MockWarehouse::start().await.unwrap();
    let client = client_with(&mock, fast_config());
    let (batches, summary) = run(
        &client,
        "SELECT * FROM range(100000)",
        ExecuteOptions::new(),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, 100_000);
    assert!(
        summary.is_none(),
        "100,000 rows is not more than the threshold"
    );
    assert_eq!(file_gets(&mock), 0);
}

#[tokio::test]
async fn cloudfetch_can_be_turned_off_per_statement() {
    let mock = small_files().start().await.unwrap();
    let client = client_with(&mock, fast_config());
    let (batches, summary) = run(
        &client,
        "SELECT * FROM range(50000)",
        ExecuteOptions::new().cloud_fetch(false),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, 50_000);
    assert!(summary.is_none());
    assert!(!mock.statements()[0].can_download_result);
    assert_eq!(file_gets(&mock), 0);
}

// -- faults that heal ----------------------------------------------------------------------

/// Reads `range(200000)` (ten files) with `faults` injected, checks the rows are exact, and
/// returns the summary.
async fn heals(faults: Vec<Fault>, config: CloudFetchConfig) -> (MockWarehouse, CloudFetchSummary) {
    let mock = small_files().start().await.unwrap();
    for f in faults {
        mock.inject(f);
    }
    let client = client_with(&mock, config);
    let (batches, summary) = run(
        &client,
        "SELECT * FROM range(200000)",
        ExecuteOptions::new(),
    )
    .await
    .expect("the faults heal");
    assert_ids_in_order(&batches, 200_000);
    assert_eq!(mock.pending_faults(), 0, "every fault was used");
    (mock, summary.expect("CloudFetch was used"))
}

#[tokio::test]
async fn http_500_on_a_file_is_retried() {
    let (mock, summary) = heals(
        vec![Fault::http_status(500).on_chunk(3).times(2)],
        fast_config(),
    )
    .await;
    assert_eq!(mock.cloudfetch_get_count(3), 3);
    assert_eq!(summary.retries, 2);
}

#[tokio::test]
async fn a_slow_file_is_retried_after_the_download_timeout() {
    let config = {
        let mut c = fast_config();
        c.download_timeout = Duration::from_millis(300);
        c
    };
    let (mock, summary) = heals(
        vec![Fault::delay(Duration::from_secs(3)).on_chunk(2)],
        config,
    )
    .await;
    assert_eq!(mock.cloudfetch_get_count(2), 2);
    assert_eq!(summary.retries, 1);
}

#[tokio::test]
async fn a_slow_file_within_the_timeout_is_just_waited_for() {
    let (mock, summary) = heals(
        vec![Fault::delay(Duration::from_millis(300)).on_chunk(2)],
        fast_config(),
    )
    .await;
    assert_eq!(mock.cloudfetch_get_count(2), 1);
    assert_eq!(summary.retries, 0);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let (mock, summary) = heals(
        vec![Fault::drop_connection().on_chunk(0).times(2)],
        fast_config(),
    )
    .await;
    assert_eq!(mock.cloudfetch_get_count(0), 3);
    assert_eq!(summary.retries, 2);
}

#[tokio::test]
async fn a_body_cut_short_once_is_retried() {
    let (mock, summary) = heals(vec![Fault::truncated_body().on_chunk(5)], fast_config()).await;
    assert_eq!(mock.cloudfetch_get_count(5), 2);
    assert_eq!(summary.retries, 1);
}

#[tokio::test]
async fn a_link_issued_expired_is_refreshed_before_use() {
    let (mock, summary) = heals(vec![Fault::expired_link().on_chunk(6)], fast_config()).await;
    assert_eq!(summary.link_refreshes, 1);
    // Refreshed before any GET: the expired link was never used.
    assert_eq!(mock.cloudfetch_get_count(6), 1);
    // Three pages of links, plus one FetchResults at file 6's offset for the fresh link.
    assert_eq!(mock.call_count("FetchResults"), 3);
}

#[tokio::test]
async fn a_link_that_expires_while_in_use_gets_403_and_is_refreshed() {
    // Links live 2 s and the driver uses them up to their expiry (no margin); file 0's first GET
    // is held 2.5 s by the server, so that its link has expired when the server checks it.
    let mock = small_files()
        .cloudfetch_link_lifetime(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    mock.inject(Fault::delay(Duration::from_millis(2_500)).on_chunk(0));
    let client = client_with(&mock, {
        let mut c = fast_config();
        c.link_expiry_margin = Duration::ZERO;
        c
    });
    let (batches, summary) = run(
        &client,
        "SELECT * FROM range(200000)",
        ExecuteOptions::new(),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, 200_000);
    let summary = summary.unwrap();
    assert_eq!(summary.link_refreshes, 1);
    assert_eq!(
        mock.cloudfetch_get_count(0),
        2,
        "refused once (403), then served"
    );
}

#[tokio::test]
async fn http_403_on_first_use_refreshes_the_link() {
    let (mock, summary) = heals(vec![Fault::http_status(403).on_chunk(4)], fast_config()).await;
    assert_eq!(summary.link_refreshes, 1);
    assert_eq!(summary.retries, 1, "the refused attempt counts");
    assert_eq!(mock.cloudfetch_get_count(4), 2);
}

#[tokio::test]
async fn every_fault_at_once_still_gives_the_exact_rows() {
    let config = {
        let mut c = fast_config();
        c.download_timeout = Duration::from_millis(300);
        c
    };
    let (_mock, summary) = heals(
        vec![
            Fault::http_status(500).on_chunk(1).times(2),
            Fault::delay(Duration::from_secs(3)).on_chunk(2),
            Fault::drop_connection().on_chunk(3),
            Fault::expired_link().on_chunk(4),
            Fault::http_status(403).on_chunk(5),
            Fault::truncated_body().on_chunk(9),
        ],
        config,
    )
    .await;
    // Attempts beyond the first: 500 twice, the timeout, the drop, the 403, the cut body.
    assert_eq!(summary.retries, 2 + 1 + 1 + 1 + 1);
    assert_eq!(summary.link_refreshes, 2);
}

// -- faults that fail ----------------------------------------------------------------------

/// Reads `range(200000)` with `fault` injected; returns the rows delivered before the error,
/// and the error.
async fn fails(fault: Fault, lz4: bool) -> (MockWarehouse, i64, databricks_sql::Error) {
    let mock = small_files().start().await.unwrap();
    mock.inject(fault);
    let client = client_with(&mock, fast_config());
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(200000)",
            ExecuteOptions::new().lz4(lz4),
        )
        .await
        .unwrap();
    let mut rows = 0i64;
    let err = loop {
        match op.next_batch().await {
            Ok(Some(b)) => {
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                for id in ids.values().iter() {
                    assert_eq!(*id, rows, "rows before the error are exact");
                    rows += 1;
                }
            }
            Ok(None) => panic!("the fault must fail the result"),
            Err(e) => break e,
        }
    };
    // The stream stays failed.
    let again = op
        .next_batch()
        .await
        .expect_err("a failed result stays failed");
    assert_eq!(again.kind(), err.kind());
    op.close().await.unwrap();
    session.close().await.unwrap();
    (mock, rows, err)
}

#[tokio::test]
async fn a_corrupt_lz4_file_is_a_decode_error_after_the_rows_before_it() {
    let (_mock, rows, err) = fails(Fault::corrupt_file().on_chunk(3), true).await;
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("chunk 3"), "{err}");
    assert!(err.to_string().contains("LZ4"), "{err}");
    assert_eq!(rows, 3 * ROWS_PER_FILE as i64);
    assert!(err.statement_id().is_some());
}

#[tokio::test]
async fn a_corrupt_arrow_file_is_a_decode_error() {
    let (_mock, rows, err) = fails(Fault::corrupt_file().on_chunk(0), false).await;
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("chunk 0"), "{err}");
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_file_with_fewer_rows_than_its_link_is_a_decode_error() {
    let (_mock, rows, err) = fails(Fault::wrong_row_count().on_chunk(2), true).await;
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    let text = err.to_string();
    assert!(text.contains("chunk 2"), "{text}");
    assert!(
        text.contains("19999 rows") && text.contains("20000"),
        "{text}"
    );
    assert_eq!(rows, 2 * ROWS_PER_FILE as i64, "no row of the short file");
}

#[tokio::test]
async fn a_body_cut_short_on_every_attempt_fails_with_a_cloudfetch_error() {
    let (mock, rows, err) = fails(Fault::truncated_body().on_chunk(1).times(100), true).await;
    assert_eq!(err.kind(), ErrorKind::CloudFetch, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("chunk 1") && text.contains("5 attempts"),
        "{text}"
    );
    assert_eq!(
        mock.cloudfetch_get_count(1),
        5,
        "the default attempts, no more"
    );
    assert_eq!(rows, ROWS_PER_FILE as i64);
    assert!(
        !text.contains("sig="),
        "no presigned query in errors: {text}"
    );
}

// -- cancellation --------------------------------------------------------------------------

/// Runs `f` with the mock in a runtime of its own, so that the test's runtime holds the client's
/// tasks only.
fn with_mock_elsewhere<F, Fut>(builder: MockWarehouseBuilder, f: F)
where
    F: FnOnce(MockWarehouse) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mock_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = mock_rt.block_on(builder.start()).unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(f(mock.clone()));
    mock_rt.block_on(mock.shutdown());
}

/// A client of `mock` whose idle connections (and the HTTP pool's reaper task) go away within
/// 100 ms, so that once it is dropped no task of it should be left.
fn short_lived_client(mock: &MockWarehouse) -> DBSQLClient {
    let mut http = HttpConfig::default();
    http.pool_idle_timeout = Duration::from_millis(100);
    let config = {
        let mut c = ClientConfig::default();
        c.host = mock.host().to_string();
        c.port = mock.port();
        c.http_path = mock.http_path().to_string();
        c.plain_http = true;
        c.http = http;
        c.cloud_fetch = true;
        c.cloud_fetch_config = fast_config();
        c
    };
    DBSQLClient::builder()
        .config(config)
        .token(mock.token())
        .build()
        .expect("client builds")
}

/// After a cancel or drop: lets GETs already on their way reach the mock (200 ms), then checks
/// that no further GET arrives within 500 ms (when the pipeline runs, a GET arrives every few
/// ms). Returns the files requested in all.
async fn assert_downloads_stopped(mock: &MockWarehouse) -> usize {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gets = file_gets(mock);
    assert!(
        gets < 20,
        "stopped mid-stream, yet {gets} of 20 files were requested"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(file_gets(mock), gets, "no GET once stopped");
    gets
}

/// Waits (bounded) until the current runtime has no task alive.
async fn no_task_left() {
    let metrics = tokio::runtime::Handle::current().metrics();
    common::eventually("every client task to end", || {
        metrics.num_alive_tasks() == 0
    })
    .await;
}

/// Starts `range(400000)` (20 files) with every file answering slowly, so downloads are always
/// in flight, and reads its first batch.
async fn slow_stream(mock: &MockWarehouse) -> (DBSQLClient, Session, Operation) {
    mock.inject(
        Fault::delay(Duration::from_millis(150))
            .on_any_chunk()
            .times(1_000),
    );
    let client = short_lived_client(mock);
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM range(400000)")
        .await
        .unwrap();
    assert!(op.next_batch().await.unwrap().is_some());
    (client, session, op)
}

/// Closes the session and the client, then checks that no task of theirs is left.
async fn close_and_check_no_task_left(client: DBSQLClient, session: Session) {
    session.close().await.unwrap();
    client.close().await.unwrap();
    drop(client);
    no_task_left().await;
}

#[test]
fn cancelling_while_reading_stops_the_downloads() {
    with_mock_elsewhere(small_files(), |mock| async move {
        let (client, session, mut op) = slow_stream(&mock).await;
        let cancel = op.cancel_handle();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel().await
        });
        let err = loop {
            match op.next_batch().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("cancelled before the end"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
        canceller.await.unwrap().unwrap();
        assert_downloads_stopped(&mock).await;
        drop(op);
        close_and_check_no_task_left(client, session).await;
    });
}

#[test]
fn dropping_the_operation_mid_stream_stops_the_downloads() {
    with_mock_elsewhere(small_files(), |mock| async move {
        let (client, session, op) = slow_stream(&mock).await;
        drop(op);
        assert_downloads_stopped(&mock).await;
        // The dropped operation was closed on the server, which evicts its files.
        common::eventually("the operation to be closed", || mock.open_operations() == 0).await;
        close_and_check_no_task_left(client, session).await;
    });
}

#[test]
fn cancel_then_read_stops_the_downloads() {
    with_mock_elsewhere(small_files(), |mock| async move {
        let (client, session, mut op) = slow_stream(&mock).await;
        op.cancel().await.unwrap();
        let err = op.next_batch().await.expect_err("cancelled");
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
        assert_downloads_stopped(&mock).await;
        drop(op);
        close_and_check_no_task_left(client, session).await;
    });
}

#[test]
fn cancel_without_reading_stops_the_downloads_at_once() {
    with_mock_elsewhere(small_files(), |mock| async move {
        let (client, session, mut op) = slow_stream(&mock).await;
        // From another task, and nobody reads meanwhile: the budget holds all 20 files, so
        // if the cancel did not stop the pipeline every one of them would be fetched.
        let cancel = op.cancel_handle();
        tokio::spawn(async move { cancel.cancel().await })
            .await
            .unwrap()
            .unwrap();
        assert_downloads_stopped(&mock).await;
        let err = op.next_batch().await.expect_err("cancelled");
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
        drop(op);
        close_and_check_no_task_left(client, session).await;
    });
}

#[test]
fn a_read_waiting_for_a_file_when_cancelled_reports_the_cancel() {
    with_mock_elsewhere(small_files(), |mock| async move {
        // The second file is late, so after the first file's rows the reader waits on a
        // pipeline with nothing ready: the cancel must win over the pipeline it stops, every
        // time (the two are raced several times).
        mock.inject(
            Fault::delay(Duration::from_secs(3))
                .on_chunk(1)
                .times(1_000),
        );
        let client = short_lived_client(&mock);
        let session = client.open_session().await.unwrap();
        for round in 0..6 {
            let mut op = session
                .execute_statement("SELECT * FROM range(400000)")
                .await
                .unwrap();
            let mut rows = 0;
            while rows < ROWS_PER_FILE as usize {
                rows += op.next_batch().await.unwrap().expect("rows").num_rows();
            }
            let cancel = op.cancel_handle();
            let canceller = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                cancel.cancel().await
            });
            let err = op.next_batch().await.expect_err("cancelled");
            assert_eq!(err.kind(), ErrorKind::Cancelled, "round {round}: {err}");
            canceller.await.unwrap().unwrap();
        }
        close_and_check_no_task_left(client, session).await;
    });
}

// -- the token and the budget --------------------------------------------------------------

#[tokio::test]
async fn file_links_get_their_own_header_and_never_the_token() {
    let mock = small_files().start().await.unwrap();
    let client = client_with(&mock, fast_config());
    let (batches, _) = run(
        &client,
        "SELECT * FROM mock.rows(100000)",
        ExecuteOptions::new(),
    )
    .await
    .unwrap();
    assert_ids_in_order(&batches, 100_000);
    assert_eq!(mock.cloudfetch_gets_with_authorization(), 0);
    let gets: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.name == endpoint::CLOUDFETCH_FILE)
        .collect();
    assert_eq!(gets.len(), 5);
    for r in &gets {
        assert!(
            r.headers.iter().any(|(name, _)| name == CLOUDFETCH_HEADER),
            "the link's own header is sent: {:?}",
            r.headers
        );
        assert!(r.headers.iter().all(|(_, v)| !v.contains(mock.token())));
    }
}

#[tokio::test]
async fn downloads_stay_within_the_byte_budget() {
    let mock = small_files().start().await.unwrap();
    let options = ExecuteOptions::new().lz4(false);
    // Learn the size of one file (all ten are the same size: 20,000 BIGINTs).
    let client = client_with(&mock, fast_config());
    let (_, summary) = run(&client, "SELECT * FROM range(200000)", options.clone())
        .await
        .unwrap();
    let summary = summary.unwrap();
    let file_bytes = summary.bytes_downloaded / summary.chunks_decoded;
    assert!(file_bytes > 160_000, "{file_bytes}");

    let budget = 3 * file_bytes;
    let client = client_with(&mock, {
        let mut c = fast_config();
        c.max_buffered_bytes = budget;
        c
    });
    mock.reset_call_counts();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with("SELECT * FROM range(200000)", options)
        .await
        .unwrap();
    let mut batches = vec![op.next_batch().await.unwrap().unwrap()];
    // A consumer that stops: the pipeline runs ahead only as far as the budget allows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = op.cloudfetch_summary().unwrap();
    assert_eq!(held.budget_bytes, budget);
    assert!(held.budget_in_use <= budget, "{held:?}");
    assert_eq!(file_gets(&mock), 3, "three files fit in the budget");
    while let Some(b) = op.next_batch().await.unwrap() {
        batches.push(b);
    }
    assert_ids_in_order(&batches, 200_000);
    let done = op.cloudfetch_summary().unwrap();
    assert!(done.budget_peak <= budget, "{done:?}");
    assert!(
        done.budget_peak >= 2 * file_bytes,
        "the budget was used: {done:?}"
    );
    assert_eq!(done.budget_in_use, 0, "everything consumed, nothing held");
    assert_eq!(file_gets(&mock), 10);
    op.close().await.unwrap();
    session.close().await.unwrap();
}
