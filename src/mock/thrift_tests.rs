//! End-to-end tests of the mock's Thrift service over real loopback HTTP: each test encodes calls
//! with the driver's framing, POSTs them, and decodes the replies.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use thrift::protocol::TSerializable;

use super::*;
use crate::error::{Error, ErrorKind};
use crate::thrift::framing;
use crate::thrift::tcli::*;

/// A bare Thrift-over-HTTP client for the mock.
struct Conn {
    http: Client<HttpConnector, Full<Bytes>>,
    url: String,
    token: String,
    seq: AtomicI32,
}

impl Conn {
    fn new(mock: &MockWarehouse) -> Self {
        Conn {
            http: Client::builder(TokioExecutor::new()).build_http(),
            url: mock.url(),
            token: mock.token().to_string(),
            seq: AtomicI32::new(1),
        }
    }

    async fn call<Req: TSerializable, Resp: TSerializable>(
        &self,
        method: &str,
        req: &Req,
    ) -> crate::Result<Resp> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let body = framing::encode_call(method, seq, req)?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header(header::CONTENT_TYPE, "application/x-thrift")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = self
            .http
            .request(request)
            .await
            .map_err(|e| Error::new(ErrorKind::Connect, e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::new(ErrorKind::Connect, e.to_string()))?
            .to_bytes();
        if status != 200 {
            return Err(Error::from_http_status(status, "HTTP error"));
        }
        framing::decode_reply(method, seq, &body)
    }

    async fn open(&self) -> TSessionHandle {
        self.open_with(open_req()).await.session_handle.unwrap()
    }

    async fn open_with(&self, req: TOpenSessionReq) -> TOpenSessionResp {
        let resp: TOpenSessionResp = self.call("OpenSession", &req).await.unwrap();
        resp
    }

    async fn execute(&self, req: TExecuteStatementReq) -> TExecuteStatementResp {
        let resp: TExecuteStatementResp = self.call("ExecuteStatement", &req).await.unwrap();
        assert_eq!(
            resp.status.status_code,
            TStatusCode::SUCCESS_STATUS,
            "{:?}",
            resp.status
        );
        resp
    }

    async fn status(&self, op: &TOperationHandle) -> TGetOperationStatusResp {
        self.call(
            "GetOperationStatus",
            &TGetOperationStatusReq::new(op.clone(), None),
        )
        .await
        .unwrap()
    }

    async fn metadata(&self, op: &TOperationHandle) -> TGetResultSetMetadataResp {
        self.call(
            "GetResultSetMetadata",
            &TGetResultSetMetadataReq::new(op.clone()),
        )
        .await
        .unwrap()
    }

    async fn fetch(&self, op: &TOperationHandle, max_rows: i64) -> TFetchResultsResp {
        self.fetch_with(fetch_req(op, max_rows)).await
    }

    async fn fetch_with(&self, req: TFetchResultsReq) -> TFetchResultsResp {
        self.call("FetchResults", &req).await.unwrap()
    }

    async fn close_op(&self, op: &TOperationHandle) -> TStatus {
        let r: TCloseOperationResp = self
            .call("CloseOperation", &TCloseOperationReq::new(op.clone()))
            .await
            .unwrap();
        r.status
    }

    async fn wait_finished(&self, op: &TOperationHandle) -> TGetOperationStatusResp {
        loop {
            let s = self.status(op).await;
            match s.operation_state {
                Some(TOperationState::PENDING_STATE | TOperationState::RUNNING_STATE) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return s,
            }
        }
    }
}

fn open_req() -> TOpenSessionReq {
    TOpenSessionReq::new(
        TProtocolVersion(-7),
        None,
        None,
        None,
        None,
        i64::from(protocol_version::SPARK_V8),
        None,
        None,
        true,
    )
}

/// An async Arrow execution without direct results, LZ4 or native types.
fn exec(session: &TSessionHandle, sql: &str) -> TExecuteStatementReq {
    TExecuteStatementReq::new(
        session.clone(),
        sql.to_string(),
        None,
        true,
        None,
        None,
        true,
        None,
        None,
        None,
        TSparkArrowTypes::new(true, true, true, false, None),
        None,
        None,
        None,
        None,
    )
}

fn with_direct(mut r: TExecuteStatementReq, max_rows: i64) -> TExecuteStatementReq {
    r.get_direct_results = Some(TSparkGetDirectResults::new(max_rows, None));
    r
}

fn fetch_req(op: &TOperationHandle, max_rows: i64) -> TFetchResultsReq {
    TFetchResultsReq::new(
        op.clone(),
        TFetchOrientation::FETCH_NEXT,
        max_rows,
        None,
        None,
        None,
        None,
    )
}

/// Decode an Arrow row set with the metadata's schema message in front.
fn arrow_batches(meta: &TGetResultSetMetadataResp, rows: &TRowSet) -> Vec<RecordBatch> {
    let schema_msg = meta.arrow_schema.clone().expect("arrow schema");
    let lz4 = meta.lz4_compressed == Some(true);
    let mut out = Vec::new();
    for b in rows.arrow_batches.as_ref().expect("arrow batches") {
        let data = if lz4 {
            let mut d = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&b.batch[..])
                .read_to_end(&mut d)
                .unwrap();
            d
        } else {
            b.batch.clone()
        };
        let mut stream = schema_msg.clone();
        stream.extend_from_slice(&data);
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|r| r.unwrap()).collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].num_rows() as i64, b.row_count);
        out.extend(batches);
    }
    out
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

// -- sessions ------------------------------------------------------------------------------

