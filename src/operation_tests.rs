//! Result paging against a server that misbehaves in ways the mock does not on its own: the
//! mock's FetchResults replies are rewritten on their way to the driver by a transport that
//! wraps the real one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{ErrorKind, Result};
use crate::http::{HttpConfig, HttpRequest, HttpResponse, HttpTransport, RetryPolicy};
use crate::mock::MockWarehouse;
use crate::thrift::framing;
use crate::thrift::tcli::TFetchResultsResp;

/// Rewrites the FetchResults reply number `n` (from 0).
type Rewrite = Box<dyn Fn(usize, &mut TFetchResultsResp) + Send + Sync>;

/// Forwards to the real transport, rewriting FetchResults replies with `rewrite` (given the
/// count of FetchResults replies before this one).
struct Rewriting {
    inner: Arc<dyn HttpTransport>,
    fetches: AtomicUsize,
    rewrite: Rewrite,
}

impl std::fmt::Debug for Rewriting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewriting")
    }
}

#[async_trait]
impl HttpTransport for Rewriting {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let call = framing::decode_call(&request.body)
            .ok()
            .map(|(name, seq, _)| (name, seq));
        let mut response = self.inner.send(request).await?;
        if let Some((name, seq)) = call.filter(|(name, _)| name == "FetchResults") {
            let mut reply: TFetchResultsResp = framing::decode_reply(&name, seq, &response.body)?;
            let n = self.fetches.fetch_add(1, Ordering::Relaxed);
            (self.rewrite)(n, &mut reply);
            response.body = Bytes::from(framing::encode_reply(&name, seq, &reply)?);
        }
        Ok(response)
    }
}

async fn client_with(
    mock: &MockWarehouse,
    rewrite: impl Fn(usize, &mut TFetchResultsResp) + Send + Sync + 'static,
) -> crate::DBSQLClient {
    let inner = Arc::new(crate::http::HyperTransport::new(&HttpConfig::default()).unwrap());
    mock.client_builder()
        .transport(Arc::new(Rewriting {
            inner,
            fetches: AtomicUsize::new(0),
            rewrite: Box::new(rewrite),
        }))
        .direct_results(false)
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            overall_timeout: Duration::from_secs(10),
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn links_that_skip_rows_already_owed_are_an_error_not_lost_rows() {
    let mock = MockWarehouse::builder()
        .cloudfetch_threshold_rows(10)
        .cloudfetch_rows_per_file(100)
        .start()
        .await
        .unwrap();
    // The first page of links claims to start at row 5 (its links too): rows 0..5 would be
    // skipped without a word.
    let client = client_with(&mock, |n, reply| {
        if n == 0 {
            if let Some(rows) = reply.results.as_mut() {
                rows.start_row_offset += 5;
                for link in rows.result_links.iter_mut().flatten() {
                    link.start_row_offset += 5;
                }
            }
        }
    })
    .await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM range(1000)")
        .await
        .unwrap();
    let err = op.fetch_all().await.expect_err("rows would be lost");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.message().contains("row offset 5"), "{err}");
    assert!(err.message().contains("0 rows were read"), "{err}");
    drop(op);
    session.close().await.unwrap();
}

#[tokio::test]
async fn empty_inline_pages_announcing_more_rows_are_waited_on_then_given_up() {
    let mock = MockWarehouse::builder().start().await.unwrap();
    // Every page is emptied but still says more rows follow.
    let client = client_with(&mock, |_, reply| {
        if let Some(rows) = reply.results.as_mut() {
            rows.arrow_batches = Some(Vec::new());
            rows.columns = None;
        }
        reply.has_more_rows = Some(true);
    })
    .await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM range(10)")
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), op.fetch_all())
        .await
        .expect("bounded: the empty pages do not go on forever")
        .expect_err("given up");
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(
        err.message().contains("pages in a row with no rows"),
        "{err}"
    );
    // The first page and the bounded number of empty ones after it.
    let fetches = mock.call_count("FetchResults");
    assert_eq!(
        fetches,
        crate::results::empty_pages::MAX_EMPTY_PAGES as usize + 1
    );
    drop(op);
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_few_empty_pages_then_rows_lose_nothing() {
    let mock = MockWarehouse::builder()
        .arrow_batch_rows(10)
        .start()
        .await
        .unwrap();
    // The 2nd to 4th replies are empty (still announcing more): the driver asks again, from
    // the same offset, and then gets every row.
    let client = client_with(&mock, |n, reply| {
        if (1..4).contains(&n) {
            if let Some(rows) = reply.results.as_mut() {
                rows.arrow_batches = Some(Vec::new());
            }
            reply.has_more_rows = Some(true);
        }
    })
    .await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(100)",
            crate::ExecuteOptions::new().max_rows_per_fetch(10),
        )
        .await
        .unwrap();
    let batches = op.fetch_all().await.unwrap();
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            ids.values().to_vec()
        })
        .collect();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
    op.close().await.unwrap();
    session.close().await.unwrap();
}

