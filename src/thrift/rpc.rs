//! The TCLIService client: one async fn per RPC, each one HTTP POST of a Thrift call through the
//! driver's transport and retry policy, its reply decoded and its `TStatus` checked.
//!
//! All RPCs go through one private helper, [`ThriftClient::call`]: encode the call
//! ([`framing::encode_call`], sequence ids from a counter), build the request (the one place
//! that sets the Thrift headers), send it with [`RetryPolicy::send`] (every RPC but
//! OpenSession and ExecuteStatement is idempotent), decode the reply
//! ([`framing::decode_reply`]), and turn an ERROR or INVALID_HANDLE status into an
//! [`Error`](crate::Error) ([`status::check_status`]). Errors carry no session or statement id:
//! the callers attach them.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, COOKIE};
use thrift::protocol::TSerializable;

use crate::auth::AuthProvider;
use crate::error::{redact_url, Result};
use crate::http::{HttpRequest, HttpTransport, RetryPolicy};
use crate::thrift::cookies::CookieJar;
use crate::thrift::framing;
use crate::thrift::status;
use crate::thrift::tcli::*;

tokio::task_local! {
    /// Where the RPCs made within [`counting_retries`] add their retries.
    static RETRY_COUNTER: Arc<AtomicU32>;
}

/// Run `f`, adding to `counter` the retries (HTTP attempts beyond each call's first) of every
/// RPC that `f` makes itself (not in tasks it spawns). `None` runs `f` as it is.
pub(crate) async fn counting_retries<F: Future>(
    counter: Option<&Arc<AtomicU32>>,
    f: F,
) -> F::Output {
    match counter {
        Some(counter) => RETRY_COUNTER.scope(counter.clone(), f).await,
        None => f.await,
    }
}

/// The media type of Thrift bodies, sent as `Content-Type` and `Accept`.
const THRIFT_CONTENT_TYPE: &str = "application/x-thrift";

/// A TCLIService client over one endpoint (`https://host:port/http_path`). Cheap to share behind
/// an `Arc`; calls may run concurrently.
pub(crate) struct ThriftClient {
    transport: Arc<dyn HttpTransport>,
    endpoint: http::Uri,
    auth: Arc<dyn AuthProvider>,
    retry: RetryPolicy,
    next_seq_id: AtomicI32,
    /// Cookies the server set (e.g. HiveServer2's `hive.server2.auth`), sent back on each call.
    cookies: CookieJar,
}

impl fmt::Debug for ThriftClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThriftClient")
            .field("endpoint", &redact_url(&self.endpoint.to_string()))
            .field("auth", &self.auth.auth_type())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The response types of TCLIService, all of which start with a `TStatus`.
trait HasStatus {
    fn status(&self) -> &TStatus;
}

macro_rules! has_status {
    ($($resp:ty),* $(,)?) => {
        $(impl HasStatus for $resp {
            fn status(&self) -> &TStatus {
                &self.status
            }
        })*
    };
}

has_status!(
    TOpenSessionResp,
    TCloseSessionResp,
    TExecuteStatementResp,
    TGetOperationStatusResp,
    TGetResultSetMetadataResp,
    TFetchResultsResp,
    TCancelOperationResp,
    TCloseOperationResp,
    TGetInfoResp,
    TGetTypeInfoResp,
    TGetCatalogsResp,
    TGetSchemasResp,
    TGetTablesResp,
    TGetTableTypesResp,
    TGetColumnsResp,
    TGetFunctionsResp,
    TGetPrimaryKeysResp,
    TGetCrossReferenceResp,
);

/// Whether a call is safe to send again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotency {
    /// Sending it twice does no harm (reads, closes, cancels, metadata calls).
    Idempotent,
    /// Sending it twice may do the work twice (OpenSession, ExecuteStatement).
    NotIdempotent,
}

use Idempotency::{Idempotent, NotIdempotent};

impl ThriftClient {
    /// A client that POSTs to `endpoint` through `transport`, authenticating with `auth` and
    /// retrying per `retry`.
    pub(crate) fn new(
        transport: Arc<dyn HttpTransport>,
        endpoint: http::Uri,
        auth: Arc<dyn AuthProvider>,
        retry: RetryPolicy,
    ) -> Self {
        ThriftClient {
            transport,
            endpoint,
            auth,
            retry,
            next_seq_id: AtomicI32::new(1),
            cookies: CookieJar::default(),
        }
    }