#[tokio::test]
async fn open_session_negotiates_the_lower_version_and_keeps_conf_and_namespace() {
    let mock = MockWarehouse::builder()
        .server_protocol_version(protocol_version::SPARK_V6)
        .start()
        .await
        .unwrap();
    let c = Conn::new(&mock);
    let mut req = open_req();
    req.configuration = Some(BTreeMap::from([("QUERY_TAGS".into(), "team:x".into())]));
    req.initial_namespace = Some(TNamespace::new("cat".to_string(), "sch".to_string()));
    let resp = c.open_with(req).await;
    assert_eq!(resp.status.status_code, TStatusCode::SUCCESS_STATUS);
    assert_eq!(
        resp.server_protocol_version,
        TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V6
    );
    assert_eq!(resp.can_use_multiple_catalogs, Some(true));
    assert_eq!(
        resp.initial_namespace.unwrap().catalog_name.as_deref(),
        Some("cat")
    );
    let sessions = mock.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].protocol_version, protocol_version::SPARK_V6);
    assert_eq!(sessions[0].configuration["QUERY_TAGS"], "team:x");
    assert_eq!(sessions[0].catalog.as_deref(), Some("cat"));
    assert_eq!(sessions[0].schema.as_deref(), Some("sch"));
    assert_eq!(
        sessions[0].session_id,
        crate::thrift::handles::guid_to_string(&resp.session_handle.unwrap().session_id.guid)
    );

    // A client older than the server gets its own version; field 1 is used without field 1282.
    let older = TOpenSessionReq::new(
        TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V3,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    );
    let resp = c.open_with(older).await;
    assert_eq!(
        resp.server_protocol_version,
        TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V3
    );
    assert_eq!(resp.can_use_multiple_catalogs, None);
    assert_eq!(mock.open_sessions(), 2);
}

#[tokio::test]
async fn close_session_closes_it_and_its_operations_and_then_it_is_an_invalid_handle() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    c.execute(exec(&s, "SELECT * FROM range(10)")).await;
    assert_eq!(mock.open_operations(), 1);
    let r: TCloseSessionResp = c
        .call("CloseSession", &TCloseSessionReq::new(s.clone()))
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::SUCCESS_STATUS);
    assert_eq!(mock.open_sessions(), 0);
    assert_eq!(mock.open_operations(), 0);
    assert!(mock.sessions()[0].closed);
    let r: TCloseSessionResp = c
        .call("CloseSession", &TCloseSessionReq::new(s.clone()))
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::INVALID_HANDLE_STATUS);
    let r: TExecuteStatementResp = c
        .call("ExecuteStatement", &exec(&s, "SELECT 1"))
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::INVALID_HANDLE_STATUS);
    assert!(r.operation_handle.is_none());
}

// -- direct results and formats --------------------------------------------------------------

#[tokio::test]
async fn select_one_answers_everything_in_direct_results_and_closes_the_operation() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c.execute(with_direct(exec(&s, "select 1"), 10_000)).await;
    let handle = resp.operation_handle.unwrap();
    assert!(handle.has_result_set);
    let dr = resp.direct_results.expect("direct results");
    assert_eq!(
        dr.operation_status.unwrap().operation_state,
        Some(TOperationState::FINISHED_STATE)
    );
    let meta = dr.result_set_metadata.unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::ARROW_BASED_SET));
    assert_eq!(meta.lz4_compressed, Some(false));
    let columns = &meta.schema.as_ref().unwrap().columns;
    assert_eq!(columns[0].column_name, "1");
    let rs = dr.result_set.unwrap();
    assert_eq!(rs.has_more_rows, Some(false));
    let batches = arrow_batches(&meta, rs.results.as_ref().unwrap());
    assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Int32);
    assert_eq!(batches[0].column(0).as_primitive::<Int32Type>().value(0), 1);
    assert!(dr.close_operation.is_some());
    assert_eq!(mock.open_operations(), 0);
    assert_eq!(mock.call_count("ExecuteStatement"), 1);
    assert_eq!(mock.call_count("GetOperationStatus"), 0);
    // The operation is gone: closing it again is an invalid handle.
    assert_eq!(
        c.close_op(&handle).await.status_code,
        TStatusCode::INVALID_HANDLE_STATUS
    );
}