#[tokio::test]
async fn concurrent_results_share_the_clients_decode_threads() {
    let mock = MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(1_000)
        .start()
        .await
        .unwrap();
    let client = mock.client_builder().build().unwrap();
    let live = client.inner.decode_threads.live_threads();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "started with the first large result"
    );
    let session = client.open_session().await.unwrap();
    let read = |sql: &'static str| {
        let session = &session;
        async move {
            let mut op = session.execute_statement(sql).await.unwrap();
            let rows: usize = op
                .fetch_all()
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
            op.close().await.unwrap();
            rows
        }
    };
    let rows = futures::future::join_all([
        read("SELECT * FROM range(20000)"),
        read("SELECT * FROM mock.rows(20000)"),
        read("SELECT * FROM range(30000)"),
        read("SELECT * FROM mock.rows(10000)"),
    ])
    .await;
    assert_eq!(rows, [20_000, 20_000, 30_000, 10_000]);
    let configured = crate::CloudFetchConfig::default().decode_threads;
    assert_eq!(
        live.load(Ordering::SeqCst),
        configured,
        "one pool for four results"
    );
    session.close().await.unwrap();
    client.close().await.unwrap();
    drop(session);
    drop(client);
    for _ in 0..500 {
        if live.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the decode threads outlived their client");
}

#[tokio::test]
async fn large_inline_pages_are_decoded_on_the_decode_threads() {
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock.client_builder().cloud_fetch(false).build().unwrap();
    let live = client.inner.decode_threads.live_threads();
    let session = client.open_session().await.unwrap();
    // A small result stays on the async worker.
    session.query("SELECT 1", crate::params![]).await.unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 0);
    // 100,000 rows of mock.rows in one inline page: megabytes, decoded off the workers.
    let batches = session
        .query("SELECT * FROM mock.rows(100000)", crate::params![])
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 100_000);
    assert!(live.load(Ordering::SeqCst) > 0);
    session.close().await.unwrap();
}

/// `SELECT * FROM mock.all_types` read whole by `client`.
async fn all_types(client: &crate::DBSQLClient) -> arrow_array::RecordBatch {
    let session = client.open_session().await.unwrap();
    let batches = session
        .query("SELECT * FROM mock.all_types", crate::params![])
        .await
        .unwrap();
    session.close().await.unwrap();
    let schema = batches[0].schema();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

#[tokio::test]
async fn the_all_types_table_reads_the_same_column_based_as_through_arrow() {
    use arrow_array::Array;
    let mock = MockWarehouse::start().await.unwrap();
    let arrow = all_types(&mock.client_builder().build().unwrap()).await;
    let columnar = all_types(&mock.client_builder().arrow(false).build().unwrap()).await;
    // The same table from a plain HiveServer2 server (column-based, explicit fetches).
    let hive = MockWarehouse::builder()
        .vanilla_hive(true)
        .start()
        .await
        .unwrap();
    let vanilla = all_types(&hive.client_builder().build().unwrap()).await;
    assert_eq!(arrow.num_rows(), 4);
    for read in [&columnar, &vanilla] {
        assert_eq!(read.num_rows(), arrow.num_rows());
        assert_eq!(read.num_columns(), arrow.num_columns());
        for (i, field) in arrow.schema().fields().iter().enumerate() {
            let (expected, got) = (arrow.column(i), read.column(i));
            match field.data_type() {
                // Complex values arrive as JSON text in column-based results.
                arrow_schema::DataType::List(_)
                | arrow_schema::DataType::Map(..)
                | arrow_schema::DataType::Struct(_) => {
                    let json = crate::results::encode::json_text(expected.as_ref()).unwrap();
                    let text = got
                        .as_any()
                        .downcast_ref::<arrow_array::StringArray>()
                        .unwrap_or_else(|| panic!("{} is text", field.name()));
                    let text: Vec<Option<String>> =
                        text.iter().map(|v| v.map(str::to_string)).collect();
                    assert_eq!(text, json, "column {}", field.name());
                }
                _ => {
                    assert_eq!(
                        got.data_type(),
                        expected.data_type(),
                        "column {}",
                        field.name()
                    );
                    assert_eq!(got.to_data(), expected.to_data(), "column {}", field.name());
                }
            }
            assert_eq!(
                got.logical_nulls(),
                expected.logical_nulls(),
                "nulls of {}",
                field.name()
            );
        }
    }
}