    /// OpenSession. Not idempotent: never resent after an unknown outcome.
    pub(crate) async fn open_session(&self, req: TOpenSessionReq) -> Result<TOpenSessionResp> {
        self.call("OpenSession", &req, NotIdempotent).await
    }

    /// CloseSession.
    pub(crate) async fn close_session(&self, req: TCloseSessionReq) -> Result<TCloseSessionResp> {
        self.call("CloseSession", &req, Idempotent).await
    }

    /// ExecuteStatement. Not idempotent: never resent after an unknown outcome.
    pub(crate) async fn execute_statement(
        &self,
        req: TExecuteStatementReq,
    ) -> Result<TExecuteStatementResp> {
        self.call("ExecuteStatement", &req, NotIdempotent).await
    }

    /// GetOperationStatus. The operation's state is returned as is: see
    /// [`status::operation_state_error`] for its terminal states.
    pub(crate) async fn get_operation_status(
        &self,
        req: TGetOperationStatusReq,
    ) -> Result<TGetOperationStatusResp> {
        self.call("GetOperationStatus", &req, Idempotent).await
    }

    /// GetResultSetMetadata.
    pub(crate) async fn get_result_set_metadata(
        &self,
        req: TGetResultSetMetadataReq,
    ) -> Result<TGetResultSetMetadataResp> {
        self.call("GetResultSetMetadata", &req, Idempotent).await
    }

    /// FetchResults.
    pub(crate) async fn fetch_results(&self, req: TFetchResultsReq) -> Result<TFetchResultsResp> {
        self.call("FetchResults", &req, Idempotent).await
    }

    /// CancelOperation.
    pub(crate) async fn cancel_operation(
        &self,
        req: TCancelOperationReq,
    ) -> Result<TCancelOperationResp> {
        self.call("CancelOperation", &req, Idempotent).await
    }

    /// CloseOperation.
    pub(crate) async fn close_operation(
        &self,
        req: TCloseOperationReq,
    ) -> Result<TCloseOperationResp> {
        self.call("CloseOperation", &req, Idempotent).await
    }

    /// GetInfo.
    pub(crate) async fn get_info(&self, req: TGetInfoReq) -> Result<TGetInfoResp> {
        self.call("GetInfo", &req, Idempotent).await
    }

    /// GetTypeInfo.
    pub(crate) async fn get_type_info(&self, req: TGetTypeInfoReq) -> Result<TGetTypeInfoResp> {
        self.call("GetTypeInfo", &req, Idempotent).await
    }

    /// GetCatalogs.
    pub(crate) async fn get_catalogs(&self, req: TGetCatalogsReq) -> Result<TGetCatalogsResp> {
        self.call("GetCatalogs", &req, Idempotent).await
    }

    /// GetSchemas.
    pub(crate) async fn get_schemas(&self, req: TGetSchemasReq) -> Result<TGetSchemasResp> {
        self.call("GetSchemas", &req, Idempotent).await
    }

    /// GetTables.
    pub(crate) async fn get_tables(&self, req: TGetTablesReq) -> Result<TGetTablesResp> {
        self.call("GetTables", &req, Idempotent).await
    }

    /// GetTableTypes.
    pub(crate) async fn get_table_types(
        &self,
        req: TGetTableTypesReq,
    ) -> Result<TGetTableTypesResp> {
        self.call("GetTableTypes", &req, Idempotent).await
    }

    /// GetColumns.
    pub(crate) async fn get_columns(&self, req: TGetColumnsReq) -> Result<TGetColumnsResp> {
        self.call("GetColumns", &req, Idempotent).await
    }

    /// GetFunctions.
    pub(crate) async fn get_functions(&self, req: TGetFunctionsReq) -> Result<TGetFunctionsResp> {
        self.call("GetFunctions", &req, Idempotent).await
    }

    /// GetPrimaryKeys.
    pub(crate) async fn get_primary_keys(
        &self,
        req: TGetPrimaryKeysReq,
    ) -> Result<TGetPrimaryKeysResp> {
        self.call("GetPrimaryKeys", &req, Idempotent).await
    }