#[tokio::test]
async fn direct_results_hold_the_first_page_and_fetch_continues_after_it() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c
        .execute(with_direct(exec(&s, "SELECT * FROM range(2500)"), 1000))
        .await;
    let handle = resp.operation_handle.unwrap();
    let dr = resp.direct_results.unwrap();
    assert!(dr.close_operation.is_none());
    let meta = *dr.result_set_metadata.unwrap();
    let first = dr.result_set.unwrap();
    assert_eq!(first.has_more_rows, Some(true));
    let mut all = ids(&arrow_batches(&meta, first.results.as_ref().unwrap()));
    assert_eq!(all.len(), 1000);
    let mut pages = 0;
    loop {
        let page = c.fetch(&handle, 1000).await;
        assert_eq!(page.status.status_code, TStatusCode::SUCCESS_STATUS);
        let rows = page.results.as_ref().unwrap();
        assert_eq!(rows.start_row_offset as usize, all.len());
        all.extend(ids(&arrow_batches(&meta, rows)));
        pages += 1;
        if page.has_more_rows != Some(true) {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(all, (0..2500).collect::<Vec<i64>>());
    assert_eq!(mock.open_operations(), 1);
    assert_eq!(
        c.close_op(&handle).await.status_code,
        TStatusCode::SUCCESS_STATUS
    );
    assert_eq!(mock.open_operations(), 0);
}

#[tokio::test]
async fn fetch_pages_by_max_rows_and_max_bytes_and_from_start_row_offset() {
    let mock = MockWarehouse::builder()
        .arrow_batch_rows(300)
        .start()
        .await
        .unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let handle = c
        .execute(exec(&s, "SELECT * FROM range(1000)"))
        .await
        .operation_handle
        .unwrap();
    assert_eq!(
        c.wait_finished(&handle).await.operation_state,
        Some(TOperationState::FINISHED_STATE)
    );
    let meta = c.metadata(&handle).await;
    let page = c.fetch(&handle, 700).await;
    let rows = page.results.as_ref().unwrap();
    // 700 rows in batches of at most 300.
    let counts: Vec<i64> = rows
        .arrow_batches
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| b.row_count)
        .collect();
    assert_eq!(counts, vec![300, 300, 100]);
    assert_eq!(page.has_more_rows, Some(true));
    // maxBytes 800 = 100 rows of one BIGINT.
    let mut req = fetch_req(&handle, 1000);
    req.max_bytes = Some(800);
    let page = c.fetch_with(req).await;
    let got = ids(&arrow_batches(&meta, page.results.as_ref().unwrap()));
    assert_eq!(got, (700..800).collect::<Vec<i64>>());
    // A refetch from an explicit offset does not lose the rows.
    let mut req = fetch_req(&handle, 5);
    req.start_row_offset = Some(10);
    let page = c.fetch_with(req).await;
    assert_eq!(page.results.as_ref().unwrap().start_row_offset, 10);
    assert_eq!(
        ids(&arrow_batches(&meta, page.results.as_ref().unwrap())),
        vec![10, 11, 12, 13, 14]
    );
    // FETCH_NEXT continues after the last page served.
    let page = c.fetch(&handle, 1000).await;
    assert_eq!(page.results.as_ref().unwrap().start_row_offset, 15);
    assert_eq!(page.has_more_rows, Some(false));
    assert_eq!(
        ids(&arrow_batches(&meta, page.results.as_ref().unwrap())).len(),
        985
    );
    // Past the end: an empty page.
    let page = c.fetch(&handle, 1000).await;
    assert_eq!(page.has_more_rows, Some(false));
    assert!(page
        .results
        .as_ref()
        .unwrap()
        .arrow_batches
        .as_ref()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn lz4_arrow_batches_are_lz4_frames() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let mut req = with_direct(exec(&s, "SELECT * FROM mock.rows(100)"), 1000);
    req.can_decompress_l_z4_result = Some(true);
    let dr = c.execute(req).await.direct_results.unwrap();
    let meta = dr.result_set_metadata.unwrap();
    assert_eq!(meta.lz4_compressed, Some(true));
    let rows = dr.result_set.unwrap().results.unwrap();
    // The LZ4 frame magic number.
    assert_eq!(
        &rows.arrow_batches.as_ref().unwrap()[0].batch[..4],
        &[0x04, 0x22, 0x4d, 0x18]
    );
    let batches = arrow_batches(&meta, &rows);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    let names = batches[0].column(1).as_string::<i32>();
    assert!(names.is_null(3));
    assert_eq!(names.value(4), "name-4");
}

#[tokio::test]
async fn arrow_without_native_types_sends_timestamps_as_strings() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let mut req = with_direct(exec(&s, "SELECT * FROM mock.rows(3)"), 1000);
    req.use_arrow_native_types = None;
    let dr = c.execute(req).await.direct_results.unwrap();
    let meta = dr.result_set_metadata.unwrap();
    // The Hive schema still says TIMESTAMP.
    let ts_type = &meta.schema.as_ref().unwrap().columns[3].type_desc.types[0];
    assert!(matches!(
        ts_type,
        TTypeEntry::PrimitiveEntry(p) if p.type_ == TTypeId::TIMESTAMP_TYPE
    ));
    let batches = arrow_batches(&meta, &dr.result_set.unwrap().results.unwrap());
    let ts = batches[0].column(3).as_string::<i32>();
    assert_eq!(ts.value(2), "1970-01-01 00:00:02");
}

#[tokio::test]
async fn clients_without_arrow_get_typed_columns() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let mut req = with_direct(exec(&s, "SELECT * FROM mock.rows(20)"), 1000);
    req.can_read_arrow_result = Some(false);
    req.can_decompress_l_z4_result = Some(true);
    let dr = c.execute(req).await.direct_results.unwrap();
    let meta = dr.result_set_metadata.unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::COLUMN_BASED_SET));
    assert_eq!(meta.lz4_compressed, Some(false));
    assert!(meta.arrow_schema.is_none());
    let cols = dr.result_set.unwrap().results.unwrap().columns.unwrap();
    assert_eq!(cols.len(), 5);
    match &cols[1] {
        TColumn::StringVal(c) => {
            assert_eq!(c.values.len(), 20);
            assert_eq!(c.values[5], "name-5");
            // ids 3, 10, 17 are NULL.
            for i in 0..20usize {
                let null = c.nulls.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
                assert_eq!(null, i % 7 == 3, "row {i}");
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&cols[2], TColumn::DoubleVal(d) if d.values[4].0 == 1.0));
    assert!(matches!(&cols[4], TColumn::BoolVal(b) if b.values[0] && !b.values[1]));
}

#[tokio::test]
async fn a_registered_result_is_served_for_its_sql() {
    let mock = MockWarehouse::start().await.unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]));
    let batch = |k: Vec<i64>, v: Vec<Option<&str>>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(StringArray::from(v)),
            ],
        )
        .unwrap()
    };
    mock.register_result(
        "SELECT k, v FROM my.table",
        schema.clone(),
        vec![
            batch(vec![1, 2], vec![Some("a"), None]),
            batch(vec![3], vec![Some("c")]),
        ],
    )
    .unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let dr = c
        .execute(with_direct(exec(&s, "select k,  v from MY.TABLE;"), 2))
        .await
        .direct_results
        .unwrap();
    let meta = dr.result_set_metadata.unwrap();
    let first = arrow_batches(&meta, &dr.result_set.unwrap().results.unwrap());
    assert_eq!(ids(&first), vec![1, 2]);
    assert!(first[0].column(1).is_null(1));
}

// -- async states, cancel, timeout -----------------------------------------------------------

#[tokio::test]
async fn running_polls_answer_pending_then_running_then_finished() {
    let mock = MockWarehouse::builder()
        .running_polls(3)
        .start()
        .await
        .unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c.execute(with_direct(exec(&s, "SELECT 1"), 100)).await;
    // Not finished yet: direct results carry the status only.
    let dr = resp.direct_results.unwrap();
    assert_eq!(
        dr.operation_status.unwrap().operation_state,
        Some(TOperationState::PENDING_STATE)
    );
    assert!(dr.result_set.is_none() && dr.close_operation.is_none());
    let op = resp.operation_handle.unwrap();
    let mut states = Vec::new();
    for _ in 0..4 {
        states.push(c.status(&op).await.operation_state.unwrap());
    }
    assert_eq!(
        states,
        vec![
            TOperationState::PENDING_STATE,
            TOperationState::RUNNING_STATE,
            TOperationState::RUNNING_STATE,
            TOperationState::FINISHED_STATE
        ]
    );
    assert_eq!(mock.call_count("GetOperationStatus"), 4);
}

#[tokio::test(start_paused = true)]
async fn sleep_runs_for_its_milliseconds_then_finishes_with_one_row() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let started = tokio::time::Instant::now();
    let op = c
        .execute(exec(&s, "SELECT sleep(1500)"))
        .await
        .operation_handle
        .unwrap();
    assert_eq!(
        c.status(&op).await.operation_state,
        Some(TOperationState::PENDING_STATE)
    );
    assert_eq!(
        c.status(&op).await.operation_state,
        Some(TOperationState::RUNNING_STATE)
    );
    let fetch_too_early = c.fetch(&op, 10).await;
    assert_eq!(
        fetch_too_early.status.status_code,
        TStatusCode::ERROR_STATUS
    );
    let done = c.wait_finished(&op).await;
    assert_eq!(done.operation_state, Some(TOperationState::FINISHED_STATE));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let meta = c.metadata(&op).await;
    let page = c.fetch(&op, 10).await;
    assert_eq!(
        ids(&arrow_batches(&meta, page.results.as_ref().unwrap())),
        vec![1500]
    );
}

#[tokio::test(start_paused = true)]
async fn a_synchronous_execution_answers_when_the_statement_is_done() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let started = tokio::time::Instant::now();
    let mut req = with_direct(exec(&s, "SELECT sleep(800)"), 10);
    req.run_async = Some(false);
    let dr = c.execute(req).await.direct_results.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(
        dr.operation_status.unwrap().operation_state,
        Some(TOperationState::FINISHED_STATE)
    );
    assert!(dr.close_operation.is_some());
}

#[tokio::test]
async fn cancel_moves_a_running_statement_to_canceled() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let op = c
        .execute(exec(&s, "SELECT sleep(600000)"))
        .await
        .operation_handle
        .unwrap();
    let r: TCancelOperationResp = c
        .call("CancelOperation", &TCancelOperationReq::new(op.clone()))
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::SUCCESS_STATUS);
    assert_eq!(
        c.status(&op).await.operation_state,
        Some(TOperationState::CANCELED_STATE)
    );
    let page = c.fetch(&op, 10).await;
    assert_eq!(page.status.status_code, TStatusCode::ERROR_STATUS);
    assert_eq!(mock.call_count("CancelOperation"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_statement_longer_than_its_query_timeout_ends_timedout() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let mut req = exec(&s, "SELECT sleep(10000)");
    req.query_timeout = Some(2);
    let op = c.execute(req).await.operation_handle.unwrap();
    let started = tokio::time::Instant::now();
    let end = c.wait_finished(&op).await;
    assert_eq!(end.operation_state, Some(TOperationState::TIMEDOUT_STATE));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(10));
    assert!(end.error_message.is_some());
}

// -- errors ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_table_ends_in_error_with_42p01() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    // Through direct results...
    let resp = c
        .execute(with_direct(exec(&s, "SELECT * FROM sales.orders"), 100))
        .await;
    let st = resp.direct_results.unwrap().operation_status.unwrap();
    assert_eq!(st.operation_state, Some(TOperationState::ERROR_STATE));
    assert_eq!(st.sql_state.as_deref(), Some("42P01"));
    assert!(st.error_message.unwrap().contains("sales.orders"));
    assert!(st.display_message.is_some());
    // ...and through polling; metadata and fetch report the same error.
    let op = c
        .execute(exec(&s, "select a from nope"))
        .await
        .operation_handle
        .unwrap();
    let st = c.status(&op).await;
    assert_eq!(st.operation_state, Some(TOperationState::ERROR_STATE));
    assert_eq!(st.sql_state.as_deref(), Some("42P01"));
    let f = c.fetch(&op, 10).await;
    assert_eq!(f.status.status_code, TStatusCode::ERROR_STATUS);
    assert_eq!(f.status.sql_state.as_deref(), Some("42P01"));
}

#[tokio::test]
async fn a_registered_error_is_reported_with_its_sql_state() {
    let mock = MockWarehouse::start().await.unwrap();
    mock.register_error(
        "SELECT boom()",
        "22012",
        "[DIVIDE_BY_ZERO] Division by zero.",
    );
    let c = Conn::new(&mock);
    let s = c.open().await;
    let op = c
        .execute(exec(&s, "select boom()"))
        .await
        .operation_handle
        .unwrap();
    let st = c.status(&op).await;
    assert_eq!(st.operation_state, Some(TOperationState::ERROR_STATE));
    assert_eq!(st.sql_state.as_deref(), Some("22012"));
}