    /// GetCrossReference.
    pub(crate) async fn get_cross_reference(
        &self,
        req: TGetCrossReferenceReq,
    ) -> Result<TGetCrossReferenceResp> {
        self.call("GetCrossReference", &req, Idempotent).await
    }

    /// The one path of every RPC: encode, POST with retries, decode, check the status.
    async fn call<Req, Resp>(
        &self,
        method: &'static str,
        req: &Req,
        idempotency: Idempotency,
    ) -> Result<Resp>
    where
        Req: TSerializable,
        Resp: TSerializable + HasStatus,
    {
        let seq_id = self.next_seq_id.fetch_add(1, Ordering::Relaxed);
        let body = framing::encode_call(method, seq_id, req)?;
        let request_bytes = body.len();
        let started = Instant::now();
        let mut attempts = 0;
        let result = async {
            let request = self.build_request(Bytes::from(body));
            let response = self
                .retry
                .send_authenticated(
                    &*self.transport,
                    request,
                    idempotency == Idempotent,
                    &*self.auth,
                    Some(&mut attempts),
                )
                .await?;
            self.cookies.store(&response.headers);
            let resp: Resp = framing::decode_reply(method, seq_id, &response.body)?;
            Ok::<_, crate::Error>((resp, response.body.len()))
        }
        .await;
        if attempts > 1 {
            let _ = RETRY_COUNTER.try_with(|c| c.fetch_add(attempts - 1, Ordering::Relaxed));
        }
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((resp, response_bytes)) => {
                tracing::debug!(
                    rpc = method,
                    latency_ms,
                    request_bytes,
                    response_bytes,
                    status_code = resp.status().status_code.0,
                    "thrift rpc"
                );
                status::check_status(resp.status())?;
                Ok(resp)
            }
            Err(e) => {
                tracing::debug!(
                    rpc = method,
                    latency_ms,
                    request_bytes,
                    error_kind = ?e.kind(),
                    http_status = e.http_status(),
                    "thrift rpc failed"
                );
                Err(e)
            }
        }
    }

    /// The POST of one Thrift call: the only place that sets the Thrift request headers (the
    /// retry policy adds `Authorization` at each attempt), with the server's cookies.
    fn build_request(&self, body: Bytes) -> HttpRequest {
        let mut request = HttpRequest::new(http::Method::POST, self.endpoint.clone());
        let headers = &mut request.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(THRIFT_CONTENT_TYPE));
        headers.insert(ACCEPT, HeaderValue::from_static(THRIFT_CONTENT_TYPE));
        if let Some(cookies) = self.cookies.header() {
            headers.insert(COOKIE, cookies);
        }
        request.body = body;
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenAuth;
    use crate::error::{Error, ErrorKind};
    use crate::http::{HttpResponse, MockHttpTransport};
    use crate::thrift::handles::new_handle_identifier;

    const ENDPOINT: &str = "https://adb-1.azuredatabricks.net:443/sql/1.0/warehouses/abc";

    fn client(transport: MockHttpTransport) -> ThriftClient {
        ThriftClient::new(
            Arc::new(transport),
            ENDPOINT.parse().unwrap(),
            Arc::new(TokenAuth::new("dapi-secret-token").unwrap()),
            RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
        )
    }

    fn http_ok(body: Vec<u8>) -> Result<HttpResponse> {
        Ok(HttpResponse {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: Bytes::from(body),
        })
    }

    fn status(code: TStatusCode) -> TStatus {
        TStatus {
            status_code: code,
            info_messages: None,
            sql_state: None,
            error_code: None,
            error_message: None,
            display_message: None,
            error_details_json: None,
        }
    }

    fn session_handle() -> TSessionHandle {
        TSessionHandle::new(new_handle_identifier())
    }

    fn operation_handle() -> TOperationHandle {
        TOperationHandle::new(
            new_handle_identifier(),
            TOperationType::EXECUTE_STATEMENT,
            true,
            None,
        )
    }

    /// A transport that answers every call to `method` with `resp`, echoing its sequence id.
    fn replying<T: TSerializable + Clone + Send + 'static>(
        method: &'static str,
        resp: T,
    ) -> MockHttpTransport {
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(move |req| {
            let (m, seq, _) = framing::decode_call(&req.body).unwrap();
            assert_eq!(m, method);
            http_ok(framing::encode_reply(&m, seq, &resp).unwrap())
        });
        t
    }

    fn execute_req() -> TExecuteStatementReq {
        TExecuteStatementReq {
            session_handle: session_handle(),
            statement: "SELECT * FROM nope".into(),
            conf_overlay: None,
            run_async: Some(true),
            query_timeout: None,
            get_direct_results: None,
            can_read_arrow_result: None,
            can_download_result: None,
            can_decompress_l_z4_result: None,
            max_bytes_per_file: None,
            use_arrow_native_types: None,
            result_row_limit: None,
            parameters: None,
            max_bytes_per_batch: None,
            statement_conf: None,
        }
    }

    #[tokio::test]
    async fn posts_thrift_with_content_type_accept_and_bearer_token() {
        let mut t = MockHttpTransport::new();
        t.expect_send().times(1).returning(|req| {
            assert_eq!(req.method, http::Method::POST);
            assert_eq!(req.url.to_string(), ENDPOINT);
            assert_eq!(req.headers[CONTENT_TYPE], "application/x-thrift");
            assert_eq!(req.headers[ACCEPT], "application/x-thrift");
            assert_eq!(
                req.headers[http::header::AUTHORIZATION],
                "Bearer dapi-secret-token"
            );
            let (method, seq, args) = framing::decode_call(&req.body).unwrap();
            assert_eq!(method, "OpenSession");
            let open: TOpenSessionReq = args.decode().unwrap();
            assert_eq!(open.client_protocol_i64, Some(42248));
            let resp = TOpenSessionResp {
                status: status(TStatusCode::SUCCESS_STATUS),
                server_protocol_version: TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8,
                session_handle: Some(session_handle()),
                configuration: None,
                get_infos: None,
                initial_namespace: None,
                can_use_multiple_catalogs: Some(true),
            };
            http_ok(framing::encode_reply(&method, seq, &resp).unwrap())
        });
        let resp = client(t)
            .open_session(TOpenSessionReq {
                client_protocol_i64: Some(42248),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            resp.server_protocol_version,
            TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8
        );
    }

    #[tokio::test]
    async fn sequence_ids_increase_per_call() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut t = MockHttpTransport::new();
        let seen2 = seen.clone();
        t.expect_send().times(3).returning(move |req| {
            let (m, seq, _) = framing::decode_call(&req.body).unwrap();
            seen2.lock().unwrap().push(seq);
            let resp = TCloseOperationResp::new(status(TStatusCode::SUCCESS_STATUS));
            http_ok(framing::encode_reply(&m, seq, &resp).unwrap())
        });
        let c = client(t);
        for _ in 0..3 {
            c.close_operation(TCloseOperationReq::new(operation_handle()))
                .await
                .unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    }

    #[tokio::test]
    async fn error_status_becomes_a_server_error_with_sql_state() {
        let mut st = status(TStatusCode::ERROR_STATUS);
        st.sql_state = Some("42P01".into());
        st.error_code = Some(404);
        st.error_message =
            Some("[TABLE_OR_VIEW_NOT_FOUND] The table `nope` cannot be found.".into());
        st.display_message = Some("Table nope not found".into());
        let resp = TExecuteStatementResp {
            status: st,
            operation_handle: None,
            direct_results: None,
        };
        let e = client(replying("ExecuteStatement", resp))
            .execute_statement(execute_req())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(e.sql_state(), Some("42P01"));
        assert_eq!(e.error_code(), Some(404));
        assert_eq!(e.display_message(), Some("Table nope not found"));
        assert!(e.message().contains("TABLE_OR_VIEW_NOT_FOUND"), "{e}");
        assert_eq!(e.statement_id(), None);
        assert_eq!(e.session_id(), None);
    }

    #[tokio::test]
    async fn invalid_handle_status_becomes_an_invalid_handle_error() {
        let mut st = status(TStatusCode::INVALID_HANDLE_STATUS);
        st.error_message = Some("Invalid OperationHandle".into());
        let resp = TGetOperationStatusResp {
            status: st,
            operation_state: None,
            sql_state: None,
            error_code: None,
            error_message: None,
            task_status: None,
            operation_started: None,
            operation_completed: None,
            has_result_set: None,
            progress_update_response: None,
            num_modified_rows: None,
            display_message: None,
            diagnostic_info: None,
            error_details_json: None,
        };
        let e = client(replying("GetOperationStatus", resp))
            .get_operation_status(TGetOperationStatusReq::new(operation_handle(), None))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidHandle);
        assert_eq!(e.message(), "Invalid OperationHandle");
    }

    #[tokio::test]
    async fn http_401_becomes_an_auth_error() {
        let mut t = MockHttpTransport::new();
        t.expect_send().times(1).returning(|_| {
            Ok(HttpResponse {
                status: http::StatusCode::UNAUTHORIZED,
                headers: http::HeaderMap::new(),
                body: Bytes::from_static(b"Unauthorized"),
            })
        });
        let e = client(t)
            .close_session(TCloseSessionReq::new(session_handle()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert_eq!(e.http_status(), Some(401));
        assert!(!format!("{e} {e:?}").contains("dapi-secret-token"));
    }

    #[tokio::test]
    async fn corrupt_body_becomes_a_protocol_error() {
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|req| {
            let (m, seq, _) = framing::decode_call(&req.body).unwrap();
            let resp = TCloseOperationResp::new(status(TStatusCode::SUCCESS_STATUS));
            let mut body = framing::encode_reply(&m, seq, &resp).unwrap();
            // Cut the reply in half and garble what is left of the struct.
            body.truncate(body.len() / 2 + 3);
            if let Some(last) = body.last_mut() {
                *last = 0xee;
            }
            http_ok(body)
        });
        let c = client(t);
        let e = c
            .close_operation(TCloseOperationReq::new(operation_handle()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
    }

    #[tokio::test]
    async fn html_body_becomes_a_protocol_error() {
        let mut t = MockHttpTransport::new();
        t.expect_send()
            .returning(|_| http_ok(b"<html>maintenance</html>".to_vec()));
        let e = client(t)
            .fetch_results(TFetchResultsReq::new(
                operation_handle(),
                TFetchOrientation::FETCH_NEXT,
                1000,
                None,
                None,
                None,
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
    }

    #[tokio::test]
    async fn reply_with_the_wrong_sequence_id_is_a_protocol_error() {
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|req| {
            let (m, seq, _) = framing::decode_call(&req.body).unwrap();
            let resp = TCancelOperationResp::new(status(TStatusCode::SUCCESS_STATUS));
            http_ok(framing::encode_reply(&m, seq.wrapping_add(7), &resp).unwrap())
        });
        let e = client(t)
            .cancel_operation(TCancelOperationReq::new(operation_handle()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().contains("sequence id"), "{e}");
    }

    #[tokio::test]
    async fn application_exception_is_a_protocol_error_with_its_message() {
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|req| {
            let (m, seq, _) = framing::decode_call(&req.body).unwrap();
            http_ok(framing::encode_exception(
                &m,
                seq,
                thrift::ApplicationErrorKind::UnknownMethod,
                "Invalid method name: 'GetTables'",
            ))
        });
        let e = client(t)
            .get_tables(TGetTablesReq {
                session_handle: session_handle(),
                catalog_name: None,
                schema_name: None,
                table_name: None,
                table_types: None,
                get_direct_results: None,
                run_async: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().contains("Invalid method name"), "{e}");
    }

    #[tokio::test]
    async fn auth_provider_failure_sends_nothing() {
        #[derive(Debug)]
        struct FailingAuth;
        #[async_trait::async_trait]
        impl AuthProvider for FailingAuth {
            async fn authorization(&self) -> Result<Option<HeaderValue>> {
                Err(Error::new(ErrorKind::Auth, "token refresh failed"))
            }
            fn auth_type(&self) -> &'static str {
                "failing"
            }
        }
        let mut t = MockHttpTransport::new();
        t.expect_send().times(0);
        let c = ThriftClient::new(
            Arc::new(t),
            ENDPOINT.parse().unwrap(),
            Arc::new(FailingAuth),
            RetryPolicy::default(),
        );
        let e = c
            .get_catalogs(TGetCatalogsReq {
                session_handle: session_handle(),
                get_direct_results: None,
                run_async: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
    }

    #[tokio::test]
    async fn every_rpc_sends_its_own_method_name() {
        let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut t = MockHttpTransport::new();
        let sent2 = sent.clone();
        t.expect_send().returning(move |req| {
            let (m, seq, _) = framing::decode_call(&req.body).unwrap();
            sent2.lock().unwrap().push(m.clone());
            // Every Resp type begins with `1: required TStatus status`; a reply holding only
            // that decodes as any of them but TOpenSessionResp and TGetInfoResp.
            let ok = TCloseSessionResp::new(status(TStatusCode::SUCCESS_STATUS));
            http_ok(framing::encode_reply(&m, seq, &ok).unwrap())
        });
        let c = client(t);
        let s = session_handle;
        let op = operation_handle;
        c.close_session(TCloseSessionReq::new(s())).await.unwrap();
        c.execute_statement(execute_req()).await.unwrap();
        c.get_operation_status(TGetOperationStatusReq::new(op(), None))
            .await
            .unwrap();
        c.get_result_set_metadata(TGetResultSetMetadataReq::new(op()))
            .await
            .unwrap();
        c.fetch_results(TFetchResultsReq::new(
            op(),
            TFetchOrientation::FETCH_NEXT,
            1,
            None,
            None,
            None,
            None,
        ))
        .await
        .unwrap();
        c.cancel_operation(TCancelOperationReq::new(op()))
            .await
            .unwrap();
        c.close_operation(TCloseOperationReq::new(op()))
            .await
            .unwrap();
        c.get_type_info(TGetTypeInfoReq::new(s(), None, None))
            .await
            .unwrap();
        c.get_catalogs(TGetCatalogsReq::new(s(), None, None))
            .await
            .unwrap();
        c.get_schemas(TGetSchemasReq::new(s(), None, None, None, None))
            .await
            .unwrap();
        c.get_tables(TGetTablesReq::new(s(), None, None, None, None, None, None))
            .await
            .unwrap();
        c.get_table_types(TGetTableTypesReq::new(s(), None, None))
            .await
            .unwrap();
        c.get_columns(TGetColumnsReq::new(s(), None, None, None, None, None, None))
            .await
            .unwrap();
        c.get_functions(TGetFunctionsReq::new(
            s(),
            None,
            None,
            "%".to_owned(),
            None,
            None,
        ))
        .await
        .unwrap();
        c.get_primary_keys(TGetPrimaryKeysReq::new(s(), None, None, None, None, None))
            .await
            .unwrap();
        c.get_cross_reference(TGetCrossReferenceReq::new(
            s(),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ))
        .await
        .unwrap();
        // OpenSession and GetInfo have a second required field: the minimal reply is invalid.
        let e = c
            .open_session(TOpenSessionReq::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        let e = c
            .get_info(TGetInfoReq::new(s(), TGetInfoType::CLI_DBMS_NAME))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert_eq!(
            *sent.lock().unwrap(),
            [
                "CloseSession",
                "ExecuteStatement",
                "GetOperationStatus",
                "GetResultSetMetadata",
                "FetchResults",
                "CancelOperation",
                "CloseOperation",
                "GetTypeInfo",
                "GetCatalogs",
                "GetSchemas",
                "GetTables",
                "GetTableTypes",
                "GetColumns",
                "GetFunctions",
                "GetPrimaryKeys",
                "GetCrossReference",
                "OpenSession",
                "GetInfo",
            ]
        );
    }

    #[test]
    fn debug_shows_no_query_string_or_credentials() {
        let c = ThriftClient::new(
            Arc::new(MockHttpTransport::new()),
            "https://host/sql/protocolv1/o/123/abc?o=123&token=x"
                .parse()
                .unwrap(),
            Arc::new(TokenAuth::new("dapi-secret-token").unwrap()),
            RetryPolicy::default(),
        );
        let s = format!("{c:?}");
        assert!(!s.contains("token=x"), "{s}");
        assert!(!s.contains("dapi-secret-token"), "{s}");
        assert!(s.contains("https://host/sql/protocolv1/o/123/abc"), "{s}");
    }
}