#[tokio::test]
async fn unknown_handles_are_invalid_handle() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let bogus = TOperationHandle::new(
        crate::thrift::handles::new_handle_identifier(),
        TOperationType::EXECUTE_STATEMENT,
        true,
        None,
    );
    assert_eq!(
        c.status(&bogus).await.status.status_code,
        TStatusCode::INVALID_HANDLE_STATUS
    );
    assert_eq!(
        c.fetch(&bogus, 1).await.status.status_code,
        TStatusCode::INVALID_HANDLE_STATUS
    );
    assert_eq!(
        c.metadata(&bogus).await.status.status_code,
        TStatusCode::INVALID_HANDLE_STATUS
    );
    assert_eq!(
        c.close_op(&bogus).await.status_code,
        TStatusCode::INVALID_HANDLE_STATUS
    );
    let r: TCancelOperationResp = c
        .call("CancelOperation", &TCancelOperationReq::new(bogus))
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::INVALID_HANDLE_STATUS);
}

// -- DML and commands ------------------------------------------------------------------------

#[tokio::test]
async fn dml_has_no_result_set_and_reports_rows_affected() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c
        .execute(exec(
            &s,
            "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        ))
        .await;
    let op = resp.operation_handle.unwrap();
    assert!(!op.has_result_set);
    assert_eq!(op.modified_row_count.map(|v| v.0), Some(3.0));
    let st = c.status(&op).await;
    assert_eq!(st.operation_state, Some(TOperationState::FINISHED_STATE));
    assert_eq!(st.has_result_set, Some(false));
    assert_eq!(st.num_modified_rows, Some(3));
    // With direct results the operation is finished and closed at once.
    let resp = c
        .execute(with_direct(exec(&s, "DELETE FROM t WHERE x = 1"), 100))
        .await;
    let dr = resp.direct_results.unwrap();
    assert_eq!(dr.operation_status.unwrap().num_modified_rows, Some(1));
    // Clients read the (empty) metadata from direct results whenever the statement finished.
    assert!(dr
        .result_set_metadata
        .unwrap()
        .schema
        .unwrap()
        .columns
        .is_empty());
    assert_eq!(dr.result_set.unwrap().has_more_rows, Some(false));
    assert!(dr.close_operation.is_some());
    assert_eq!(mock.open_operations(), 1);
}

#[tokio::test]
async fn use_changes_the_namespace_current_catalog_reports() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    c.execute(with_direct(exec(&s, "USE CATALOG sales"), 10))
        .await;
    let dr = c
        .execute(with_direct(exec(&s, "SELECT current_catalog()"), 10))
        .await
        .direct_results
        .unwrap();
    let meta = dr.result_set_metadata.unwrap();
    let b = arrow_batches(&meta, &dr.result_set.unwrap().results.unwrap());
    assert_eq!(b[0].column(0).as_string::<i32>().value(0), "sales");
    assert_eq!(mock.sessions()[0].catalog.as_deref(), Some("sales"));
}

// -- protocol versions -----------------------------------------------------------------------

#[tokio::test]
async fn a_vanilla_hive_server_ignores_extensions() {
    let mock = MockWarehouse::builder()
        .server_protocol_version(protocol_version::HIVE_V10)
        .start()
        .await
        .unwrap();
    let c = Conn::new(&mock);
    // A Databricks client's SPARK version (or -7, or nothing) in field 1 is refused with a
    // Thrift application exception, as vanilla HiveServer2 does.
    for field1 in [
        None,
        Some(TProtocolVersion(-7)),
        Some(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8),
    ] {
        let mut req = open_req();
        req.client_protocol = field1;
        let refused = c
            .call::<_, TOpenSessionResp>("OpenSession", &req)
            .await
            .expect_err("refused");
        assert!(refused.is_application_exception(), "{refused}");
        assert!(
            refused
                .message()
                .contains("Required field 'client_protocol' is unset!"),
            "{refused}"
        );
    }
    let mut req = open_req();
    req.client_protocol = Some(TProtocolVersion::HIVE_CLI_SERVICE_PROTOCOL_V10);
    let s = c.open_with(req).await.session_handle.unwrap();
    let resp = c
        .execute(with_direct(exec(&s, "SELECT * FROM range(5)"), 100))
        .await;
    assert!(resp.direct_results.is_none());
    let op = resp.operation_handle.unwrap();
    c.wait_finished(&op).await;
    let meta = c.metadata(&op).await;
    assert_eq!(meta.result_format, None);
    let page = c.fetch(&op, 3).await;
    assert_eq!(page.has_more_rows, Some(false));
    assert!(page.results.unwrap().columns.is_some());
}

#[tokio::test]
async fn arrow_needs_spark_v5_and_lz4_spark_v6() {
    let mock = MockWarehouse::builder()
        .server_protocol_version(protocol_version::SPARK_V5)
        .start()
        .await
        .unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let mut req = with_direct(exec(&s, "SELECT 1"), 10);
    req.can_decompress_l_z4_result = Some(true);
    let meta = c
        .execute(req)
        .await
        .direct_results
        .unwrap()
        .result_set_metadata
        .unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::ARROW_BASED_SET));
    assert_eq!(meta.lz4_compressed, Some(false));
}

// -- transport-level behaviour on the Thrift endpoint ----------------------------------------

#[tokio::test]
async fn a_wrong_token_gets_401_and_is_counted() {
    let mock = MockWarehouse::builder()
        .token("right")
        .start()
        .await
        .unwrap();
    let mut c = Conn::new(&mock);
    c.token = "wrong".into();
    let err = c
        .call::<_, TOpenSessionResp>("OpenSession", &open_req())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.http_status(), Some(401));
    assert_eq!(mock.call_count("OpenSession"), 1);
    assert_eq!(
        mock.handled_count("OpenSession"),
        0,
        "a refused request is not run"
    );
    assert_eq!(mock.open_sessions(), 0);
    c.token = "right".into();
    c.call::<_, TOpenSessionResp>("OpenSession", &open_req())
        .await
        .unwrap();
    assert_eq!(mock.call_count("OpenSession"), 2);
    assert_eq!(mock.handled_count("OpenSession"), 1);
}

#[tokio::test]
async fn an_unknown_method_gets_an_application_exception() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let err = c
        .call::<_, TGetTypeInfoResp>(
            "GetDelegationToken",
            &TCloseSessionReq::new(TSessionHandle::new(
                crate::thrift::handles::new_handle_identifier(),
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("GetDelegationToken"), "{err}");
}

#[tokio::test]
async fn rpc_faults_hit_only_their_method() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    mock.inject(
        Fault::http_status(503)
            .retry_after("1")
            .on("ExecuteStatement"),
    );
    mock.inject(Fault::corrupt_body().on("GetOperationStatus"));
    mock.inject(Fault::drop_connection().on("CloseOperation"));
    let err = c
        .call::<_, TExecuteStatementResp>("ExecuteStatement", &exec(&s, "SELECT 1"))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    // The faulted call did not run.
    assert_eq!(mock.open_operations(), 0);
    let op = c
        .execute(exec(&s, "SELECT 1"))
        .await
        .operation_handle
        .unwrap();
    let err = c
        .call::<_, TGetOperationStatusResp>(
            "GetOperationStatus",
            &TGetOperationStatusReq::new(op.clone(), None),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    let err = c
        .call::<_, TCloseOperationResp>("CloseOperation", &TCloseOperationReq::new(op.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert_eq!(mock.open_operations(), 1);
    assert_eq!(
        c.close_op(&op).await.status_code,
        TStatusCode::SUCCESS_STATUS
    );
    assert_eq!(mock.call_count("ExecuteStatement"), 2);
    assert_eq!(mock.call_count("CloseOperation"), 2);
    assert_eq!(mock.statements().len(), 1);
    assert_eq!(mock.statements()[0].sql, "SELECT 1");
}

#[tokio::test]
async fn ten_million_rows_are_generated_page_by_page() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let op = c
        .execute(exec(&s, "SELECT * FROM mock.rows(10000000)"))
        .await
        .operation_handle
        .unwrap();
    c.wait_finished(&op).await;
    let meta = c.metadata(&op).await;
    let mut req = fetch_req(&op, 3);
    req.start_row_offset = Some(9_999_998);
    let page = c.fetch_with(req).await;
    assert_eq!(page.has_more_rows, Some(false));
    assert_eq!(
        ids(&arrow_batches(&meta, page.results.as_ref().unwrap())),
        vec![9_999_998, 9_999_999]
    );
}

// -- metadata RPCs ---------------------------------------------------------------------------

fn string_column(rows: &TRowSet, i: usize) -> Vec<String> {
    match &rows.columns.as_ref().unwrap()[i] {
        TColumn::StringVal(c) => c.values.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn get_catalogs_answers_the_fixed_catalog_through_direct_results() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let req = TGetCatalogsReq::new(s, TSparkGetDirectResults::new(1000, None), true);
    let resp: TGetCatalogsResp = c.call("GetCatalogs", &req).await.unwrap();
    assert_eq!(
        resp.operation_handle.unwrap().operation_type,
        TOperationType::GET_CATALOGS
    );
    let dr = resp.direct_results.unwrap();
    let meta = dr.result_set_metadata.unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::COLUMN_BASED_SET));
    assert_eq!(meta.schema.unwrap().columns[0].column_name, "TABLE_CAT");
    let rows = dr.result_set.unwrap().results.unwrap();
    assert_eq!(
        string_column(&rows, 0),
        vec!["hive_metastore", "main", "samples"]
    );
    assert!(dr.close_operation.is_some());
    assert_eq!(mock.open_operations(), 0);
}

#[tokio::test]
async fn get_schemas_and_get_tables_filter_by_pattern_when_polled_and_fetched() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let req = TGetSchemasReq::new(s.clone(), "main".to_string(), "%".to_string(), None, true);
    let op = c
        .call::<_, TGetSchemasResp>("GetSchemas", &req)
        .await
        .unwrap()
        .operation_handle
        .unwrap();
    c.wait_finished(&op).await;
    let rows = c.fetch(&op, 100).await.results.unwrap();
    assert_eq!(
        string_column(&rows, 0),
        vec!["default", "information_schema"]
    );

    let req = TGetTablesReq::new(
        s,
        None,
        "tpch".to_string(),
        "%s%".to_string(),
        vec!["TABLE".to_string()],
        None,
        true,
    );
    let op = c
        .call::<_, TGetTablesResp>("GetTables", &req)
        .await
        .unwrap()
        .operation_handle
        .unwrap();
    c.wait_finished(&op).await;
    let rows = c.fetch(&op, 100).await.results.unwrap();
    assert_eq!(
        string_column(&rows, 2),
        vec!["customer", "orders", "partsupp", "supplier"]
    );
    assert_eq!(string_column(&rows, 3), vec!["TABLE"; 4]);
}

#[tokio::test]
async fn get_info_names_the_dbms_and_rejects_unknown_types() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = Conn::new(&mock);
    let s = c.open().await;
    let r: TGetInfoResp = c
        .call(
            "GetInfo",
            &TGetInfoReq::new(s.clone(), TGetInfoType::CLI_DBMS_NAME),
        )
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::SUCCESS_STATUS);
    assert_eq!(r.info_value, TGetInfoValue::StringValue("Spark SQL".into()));
    let r: TGetInfoResp = c
        .call(
            "GetInfo",
            &TGetInfoReq::new(s, TGetInfoType::CLI_MAX_DRIVER_CONNECTIONS),
        )
        .await
        .unwrap();
    assert_eq!(r.status.status_code, TStatusCode::ERROR_STATUS);
}

// -- CloudFetch ----------------------------------------------------------------------------

/// A mock that answers results above 1,000 rows with links to files of 1,000 rows, 3 per page.
async fn cloudfetch_mock() -> MockWarehouse {
    MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(1_000)
        .cloudfetch_links_per_page(3)
        .start()
        .await
        .unwrap()
}

/// An execution that allows CloudFetch, with LZ4 and direct results.
fn exec_cloudfetch(s: &TSessionHandle, sql: &str) -> TExecuteStatementReq {
    let mut req = with_direct(exec(s, sql), 100_000);
    req.can_download_result = Some(true);
    req.can_decompress_l_z4_result = Some(true);
    req
}

/// GET `url` with `headers`; the status and the body (an error when the body is cut short).
async fn get(url: &str, headers: &[(&str, &str)]) -> std::result::Result<(u16, Bytes), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(Method::GET).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// GET a link the way a driver should: with its own headers only.
async fn get_link(link: &TSparkArrowResultLink) -> (u16, Bytes) {
    let headers: Vec<(&str, &str)> = link
        .http_headers
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    get(&link.file_link, &headers).await.unwrap()
}

/// The ids in a CloudFetch file (an LZ4-framed Arrow IPC stream).
fn file_ids(body: &[u8]) -> Vec<i64> {
    let mut plain = Vec::new();
    lz4_flex::frame::FrameDecoder::new(body)
        .read_to_end(&mut plain)
        .unwrap();
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(plain), None).unwrap();
    let batches: Vec<RecordBatch> = reader.map(|r| r.unwrap()).collect();
    ids(&batches)
}

fn links(resp: &TFetchResultsResp) -> &[TSparkArrowResultLink] {
    resp.results
        .as_ref()
        .and_then(|r| r.result_links.as_deref())
        .expect("result links")
}

#[tokio::test]
async fn large_results_are_links_to_ipc_files_in_pages() {
    let mock = cloudfetch_mock().await;
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c
        .execute(exec_cloudfetch(&s, "SELECT * FROM range(10500)"))
        .await;
    let dr = resp.direct_results.unwrap();
    let meta = dr.result_set_metadata.unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::URL_BASED_SET));
    assert_eq!(meta.lz4_compressed, Some(true));
    assert!(meta.arrow_schema.is_some());
    assert!(
        dr.close_operation.is_none(),
        "a CloudFetch result stays open for link refreshes"
    );
    let first = dr.result_set.unwrap();
    assert_eq!(first.has_more_rows, Some(true));
    assert_eq!(first.results.as_ref().unwrap().start_row_offset, 0);
    let page = links(&first);
    let offsets: Vec<(i64, i64)> = page
        .iter()
        .map(|l| (l.start_row_offset, l.row_count))
        .collect();
    assert_eq!(offsets, vec![(0, 1000), (1000, 1000), (2000, 1000)]);
    let now = cloudfetch::now_ms();
    for (i, link) in page.iter().enumerate() {
        assert!(
            link.file_link
                .starts_with(&format!("{}/cloudfetch/", mock.base_url())),
            "{}",
            link.file_link
        );
        let lifetime = link.expiry_time - now;
        assert!(
            (14 * 60_000..=15 * 60_000).contains(&lifetime),
            "{lifetime}"
        );
        assert!(link
            .http_headers
            .as_ref()
            .unwrap()
            .contains_key(CLOUDFETCH_HEADER));
        let (status, body) = get_link(link).await;
        assert_eq!(status, 200);
        assert_eq!(
            body.len() as i64,
            link.bytes_num,
            "bytesNum is the served size"
        );
        let want: Vec<i64> = (i as i64 * 1000..(i as i64 + 1) * 1000).collect();
        assert_eq!(file_ids(&body), want);
    }
    assert_eq!(mock.cloudfetch_get_count(1), 1);

    let op = resp.operation_handle.unwrap();
    // The page at an offset starts exactly there; the last page says no more rows follow.
    let mut req = fetch_req(&op, 10);
    req.start_row_offset = Some(9000);
    let last = c.fetch_with(req).await;
    assert_eq!(last.has_more_rows, Some(false));
    let tail: Vec<(i64, i64)> = links(&last)
        .iter()
        .map(|l| (l.start_row_offset, l.row_count))
        .collect();
    assert_eq!(tail, vec![(9000, 1000), (10_000, 500)]);
    let (_, body) = get_link(&links(&last)[1]).await;
    assert_eq!(file_ids(&body), (10_000..10_500).collect::<Vec<_>>());
    // Asked again, the same rows come with a fresh signature.
    let mut req = fetch_req(&op, 10);
    req.start_row_offset = Some(0);
    let again = c.fetch_with(req).await;
    assert_eq!(links(&again)[0].start_row_offset, 0);
    assert_ne!(links(&again)[0].file_link, page[0].file_link);
    assert_eq!(links(&again)[0].bytes_num, page[0].bytes_num);
    // FETCH_NEXT continues after the last page given out (rows 0..3000).
    let next = c.fetch(&op, 10).await;
    assert_eq!(links(&next)[0].start_row_offset, 3000);
    // An offset inside a file is refused.
    let mut req = fetch_req(&op, 10);
    req.start_row_offset = Some(1500);
    let bad = c.fetch_with(req).await;
    assert_eq!(bad.status.status_code, TStatusCode::ERROR_STATUS);
    // Past the end: no links, no more rows.
    let mut req = fetch_req(&op, 10);
    req.start_row_offset = Some(10_500);
    let end = c.fetch_with(req).await;
    assert!(links(&end).is_empty());
    assert_eq!(end.has_more_rows, Some(false));
}

#[tokio::test]
async fn small_results_and_clients_without_cloudfetch_get_inline_arrow() {
    let mock = cloudfetch_mock().await;
    let c = Conn::new(&mock);
    let s = c.open().await;
    let small = c
        .execute(exec_cloudfetch(&s, "SELECT * FROM range(1000)"))
        .await
        .direct_results
        .unwrap();
    let meta = small.result_set_metadata.unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::ARROW_BASED_SET));
    let mut req = exec_cloudfetch(&s, "SELECT * FROM range(5000)");
    req.can_download_result = Some(false);
    let meta = c
        .execute(req)
        .await
        .direct_results
        .unwrap()
        .result_set_metadata
        .unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::ARROW_BASED_SET));
    // Before SPARK V3, no CloudFetch either.
    let mut open = open_req();
    open.client_protocol_i64 = Some(i64::from(protocol_version::SPARK_V1) + 1);
    let old = c.open_with(open).await.session_handle.unwrap();
    let mut req = exec_cloudfetch(&old, "SELECT * FROM range(5000)");
    req.can_read_arrow_result = Some(false);
    let meta = c
        .execute(req)
        .await
        .direct_results
        .unwrap()
        .result_set_metadata
        .unwrap();
    assert_eq!(meta.result_format, Some(TSparkRowSetType::COLUMN_BASED_SET));
    assert_eq!(mock.call_count(endpoint::CLOUDFETCH_FILE), 0);
}

#[tokio::test]
async fn file_gets_must_carry_the_links_header_a_valid_signature_and_no_token() {
    let mock = cloudfetch_mock().await;
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c
        .execute(exec_cloudfetch(&s, "SELECT * FROM range(5000)"))
        .await;
    let first = resp.direct_results.unwrap().result_set.unwrap();
    let link = links(&first)[0].clone();
    let header = link.http_headers.as_ref().unwrap()[CLOUDFETCH_HEADER].clone();

    let (status, _) = get(&link.file_link, &[]).await.unwrap();
    assert_eq!(status, 400, "without the link's header");
    let (status, _) = get(&link.file_link, &[(CLOUDFETCH_HEADER, "guess")])
        .await
        .unwrap();
    assert_eq!(status, 400, "with a wrong header value");
    let bearer = format!("Bearer {}", mock.token());
    let (status, _) = get(
        &link.file_link,
        &[(CLOUDFETCH_HEADER, &header), ("authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "the workspace token is refused");
    assert_eq!(mock.cloudfetch_gets_with_authorization(), 1);
    assert!(mock
        .requests()
        .iter()
        .all(|r| r.headers.iter().all(|(_, v)| !v.contains(mock.token()))));

    let tampered = link.file_link.replace("exp=", "exp=1");
    let (status, _) = get(&tampered, &[(CLOUDFETCH_HEADER, &header)])
        .await
        .unwrap();
    assert_eq!(status, 403, "a changed expiry breaks the signature");
    let (status, _) = get(&link.file_link, &[(CLOUDFETCH_HEADER, &header)])
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(mock.cloudfetch_get_count(0), 5);

    // Closing the operation evicts its files.
    c.close_op(&resp.operation_handle.unwrap()).await;
    let (status, _) = get(&link.file_link, &[(CLOUDFETCH_HEADER, &header)])
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn chunk_faults_damage_delay_or_expire_only_their_file() {
    let mock = cloudfetch_mock().await;
    mock.inject(Fault::expired_link().on_chunk(1));
    mock.inject(Fault::truncated_body().on_chunk(2));
    mock.inject(Fault::wrong_row_count().on_chunk(0));
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c
        .execute(exec_cloudfetch(&s, "SELECT * FROM range(5000)"))
        .await;
    let first = resp.direct_results.unwrap().result_set.unwrap();
    let page = links(&first);
    let now = cloudfetch::now_ms();
    assert!(page[1].expiry_time < now, "issued expired");
    assert!(page[0].expiry_time > now && page[2].expiry_time > now);
    let (status, _) = get_link(&page[1]).await;
    assert_eq!(status, 403, "an expired link is refused");
    let (status, short) = get_link(&page[0]).await;
    assert_eq!(status, 200);
    assert_eq!(file_ids(&short), (0..999).collect::<Vec<_>>());
    let headers: Vec<(&str, &str)> = page[2]
        .http_headers
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(
        get(&page[2].file_link, &headers).await.is_err(),
        "the body is cut short"
    );
    // Each fault applied once: the next GETs are served whole.
    let (_, whole) = get_link(&page[2]).await;
    assert_eq!(file_ids(&whole), (2000..3000).collect::<Vec<_>>());
    let (_, whole) = get_link(&page[0]).await;
    assert_eq!(file_ids(&whole).len(), 1000);
    assert_eq!(mock.pending_faults(), 0);
}

#[tokio::test]
async fn cloudfetch_files_are_the_files_served_and_decode_to_the_rows() {
    let mock = cloudfetch_mock().await;
    let files = mock
        .cloudfetch_files("SELECT * FROM range(2500)", true)
        .unwrap();
    assert_eq!(files.len(), 3);
    let c = Conn::new(&mock);
    let s = c.open().await;
    let resp = c
        .execute(exec_cloudfetch(&s, "SELECT * FROM range(2500)"))
        .await;
    let first = resp.direct_results.unwrap().result_set.unwrap();
    for (link, file) in links(&first).iter().zip(&files) {
        let (_, served) = get_link(link).await;
        assert_eq!(&served, file, "the same bytes as served");
    }
    let mut all = Vec::new();
    for f in &files {
        all.extend(decode_cloudfetch_file(f, true).unwrap());
    }
    assert_eq!(ids(&all), (0..2500).collect::<Vec<_>>());
    let plain = mock
        .cloudfetch_files("select * from range(10)", false)
        .unwrap();
    assert_eq!(
        ids(&decode_cloudfetch_file(&plain[0], false).unwrap()).len(),
        10
    );
    assert!(decode_cloudfetch_file(&plain[0], true).is_err());
    assert!(mock.cloudfetch_files("SELECT 1", true).is_err());
}
